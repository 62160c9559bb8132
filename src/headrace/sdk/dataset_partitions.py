"""`TabularDataset.partition_by` (SDK v1): write a table as one folder per partition.

`dataset.partition_by(partition_keys=['Store', 'Brand'], target=(datastore, 'out'),
name='partitioned')` writes each distinct (Store, Brand) of the table to
`out/<Store>/<Brand>/part-0.parquet` on the datastore and returns the TabularDataset of
those files with `partition_format='out/{Store}/{Brand}/*.parquet'` (so its
`partition_keys` are the keys), registered as `name` when one is given. A ParallelRunStep
with `partition_keys=['Store', 'Brand']` then gets one mini-batch per folder.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

from headrace.errors import UserError

__all__ = ["partition_by"]

_UNSAFE = re.compile(r"[/\\\x00]")


def _folder(value: Any) -> str:
    """A partition value as a folder name (one path component)."""
    text = _UNSAFE.sub("_", str(value))
    return text if text not in ("", ".", "..") else f"_{text or 'empty'}_"


def partition_by(
    dataset: Any,
    partition_keys: Any,
    target: Any,
    name: str | None = None,
    show_progress: bool = True,
    partition_as_file_dataset: bool = False,
) -> Any:
    from headrace.sdk.dataset_factory import Dataset, _sources
    from headrace.sdk.datastore import Datastore

    if (
        not isinstance(partition_keys, (list, tuple))
        or not partition_keys
        or not all(isinstance(k, str) and k for k in partition_keys)
    ):
        raise UserError(
            f"partition_by: partition_keys must be a list of column names, e.g. ['Store', "
            f"'Brand'], not {partition_keys!r:.80}."
        )
    sources, ws = _sources(target)
    if len(sources) != 1 or "datastore" not in sources[0] or ws is None:
        raise UserError(
            "partition_by: target must be one folder on a datastore, (datastore, 'path') or "
            "datastore.path('path')."
        )
    root = sources[0]["path"].strip("/")
    frame = dataset.to_pandas_dataframe()
    missing = [k for k in partition_keys if k not in frame.columns]
    if missing:
        raise UserError(
            f"partition_by: {', '.join(missing)} not among the table's columns "
            f"({', '.join(map(str, frame.columns))})."
        )
    with tempfile.TemporaryDirectory(prefix="headrace-partition-") as scratch:
        for key, part in frame.groupby(list(partition_keys), sort=False, dropna=False):
            values = key if isinstance(key, tuple) else (key,)
            folder = Path(scratch).joinpath(*(_folder(v) for v in values))
            folder.mkdir(parents=True, exist_ok=True)
            part.reset_index(drop=True).to_parquet(folder / "part-0.parquet", index=False)
        store = Datastore.get(ws, sources[0]["datastore"])
        store.upload(scratch, target_path=root, overwrite=True, show_progress=show_progress)
    prefix = f"{root}/" if root else ""
    depth = "/".join("*" for _ in partition_keys)
    partition_format = prefix + "/".join(f"{{{k}}}" for k in partition_keys) + "/*.parquet"
    path = (store, f"{prefix}{depth}/*.parquet")
    made: Any
    if partition_as_file_dataset:
        made = Dataset.File.from_files(path, partition_format=partition_format)
    else:
        made = Dataset.Tabular.from_parquet_files(path, partition_format=partition_format)
    return made.register(ws, name, create_new_version=True) if name else made
