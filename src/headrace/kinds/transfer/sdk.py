"""Copying data: `DataTransferStep`, and the `transfer` targets it runs on.

```
raw = DataReference(blob_store, "raw", "landing/2026-11")
copy = DataReference(lake_store, "copy", "curated/2026-11")
step = DataTransferStep("copy raw", source_data_reference=raw,
                        destination_data_reference=copy, compute_target=transfer_target)
train = PythonScriptStep("train.py", arguments=[step.get_output()],
                         inputs=[step.get_output()], ...)
```

A DataTransferStep copies a file or a folder from any datastore to any datastore (local
folders, S3, Azure Blob, GCS). It is a step of the `transfer` kind (headrace.kinds): the
graph records its settings, a `TransferSpec` (spec.py), and it runs as a command step whose
process is program.py (which documents how the bytes move), so reuse, retries, logs and the
portal treat it like any other step.

- **Source**: a DataReference, PortDataReference, PipelineData (or its `as_input`/`as_mount`),
  a DataPath, or a PipelineParameter with a DataPath default (alone or with a
  DataPathComputeBinding). It is the step's input, so its content decides reuse: the same
  source data and destination reuse the earlier copy, changed data copies again. It binds
  in "direct" mode (`reads_object_storage`): an object-store source is read in place by
  the engine, never downloaded by the runtime first.
- **Destination**: a DataReference or DataPath (a fixed path on a datastore, which the copy
  replaces), or a PipelineData (intermediate data, as any step output). A destination path
  that is absolute, contains `..` or overlaps the source is refused when the step is made.
- **`get_output()`** is the copy as a PipelineData (SDK v1's `_data_transfer_output` on the
  destination's datastore, or the PipelineData destination itself): give it to the next
  step's inputs, renamed with `.as_input("name")` if you like.
- **`source_reference_type` / `destination_reference_type`**: 'file' or 'directory'. When
  left out, the source's type is what the path is; the destination's is what is at the path
  now, else the source's. A file copied to a 'file' destination takes the destination's
  name; copied to a 'directory' it keeps its own.

`compute_target`: None (the local target), a target name, or a target object whose settings
apply: `TransferCompute.provisioning_configuration(parallelism=8, verify="checksum",
chunk_mb=4, max_nodes=None)`, or SDK v1's `DataFactoryCompute` (created with
`provisioning_configuration(location=...)` or attached with `attach_configuration(...)`; the
Azure fields are recorded and not used).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from headrace.errors import ComputeTargetException, UserError
from headrace.kinds.transfer.spec import REFERENCE_TYPES, VERIFY_MODES, TransferSpec
from headrace.sdk.compute import ComputeTarget, ComputeTargetProvisioningConfiguration
from headrace.sdk.data import (
    DataPath,
    DataReference,
    InputPortBinding,
    PipelineData,
    PortDataReference,
    input_port_name,
)
from headrace.sdk.parameters import PipelineParameter
from headrace.sdk.steps import CommandStep
from headrace.store.datastores import clean_relative_path

__all__ = [
    "DataFactoryCompute",
    "DataFactoryComputeConfiguration",
    "DataTransferStep",
    "TransferCompute",
    "TransferComputeProvisioningConfiguration",
]

OUTPUT_NAME = "_data_transfer_output"  # SDK v1's name for get_output()'s PipelineData
DEFAULT_PARALLELISM = 8


def _positive(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    raise ComputeTargetException(f"{name} must be a positive int, not {value!r}.")


def _verify_mode(value: Any) -> str | None:
    if value is None or value in VERIFY_MODES:
        return value  # type: ignore[no-any-return]
    raise ComputeTargetException(
        f"verify must be 'checksum' (size and SHA-1 of every file) or 'size', not {value!r}."
    )


class TransferComputeProvisioningConfiguration(ComputeTargetProvisioningConfiguration):
    """A `transfer` target: how DataTransferSteps given the target object copy."""

    type = "transfer"

    def validate_configuration(self) -> None:
        super().validate_configuration()
        _positive("parallelism", self.settings.get("parallelism"))
        _positive("chunk_mb", self.settings.get("chunk_mb"))
        _verify_mode(self.settings.get("verify"))


class DataFactoryComputeConfiguration(TransferComputeProvisioningConfiguration):
    """SDK v1's Data Factory provisioning or attach configuration; Azure fields recorded."""

    type = "DataFactory"


class TransferCompute(ComputeTarget):
    """A local process pool whose DataTransferSteps copy with these settings (native name)."""

    _type = "transfer"

    @staticmethod
    def provisioning_configuration(
        parallelism: int | None = None,
        verify: str | None = None,
        chunk_mb: int | None = None,
        max_nodes: int | None = None,
    ) -> TransferComputeProvisioningConfiguration:
        """`parallelism` files copied at once per step (default 8), `verify` 'checksum' (the
        default) or 'size', `chunk_mb` read per chunk (default 4), at most `max_nodes`
        steps at once."""
        return TransferComputeProvisioningConfiguration(
            parallelism=parallelism, verify=verify, chunk_mb=chunk_mb, max_nodes=max_nodes
        )

    @property
    def parallelism(self) -> int:
        value = self._config.get("parallelism")
        return value if isinstance(value, int) else DEFAULT_PARALLELISM


class DataFactoryCompute(TransferCompute):
    """SDK v1's Azure Data Factory compute, here a local `transfer` target."""

    _type = "DataFactory"

    @staticmethod
    def provisioning_configuration(  # type: ignore[override]
        location: str | None = None,
        *,
        parallelism: int | None = None,
        verify: str | None = None,
    ) -> DataFactoryComputeConfiguration:
        return DataFactoryComputeConfiguration(
            location=location, parallelism=parallelism, verify=verify
        )

    @staticmethod
    def attach_configuration(
        resource_group: str | None = None,
        factory_name: str | None = None,
        resource_id: str | None = None,
        *,
        parallelism: int | None = None,
        verify: str | None = None,
    ) -> DataFactoryComputeConfiguration:
        return DataFactoryComputeConfiguration(
            resource_group=resource_group,
            factory_name=factory_name,
            resource_id=resource_id,
            parallelism=parallelism,
            verify=verify,
        )


def _empty_source_directory() -> str:
    """The step's source folder: empty, so the snapshot (and reuse) never depends on the
    folder the pipeline was built in."""
    folder = Path(tempfile.gettempdir()) / f"headrace-{os.getuid()}" / "transfer-source"
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder)


def _reference_type(what: str, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str) and value.lower() in REFERENCE_TYPES:
        return value.lower()
    raise UserError(f"Unknown value {value!r} for {what}; possible values: 'file', 'directory'.")


def _source(step: str, item: Any) -> tuple[Any, str]:
    """The source as a step input, and the port it gets."""
    if item is None:
        raise UserError(
            f"DataTransferStep {step!r} needs source_data_reference, the data to copy: a "
            "DataReference, PipelineData, PortDataReference or DataPath."
        )
    if isinstance(item, DataPath):
        item = DataReference(item.datastore, item.name or "source", item.path_on_datastore)  # type: ignore[arg-type]
    if isinstance(item, (DataReference, PortDataReference)):
        reference = item if isinstance(item, DataReference) else item._as_reference()
        clean_relative_path(reference.path_on_datastore, what="source path")
    port = input_port_name(item)
    if port is None:
        raise UserError(
            f"DataTransferStep {step!r}: cannot copy from {item!r}; the source is a "
            "DataReference, PipelineData (or its as_input), PortDataReference, DataPath or a "
            "PipelineParameter with a DataPath default."
        )
    return item, port


def _destination(step: str, item: Any) -> tuple[PipelineData | None, tuple[Any, str] | None]:
    """A PipelineData destination, or a fixed (datastore, path) one."""
    if isinstance(item, InputPortBinding):
        item = item.bind_object
    if isinstance(item, PipelineData):
        return item, None
    if isinstance(item, DataPath):
        item = DataReference(item.datastore, item.name, item.path_on_datastore)  # type: ignore[arg-type]
    if isinstance(item, DataReference):
        path = clean_relative_path(item.path_on_datastore, what="destination path")
        if not path:
            raise UserError(
                f"DataTransferStep {step!r}: the destination is the root of datastore "
                f"{item.datastore_name!r}; give a path inside it, for example "
                "DataReference(datastore, 'copy', 'copies/data')."
            )
        return None, (item.datastore, path)
    if item is None:
        raise UserError(
            f"DataTransferStep {step!r} needs destination_data_reference, where the copy "
            "goes: a DataReference (a path on a datastore) or a PipelineData."
        )
    if isinstance(item, (PipelineParameter, tuple)):
        raise UserError(
            f"DataTransferStep {step!r}: a PipelineParameter cannot be the destination (SDK "
            "v1 allows a DataReference or PipelineData); use a DataReference."
        )
    raise UserError(
        f"DataTransferStep {step!r}: cannot copy to {item!r}; the destination is a "
        "DataReference (a path on a datastore) or a PipelineData."
    )


def _check_overlap(step: str, source: Any, fixed: tuple[Any, str] | None) -> None:
    """A copy into (or over) its own source would copy itself again on every run."""
    if fixed is None:
        return
    if isinstance(source, PortDataReference):
        source = source._as_reference()
    if not isinstance(source, DataReference):
        return
    datastore = getattr(fixed[0], "name", fixed[0])
    if source.datastore_name != datastore:
        return
    src = clean_relative_path(source.path_on_datastore)
    dst = fixed[1]
    if src == dst or dst.startswith(f"{src}/") or src.startswith(f"{dst}/") or not src:
        raise UserError(
            f"DataTransferStep {step!r}: the destination {dst!r} overlaps the source "
            f"{src or '(the whole datastore)'!r} on datastore {datastore!r}; copy to a path "
            "outside the source."
        )


class DataTransferStep(CommandStep):
    """Copies `source_data_reference` to `destination_data_reference` (see module doc)."""

    kind = "data_transfer"
    reads_object_storage = True  # its engine streams object-store sources itself

    def __init__(
        self,
        name: str,
        source_data_reference: Any = None,
        destination_data_reference: Any = None,
        compute_target: Any = None,
        source_reference_type: str | None = None,
        destination_reference_type: str | None = None,
        allow_reuse: bool = True,
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise UserError("DataTransferStep needs a name, for example 'copy raw data'.")
        source, port = _source(name, source_data_reference)
        output, fixed = _destination(name, destination_data_reference)
        if output is None:
            datastore = fixed[0] if fixed else None
            output = PipelineData(OUTPUT_NAME, datastore=datastore)
        if isinstance(source, PipelineData) and source is output:
            raise UserError(
                f"DataTransferStep {name!r}: the source and the destination are the same "
                "PipelineData; copy to another one."
            )
        _check_overlap(name, source, fixed)
        if port == output.output_name:
            # The output of an earlier transfer copied again: same name, so rename the input
            # (SDK v1 does the same for PythonScriptStep).
            port = f"INPUT_{port}"
            bound = source.bind_object if isinstance(source, InputPortBinding) else source
            source = bound.as_input(port) if isinstance(bound, PipelineData) else source
        source_type = _reference_type("source_reference_type", source_reference_type)
        destination_type = _reference_type("destination_reference_type", destination_reference_type)
        settings: dict[str, Any] = dict(getattr(compute_target, "_config", None) or {})
        parallelism = _positive("parallelism", settings.get("parallelism")) or DEFAULT_PARALLELISM
        chunk_mb = _positive("chunk_mb", settings.get("chunk_mb"))
        verify = _verify_mode(settings.get("verify"))
        self._spec = TransferSpec(
            source=port,
            output=output.output_name,
            destination_datastore=getattr(fixed[0], "name", fixed[0]) if fixed else None,
            destination_path=fixed[1] if fixed else None,
            source_type=source_type,
            destination_type=destination_type,
            parallelism=parallelism,
            chunk_mb=chunk_mb or 4,
            verify=verify or "checksum",
        )
        super().__init__(
            "python -m headrace.kinds",
            name=name,
            compute_target=compute_target,
            inputs=[source],
            outputs=[output],
            source_directory=_empty_source_directory(),
            allow_reuse=allow_reuse,
        )
        self.source_data_reference = source_data_reference
        self.destination_data_reference = destination_data_reference
        self.source_reference_type = source_type
        self.destination_reference_type = destination_type
        self._output = output

    def _kind_spec(self) -> tuple[str, str]:
        """(kind, spec JSON): what the graph records as the step's kind and settings."""
        return "transfer", self._spec.to_json()

    def get_output(self) -> PipelineData:
        """The copy, as data the next step takes as an input (SDK v1: a PipelineData)."""
        return self._output
