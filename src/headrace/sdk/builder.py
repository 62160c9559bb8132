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
from dataclasses import replace
from typing import Any, Literal

from headrace.errors import NotAStepError, UserError
from headrace.graph import placeholders
from headrace.graph.model import (
    DATA_PLACEHOLDER,
    PARAMETER_PLACEHOLDER,
    DataNode,
    Graph,
    ParameterDef,
    StepNode,
)
from headrace.graph.resources import normalize_resources
from headrace.graph.validate import did_you_mean
from headrace.sdk.builder_data import DataBindings, StepPorts
from headrace.sdk.data import (
    DataPath,
    DataReference,
    InputPortBinding,
    PipelineData,
    PortDataReference,
)
from headrace.sdk.dataset_outputs import OutputFileDatasetConfig
from headrace.sdk.datasets import DatasetConsumptionConfig
from headrace.sdk.parameters import PipelineParameter, referenced_parameters
from headrace.sdk.steps import CommandStep, PipelineStep, PythonScriptStep

__all__ = ["GraphBuilder", "StepSequence", "flatten_steps"]


StepKind = Literal["python_script", "command"]


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


class GraphBuilder(DataBindings):
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
        ports = StepPorts()
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

    def _command(self, step: CommandStep, ports: StepPorts) -> str | None:
        if step.command is None:
            self.problems.append(
                f"Step {step.name!r}: CommandStep needs a command, for example "
                "CommandStep(command='python train.py', ...)."
            )
            return None
        parts = step.command if isinstance(step.command, (list, tuple)) else [step.command]
        return " ".join(self._text(step, p, ports, "command") for p in parts)

    # -- arguments -------------------------------------------------------------------------
    def _text(self, step: PipelineStep, value: Any, ports: StepPorts, where: str) -> str:
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
