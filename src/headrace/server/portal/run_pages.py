"""A pipeline run's page: its facts, its graph (drawn in the browser, live), its cancel form and
its rerun buttons.

The page costs one read transaction whatever the size of the run (`store.run_views`): the
run with its graph (unless cached), its step runs and its own metrics (`run.parent.log`,
`PipelineRun.log`: a pane like the step page's, live while the run goes on, see `metrics`).
The graph is sent once, compactly; while the run is active the page polls its twin with
`?live=1`, which leaves the graph and the metrics out and carries only the statuses.

A step run's page is in `step_pages` (importing it here registers its routes too).
"""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response
from fastapi.responses import RedirectResponse

from headrace.engine.publishing import IGNORED_PARAMETERS
from headrace.graph.model import Graph
from headrace.kinds import step_title
from headrace.server.portal.base import (
    PortalError,
    ViewerDep,
    checked_form,
    page,
    render,
    router,
    state,
    wants_json,
)
from headrace.server.portal.metrics import metric_groups
from headrace.server.portal.shapes import run_row, seconds_between
from headrace.server.portal.step_pages import graph_of, known_graphs
from headrace.store.notifications import OutboxRecord
from headrace.store.records import (
    RECOVER_FROM,
    RERUN_OF,
    TERMINAL_STATUSES,
    PipelineRunRecord,
    Status,
    StepRunRecord,
)
from headrace.store.run_triggers import triggered_run_id
from headrace.store.run_views import RunView, read_run_view

__all__ = ["graph_shape", "node_states"]

# What `run_source` says about who submitted a run, in words.
SOURCE_WORDS = {
    "SDK": "the Python SDK",
    "API": "the REST API",
    "Schedule": "a schedule",
    "Portal": "the web portal",
}


def _no_run(run_id: str) -> PortalError:
    return PortalError(
        404,
        f"There is no pipeline run {run_id!r} in this workspace; find runs on /ui/runs "
        "(a run id is the full id shown there, not a prefix).",
    )


def find_run(request: Request, run_id: str) -> PipelineRunRecord:
    """The pipeline run `run_id`, or a 404 page saying where to find run ids."""
    record: PipelineRunRecord | None = state(request).store.meta.find_pipeline_run(run_id)
    if record is None:
        raise _no_run(run_id)
    return record


def graph_shape(graph: Graph) -> dict[str, Any]:
    """The graph as the browser draws it: steps and data as nodes, edges between them.

    Edges: producer step -> data -> consuming step, and `run_after` as step -> step."""
    steps = [{"id": n.id, "name": n.name, "type": step_title(n)} for n in graph.nodes]
    data = [{"id": d.id, "name": d.name, "kind": d.kind} for d in graph.data]
    edges: list[list[str]] = []
    for d in graph.data:
        if d.producer is not None:
            edges.append([d.producer, d.id, "data"])
    for n in graph.nodes:
        for binding in n.inputs:
            edges.append([binding.data, n.id, "data"])
        for other in n.run_after:
            edges.append([other, n.id, "after"])
    return {"steps": steps, "data": data, "edges": edges}


def node_states(graph: Graph, step_runs: list[StepRunRecord]) -> list[dict[str, Any]]:
    """Each graph step with its step run's status (NotStarted while it has none), in graph
    order. JSON-native values only: the page embeds this list for its script."""
    by_node: dict[str, StepRunRecord] = {}
    for step_run in step_runs:  # oldest first: a later record of a node wins
        by_node[step_run.node_id] = step_run
    states = []
    for node in graph.nodes:
        record = by_node.get(node.id)
        if record is None:
            states.append(
                {
                    "node_id": node.id,
                    "name": node.name,
                    "status": Status.NOT_STARTED,
                    "reused": False,
                    "step_run_id": None,
                    "url": None,
                    "attempt": 0,
                    "compute_target": node.compute_target,
                    "duration_seconds": None,
                }
            )
            continue
        states.append(
            {
                "node_id": node.id,
                "name": node.name,
                "status": record.status,
                "reused": record.reused_run_id is not None,
                "step_run_id": record.id,
                "url": f"/ui/steps/{record.id}",
                "attempt": record.attempt,
                "compute_target": record.compute_target,
                "duration_seconds": seconds_between(record.started_at, record.ended_at),
            }
        )
    return states


def _status_counts(states: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in states:
        key = "Reused" if item["reused"] else item["status"]
        counts[key] = counts.get(key, 0) + 1
    return counts


def _run_facts(run: PipelineRunRecord) -> dict[str, Any]:
    facts = run_row(run)
    pipeline_id = run.properties.get("azureml.pipelineid")
    schedule_id = run.properties.get("azureml.scheduleId")
    trigger, _, source_run = str(run.properties.get("headrace.trigger", "")).partition(":")
    facts.update(
        {
            "properties": run.properties,
            "error": run.error,
            "active": run.status not in TERMINAL_STATUSES,
            "cancel_requested": run.cancel_requested,
            "continue_on_step_failure": run.continue_on_step_failure,
            "regenerate_outputs": run.regenerate_outputs,
            "submitted_by": SOURCE_WORDS.get(run.run_source, run.run_source),
            "published_pipeline": (
                {"id": pipeline_id, "url": f"/ui/pipelines/{pipeline_id}"} if pipeline_id else None
            ),
            "ignored_parameters": run.properties.get(IGNORED_PARAMETERS),
            "schedule": (
                {"id": schedule_id, "url": f"/ui/schedules/{schedule_id}"} if schedule_id else None
            ),
            "rerun_of": (
                {
                    "id": rerun_of,
                    "url": f"/ui/runs/{rerun_of}",
                    "resumed": RECOVER_FROM in run.properties,
                }
                if (rerun_of := run.properties.get(RERUN_OF))
                else None
            ),
            "trigger": (
                {
                    "name": trigger,
                    "source_run_id": source_run,
                    "source_url": f"/ui/runs/{source_run}",
                }
                if source_run
                else None
            ),
        }
    )
    return facts


def _reaction(record: OutboxRecord) -> dict[str, Any]:
    document = record.document()
    done_trigger = record.kind == "trigger" and record.state == "done"
    document["started_run_id"] = (
        triggered_run_id(record.target, record.run_id) if done_trigger else None
    )
    return document


@page("/runs/{run_id}")
def run_page(request: Request, viewer: ViewerDep, run_id: str, live: bool = False) -> Response:
    """A pipeline run: facts, graph, steps. `live=1` (what the page polls): no graph."""
    live = live and wants_json(request)
    meta = state(request).store.meta
    view: RunView | None = read_run_view(meta, run_id, known_graphs(), metrics=not live)
    if view is None:
        raise _no_run(run_id)
    run = view.run
    graph = graph_of(request, run.graph_id, view.graph)
    states = node_states(graph, view.step_runs)
    facts = _run_facts(run)
    data: dict[str, Any] = {
        "run": facts,
        "steps": states,
        "counts": _status_counts(states),
        "can_cancel": facts["active"] and viewer.can("submitter"),
        "can_rerun": not facts["active"] and viewer.can("submitter"),
        "resumable": run.status in (Status.FAILED, Status.CANCELED),
    }
    if view.after_ending:  # what its ending set off: notifications, run triggers
        data["after_ending"] = [_reaction(r) for r in view.after_ending]
    if not live:  # the HTML page always draws the graph and shows the run's own metrics
        data["metrics"] = metric_groups(view.metrics, f"/ui/runs/{run.id}/files/")
        data["metrics_cursor"] = view.metrics_cursor
        data["graph"] = graph_shape(graph)
        data["graph_parameters"] = [
            {"name": p.name, "type": p.type, "default": p.default} for p in graph.parameters
        ]
    title = f"Run {run.id[:8]}"
    return render(request, "run.html", title=title, data=data)


@router.post("/runs/{run_id}/cancel")
async def cancel_run(request: Request, viewer: ViewerDep, run_id: str) -> Response:
    """Ask the run to stop (submitters and admins); back to its page, which shows it ending."""
    await checked_form(request, viewer, "submitter")
    find_run(request, run_id)
    state(request).backend.cancel_run(run_id)
    return RedirectResponse(f"/ui/runs/{run_id}", status_code=303)


@router.post("/runs/{run_id}/rerun")
async def rerun_run(request: Request, viewer: ViewerDep, run_id: str) -> Response:
    """A new run of the same graph (submitters and admins): with `from_failed`, the steps
    that finished are taken as they are and the failed or canceled ones run; to its page."""
    form = await checked_form(request, viewer, "submitter")
    find_run(request, run_id)
    from_failed = str(form.get("from_failed", "")) in ("1", "true", "on")
    submission = state(request).backend.rerun(run_id, from_failed=from_failed, run_source="Portal")
    return RedirectResponse(f"/ui/runs/{submission.run.id}", status_code=303)
