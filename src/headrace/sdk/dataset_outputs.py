"""`OutputFileDatasetConfig`: a step's output written to a datastore path, which later
steps consume as a dataset (SDK v1 `azureml.data.OutputFileDatasetConfig`).

Passing one in a step's arguments (or outputs) makes that step its producer; passing its
`as_input()` (or itself, in inputs) to another step makes that step depend on the
producer, as in SDK v1. The data lands at `destination` (default
`(default datastore, 'dataset/{run-id}/{output-name}')`, `{run-id}` being the producing
step run's id), committed only when the step succeeds. `register_on_complete(name)`
registers it as a dataset version when the step succeeds, with the step run as its
producer (lineage). `read_delimited_files()` / `read_parquet_files()` make the consumers'
`Run.input_datasets[name]` a TabularDataset.

Each method returns a copy that remembers the original (`_origin`): copies are one piece
of data in the graph.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

from headrace.errors import UserError
from headrace.graph.model import DATA_PLACEHOLDER
from headrace.sdk.checks import check_text
from headrace.sdk.datasets import DatasetConsumptionConfig, _types
from headrace.store.datastores import clean_relative_path

__all__ = ["OutputFileDatasetConfig", "OutputTabularDatasetConfig"]

DEFAULT_DESTINATION = "dataset/{run-id}/{output-name}"


class OutputFileDatasetConfig:
    """A step output that becomes a (file) dataset."""

    def __init__(
        self,
        name: str | None = None,
        destination: tuple[Any, str] | None = None,
        source: str | None = None,
        partition_format: str | None = None,
    ) -> None:
        self.name = check_text(name, "OutputFileDatasetConfig's name", optional=True) or (
            f"output_{uuid.uuid4().hex[:8]}"
        )
        datastore, path = None, DEFAULT_DESTINATION
        if destination is not None:
            if not (isinstance(destination, tuple) and len(destination) == 2):
                raise UserError(
                    "OutputFileDatasetConfig destination must be a (datastore, 'path') tuple, "
                    f"for example (ws.get_default_datastore(), 'out/{{run-id}}'), not "
                    f"{destination!r:.60}."
                )
            datastore, path = destination
            path = check_text(path, "OutputFileDatasetConfig's destination path")
            # `..` or an absolute path would leave the datastore: refused now, not at the end.
            clean_relative_path(path, what="OutputFileDatasetConfig destination path")
        self.datastore = datastore
        self.datastore_name = getattr(datastore, "name", datastore)
        self.destination_path = path
        self.source = source
        self.mode = "mount"
        self.register_as: dict[str, Any] | None = None
        self.read_as: dict[str, Any] = {"kind": "file"}
        self._origin: OutputFileDatasetConfig = self
        self._producer: Any = None

    def _copy(self, **changes: Any) -> Any:
        other = copy.copy(self)
        for key, value in changes.items():
            setattr(other, key, value)
        return other

    # -- how the producer writes it --------------------------------------------------------
    def as_mount(self) -> OutputFileDatasetConfig:
        return self._copy(mode="mount")  # type: ignore[no-any-return]

    def as_upload(
        self, overwrite: bool = False, source_globs: Any = None
    ) -> OutputFileDatasetConfig:
        return self._copy(mode="upload")  # type: ignore[no-any-return]

    def register_on_complete(
        self, name: str, description: str | None = None, tags: dict[str, Any] | None = None
    ) -> Any:
        check_text(name, "register_on_complete's name")
        register = {"name": name, "description": description, "tags": dict(tags or {})}
        return self._copy(register_as={**register, "read_as": self.read_as})

    # -- how consumers read it -------------------------------------------------------------
    def as_input(self, name: str | None = None) -> DatasetConsumptionConfig:
        return DatasetConsumptionConfig(name or self.name, self, "mount")

    def as_mount_input(self, name: str | None = None) -> DatasetConsumptionConfig:
        return self.as_input(name)

    def read_delimited_files(
        self,
        include_path: bool = False,
        separator: str = ",",
        header: Any = True,
        partition_format: str | None = None,
        path_glob: str | None = None,
        set_column_types: dict[str, Any] | None = None,
    ) -> OutputTabularDatasetConfig:
        fmt = {"type": "delimited", "separator": separator, "header": bool(header)}
        return self._tabular(fmt, set_column_types)

    def read_parquet_files(
        self,
        include_path: bool = False,
        partition_format: str | None = None,
        path_glob: str | None = None,
        set_column_types: dict[str, Any] | None = None,
    ) -> OutputTabularDatasetConfig:
        return self._tabular({"type": "parquet"}, set_column_types)

    def _tabular(self, fmt: dict[str, Any], types: Any) -> OutputTabularDatasetConfig:
        read_as = {"kind": "tabular", "format": fmt, "column_types": _types(types)}
        out = OutputTabularDatasetConfig.__new__(OutputTabularDatasetConfig)
        out.__dict__.update(self.__dict__)
        out.read_as = read_as
        if out.register_as is not None:
            out.register_as = {**out.register_as, "read_as": read_as}
        return out

    def __str__(self) -> str:
        return f"{DATA_PLACEHOLDER}{self.name}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, destination=({self.datastore_name!r}, "
            f"{self.destination_path!r}))"
        )


class OutputTabularDatasetConfig(OutputFileDatasetConfig):
    """An OutputFileDatasetConfig that its consumers read as a TabularDataset."""
