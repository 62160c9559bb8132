"""Data objects of a pipeline, with SDK v1 names and behaviour.

- `DataReference`: data already on a datastore (mount: the script gets its path; download:
  a copy in the step's folder).
- `DataPath` + `DataPathComputeBinding`: a datastore path that can be a PipelineParameter.
- `PipelineData`: intermediate data, the output of one step and input of later ones; these
  edges make the DAG.
- `InputPortBinding`: how a step consumes data (`as_mount`, `as_download`, `as_input`).
- `PortDataReference`: a finished step's output, to download or feed a new pipeline.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headrace.errors import UserError
from headrace.graph.model import DATA_PLACEHOLDER
from headrace.limits import PATH_MAX_BYTES
from headrace.sdk.checks import check_bool, check_text
from headrace.sdk.parameters import PipelineParameter

if TYPE_CHECKING:
    from headrace.sdk.datastore import Datastore

__all__ = [
    "DataPath",
    "DataPathComputeBinding",
    "DataReference",
    "InputPortBinding",
    "PipelineData",
    "PortDataReference",
]


def _datastore_name(datastore: Any) -> str | None:
    if datastore is None:
        return None
    if isinstance(datastore, str):
        return datastore
    name = getattr(datastore, "name", None)
    if not isinstance(name, str):
        raise UserError(
            f"datastore must be a Datastore or a datastore's name, not {datastore!r:.60} "
            f"({type(datastore).__name__})."
        )
    return name


class DataReference:
    """Data on a datastore used as a step input."""

    def __init__(
        self,
        datastore: Datastore,
        data_reference_name: str | None = None,
        path_on_datastore: str | None = None,
        mode: str = "mount",
        path_on_compute: str | None = None,
        overwrite: bool = False,
    ) -> None:
        if mode not in ("mount", "download", "upload"):
            raise UserError(f"DataReference mode must be 'mount' or 'download', not {mode!r}.")
        if datastore is None:
            raise UserError(
                "DataReference needs a datastore: DataReference(datastore=ws.get_default_"
                "datastore(), data_reference_name=..., path_on_datastore=...)."
            )
        check_text(data_reference_name, "DataReference's data_reference_name", optional=True)
        check_text(
            path_on_datastore,
            "DataReference's path_on_datastore",
            optional=True,
            max_chars=PATH_MAX_BYTES,
            empty_ok=True,
        )
        check_text(
            path_on_compute,
            "DataReference's path_on_compute",
            optional=True,
            max_chars=PATH_MAX_BYTES,
            empty_ok=True,
        )
        check_bool(overwrite, "DataReference's overwrite")
        self.datastore = datastore
        self.datastore_name = _datastore_name(datastore)
        if data_reference_name is None:
            data_reference_name = uuid.uuid4().hex if path_on_datastore else self.datastore_name
        self.data_reference_name: str = data_reference_name or "data"
        self.path_on_datastore = path_on_datastore
        self.mode = mode
        self.path_on_compute = path_on_compute
        self.overwrite = overwrite

    @property
    def name(self) -> str:
        return self.data_reference_name

    def _copy(self, **changes: Any) -> DataReference:
        values: dict[str, Any] = {
            "datastore": self.datastore,
            "data_reference_name": self.data_reference_name,
            "path_on_datastore": self.path_on_datastore,
            "mode": self.mode,
            "path_on_compute": self.path_on_compute,
            "overwrite": self.overwrite,
        }
        values.update(changes)
        copy = DataReference(**values)
        copy._origin = getattr(self, "_origin", self)  # type: ignore[attr-defined]
        return copy

    def as_mount(self) -> DataReference:
        return self._copy(mode="mount")

    def as_download(
        self, path_on_compute: str | None = None, overwrite: bool = False
    ) -> DataReference:
        return self._copy(mode="download", path_on_compute=path_on_compute, overwrite=overwrite)

    def path(
        self, path: str | None = None, data_reference_name: str | None = None
    ) -> DataReference:
        joined = "/".join(p for p in (self.path_on_datastore, path) if p)
        return DataReference(self.datastore, data_reference_name, joined or None)

    def __str__(self) -> str:
        return f"{DATA_PLACEHOLDER}{self.data_reference_name}"

    def __repr__(self) -> str:
        return (
            f"DataReference(datastore={self.datastore_name!r}, name={self.data_reference_name!r}, "
            f"path_on_datastore={self.path_on_datastore!r}, mode={self.mode!r})"
        )


class DataPath:
    """A path on a datastore; the default of a DataPath PipelineParameter."""

    def __init__(
        self,
        datastore: Datastore | str | None = None,
        path_on_datastore: str | None = None,
        name: str | None = None,
    ) -> None:
        check_text(
            path_on_datastore,
            "DataPath's path_on_datastore",
            optional=True,
            max_chars=PATH_MAX_BYTES,
            empty_ok=True,
        )
        check_text(name, "DataPath's name", optional=True)
        self.datastore = datastore
        self.datastore_name = _datastore_name(datastore)
        self.path_on_datastore = path_on_datastore or ""
        self.name = name

    def create_data_reference(
        self,
        data_reference_name: str | None = None,
        datapath_compute_binding: DataPathComputeBinding | None = None,
    ) -> DataReference:
        if not isinstance(self.datastore, (str, type(None))):
            binding = datapath_compute_binding or DataPathComputeBinding()
            return DataReference(
                self.datastore,
                data_reference_name,
                self.path_on_datastore,
                mode=binding.mode,
                path_on_compute=binding.path_on_compute,
                overwrite=binding.overwrite,
            )
        raise UserError("create_data_reference needs a DataPath made with a Datastore object.")

    def __repr__(self) -> str:
        return (
            f"DataPath(datastore={self.datastore_name!r}, "
            f"path_on_datastore={self.path_on_datastore!r})"
        )


class DataPathComputeBinding:
    """How a DataPath parameter is made available to a step (mount or download)."""

    def __init__(
        self, mode: str = "mount", path_on_compute: str | None = None, overwrite: bool = False
    ) -> None:
        if mode not in ("mount", "download"):
            raise UserError(
                f"DataPathComputeBinding mode must be 'mount' or 'download', not {mode!r}."
            )
        self.mode = mode
        self.path_on_compute = check_text(
            path_on_compute, "DataPathComputeBinding's path_on_compute", optional=True
        )
        self.overwrite = check_bool(overwrite, "DataPathComputeBinding's overwrite")


class PipelineData:
    """Intermediate data: written by one step, read by later ones."""

    def __init__(
        self,
        name: str,
        datastore: Datastore | str | None = None,
        output_name: str | None = None,
        output_mode: str = "mount",
        output_path_on_compute: str | None = None,
        output_overwrite: bool | None = None,
        data_type: str | None = None,
        is_directory: bool | None = None,
        pipeline_output_name: str | None = None,
        training_output: Any = None,
    ) -> None:
        if output_mode not in ("mount", "upload"):
            raise UserError(
                f"PipelineData output_mode must be 'mount' or 'upload', not {output_mode!r}."
            )
        self.name = check_text(name, "PipelineData's name")
        check_text(output_name, "PipelineData's output_name", optional=True)
        check_text(pipeline_output_name, "PipelineData's pipeline_output_name", optional=True)
        self.datastore = datastore
        self.datastore_name = _datastore_name(datastore)
        self.output_name = output_name or name
        self.output_mode = output_mode
        self.output_path_on_compute = output_path_on_compute
        self.output_overwrite = output_overwrite
        self.data_type = data_type or "AnyDirectory"
        self.is_directory = is_directory
        self.pipeline_output_name = pipeline_output_name
        self.training_output = training_output
        self._producer: Any = None

    def as_mount(self, input_name: str | None = None) -> InputPortBinding:
        return InputPortBinding(name=input_name or self.name, bind_object=self, bind_mode="mount")

    def as_download(
        self,
        input_name: str | None = None,
        path_on_compute: str | None = None,
        overwrite: bool | None = None,
    ) -> InputPortBinding:
        return InputPortBinding(
            name=input_name or self.name,
            bind_object=self,
            bind_mode="download",
            path_on_compute=path_on_compute,
            overwrite=bool(overwrite),
        )

    def as_input(self, input_name: str) -> InputPortBinding:
        return self.as_mount(input_name)

    def get_env_variable_name(self) -> str:
        return f"AZUREML_DATAREFERENCE_{self.name}"

    def __str__(self) -> str:
        return f"{DATA_PLACEHOLDER}{self.name}"

    def __repr__(self) -> str:
        return f"PipelineData(name={self.name!r}, datastore={self.datastore_name!r})"


class InputPortBinding:
    """How a step reads a PipelineData (or other data): its input name and mode."""

    def __init__(
        self,
        name: str,
        bind_object: Any,
        bind_mode: str = "mount",
        path_on_compute: str | None = None,
        overwrite: bool = False,
        is_resource: bool = False,
    ) -> None:
        if bind_mode not in ("mount", "download"):
            raise UserError(f"input bind_mode must be 'mount' or 'download', not {bind_mode!r}.")
        self.name = name
        self.bind_object = bind_object
        self.bind_mode = bind_mode
        self.path_on_compute = path_on_compute
        self.overwrite = overwrite
        self.is_resource = is_resource

    @property
    def data_reference_name(self) -> str:
        return self.name

    def __str__(self) -> str:
        return f"{DATA_PLACEHOLDER}{self.name}"

    def __repr__(self) -> str:
        return f"InputPortBinding(name={self.name!r}, bind_mode={self.bind_mode!r})"


class PortDataReference:
    """The output of a finished step run: where it is, and how to get it."""

    def __init__(
        self,
        datastore: Datastore,
        path_on_datastore: str,
        name: str,
        step_run_id: str | None = None,
    ) -> None:
        self.datastore = datastore
        self.datastore_name = datastore.name
        self.path_on_datastore = path_on_datastore
        self.name = name
        self.step_run_id = step_run_id

    def download(
        self,
        local_path: str | os.PathLike[str],
        overwrite: bool | None = None,
        show_progress: bool | None = None,
    ) -> str:
        """Copy the data to `local_path/<path_on_datastore>/...`; returns that folder."""
        self.datastore.download(
            str(local_path),
            prefix=self.path_on_datastore,
            overwrite=bool(overwrite),
            show_progress=bool(show_progress),
        )
        return str(Path(local_path) / self.path_on_datastore)

    def _as_reference(self) -> DataReference:
        return DataReference(self.datastore, self.name, self.path_on_datastore)

    def as_mount(self) -> DataReference:
        return self._as_reference().as_mount()

    def as_download(
        self,
        input_name: str | None = None,
        path_on_compute: str | None = None,
        overwrite: bool | None = None,
    ) -> DataReference:
        ref = DataReference(self.datastore, input_name or self.name, self.path_on_datastore)
        return ref.as_download(path_on_compute, bool(overwrite))

    def as_input(self, input_name: str) -> DataReference:
        return DataReference(self.datastore, input_name, self.path_on_datastore)

    def __repr__(self) -> str:
        return (
            f"PortDataReference(name={self.name!r}, datastore={self.datastore_name!r}, "
            f"path_on_datastore={self.path_on_datastore!r})"
        )


def input_port_name(item: Any) -> str | None:
    """The name a step input gets in the graph (its port): a SqlStep's table name, a
    SparkStep's widget, a DataTransferStep's source; None for what is not step data."""
    if isinstance(item, InputPortBinding):
        return item.name
    if isinstance(item, PipelineData):
        return item.name
    if isinstance(item, PortDataReference):
        return item._as_reference().data_reference_name
    if isinstance(item, DataReference):
        return item.data_reference_name
    if isinstance(item, tuple) and item and isinstance(item[0], PipelineParameter):
        return item[0].name
    if isinstance(item, PipelineParameter):
        return item.name
    if isinstance(item, DataPath):
        return item.name
    return None
