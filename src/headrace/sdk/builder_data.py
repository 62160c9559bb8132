"""The data half of `GraphBuilder`: data objects (PipelineData, DataReference, datasets,
OutputFileDatasetConfig, DataPath parameters) turned into data nodes and port bindings.

Like the rest of the builder it never raises for a problem of the definition: it appends to
`problems` and leaves the binding out.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from headrace.graph.model import DataNode, InputBinding, OutputBinding
from headrace.sdk.data import (
    DataPath,
    DataPathComputeBinding,
    DataReference,
    InputPortBinding,
    PipelineData,
    PortDataReference,
)
from headrace.sdk.dataset_outputs import OutputFileDatasetConfig
from headrace.sdk.datasets import AbstractDataset, DatasetConsumptionConfig
from headrace.sdk.parameters import PipelineParameter
from headrace.sdk.steps import PipelineStep

__all__ = ["DataBindings", "StepPorts"]

_WORD = re.compile(r"^\w+$")
InputMode = Literal["mount", "download", "direct"]


@dataclass
class StepPorts:
    """Which data objects a step binds, under which port names."""

    by_identity: dict[int, str] = field(default_factory=dict)
    by_data_name: dict[str, str] = field(default_factory=dict)
    ports: list[str] = field(default_factory=list)


class DataBindings:
    """Data nodes and bindings; `GraphBuilder` provides the state below."""

    problems: list[str]
    invalid_names: set[str]
    _data: dict[tuple[Any, ...], DataNode]
    _params: dict[str, PipelineParameter]
    _producers: dict[int, PipelineStep]
    _output_objects: dict[int, OutputFileDatasetConfig]

    def _data_node(self, key: tuple[Any, ...], **fields: Any) -> DataNode:
        node = self._data.get(key)
        if node is None:
            node = DataNode(id=f"d{len(self._data) + 1}", **fields)
            self._data[key] = node
        return node

    def _check_name(self, step: PipelineStep, what: str, name: str) -> None:
        if not _WORD.match(name or ""):
            self.invalid_names.add(name)
            self.problems.append(
                f"Step {step.name!r}: {what} {name!r} is invalid; use letters, digits "
                "and underscores only."
            )

    def _pipeline_data_node(self, step: PipelineStep, data: PipelineData) -> DataNode:
        self._check_name(step, "PipelineData name", data.name)
        producer = self._producers.get(id(data))
        if data.output_name != data.name:
            self._check_name(step, "PipelineData output_name", data.output_name)
        return self._data_node(
            ("pd", id(data)),
            kind="pipeline_data",
            name=data.name,
            datastore=data.datastore_name or None,
            producer=producer._id if producer is not None else None,
            output_name=data.output_name,
            pipeline_output_name=data.pipeline_output_name,
        )

    def _reference_node(self, ref: DataReference) -> DataNode:
        return self._data_node(
            ("ref", ref.datastore_name, ref.path_on_datastore, ref.data_reference_name),
            kind="datastore",
            name=ref.data_reference_name,
            datastore=ref.datastore_name,
            path_on_datastore=ref.path_on_datastore or "",
        )

    def _register(self, step: PipelineStep, param: PipelineParameter) -> None:
        known = self._params.get(param.name)
        if known is None:
            if not param.name_is_valid:
                self.problems.append(
                    f"Step {step.name!r}: parameter name {param.name!r} is invalid; use "
                    "letters, digits and underscores only."
                )
            self._params[param.name] = param
        elif known is not param and (
            known.default_value != param.default_value or known.type_name != param.type_name
        ):
            self.problems.append(
                f"Parameter {param.name!r} is defined twice with different defaults "
                f"({known.default_value!r} and {param.default_value!r}); create it once and "
                "use the same PipelineParameter object in every step."
            )

    def _bind(self, ports: StepPorts, obj: Any, data_name: str, port: str) -> None:
        ports.by_identity[id(obj)] = port
        ports.by_data_name.setdefault(data_name, port)
        ports.ports.append(port)

    def _output_dataset_node(self, step: PipelineStep, item: OutputFileDatasetConfig) -> DataNode:
        origin = item._origin
        self._check_name(step, "OutputFileDatasetConfig name", origin.name)
        producer = self._producers.get(id(origin))
        out = self._output_objects.get(id(origin), item)
        return self._data_node(
            ("pd", id(origin)),
            kind="pipeline_data",
            name=origin.name,
            datastore=out.datastore_name or None,
            path_on_datastore=out.destination_path,
            producer=producer._id if producer is not None else None,
            output_name=origin.name,
            register_as=out.register_as,
        )

    def _dataset_input(
        self, step: PipelineStep, item: DatasetConsumptionConfig, ports: StepPorts
    ) -> InputBinding | None:
        inner = item.dataset
        read_as = None
        self._check_name(step, "dataset input name", item.name)
        if isinstance(inner, AbstractDataset):
            definition = inner._graph_definition()
            key = ("dataset", json.dumps(definition, sort_keys=True, default=str))
            node = self._data_node(key, kind="dataset", name=item.name, dataset=definition)
        elif isinstance(inner, PipelineParameter):
            if not isinstance(inner.default_value, AbstractDataset):
                self.problems.append(
                    f"Step {step.name!r}: dataset input {item.name!r} uses parameter "
                    f"{inner.name!r}, whose default is not a dataset; give it a dataset as "
                    "default (PipelineParameter(name, default_value=dataset))."
                )
                return None
            self._register(step, inner)
            node = self._data_node(
                ("param", inner.name),
                kind="dataset_parameter",
                name=inner.name,
                parameter=inner.name,
            )
            ports.by_identity.setdefault(id(inner), item.name)
        elif isinstance(inner, OutputFileDatasetConfig):
            node = self._output_dataset_node(step, inner)
            read_as = dict(inner.read_as)
        else:
            self.problems.append(
                f"Step {step.name!r}: dataset input {item.name!r} consumes a "
                f"{type(inner).__name__}; give a dataset, a PipelineParameter whose default "
                "is a dataset, or an OutputFileDatasetConfig."
            )
            return None
        self._bind(ports, item, node.name, item.name)
        mode: InputMode = "download" if item.mode == "download" else "mount"
        if item.mode == "direct" and read_as is None:
            # SDK v1's direct mode: the step's input_datasets[name] is the dataset object
            # (a FileDataset too), not the path of its files.
            read_as = {"direct": True}
        return InputBinding(item.name, node.id, mode, item.path_on_compute, False, read_as)

    def _input(self, step: PipelineStep, item: Any, ports: StepPorts) -> InputBinding | None:
        if isinstance(item, AbstractDataset):
            item = item.as_named_input(item._input_name())
        elif isinstance(item, OutputFileDatasetConfig):
            item = item.as_input()
        if isinstance(item, DatasetConsumptionConfig):
            return self._dataset_input(step, item, ports)
        if isinstance(item, InputPortBinding):
            inner = item.bind_object
            if isinstance(inner, PipelineData):
                node = self._pipeline_data_node(step, inner)
            elif isinstance(inner, (DataReference, PortDataReference)):
                ref = inner if isinstance(inner, DataReference) else inner._as_reference()
                node = self._reference_node(ref)
            else:
                self.problems.append(
                    f"Step {step.name!r}: input {item.name!r} binds a {type(inner).__name__}, "
                    "which is not supported; bind a PipelineData or DataReference."
                )
                return None
            self._check_name(step, "input name", item.name)
            self._bind(ports, item, node.name, item.name)
            ports.by_identity.setdefault(id(inner), item.name)
            return InputBinding(
                item.name,
                node.id,
                cast("InputMode", item.bind_mode),
                item.path_on_compute,
                bool(item.overwrite),
            )
        if isinstance(item, PipelineData):
            node = self._pipeline_data_node(step, item)
            self._bind(ports, item, item.name, item.name)
            return InputBinding(item.name, node.id)
        if isinstance(item, PortDataReference):
            port_ref = item
            item = item._as_reference()
            # The PortDataReference itself may appear in arguments: bind it to this port too.
            item._origin = port_ref
        if isinstance(item, DataReference):
            if item.mode == "upload":
                self.problems.append(
                    f"Step {step.name!r}: DataReference {item.data_reference_name!r} is in "
                    "upload mode, which is for outputs; use as_mount() or as_download()."
                )
                return None
            self._check_name(step, "DataReference name", item.data_reference_name)
            node = self._reference_node(item)
            self._bind(ports, item, item.data_reference_name, item.data_reference_name)
            origin = getattr(item, "_origin", None)
            if origin is not None:
                ports.by_identity.setdefault(id(origin), item.data_reference_name)
            return InputBinding(
                item.data_reference_name,
                node.id,
                item.mode,  # type: ignore[arg-type]
                item.path_on_compute,
                item.overwrite,
            )
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], PipelineParameter):
            param, binding = item
            return self._datapath_input(step, item, param, binding, ports)
        if isinstance(item, PipelineParameter):
            return self._datapath_input(step, item, item, DataPathComputeBinding(), ports)
        if isinstance(item, DataPath):
            ref = DataReference(item.datastore, item.name, item.path_on_datastore)  # type: ignore[arg-type]
            node = self._reference_node(ref)
            self._bind(ports, item, ref.data_reference_name, ref.data_reference_name)
            return InputBinding(ref.data_reference_name, node.id)
        self.problems.append(
            f"Step {step.name!r}: an input of type {type(item).__name__} is not supported; "
            "use a DataReference, PipelineData (or its as_mount/as_download/as_input), "
            "PortDataReference, or (PipelineParameter(name, DataPath(...)), "
            "DataPathComputeBinding())."
        )
        return None

    def _datapath_input(
        self,
        step: PipelineStep,
        item: Any,
        param: PipelineParameter,
        binding: Any,
        ports: StepPorts,
    ) -> InputBinding | None:
        if not isinstance(param.default_value, DataPath):
            self.problems.append(
                f"Step {step.name!r}: parameter {param.name!r} is used as an input, but its "
                "default is not a DataPath; give it DataPath(datastore, path) as default."
            )
            return None
        if not isinstance(binding, DataPathComputeBinding):
            binding = DataPathComputeBinding()
        self._register(step, param)
        node = self._data_node(
            ("param", param.name), kind="datapath_parameter", name=param.name, parameter=param.name
        )
        self._bind(ports, item, param.name, param.name)
        ports.by_identity.setdefault(id(param), param.name)
        return InputBinding(
            param.name,
            node.id,
            cast("InputMode", binding.mode),
            binding.path_on_compute,
            binding.overwrite,
        )

    def _output(self, step: PipelineStep, item: Any, ports: StepPorts) -> OutputBinding | None:
        if isinstance(item, OutputFileDatasetConfig):
            node = self._output_dataset_node(step, item)
            self._bind(ports, item, node.name, node.name)
            ports.by_identity.setdefault(id(item._origin), node.name)
            return OutputBinding(node.name, node.id, item.mode)  # type: ignore[arg-type]
        if not isinstance(item, PipelineData):
            self.problems.append(
                f"Step {step.name!r}: an output of type {type(item).__name__} is not "
                "supported; outputs are PipelineData objects."
            )
            return None
        node = self._pipeline_data_node(step, item)
        self._bind(ports, item, item.name, item.output_name)
        return OutputBinding(
            item.output_name,
            node.id,
            item.output_mode,  # type: ignore[arg-type]
            item.output_path_on_compute,
        )
