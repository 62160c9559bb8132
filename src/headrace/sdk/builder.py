"""Turning steps into the pure-data `Graph`, collecting every problem on the way.

The builder flattens the step structure (a list is a parallel group, nestable; a
StepSequence orders its items), pulls in the producers of inputs and the `run_after`
predecessors (closure), turns data objects into data nodes and port bindings, and arguments
into text with SDK v1 placeholders. It never raises for a problem of the definition: it
reports all of them, and `Pipeline.validate()` adds the structural checks of the graph.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Literal, cast

from headrace.errors import NotAStepError, UserError
from headrace.graph import placeholders
from headrace.graph.model import (
    DATA_PLACEHOLDER,
    PARAMETER_PLACEHOLDER,
    DataNode,
    Graph,
    InputBinding,
    OutputBinding,
    ParameterDef,
    StepNode,
)
from headrace.graph.resources import normalize_resources
from headrace.graph.validate import did_you_mean
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
from headrace.sdk.parameters import PipelineParameter, referenced_parameters
from headrace.sdk.steps import CommandStep, PipelineStep, PythonScriptStep

__all__ = ["GraphBuilder", "StepSequence", "flatten_steps"]


_WORD = re.compile(r"^\w+$")
StepKind = Literal["python_script", "command"]
InputMode = Literal["mount", "download", "direct"]


class StepSequence:
    """Steps that run one after another: every step of item i after all steps of item i-1.

    Items may be steps or lists of steps (parallel groups)."""

    def __init__(self, steps: Iterable[Any] | None = None) -> None:
        self._steps = list(steps or [])

    @property
    def steps(self) -> list[Any]:
        return list(self._steps)


def azureml_alias_on() -> bool:
    """Whether the `azureml` import alias is on in this process (headrace.v1): steps built
    now run their scripts with it too. Looked up by a marker, since the alias lives above
    this layer."""
    return any(getattr(f, "headrace_azureml_alias", False) for f in sys.meta_path)


def flatten_steps(
    item: Any, edges: list[tuple[PipelineStep, PipelineStep]] | None = None
) -> list[PipelineStep]:
    """The steps in `item` (a step, list, StepSequence or PipelineData), in order.

    Ordering edges (later, earlier) implied by StepSequences are appended to `edges`.
    """
    edges = [] if edges is None else edges
    if isinstance(item, PipelineStep):
        return [item]
    if isinstance(item, PipelineData):
        if item._producer is None:
            raise UserError(
                f"PipelineData {item.name!r} was given as a pipeline step, but no step lists "
                "it in outputs=[...]."
            )
        return [item._producer]
    if isinstance(item, StepSequence):
        found: list[PipelineStep] = []
        previous: list[PipelineStep] = []
        for sub in item.steps:
            current = flatten_steps(sub, edges)
            edges.extend((later, earlier) for later in current for earlier in previous)
            found.extend(current)
            previous = current or previous
        return found
    if isinstance(item, (list, tuple)):
        found = []
        for sub in item:
            found.extend(flatten_steps(sub, edges))
        return found
    raise NotAStepError(
        f"Can not add object of type {type(item).__name__} to Pipeline; pass steps "
        "(PythonScriptStep, CommandStep, ...), lists of them, a StepSequence, or the "
        "PipelineData a step produces."
    )


@dataclass
class _StepPorts:
    """Which data objects a step binds, under which port names."""

    by_identity: dict[int, str] = field(default_factory=dict)
    by_data_name: dict[str, str] = field(default_factory=dict)
    ports: list[str] = field(default_factory=list)


class GraphBuilder:
    def __init__(
        self,
        steps: Any,
        *,
        default_datastore: str | None,
        default_source_directory: str | None,
        resolve_closure: bool,
        description: str | None,
    ) -> None:
        self.steps_spec = steps
        self.default_datastore = default_datastore
        self.default_source_directory = default_source_directory
        self.resolve_closure = resolve_closure
        self.description = description
        self.problems: list[str] = []
        # Names already reported as invalid, so the graph checks do not report them again.
        self.invalid_names: set[str] = set()
        self._data: dict[tuple[Any, ...], DataNode] = {}
        self._params: dict[str, PipelineParameter] = {}
        self._producers: dict[int, PipelineStep] = {}
        # An OutputFileDatasetConfig's origin -> the object its producer lists (its copy
        # may carry register_on_complete, which the consumers' copies lack).
        self._output_objects: dict[int, OutputFileDatasetConfig] = {}

    # -- steps -----------------------------------------------------------------------------
    def _closure(self, listed: list[PipelineStep]) -> list[PipelineStep]:
        steps: list[PipelineStep] = []
        seen: set[int] = set()
        queue = list(listed)
        listed_ids = {id(s) for s in listed}
        while queue:
            step = queue.pop(0)
            if id(step) in seen:
                continue
            seen.add(id(step))
            steps.append(step)
            wanted = list(step._predecessors)
            for item in step.inputs:
                producer = self._producer_of(item)
                if producer is not None:
                    wanted.append(producer)
            for other in wanted:
                if id(other) in seen:
                    continue
                if self.resolve_closure or id(other) in listed_ids:
                    queue.append(other)
        return steps

    @staticmethod
    def _producer_of(item: Any) -> PipelineStep | None:
        data = item.bind_object if isinstance(item, InputPortBinding) else item
        if isinstance(data, DatasetConsumptionConfig):
            data = data.dataset
        if isinstance(data, PipelineData):
            producer: PipelineStep | None = data._producer
            return producer
        if isinstance(data, OutputFileDatasetConfig):
            origin_producer: PipelineStep | None = data._origin._producer
            return origin_producer
        return None

    def build(self) -> Graph:
        edges: list[tuple[PipelineStep, PipelineStep]] = []
        listed = flatten_steps(self.steps_spec, edges)
        steps = self._closure(listed)
        for step in steps:
            for output in step.outputs:
                if isinstance(output, PipelineData):
                    # The first producer wins; the graph check reports any second one.
                    self._producers.setdefault(id(output), step)
                elif isinstance(output, OutputFileDatasetConfig):
                    self._producers.setdefault(id(output._origin), step)
                    self._output_objects.setdefault(id(output._origin), output)
        in_graph = {id(s) for s in steps}
        sequence_after: dict[int, list[str]] = {}
        for later, earlier in edges:
            sequence_after.setdefault(id(later), []).append(earlier._id)
        nodes = []
        for step in steps:
            node = self._node(step, in_graph, sequence_after.get(id(step), []))
            if node is not None:
                nodes.append(node)
        parameters = tuple(
            ParameterDef(p.name, p.type_name, p.default_for_graph())  # type: ignore[arg-type]
            for p in self._params.values()
        )
        return Graph(
            nodes=tuple(nodes),
            data=tuple(self._data.values()),
            parameters=parameters,
            description=self.description,
            default_datastore=self.default_datastore,
        )

    def _node(self, step: PipelineStep, in_graph: set[int], after: list[str]) -> StepNode | None:
        ports = _StepPorts()
        inputs = [b for b in (self._input(step, item, ports) for item in step.inputs) if b]
        if step.reads_object_storage:
            inputs = [replace(b, mode="direct") if b.mode == "mount" else b for b in inputs]
        outputs = [b for b in (self._output(step, item, ports) for item in step.outputs) if b]
        run_after = list(after)
        for other in step._predecessors:
            run_after.append(other._id)
        arguments = tuple(self._text(step, arg, ports, "arguments") for arg in step.arguments)
        params = tuple(
            (str(k), self._text(step, v, ports, f"params[{k!r}]")) for k, v in step.params.items()
        )
        env_vars: dict[str, str] = {}
        environment = None
        if step.runconfig is not None:
            try:
                env_vars, environment = step.runconfig.step_environment()
            except UserError as exc:  # conda packages PyPI lacks: each named
                self.problems.append(f"Step {step.name!r}: {exc}")
            distribution = step.runconfig.distribution_problem()
            if distribution:
                self.problems.append(f"Step {step.name!r}: {distribution}.")
        step_kind: str | None = None
        settings: dict[str, Any] | None = None
        kind_spec = getattr(step, "_kind_spec", None)
        if kind_spec is not None:
            # A step of a kind package (headrace.kinds): the graph records its kind and its
            # typed spec as settings; the runtime hands both to its program.
            step_kind, spec_json = kind_spec()
            settings = json.loads(spec_json)
        resources = self._resources(step)
        environment_variables = tuple(
            (k, self._text(step, v, ports, f"environment variable {k}"))
            for k, v in env_vars.items()
        )
        source = step.source_directory or self.default_source_directory or os.getcwd()
        kind: StepKind = "command" if isinstance(step, CommandStep) else "python_script"
        command = None
        script_name = None
        if isinstance(step, CommandStep):
            command = self._command(step, ports)
        elif isinstance(step, PythonScriptStep):
            script_name = step.script_name
        return StepNode(
            id=step._id,
            name=step.name,
            kind=kind,
            source_directory=os.path.abspath(source),
            script_name=script_name,
            command=command,
            arguments=arguments,
            inputs=tuple(inputs),
            outputs=tuple(outputs),
            compute_target=step.compute_target or "local",
            params=params,
            environment_variables=environment_variables,
            environment=environment,
            allow_reuse=step.allow_reuse,
            version=step.version,
            run_after=tuple(dict.fromkeys(run_after)),
            max_retries=step.max_retries,
            timeout_seconds=step.timeout_seconds,
            resources=resources,
            azureml_alias=kind == "python_script" and azureml_alias_on(),
            step_kind=step_kind,
            settings=settings,
        )

    def _resources(self, step: PipelineStep) -> dict[str, float] | None:
        raw = step.resources
        if raw is None and step.runconfig is not None:
            raw = step.runconfig.resources
        if raw is None:
            return None
        if not isinstance(raw, dict):
            self.problems.append(
                f"Step {step.name!r}: resources must be a dict like {{'cpu': 2, 'memory': "
                f"'4GB'}}, not {raw!r}."
            )
            return None
        try:
            return normalize_resources(raw)
        except ValueError as exc:
            self.problems.append(f"Step {step.name!r}: {exc}.")
            return None

    def _command(self, step: CommandStep, ports: _StepPorts) -> str | None:
        if step.command is None:
            self.problems.append(
                f"Step {step.name!r}: CommandStep needs a command, for example "
                "CommandStep(command='python train.py', ...)."
            )
            return None
        parts = step.command if isinstance(step.command, (list, tuple)) else [step.command]
        return " ".join(self._text(step, p, ports, "command") for p in parts)

    # -- data ------------------------------------------------------------------------------
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

    def _bind(self, ports: _StepPorts, obj: Any, data_name: str, port: str) -> None:
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
        self, step: PipelineStep, item: DatasetConsumptionConfig, ports: _StepPorts
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

    def _input(self, step: PipelineStep, item: Any, ports: _StepPorts) -> InputBinding | None:
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
        ports: _StepPorts,
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

    def _output(self, step: PipelineStep, item: Any, ports: _StepPorts) -> OutputBinding | None:
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

    # -- arguments -------------------------------------------------------------------------
    def _text(self, step: PipelineStep, value: Any, ports: _StepPorts, where: str) -> str:
        """One argument (or command part, or param value) as text with placeholders."""
        if isinstance(value, PipelineParameter):
            self._register(step, value)
            safe_name = re.sub(r"\W", "_", value.name)
            return f"{PARAMETER_PLACEHOLDER}{safe_name}"
        if isinstance(
            value,
            (
                PipelineData,
                DataReference,
                InputPortBinding,
                PortDataReference,
                DataPath,
                tuple,
                DatasetConsumptionConfig,
                OutputFileDatasetConfig,
            ),
        ):
            port = ports.by_identity.get(id(value))
            if port is None and isinstance(value, OutputFileDatasetConfig):
                port = ports.by_identity.get(id(value._origin))
            if (
                port is None
                and isinstance(value, DatasetConsumptionConfig)
                and value.name in ports.ports
            ):
                port = value.name
            if (
                port is None
                and isinstance(value, tuple)
                and value
                and isinstance(value[0], PipelineParameter)
            ):
                port = ports.by_identity.get(id(value[0]))
            if port is None and isinstance(value, DataReference):
                port = ports.by_data_name.get(value.data_reference_name)
            if port is None and isinstance(value, InputPortBinding) and value.name in ports.ports:
                # A second as_input('x')/as_mount() of the same data names the same port.
                port = value.name
            if port is None:
                named = value[0] if isinstance(value, tuple) and value else value
                label = getattr(named, "name", None) or type(value).__name__
                self.problems.append(
                    f"Step {step.name!r}: Input {label} appears in arguments list but is not in "
                    f"the input list{did_you_mean(str(label), ports.ports)}; add it to the step's "
                    "inputs=[...] (data it reads) or outputs=[...] (data it writes)."
                )
                # Plain text, not a placeholder: the graph checks must not report it again.
                return str(label)
            return f"{DATA_PLACEHOLDER}{port}"
        if isinstance(value, bool):
            return "True" if value else "False"
        if value is None:
            self.problems.append(f"Step {step.name!r}: {where} contains None; pass a value.")
            return ""
        text = str(value)
        self._text_references(step, text)
        # Data named in the text by its data name resolves to this step's port for it.
        aliases = {
            name: f"{DATA_PLACEHOLDER}{port}"
            for name, port in ports.by_data_name.items()
            if name != port
        }
        if aliases:
            text = placeholders.expand(text, aliases, {})
        return text

    def _text_references(self, step: PipelineStep, text: str) -> None:
        # What the step saw when it was made comes first (see steps.formatted_parameters).
        formatted = {**referenced_parameters(), **getattr(step, "_formatted_parameters", {})}
        for kind, word, _braced in placeholders.references(text):
            if kind != placeholders.PARAMETER:
                continue
            candidates = [word] + [n for n in formatted if word.startswith(n)]
            for name in candidates:
                param = formatted.get(name)
                if param is not None:
                    self._register(step, param)
                    break
