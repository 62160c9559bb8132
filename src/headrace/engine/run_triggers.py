"""Run triggers: start a published pipeline (or a pipeline endpoint's default) when a run of
another published pipeline (or endpoint) ends with one of the chosen statuses, passing its
parameters, outputs or id (beyond SDK v1).

`add_run_trigger` checks a spec; `fire` starts the run of one firing (an outbox row of kind
"trigger", engine/outbox.py). Exactly once: the run's id is derived from (trigger, source
run) (`store.run_triggers.triggered_run_id`) and claimed by the run row's primary key in the
transaction that queues it, so two senders (two agents or servers on one PostgreSQL
workspace), or one that crashed after submitting and before recording, start one run.

A parameter mapping maps each target parameter to one of:
`parameter:NAME` (the source run's value), `output:STEP/OUTPUT` (where that step's output
is: a DataPath for a DataPath parameter, else `datastore/path` text), `run:id`,
`run:status`, or `value:TEXT`.
"""

from __future__ import annotations

import re
from typing import Any

from headrace.engine.graphs import load_graph
from headrace.engine.notifications import checked_statuses
from headrace.engine.publishing import endpoint_pipeline_id, submit_published
from headrace.errors import ConflictError, NotFoundError, UserError
from headrace.store.notifications import ENDED_STATUSES
from headrace.store.orm import utcnow
from headrace.store.records import PipelineRunRecord
from headrace.store.run_triggers import RunTriggerRecord, triggered_run_id
from headrace.store.workspace_store import WorkspaceStore

__all__ = ["TRIGGER_PROPERTY", "add_run_trigger", "fire", "trigger_from_spec"]

TRIGGER_PROPERTY = "headrace.trigger"  # on a triggered run: "<trigger name>:<source run id>"
_SOURCES = ("parameter:", "output:", "run:", "value:")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def trigger_from_spec(ws: WorkspaceStore, spec: dict[str, Any]) -> RunTriggerRecord:
    """Check a trigger spec (every problem at once), resolving endpoint names to ids."""
    problems: list[str] = []
    name = spec.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        problems.append(
            f"name {name!r} must be 1 to 100 letters, digits, '_', '.' or '-', "
            "for example 'score-after-train'."
        )
    ids: dict[str, str | None] = {}
    for side in ("source", "target"):
        pipeline, endpoint = spec.get(f"{side}_pipeline_id"), spec.get(f"{side}_endpoint")
        if (pipeline is None) == (endpoint is None):
            problems.append(
                f"give exactly one of {side}_pipeline_id (a published pipeline's id) and "
                f"{side}_endpoint (a pipeline endpoint's name)."
            )
            continue
        try:
            if pipeline is not None:
                ids[f"{side}_pipeline_id"] = ws.meta.get_published_pipeline(str(pipeline)).id
            else:
                ids[f"{side}_endpoint_id"] = ws.meta.get_pipeline_endpoint(name=str(endpoint)).id
        except NotFoundError as exc:
            problems.append(f"{side}: {exc}")
    statuses = checked_statuses(spec.get("statuses"), ["Finished"], problems)
    experiment = spec.get("experiment_name")
    if not isinstance(experiment, str) or not experiment.strip():
        problems.append("experiment_name is missing: the experiment the started runs go to.")
    mapping = spec.get("parameters") or {}
    if not isinstance(mapping, dict):
        problems.append("parameters must map target parameter names to sources.")
        mapping = {}
    for target, source in mapping.items():
        if not isinstance(source, str) or not source.startswith(_SOURCES):
            problems.append(
                f"parameter {target!r}: source {source!r} must start with one of "
                f"{', '.join(_SOURCES)} (for example 'parameter:learning_rate', "
                "'output:train/model', 'run:id', 'value:42')."
            )
        elif source.startswith("output:") and "/" not in source:
            problems.append(f"parameter {target!r}: {source!r} must be 'output:STEP/OUTPUT'.")
        elif source.startswith("run:") and source not in ("run:id", "run:status"):
            problems.append(f"parameter {target!r}: {source!r} must be 'run:id' or 'run:status'.")
    if problems:
        raise UserError("The run trigger cannot be added:\n- " + "\n- ".join(problems))
    return RunTriggerRecord(
        name=str(name),
        source_pipeline_id=ids.get("source_pipeline_id"),
        source_endpoint_id=ids.get("source_endpoint_id"),
        statuses=[s for s in ENDED_STATUSES if s in statuses],
        target_pipeline_id=ids.get("target_pipeline_id"),
        target_endpoint_id=ids.get("target_endpoint_id"),
        experiment_name=str(experiment),
        parameters={str(k): str(v) for k, v in mapping.items()},
        enabled=True,
        created_at=utcnow(),
    )


def add_run_trigger(ws: WorkspaceStore, spec: dict[str, Any]) -> RunTriggerRecord:
    record = trigger_from_spec(ws, spec)
    ws.meta.add_run_trigger(record)
    return record


def _output_location(ws: WorkspaceStore, run: PipelineRunRecord, source: str) -> dict[str, str]:
    step_name, _, output = source[len("output:") :].partition("/")
    steps = ws.meta.list_step_runs(run.id)
    for step in steps:
        if step.name == step_name:
            found = step.outputs.get(output)
            if found is None:
                raise UserError(
                    f"Step {step_name!r} of run {run.id} has no output {output!r}; its "
                    f"outputs: {', '.join(step.outputs) or 'none'}."
                )
            return {"datastore": str(found["datastore"]), "path": str(found["path"])}
    raise UserError(
        f"Run {run.id} has no step {step_name!r}; its steps: "
        f"{', '.join(s.name for s in steps) or 'none'}."
    )


def _values(
    ws: WorkspaceStore, trigger: RunTriggerRecord, run: PipelineRunRecord, types: dict[str, str]
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for target, source in trigger.parameters.items():
        kind, _, rest = source.partition(":")
        if kind == "parameter":
            if rest not in run.parameters:
                raise UserError(
                    f"Run {run.id} has no parameter {rest!r} for {target!r}; its parameters: "
                    f"{', '.join(run.parameters) or 'none'}."
                )
            values[target] = run.parameters[rest]
        elif kind == "output":
            where = _output_location(ws, run, source)
            datapath = types.get(target) == "datapath"
            values[target] = where if datapath else f"{where['datastore']}/{where['path']}"
        elif kind == "run":
            values[target] = run.id if rest == "id" else run.status
        else:
            values[target] = rest
    return values


def fire(ws: WorkspaceStore, trigger_name: str, source_run_id: str) -> dict[str, Any]:
    """Start the run of one firing, or find the one started before; returns its id."""
    run_id = triggered_run_id(trigger_name, source_run_id)
    if ws.meta.find_pipeline_run(run_id) is not None:
        return {"run_id": run_id, "started": False}
    trigger = ws.meta.get_run_trigger(trigger_name)
    if not trigger.enabled:
        raise ConflictError(
            f"Run trigger {trigger.name!r} was disabled before it fired for run "
            f"{source_run_id}; it fires for runs that end while it is enabled."
        )
    source = ws.meta.get_pipeline_run(source_run_id)
    if trigger.target_endpoint_id is not None:
        endpoint = ws.meta.get_pipeline_endpoint(id=trigger.target_endpoint_id)
        pipeline_id = endpoint_pipeline_id(endpoint, None)
    else:
        pipeline_id = str(trigger.target_pipeline_id)
    published = ws.meta.get_published_pipeline(pipeline_id)
    graph = load_graph(ws.meta, published.graph_id)
    types: dict[str, str] = {p.name: str(p.type) for p in graph.parameters}
    try:
        submit_published(
            ws,
            pipeline_id,
            experiment_name=trigger.experiment_name,
            parameters=_values(ws, trigger, source, types) or None,
            description=f"Started by run trigger {trigger.name!r} after run {source.id} "
            f"{source.status}",
            run_source="a run trigger",
            with_preview=False,
            properties={TRIGGER_PROPERTY: f"{trigger.name}:{source.id}"},
            run_id=run_id,
        )
    except ConflictError:
        if ws.meta.find_pipeline_run(run_id) is None:
            raise
        return {"run_id": run_id, "started": False}  # another sender started it first
    return {"run_id": run_id, "started": True}
