"""The pipeline as pure data: frozen dataclasses that serialize to JSON with a schema version.

The SDK turns live Python objects (steps, PipelineData, parameters) into a `Graph` before
anything runs. Validation, fingerprints, the engine, the CLI and the UI read this graph and
never the live objects. Nothing here does I/O.

Arguments and commands are kept as text with SDK v1 placeholders: `$AZUREML_DATAREFERENCE_<port>`
for data and `$AML_PARAMETER_<name>` for parameters; the step runtime expands them.
"""

from __future__ import annotations

import json
import math
import types
import typing
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

__all__ = [
    "DATA_PLACEHOLDER",
    "KIND_VARIABLE",
    "PARAMETER_PLACEHOLDER",
    "SCHEMA_VERSION",
    "SPEC_VARIABLE",
    "STEP_ERROR_PREFIX",
    "DataNode",
    "Graph",
    "InputBinding",
    "OutputBinding",
    "ParameterDef",
    "StepNode",
]

# 2: a step of a kind package records its kind and settings (StepNode.step_kind/settings);
# a version 1 graph (its kind and spec in the step's environment variables) is read too.
SCHEMA_VERSION = 2
_READABLE_VERSIONS = (1, 2)
DATA_PLACEHOLDER = "$AZUREML_DATAREFERENCE_"
PARAMETER_PLACEHOLDER = "$AML_PARAMETER_"
# A step's program (a kind package's, headrace.kinds) that fails for a reason it can name
# writes one stderr line starting with this; the step's error message is then that reason
# instead of "exited with code N".
STEP_ERROR_PREFIX = "headrace-step-error: "
# What the runtime gives the process of a step of a kind package (`python -m headrace.kinds`):
# the step's kind and its settings as JSON (StepNode.step_kind, StepNode.settings).
KIND_VARIABLE = "HEADRACE_STEP_KIND"
SPEC_VARIABLE = "HEADRACE_STEP_SPEC"

ParameterType = Literal["int", "float", "bool", "str", "datapath", "dataset"]
DataKind = Literal[
    "pipeline_data", "datastore", "datapath_parameter", "dataset", "dataset_parameter"
]
StepKind = Literal["python_script", "command"]


@dataclass(frozen=True)
class ParameterDef:
    """A pipeline parameter: a name, a type and a default (a DataPath is `{datastore, path}`,
    a dataset its definition, store/datasets.py)."""

    name: str
    type: ParameterType
    default: Any


@dataclass(frozen=True)
class DataNode:
    """A piece of data in the graph: a datastore location, a DataPath parameter, a dataset
    (its definition, or a parameter whose default is one), or the intermediate output of one
    step (PipelineData, OutputFileDatasetConfig).

    An OutputFileDatasetConfig is intermediate data whose `path_on_datastore` is its
    destination template (`dataset/{run-id}/{output-name}`) and which may be registered as
    a dataset when its step succeeds (`register_as`: name and how to read it)."""

    id: str
    kind: DataKind
    name: str
    datastore: str | None = None
    path_on_datastore: str | None = None
    parameter: str | None = None
    producer: str | None = None
    output_name: str | None = None
    pipeline_output_name: str | None = None
    dataset: dict[str, Any] | None = None
    register_as: dict[str, Any] | None = None


@dataclass(frozen=True)
class InputBinding:
    """How a step consumes a DataNode: the port name its script sees and the mode.

    "direct" is a mount for a step that reads object storage itself (a SqlStep): it gets
    the data's URI instead of a downloaded copy."""

    port: str
    data: str
    mode: Literal["mount", "download", "direct"] = "mount"
    path_on_compute: str | None = None
    overwrite: bool = False
    # How `Run.input_datasets[port]` reads intermediate data given as a dataset
    # (OutputFileDatasetConfig.as_input / read_delimited_files): {"kind": "file"} or a
    # tabular definition without sources. None: not a dataset input.
    read_as: dict[str, Any] | None = None


@dataclass(frozen=True)
class OutputBinding:
    """How a step produces a DataNode."""

    port: str
    data: str
    mode: Literal["mount", "upload"] = "mount"
    path_on_compute: str | None = None


@dataclass(frozen=True)
class StepNode:
    """One step: what to run, where, with which data, and its reuse and retry settings."""

    id: str
    name: str
    kind: StepKind
    source_directory: str
    script_name: str | None = None
    command: str | None = None
    arguments: tuple[str, ...] = ()
    inputs: tuple[InputBinding, ...] = ()
    outputs: tuple[OutputBinding, ...] = ()
    compute_target: str = "local"
    params: tuple[tuple[str, str], ...] = ()
    environment_variables: tuple[tuple[str, str], ...] = ()
    environment: dict[str, Any] | None = None
    allow_reuse: bool = True
    version: str | None = None
    run_after: tuple[str, ...] = ()
    max_retries: int = 0
    timeout_seconds: float | None = None
    snapshot_id: str | None = None
    # What one attempt asks of the node it runs on ("CPU", "GPU", "memory" in bytes, custom
    # Ray resources). A Ray target schedules by it; a local pool counts steps instead.
    resources: dict[str, float] | None = None
    # Built while the `azureml` import alias was on (headrace.v1): the script starts through
    # the launcher, so its `from azureml.core import Run` works too. Not part of reuse.
    azureml_alias: bool = False
    # A step of a kind package (headrace.kinds): the kind's name in the registry ("sql",
    # "transfer", "parallel", ...) and its settings, the kind's typed spec as JSON data. The
    # step still runs its `command` (`python -m headrace.kinds`); the runtime hands the
    # process both (KIND_VARIABLE, SPEC_VARIABLE). None for a script or command step.
    step_kind: str | None = None
    settings: dict[str, Any] | None = None


@dataclass(frozen=True)
class Graph:
    """A whole pipeline. `nodes` are in a deterministic order (the order steps were added)."""

    nodes: tuple[StepNode, ...]
    data: tuple[DataNode, ...] = ()
    parameters: tuple[ParameterDef, ...] = ()
    description: str | None = None
    default_datastore: str | None = None
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        # A lookup table, not a field: it stays out of equality, repr and JSON.
        object.__setattr__(self, "_index", {n.id: n for n in self.nodes})
        object.__setattr__(self, "_data_index", {d.id: d for d in self.data})

    # -- lookups ---------------------------------------------------------------------------
    def node(self, node_id: str) -> StepNode:
        index: dict[str, StepNode] = self._index  # type: ignore[attr-defined]
        return index[node_id]

    def data_node(self, data_id: str) -> DataNode:
        index: dict[str, DataNode] = self._data_index  # type: ignore[attr-defined]
        return index[data_id]

    def parameter(self, name: str) -> ParameterDef:
        for p in self.parameters:
            if p.name == name:
                return p
        raise KeyError(name)

    def predecessors(self, node_id: str) -> list[str]:
        """Steps that must finish before `node_id` starts: producers of its inputs, run_after."""
        node = self.node(node_id)
        preds: list[str] = []
        for binding in node.inputs:
            producer = self.data_node(binding.data).producer
            if producer is not None and producer not in preds:
                preds.append(producer)
        for other in node.run_after:
            if other not in preds:
                preds.append(other)
        return preds

    def with_snapshots(self, snapshot_ids: dict[str, str]) -> Graph:
        """A copy whose steps carry the snapshot id of their source directory."""
        nodes = tuple(
            replace(n, snapshot_id=snapshot_ids.get(n.source_directory, n.snapshot_id))
            for n in self.nodes
        )
        return replace(self, nodes=nodes)

    # -- serialization ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, raw: dict[str, Any], *, stored: bool = False) -> Graph:
        """The graph `raw` describes; a field of the wrong type is a ValueError naming it.
        `stored`: `raw` is a graph this headrace checked and stored itself, so the fields'
        types are not checked again (on a 500-step graph that check costs more than the
        rest of a `headrace run show`); unknown fields still are."""
        check = _known_fields if stored else _checked
        version = raw.get("schema_version", SCHEMA_VERSION)
        if version not in _READABLE_VERSIONS:
            raise ValueError(
                f"pipeline graph schema version {version} is not supported "
                f"(this headrace reads versions 1 to {SCHEMA_VERSION}); upgrade headrace"
            )
        nodes = tuple(_step_from_dict(n, check) for n in _items(raw["nodes"]))
        if version == 1:
            nodes = tuple(_kind_from_environment(n) for n in nodes)
        data = tuple(DataNode(**check(DataNode, d)) for d in _items(raw.get("data")))
        params = tuple(
            ParameterDef(**check(ParameterDef, p)) for p in _items(raw.get("parameters"))
        )
        for key in ("description", "default_datastore"):
            if not isinstance(raw.get(key), (str, type(None))):
                raise ValueError(f"the graph's {key} must be text or null")
        return cls(
            nodes=nodes,
            data=data,
            parameters=params,
            description=raw.get("description"),
            default_datastore=raw.get("default_datastore"),
        )

    @classmethod
    def from_json(cls, text: str) -> Graph:
        return cls.from_dict(json.loads(text))


def _matches(value: Any, kind: Any) -> bool:
    """Whether a JSON value fits a field's annotation (the few shapes the graph uses)."""
    origin = typing.get_origin(kind)
    if kind is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, k) for k in typing.get_args(kind))
    if origin is Literal:
        return value in typing.get_args(kind)
    if origin is tuple:
        item = typing.get_args(kind)[0]
        return isinstance(value, (list, tuple)) and all(_matches(v, item) for v in value)
    if origin is dict:
        key, item = typing.get_args(kind)
        return isinstance(value, dict) and all(
            _matches(k, key) and _matches(v, item) for k, v in value.items()
        )
    if kind is type(None):
        return value is None
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:  # an int is a float here, as in JSON; NaN and infinity are not
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return isinstance(value, int) or math.isfinite(value)
    return isinstance(kind, type) and isinstance(value, kind)


_HINTS: dict[type[Any], tuple[dict[str, Any], frozenset[str]]] = {}


def _hints(cls: type[Any]) -> tuple[dict[str, Any], frozenset[str]]:
    """The field types and names of dataclass `cls` (worked out once: a 500-step graph
    would otherwise evaluate them 500 times)."""
    found = _HINTS.get(cls)
    if found is None:
        found = _HINTS[cls] = (
            typing.get_type_hints(cls),
            frozenset(f.name for f in fields(cls)),
        )
    return found


def _known_fields(cls: type[Any], raw: Any) -> dict[str, Any]:
    """`raw` as keyword arguments of the dataclass `cls`, or ValueError naming the first
    field that is unknown."""
    if not isinstance(raw, dict):
        raise ValueError(f"a {cls.__name__} must be an object, not {type(raw).__name__}")
    _, known = _hints(cls)
    unknown = sorted(str(k) for k in raw if k not in known)
    if unknown:
        raise ValueError(f"{cls.__name__} has no field {unknown[0]!r}")
    return dict(raw)


def _checked(cls: type[Any], raw: Any) -> dict[str, Any]:
    """`raw` as keyword arguments of the dataclass `cls`, or ValueError naming the first
    field that is missing, unknown or of the wrong type (a graph may come over REST)."""
    _known_fields(cls, raw)
    hints, _ = _hints(cls)
    for name, value in raw.items():
        kind = hints[name]
        if typing.get_origin(kind) is tuple and typing.get_args(kind)[0] is not str:
            continue  # bindings and pairs: checked when they are built
        if not _matches(value, kind):
            raise ValueError(f"{cls.__name__} field {name!r} cannot be {value!r:.60}")
    return dict(raw)


def _step_from_dict(
    raw: dict[str, Any], check: Callable[[type[Any], Any], dict[str, Any]] = _checked
) -> StepNode:
    values = check(StepNode, raw)
    values["arguments"] = tuple(values.get("arguments", ()))
    values["inputs"] = tuple(
        InputBinding(**check(InputBinding, b)) for b in _items(values.get("inputs"))
    )
    values["outputs"] = tuple(
        OutputBinding(**check(OutputBinding, b)) for b in _items(values.get("outputs"))
    )
    values["params"] = _pairs(values.get("params"), "params")
    values["environment_variables"] = _pairs(
        values.get("environment_variables"), "environment_variables"
    )
    values["run_after"] = tuple(values.get("run_after", ()))
    if (values.get("step_kind") is None) != (values.get("settings") is None):
        raise ValueError(
            "StepNode fields 'step_kind' and 'settings' are given together or not at all"
        )
    return StepNode(**values)


def _kind_from_environment(node: StepNode) -> StepNode:
    """A version 1 step of a kind package kept its kind and spec in its environment
    variables; version 2 records them as the step's kind and settings."""
    env = dict(node.environment_variables)
    kind, spec = env.pop(KIND_VARIABLE, None), env.pop(SPEC_VARIABLE, None)
    if not kind or spec is None:
        return node
    try:
        settings = json.loads(spec)
    except ValueError:
        return node
    if not isinstance(settings, dict):
        return node
    return replace(
        node,
        step_kind=kind,
        settings=settings,
        environment_variables=tuple(env.items()),
    )


def _items(value: Any) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"expected a list, not {type(value).__name__}")
    return list(value)


def _pairs(value: Any, what: str) -> tuple[tuple[str, str], ...]:
    pairs = _items(value)
    if not all(
        isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(v, str) for v in p)
        for p in pairs
    ):
        raise ValueError(f"StepNode field {what!r} must be a list of [name, text] pairs")
    return tuple((p[0], p[1]) for p in pairs)
