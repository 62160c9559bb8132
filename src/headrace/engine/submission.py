"""Submitting a pipeline graph: check it, resolve its parameters, preview reuse, queue the run.

The SDK (and later the server) calls `submit_graph`. Nothing runs here; the run is queued in
the metadata store for an agent. An invalid graph or parameter raises before anything is
written.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from headrace.engine import fingerprint as fp
from headrace.engine.environments import step_identity
from headrace.engine.interpreters import current
from headrace.engine.planning import (
    ProducedData,
    outputs_exist,
    resolve_inputs,
    workspace_default_datastore,
)
from headrace.engine.submitchecks import argument_problems, data_path_problems
from headrace.errors import ParameterError, PipelineValidationError
from headrace.graph.model import Graph, ParameterDef
from headrace.graph.validate import did_you_mean, structural_problems, topological_order
from headrace.limits import scalar_tags
from headrace.store.records import StepPreview, Submission
from headrace.store.workspace_store import WorkspaceStore

if TYPE_CHECKING:
    from sqlalchemy import Connection

__all__ = ["StepPreview", "Submission", "coerce_parameter", "resolve_parameters", "submit_graph"]

_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def coerce_parameter(definition: ParameterDef, value: Any) -> Any:
    """`value` converted to the parameter's type, or ParameterError naming both."""
    name, kind = definition.name, definition.type

    def fail(expected: str) -> ParameterError:
        return ParameterError(
            f"Pipeline parameter {name!r} expects {expected}, got {value!r} "
            f"({type(value).__name__}); its default is {definition.default!r}."
        )

    if kind == "datapath":
        if isinstance(value, dict):
            datastore = value.get("datastore") or value.get("DataStoreName")
            path = value.get("path") if "path" in value else value.get("RelativePath")
            if isinstance(datastore, str) and isinstance(path, str):
                return {"datastore": datastore, "path": path}
        raise fail("a DataPath (datastore and path)")
    if kind == "dataset":
        from headrace.errors import UserError
        from headrace.store.datasets import check_definition

        try:
            return check_definition(value)
        except UserError:
            raise fail("a dataset (its definition, or a registered dataset's id)") from None
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise fail("a bool (True/False or the text 'true'/'false')")
    if kind == "int":
        if isinstance(value, bool):
            raise fail("an int")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                raise fail("an int") from None
        raise fail("an int")
    if kind == "float":
        if isinstance(value, bool):
            raise fail("a float")
        number: float | None = None
        if isinstance(value, (int, float)):
            number = float(value) if abs(value) < 1e308 else math.inf
        elif isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                raise fail("a float") from None
        if number is None or not math.isfinite(number):
            raise fail("a finite float")
        return number
    if isinstance(value, (str, int, float, bool)):
        return value if isinstance(value, str) else str(value)
    raise fail("a string")


def _parameter_error(problems: list[str]) -> ParameterError:
    return ParameterError(problems[0] if len(problems) == 1 else "\n".join(problems))


def resolve_parameters(graph: Graph, assignments: dict[str, Any] | None) -> dict[str, Any]:
    """Every parameter's value for a run: assignments (type-checked) over defaults.

    All problems are reported in one ParameterError.
    """
    known = {p.name: p for p in graph.parameters}
    values = {p.name: p.default for p in graph.parameters}
    problems: list[str] = []
    for name, value in (assignments or {}).items():
        definition = known.get(name)
        if definition is None:
            listing = ", ".join(sorted(known)) or "none"
            problems.append(
                f"Pipeline parameter with name {name!r} does not exist"
                f"{did_you_mean(name, list(known))}; this pipeline's parameters: {listing}."
            )
            continue
        try:
            values[name] = coerce_parameter(definition, value)
        except ParameterError as exc:
            problems.append(str(exc))
    if problems:
        raise _parameter_error(problems)
    return values


def compute_problems(ws: WorkspaceStore, graph: Graph) -> list[str]:
    if ws.meta.compute_targets_exist({node.compute_target for node in graph.nodes}):
        return []
    known = [t.name for t in ws.meta.list_compute_targets()]
    problems = []
    for node in graph.nodes:
        if node.compute_target not in known:
            problems.append(
                f"Step {node.name!r}: compute target {node.compute_target!r} does not exist"
                f"{did_you_mean(node.compute_target, known)}; create it with "
                "ComputeTarget.create(ws, name, AmlCompute.provisioning_configuration(...)) "
                f"or use one of: {', '.join(known)}."
            )
    return problems


def preview(
    ws: WorkspaceStore, graph: Graph, parameters: dict[str, Any], regenerate_outputs: bool
) -> list[StepPreview]:
    """Which steps would be reused if the run started now (the run decides again at run time).

    Steps are decided level by level of data dependencies, one reuse query per level."""
    default_datastore = workspace_default_datastore(ws, graph)
    produced: dict[str, ProducedData] = {}
    previews: dict[str, StepPreview] = {}
    identities_seen: dict[str, str] = {}
    levels: dict[str, int] = {}
    for node_id in topological_order(graph):
        producers = [graph.data_node(b.data).producer for b in graph.node(node_id).inputs]
        levels[node_id] = 1 + max((levels[p] for p in producers if p is not None), default=-1)
    for level in range(max(levels.values(), default=-1) + 1):
        keys: dict[str, str] = {}
        for node_id in [n for n, lv in levels.items() if lv == level]:
            node = graph.node(node_id)
            producers = [graph.data_node(b.data).producer for b in node.inputs]
            # A producer that runs again makes new data, so its consumers run too.
            if any(p is not None and p not in produced for p in producers):
                previews[node_id] = StepPreview(node_id, node.name, "", False)
                continue
            _, identities = resolve_inputs(
                ws, graph, node, parameters, produced, default_datastore, identities_seen
            )
            environment = step_identity(node.environment, fp.interpreter_environment())
            keys[node_id] = fp.fingerprint(
                fp.fingerprint_parts(node, graph, parameters, identities, environment)
            )
        wanted = [
            key
            for node_id, key in keys.items()
            if graph.node(node_id).allow_reuse and not regenerate_outputs
        ]
        found = ws.meta.find_reusable_step_runs(wanted)
        for node_id, key in keys.items():
            earlier = found.get(key) if key in wanted else None
            reused = earlier is not None and outputs_exist(ws, earlier)
            if earlier is not None and reused:
                produced[node_id] = ProducedData(earlier.data_run_id, earlier.outputs)
            previews[node_id] = StepPreview(node_id, graph.node(node_id).name, key, reused)
    return [previews[n.id] for n in graph.nodes]


def submit_graph(
    ws: WorkspaceStore,
    graph: Graph,
    *,
    experiment_name: str,
    parameters: dict[str, Any] | None = None,
    tags: dict[str, Any] | None = None,
    description: str | None = None,
    run_source: str = "SDK",
    continue_on_step_failure: bool = False,
    regenerate_outputs: bool = False,
    properties: dict[str, Any] | None = None,
    with_preview: bool = True,
    stored_graph_id: str | None = None,
    in_transaction: Callable[[Connection, str], None] | None = None,
    run_id: str | None = None,
    interpreter: dict[str, Any] | None = None,
) -> Submission:
    """Validate and queue a run of `graph`; nothing is written when anything is wrong.

    `with_preview=False` skips working out which steps would be reused (REST callers are
    answered with the run alone), so the submission costs no reuse queries.
    `stored_graph_id`: `graph` is already stored under this id (a published pipeline's), so
    it is neither serialized nor stored again. `in_transaction(conn, run_id)` runs in the
    transaction that queues the run (a schedule's fire claim). `interpreter`: the Python
    steps without an environment run in (a rerun keeps its run's); default: this process's."""
    problems = structural_problems(graph) + compute_problems(ws, graph)
    if problems:
        raise PipelineValidationError(problems)
    values = resolve_parameters(graph, parameters)
    problems = data_path_problems(ws, graph, values) + argument_problems(graph, values)
    if problems:
        raise _parameter_error(problems)
    checked_tags = scalar_tags(tags)
    previews = preview(ws, graph, values, regenerate_outputs) if with_preview else []
    run = ws.meta.create_pipeline_run(
        experiment_name=experiment_name,
        graph=None if stored_graph_id else graph.to_dict(),
        stored_graph_id=stored_graph_id,
        parameters=values,
        tags=checked_tags,
        description=description,
        run_source=run_source,
        continue_on_step_failure=continue_on_step_failure,
        regenerate_outputs=regenerate_outputs,
        properties=properties,
        # Steps without an environment run in this process's Python: the submitter's in an
        # embedded workspace, the server's for a REST or remote submit (engine/interpreters).
        interpreter=interpreter or (submitter.record() if (submitter := current()) else None),
        in_transaction=in_transaction,
        run_id=run_id,
    )
    return Submission(run=run, previews=previews)
