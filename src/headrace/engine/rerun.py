"""Rerunning a pipeline run: a new run of the same stored graph (the same source snapshots),
the same experiment, tags and settings, with its parameters (some may be changed).

Plain rerun: the usual reuse rules decide each step (a step whose inputs, parameters and
code are unchanged reuses an earlier run's outputs unless it says `allow_reuse=False`).

`from_failed=True` (Metaflow's `resume`, Flyte's recover): every step that finished in the
earlier run is taken as it is, even with `allow_reuse=False` or `regenerate_outputs=True`,
as long as nothing it depends on changed (a changed parameter makes it run); the failed,
canceled and never-started steps run. The orchestrator reads the run's
`RECOVER_FROM` property (see `RunOrchestrator._plan_wave`).
"""

from __future__ import annotations

from typing import Any

from headrace.engine.graphs import load_graph
from headrace.engine.planning import RECOVER_FROM, RERUN_OF
from headrace.engine.submission import Submission, submit_graph
from headrace.errors import UserError
from headrace.store.records import NOTIFY_PROPERTY, TERMINAL_STATUSES
from headrace.store.workspace_store import WorkspaceStore

__all__ = ["RECOVER_FROM", "RERUN_OF", "rerun_run"]


def rerun_run(
    ws: WorkspaceStore,
    run_id: str,
    *,
    parameters: dict[str, Any] | None = None,
    from_failed: bool = False,
    run_source: str = "SDK",
) -> Submission:
    """Queue a rerun of pipeline run `run_id`; `parameters` change some of its values."""
    original = ws.meta.get_pipeline_run(run_id)
    if from_failed and original.status not in TERMINAL_STATUSES:
        raise UserError(
            f"Run {original.id} is still {original.status}; resuming it from its failed steps "
            f"needs it ended: wait for it (headrace run wait {original.id[:8]}) or cancel it "
            "first, or rerun without --from-failed."
        )
    graph = load_graph(ws.meta, original.graph_id)
    known = {p.name for p in graph.parameters}
    # Values of parameters the graph no longer declares (none, for a stored graph) are left out.
    values = {k: v for k, v in original.parameters.items() if k in known}
    values.update(parameters or {})
    properties: dict[str, Any] = {RERUN_OF: original.id}
    if NOTIFY_PROPERTY in original.properties:  # notifications asked for on submit
        properties[NOTIFY_PROPERTY] = original.properties[NOTIFY_PROPERTY]
    if from_failed:
        properties[RECOVER_FROM] = original.id
    return submit_graph(
        ws,
        graph,
        experiment_name=original.experiment_name,
        parameters=values,
        tags=dict(original.tags),
        description=original.description,
        run_source=run_source,
        continue_on_step_failure=original.continue_on_step_failure,
        regenerate_outputs=original.regenerate_outputs,
        properties=properties,
        with_preview=False,
        stored_graph_id=original.graph_id,
        interpreter=original.interpreter,
    )
