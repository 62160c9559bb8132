"""The factories of datasets with SDK v1 names: `Dataset.File.from_files`,
`Dataset.Tabular.from_delimited_files` / `from_parquet_files` / `from_json_lines_files` /
`register_pandas_dataframe`, and `Dataset` itself (`get_by_name`, `get_by_id`, ... come
from AbstractDataset in sdk/datasets.py).

A path argument is a `(datastore, 'path or glob')` tuple, `datastore.path(...)` (a
DataReference), a DataPath, an http(s) URL, a path on this machine, or a list of them.
SDK v1 options headrace does not implement are refused with a message, never ignored.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headrace.errors import UserError
from headrace.sdk.checks import check_text
from headrace.sdk.datasets import (
    AbstractDataset,
    FileDataset,
    TabularDataset,
    _types,
)

if TYPE_CHECKING:
    from headrace.sdk.workspace import Workspace

__all__ = ["Dataset", "FileDatasetFactory", "TabularDatasetFactory"]


def _source(item: Any) -> tuple[dict[str, Any], Workspace | None]:
    """One path argument of a factory as a source, and the workspace it belongs to."""
    from headrace.sdk.data import DataPath, DataReference

    if isinstance(item, str):
        if "://" in item:
            if not item.startswith(("http://", "https://")):
                raise UserError(
                    f"Dataset path {item!r}: only http(s) URLs are read directly; register the "
                    "storage as a datastore and pass (datastore, 'path') instead."
                )
            return {"url": item}, None
        return {"local": os.path.abspath(os.path.expanduser(item))}, None
    if isinstance(item, os.PathLike):
        return {"local": os.path.abspath(os.fspath(item))}, None
    if isinstance(item, (DataReference, DataPath)):
        datastore = item.datastore
        path = item.path_on_datastore or ""
    elif isinstance(item, tuple) and len(item) == 2:
        datastore, path = item
    else:
        raise UserError(
            f"Dataset path must be a (datastore, 'path') tuple, datastore.path('...'), a "
            f"DataPath, a URL or a local path (or a list of them), not {type(item).__name__}."
        )
    name = getattr(datastore, "name", None)
    if not isinstance(name, str):
        raise UserError(
            f"Dataset path {item!r:.80}: the datastore must be a Datastore object "
            "(ws.get_default_datastore() or Datastore(ws, name))."
        )
    check_text(path, "Dataset path on the datastore", empty_ok=True)
    return {"datastore": name, "path": path or ""}, getattr(datastore, "workspace", None)


def _sources(path: Any) -> tuple[list[dict[str, Any]], Workspace | None]:
    items = path if isinstance(path, list) else [path]
    if not items:
        raise UserError("Dataset path is an empty list; give at least one path.")
    sources, workspace = [], None
    for item in items:
        source, ws = _source(item)
        sources.append(source)
        workspace = workspace or ws
    return sources, workspace


def _header(header: Any) -> bool:
    """SDK v1's header: a bool or a PromoteHeadersBehavior (0 means no headers)."""
    value = getattr(header, "value", header)
    return bool(value)


def _checked_new(
    cls: type[AbstractDataset], definition: dict[str, Any], ws: Workspace | None, validate: bool
) -> Any:
    dataset = cls(definition, ws)
    if validate:
        dataset._files()  # DatasetPathError naming a pattern that matches nothing
    return dataset


def _refuse_unsupported(include_path: Any = False) -> None:
    """SDK v1 options headrace does not implement: refused, never silently ignored."""
    if include_path:
        raise UserError(
            "include_path=True is not supported by headrace datasets yet; leave it False."
        )


def _partitioned(definition: dict[str, Any], partition_format: Any) -> dict[str, Any]:
    """The definition with SDK v1's partition_format (checked; see store/partitions.py)."""
    if partition_format is None:
        return definition
    from headrace.store.partitions import PartitionFormat

    PartitionFormat(partition_format)
    return {**definition, "partition_format": partition_format}


class FileDatasetFactory:
    @staticmethod
    def from_files(
        path: Any, validate: bool = True, partition_format: str | None = None, is_file: bool = False
    ) -> FileDataset:
        sources, ws = _sources(path)
        definition = _partitioned({"kind": "file", "sources": sources}, partition_format)
        return _checked_new(FileDataset, definition, ws, validate)  # type: ignore[no-any-return]


class TabularDatasetFactory:
    @staticmethod
    def _make(
        path: Any,
        fmt: dict[str, Any],
        set_column_types: Any,
        validate: bool,
        partition_format: Any = None,
    ) -> Any:
        sources, ws = _sources(path)
        definition = {
            "kind": "tabular",
            "sources": sources,
            "format": fmt,
            "column_types": _types(set_column_types),
        }
        definition = _partitioned(definition, partition_format)
        return _checked_new(TabularDataset, definition, ws, validate)

    @staticmethod
    def from_delimited_files(
        path: Any,
        validate: bool = True,
        include_path: bool = False,
        infer_column_types: bool = True,
        set_column_types: dict[str, Any] | None = None,
        separator: str = ",",
        header: Any = True,
        partition_format: str | None = None,
        support_multi_line: bool = False,
        empty_as_string: bool = False,
        encoding: str = "utf8",
    ) -> TabularDataset:
        _refuse_unsupported(include_path)
        if not isinstance(separator, str) or len(separator) != 1:
            raise UserError(f"separator must be one character, not {separator!r}.")
        fmt = {
            "type": "delimited",
            "separator": separator,
            "header": _header(header),
            "encoding": encoding,
            "empty_as_null": not empty_as_string,
            "multi_line": bool(support_multi_line),
            "infer_column_types": bool(infer_column_types),
        }
        return TabularDatasetFactory._make(  # type: ignore[no-any-return]
            path, fmt, set_column_types, validate, partition_format
        )

    @staticmethod
    def from_parquet_files(
        path: Any,
        validate: bool = True,
        include_path: bool = False,
        set_column_types: dict[str, Any] | None = None,
        partition_format: str | None = None,
    ) -> TabularDataset:
        _refuse_unsupported(include_path)
        return TabularDatasetFactory._make(  # type: ignore[no-any-return]
            path, {"type": "parquet"}, set_column_types, validate, partition_format
        )

    @staticmethod
    def from_json_lines_files(
        path: Any,
        validate: bool = True,
        include_path: bool = False,
        set_column_types: dict[str, Any] | None = None,
        partition_format: str | None = None,
        invalid_lines: str = "error",
        encoding: str = "utf8",
    ) -> TabularDataset:
        _refuse_unsupported(include_path)
        if invalid_lines != "error":
            raise UserError("invalid_lines must be 'error' (the only mode headrace reads).")
        return TabularDatasetFactory._make(  # type: ignore[no-any-return]
            path, {"type": "json_lines"}, set_column_types, validate, partition_format
        )

    @staticmethod
    def register_pandas_dataframe(
        dataframe: Any,
        target: Any,
        name: str,
        description: str | None = None,
        tags: dict[str, Any] | None = None,
        show_progress: bool = True,
        row_group_size: int | None = None,
        make_target_path_unique: bool = True,
    ) -> TabularDataset:
        """Write a pandas DataFrame as a Parquet file to `target` (a datastore, a
        `(datastore, 'folder')` tuple or a DataPath) and register it as a tabular dataset (SDK
        v1's `Dataset.Tabular.register_pandas_dataframe`); a unique subfolder unless
        `make_target_path_unique=False`."""
        import uuid

        import pyarrow as pa
        import pyarrow.parquet as pq

        datastore = target if hasattr(target, "upload_files") else None
        if datastore is not None:
            folder = ""
        else:
            source, _ws = _source(target)
            if "datastore" not in source:
                raise UserError(
                    "register_pandas_dataframe's target must be a datastore, (datastore, 'folder') "
                    "or a DataPath."
                )
            datastore = target[0] if isinstance(target, tuple) else target.datastore
            folder = source["path"]
        if make_target_path_unique:
            folder = "/".join(p for p in (folder.strip("/"), uuid.uuid4().hex) if p)
        scratch = Path(tempfile.mkdtemp(prefix="headrace-dataframe-"))
        try:
            path = scratch / "part-00000.parquet"
            table = pa.Table.from_pandas(dataframe, preserve_index=False)
            pq.write_table(table, str(path), row_group_size=row_group_size)
            datastore.upload_files(
                [str(path)], target_path=folder or None, overwrite=True, show_progress=show_progress
            )
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        written = "/".join(p for p in (folder, "part-00000.parquet") if p)
        dataset = Dataset.Tabular.from_parquet_files((datastore, written))
        return dataset.register(  # type: ignore[no-any-return]
            datastore.workspace, name, description, tags, create_new_version=True
        )


class Dataset(AbstractDataset):
    """SDK v1's entry point: `Dataset.File.from_files(...)`, `Dataset.Tabular.from_...`,
    `Dataset.get_by_name(ws, name, version='latest')`, `Dataset.get_by_id(ws, id)`."""

    File = FileDatasetFactory
    Tabular = TabularDatasetFactory
