"""Dataset objects with SDK v1 names: `FileDataset`, `TabularDataset`,
`DatasetConsumptionConfig`, `DataType` (the factories and `Dataset` itself are in
sdk/dataset_factory.py).

A dataset object is a definition (store/datasets.py: sources, format, column types,
transforms) plus, once registered, its id, name and version. Reading goes through the
workspace's Backend: a datastore on this machine is read in place, anything else is
downloaded to a cache first. Tables are read with pyarrow (store/tables.py); pandas only
appears in `to_pandas_dataframe`. Transforms (`take`, `skip`, `keep_columns`, ...) return
new, unregistered datasets, as in SDK v1.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headrace.config import headrace_home
from headrace.errors import UserError
from headrace.graph.model import DATA_PLACEHOLDER
from headrace.sdk.checks import check_text
from headrace.store.datasets import (
    DatasetFile,
    check_definition,
    definition_hash,
    file_transforms,
    link_folder,
    local_files,
    match_files,
    url_size,
)
from headrace.store.transfer_progress import bar_wanted

if TYPE_CHECKING:
    from headrace.sdk.workspace import Workspace
    from headrace.store.records import DatasetRecord

__all__ = [
    "AbstractDataset",
    "DataType",
    "DatasetConsumptionConfig",
    "FileDataset",
    "MountContext",
    "TabularDataset",
    "dataset_from_record",
]


class DataType:
    """A column type for `set_column_types` (SDK v1 `azureml.data.dataset_factory.DataType`)."""

    def __init__(self, name: str) -> None:
        self.name = name

    @staticmethod
    def to_string() -> DataType:
        return DataType("str")

    @staticmethod
    def to_long() -> DataType:
        return DataType("int")

    @staticmethod
    def to_float(decimal_mark: str = ".") -> DataType:
        return DataType("float")

    @staticmethod
    def to_bool() -> DataType:
        return DataType("bool")

    @staticmethod
    def to_datetime(formats: Any = None) -> DataType:
        return DataType("datetime")

    def __repr__(self) -> str:
        return f"DataType({self.name!r})"


class _BackendAccess:
    """DatasetAccess through a workspace's Backend (the SDK's side)."""

    def __init__(self, workspace: Workspace | None) -> None:
        self.workspace = workspace

    def _backend(self) -> Any:
        if self.workspace is None:
            raise UserError(
                "This dataset reads a datastore but knows no workspace; make it from a "
                "Datastore object (ds.path('folder') or (ds, 'folder')), or get it with "
                "Dataset.get_by_name(ws, name)."
            )
        return self.workspace.backend

    def list_files(self, datastore: str, prefix: str) -> list[tuple[str, int]]:
        listing: list[tuple[str, int]] = self._backend().list_datastore_files(datastore, prefix)
        return listing

    def local_root(self, datastore: str) -> Path | None:
        path = self._backend().local_datastore_path(datastore)
        return Path(path) if path else None

    def download(self, datastore: str, pairs: list[tuple[str, Path]]) -> None:
        self._backend().download_datastore_files(
            datastore, pairs, overwrite=True, show_progress=bar_wanted(True)
        )  # a bar in bytes when a terminal or notebook watches


def _cache_dir(definition: dict[str, Any]) -> Path:
    key = hashlib.sha256(json.dumps(definition["sources"], sort_keys=True).encode()).hexdigest()
    cache = os.environ.get("HEADRACE_DATASET_CACHE")
    root = Path(cache) if cache else headrace_home() / "cache" / "datasets"
    return root / key[:16]


class AbstractDataset:
    """What File and Tabular datasets share: a definition, and a registration once
    registered (`id`, `name`, `version`)."""

    def __init__(
        self,
        definition: dict[str, Any],
        workspace: Workspace | None = None,
        record: DatasetRecord | None = None,
    ) -> None:
        self._definition = check_definition(definition)
        self._workspace = workspace
        self._record = record

    # -- identity --------------------------------------------------------------------------
    @property
    def id(self) -> str | None:
        return self._record.id if self._record else None

    @property
    def name(self) -> str | None:
        return self._record.name if self._record else None

    @property
    def version(self) -> int | None:
        return self._record.version if self._record else None

    @property
    def description(self) -> str | None:
        return self._record.description if self._record else None

    @property
    def tags(self) -> dict[str, Any]:
        return dict(self._record.tags) if self._record else {}

    @property
    def content(self) -> dict[str, Any]:
        """The content identity recorded when this version was registered (hash,
        file_count, total_bytes); empty for an unregistered dataset."""
        return dict(self._record.content) if self._record else {}

    @property
    def workspace(self) -> Workspace | None:
        return self._workspace

    def _graph_definition(self) -> dict[str, Any]:
        """The definition a pipeline carries: with the registration, for lineage."""
        definition = dict(self._definition)
        if self._record is not None:
            definition["registration"] = {
                "id": self._record.id,
                "name": self._record.name,
                "version": self._record.version,
            }
        return definition

    def _derived(self, step: list[Any], **changes: Any) -> Any:
        definition = {**self._definition, **changes}
        if step:
            definition["transforms"] = [*(self._definition.get("transforms") or []), step]
        return type(self)(definition, self._workspace)

    # -- registry --------------------------------------------------------------------------
    def register(
        self,
        workspace: Workspace,
        name: str,
        description: str | None = None,
        tags: dict[str, Any] | None = None,
        create_new_version: bool = False,
    ) -> Any:
        """Register this definition as dataset `name` (a new version when the definition
        or the data changed; see docs/user-guide.md)."""
        check_text(name, "Dataset name")
        record = workspace.backend.register_dataset(
            self._definition,
            name=name,
            description=description,
            tags=dict(tags or {}),
            create_new_version=bool(create_new_version),
        )
        return dataset_from_record(workspace, record)

    @staticmethod
    def get_by_name(workspace: Workspace, name: str, version: int | str = "latest") -> Any:
        number = None if version in (None, "latest") else _version_number(version)
        return dataset_from_record(workspace, workspace.backend.get_dataset(name, number))

    @staticmethod
    def get_by_id(workspace: Workspace, id: str) -> Any:
        return dataset_from_record(workspace, workspace.backend.get_dataset_by_id(id))

    @staticmethod
    def get_all(workspace: Workspace) -> dict[str, Any]:
        return {
            r.name: dataset_from_record(workspace, r) for r in workspace.backend.list_datasets()
        }

    def get_versions(self) -> list[Any]:
        """Every version of this registered dataset, oldest first (beyond SDK v1)."""
        workspace, record = self._registered("get_versions")
        return [
            dataset_from_record(workspace, r)
            for r in workspace.backend.list_dataset_versions(record.name)
        ]

    def lineage(self) -> dict[str, list[dict[str, Any]]]:
        """Which step runs produced and consumed this version (beyond SDK v1)."""
        workspace, record = self._registered("lineage")
        found: dict[str, list[dict[str, Any]]] = {"produced_by": [], "consumed_by": []}
        for item in workspace.backend.dataset_lineage(record.id):
            key = "produced_by" if item.role == "produced" else "consumed_by"
            found[key].append(
                {
                    "step_run_id": item.step_run_id,
                    "pipeline_run_id": item.pipeline_run_id,
                    "step_name": item.step_name,
                    "port": item.port,
                    "status": item.status,
                }
            )
        return found

    def _registered(self, what: str) -> tuple[Workspace, DatasetRecord]:
        if self._record is None or self._workspace is None:
            raise UserError(f"{what}() needs a registered dataset; call register(ws, name) first.")
        return self._workspace, self._record

    @property
    def partition_keys(self) -> list[str]:
        """The keys of the dataset's `partition_format` (SDK v1); [] without one."""
        text = self._definition.get("partition_format")
        if not text:
            return []
        from headrace.store.partitions import PartitionFormat

        return list(PartitionFormat(text).keys)

    # -- files -----------------------------------------------------------------------------
    def _files(self) -> list[DatasetFile]:
        # URLs are asked for their size (a HEAD request): one that cannot be read is
        # refused at definition, as SDK v1's validate=True did.
        files = match_files(
            self._definition, _BackendAccess(self._workspace).list_files, url_size=url_size
        )
        if self._definition["kind"] == "file":
            files = file_transforms(files, self._definition.get("transforms") or [])
        return files

    def _local_pairs(self) -> list[tuple[str, Path]]:
        """Each file as (relative path, a path on this machine), downloading what is not
        on this machine into a cache."""
        access = _BackendAccess(self._workspace)
        return local_files(self._definition, self._files(), access, _cache_dir(self._definition))

    # -- transforms (new, unregistered datasets, as in SDK v1) -----------------------------
    def take(self, count: int) -> Any:
        """The first `count` records (rows of a table, files of a FileDataset)."""
        return self._derived(["take", int(count)])

    def skip(self, count: int) -> Any:
        return self._derived(["skip", int(count)])

    def take_sample(self, probability: float, seed: int | None = None) -> Any:
        return self._derived(["take_sample", float(probability), _seed(seed)])

    def random_split(self, percentage: float, seed: int | None = None) -> tuple[Any, Any]:
        """Two datasets with about `percentage` and the rest of the records; the seed is
        kept in both, so each reads the same records every time."""
        chosen = _seed(seed)
        return (
            self._derived(["split", _fraction(percentage), chosen, True]),
            self._derived(["split", _fraction(percentage), chosen, False]),
        )

    # -- in a pipeline ---------------------------------------------------------------------
    def as_named_input(self, name: str) -> DatasetConsumptionConfig:
        return DatasetConsumptionConfig(name, self)

    def _input_name(self) -> str:
        """The input name a dataset gets without `as_named_input`: its registered name
        (letters, digits and underscores), else `dataset_` and a hash of its definition,
        so two unnamed datasets of one step never share a name."""
        if self.name:
            return re.sub(r"\W", "_", self.name)
        return f"dataset_{definition_hash(self._definition)[:8]}"

    def __repr__(self) -> str:
        kind = type(self).__name__
        if self._record is not None:
            return f"{kind}(name={self.name!r}, version={self.version}, id={self.id!r})"
        return f"{kind}(sources={self._definition['sources']!r:.120})"


def _version_number(version: Any) -> int:
    try:
        return int(version)
    except (TypeError, ValueError):
        raise UserError(f"Dataset version must be a number or 'latest', not {version!r}.") from None


class MountContext:
    """What `FileDataset.mount()` returns: `mount_point` is a real folder with the
    dataset's files (the datastore folder itself when the dataset is one folder on this
    machine; otherwise links to the files, or downloaded copies)."""

    def __init__(self, dataset: FileDataset, mount_point: str | None) -> None:
        self._dataset = dataset
        self._requested = mount_point
        self._made: Path | None = None
        self.mount_point = ""

    def start(self) -> None:
        from headrace.store.datasets import direct_path

        access = _BackendAccess(self._dataset._workspace)
        direct = direct_path(self._dataset._definition, access)
        if direct is not None and direct.is_dir() and self._requested is None:
            self.mount_point = str(direct)
            return
        folder = Path(self._requested or tempfile.mkdtemp(prefix="headrace-mount-"))
        if folder.exists() and any(folder.iterdir()):
            raise UserError(f"mount_point {folder} is not empty; give an empty or new folder.")
        link_folder(self._dataset._local_pairs(), folder)
        self._made = folder
        self.mount_point = str(folder)

    def stop(self) -> None:
        if self._made is not None:
            shutil.rmtree(self._made, ignore_errors=True)
            self._made = None

    def __enter__(self) -> MountContext:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class FileDataset(AbstractDataset):
    """Files on datastores, URLs or this machine (SDK v1 `FileDataset`)."""

    def to_path(self) -> list[str]:
        """The files' paths relative to the dataset's base, as SDK v1 lists them."""
        return ["/" + f.relative for f in self._files()]

    def download(self, target_path: str | None = None, overwrite: bool = False) -> list[str]:
        """Copy the files under `target_path` (a new temporary folder by default)."""
        target = Path(target_path or tempfile.mkdtemp(prefix="headrace-download-"))
        written = []
        for relative, source in self._local_pairs():
            destination = target / relative
            if destination.exists() and not overwrite:
                raise UserError(
                    f"{destination} exists; pass overwrite=True to replace it, or another "
                    "target_path."
                )
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, destination)
            written.append(str(destination))
        return written

    def mount(self, mount_point: str | None = None, **_kwargs: Any) -> MountContext:
        return MountContext(self, mount_point)

    def as_mount(self, path_on_compute: str | None = None) -> DatasetConsumptionConfig:
        return self.as_named_input(self._input_name()).as_mount(path_on_compute)

    def as_download(self, path_on_compute: str | None = None) -> DatasetConsumptionConfig:
        return self.as_named_input(self._input_name()).as_download(path_on_compute)


def _seed(seed: int | None) -> int:
    return random.randrange(2**31) if seed is None else int(seed)


def _fraction(percentage: float) -> float:
    if not isinstance(percentage, (int, float)) or not 0 < percentage < 1:
        raise UserError(f"random_split percentage must be between 0 and 1, not {percentage!r}.")
    return float(percentage)


class TabularDataset(AbstractDataset):
    """A table read from delimited, Parquet or JSON-lines files (SDK v1 `TabularDataset`)."""

    def _paths(self) -> list[str]:
        return [str(path) for _rel, path in self._local_pairs()]

    def to_arrow_table(self) -> Any:
        """The table as a pyarrow Table (beyond SDK v1; no pandas needed)."""
        from headrace.store.tables import read_table

        return read_table(self._definition, self._paths())

    def to_pandas_dataframe(
        self, on_error: str = "null", out_of_range_datetime: str = "null"
    ) -> Any:
        try:
            import pandas  # noqa: F401
        except ImportError as exc:
            from headrace.errors import MissingDependencyError

            raise MissingDependencyError(
                "to_pandas_dataframe needs pandas: pip install 'headrace[datasets]'."
            ) from exc
        return self.to_arrow_table().to_pandas()

    def partition_by(
        self,
        partition_keys: list[str],
        target: Any,
        name: str | None = None,
        show_progress: bool = True,
        partition_as_file_dataset: bool = False,
    ) -> Any:
        """One folder per distinct value of `partition_keys` under `target` (a datastore
        folder), as a dataset partitioned by them (sdk/dataset_partitions.py)."""
        from headrace.sdk.dataset_partitions import partition_by

        return partition_by(
            self, partition_keys, target, name, show_progress, partition_as_file_dataset
        )

    def to_parquet_files(self) -> FileDataset:
        """Write the table as Parquet files (batch by batch) and return them as a FileDataset."""
        import pyarrow.parquet as pq

        from headrace.store.tables import stream_table

        folder = Path(tempfile.mkdtemp(prefix="headrace-parquet-"))
        writer = None
        try:
            for table in stream_table(self._definition, self._paths()):
                if writer is None:
                    writer = pq.ParquetWriter(str(folder / "part-00000.parquet"), table.schema)
                writer.write_table(table)
        finally:
            if writer is not None:
                writer.close()
        return FileDataset({"kind": "file", "sources": [{"local": str(folder)}]})

    def to_csv_files(self, separator: str = ",") -> FileDataset:
        from pyarrow import csv

        folder = Path(tempfile.mkdtemp(prefix="headrace-csv-"))
        table = self.to_arrow_table()
        csv.write_csv(table, str(folder / "part-00000.csv"), csv.WriteOptions(delimiter=separator))
        return FileDataset({"kind": "file", "sources": [{"local": str(folder)}]})

    def keep_columns(self, columns: str | list[str], validate: bool = False) -> TabularDataset:
        return self._derived(["keep_columns", _columns(columns)])  # type: ignore[no-any-return]

    def drop_columns(self, columns: str | list[str]) -> TabularDataset:
        return self._derived(["drop_columns", _columns(columns)])  # type: ignore[no-any-return]

    def set_column_types(self, column_types: dict[str, Any]) -> TabularDataset:
        """The same data with these column types (beyond SDK v1's factory argument)."""
        types = {**(self._definition.get("column_types") or {}), **_types(column_types)}
        return self._derived([], column_types=types)  # type: ignore[no-any-return]


def _columns(columns: str | list[str]) -> list[str]:
    names = [columns] if isinstance(columns, str) else list(columns)
    if not names or not all(isinstance(n, str) for n in names):
        raise UserError(f"Columns must be a column name or a list of them, not {columns!r}.")
    return names


def _types(column_types: dict[str, Any] | None) -> dict[str, str]:
    if not column_types:
        return {}
    if not isinstance(column_types, dict):
        raise UserError("set_column_types must be a dict of column name to DataType.")
    out = {}
    for column, kind in column_types.items():
        name = kind.name if isinstance(kind, DataType) else kind
        if name not in ("str", "int", "float", "bool", "datetime"):
            raise UserError(
                f"set_column_types[{column!r}] must be a DataType (DataType.to_long(), "
                f"to_float(), to_string(), to_bool(), to_datetime()), not {kind!r}."
            )
        out[str(column)] = name
    return out


def dataset_from_record(workspace: Workspace | None, record: DatasetRecord) -> Any:
    cls = FileDataset if record.kind == "file" else TabularDataset
    return cls(record.definition, workspace, record)


def dataset_from_definition(definition: dict[str, Any]) -> Any:
    """A dataset object for a definition (a step's input; no workspace needed when its
    sources are on this machine)."""
    cls = FileDataset if definition.get("kind") == "file" else TabularDataset
    return cls({k: v for k, v in definition.items() if k != "registration"})


class DatasetConsumptionConfig:
    """How a step consumes a dataset (SDK v1 `DatasetConsumptionConfig`): under `name`, in
    `mode` 'direct' (a TabularDataset object, or the files' folder), 'mount' or 'download'.
    `dataset` may be a dataset, a PipelineParameter whose default is one, or the output of
    another step (OutputFileDatasetConfig)."""

    def __init__(
        self,
        name: str,
        dataset: Any,
        mode: str = "direct",
        path_on_compute: str | None = None,
    ) -> None:
        if mode not in ("direct", "mount", "download"):
            raise UserError(
                f"DatasetConsumptionConfig mode must be 'direct', 'mount' or 'download', not "
                f"{mode!r}."
            )
        self.name = check_text(name, "DatasetConsumptionConfig's name")
        self.dataset = dataset
        self.mode = mode
        self.path_on_compute = path_on_compute

    def as_mount(self, path_on_compute: str | None = None) -> DatasetConsumptionConfig:
        return DatasetConsumptionConfig(self.name, self.dataset, "mount", path_on_compute)

    def as_download(self, path_on_compute: str | None = None) -> DatasetConsumptionConfig:
        return DatasetConsumptionConfig(self.name, self.dataset, "download", path_on_compute)

    @property
    def data_reference_name(self) -> str:
        return self.name

    def __str__(self) -> str:
        return f"{DATA_PLACEHOLDER}{self.name}"

    def __repr__(self) -> str:
        return f"DatasetConsumptionConfig(name={self.name!r}, mode={self.mode!r})"
