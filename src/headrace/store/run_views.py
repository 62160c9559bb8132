"""Reads for the portal's run and step pages: everything one page shows, in one transaction.

A page that asked the store method by method would open a transaction per question (on SQLite
each is a BEGIN of its own); these read the same records in one. Graphs are immutable (keyed
by the hash of their JSON), so the caller says which ones it already holds
(`known_graphs`) and those are not read again. Nothing here writes.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from headrace.store.metadata import SqlMetadataStore, pipeline_record
from headrace.store.notifications import OutboxRecord, outbox_record
from headrace.store.orm import ExperimentRow, GraphRow, OutboxRow, PipelineRunRow
from headrace.store.records import (
    TERMINAL_STATUSES,
    MetricRecord,
    PipelineRunRecord,
    StepRunRecord,
)
from headrace.store.step_runs import (
    METRICS,
    SELECT_PIPELINE_STEPS,
    STEP_FIELDS,
    STEPS,
    step_record,
)

__all__ = ["RunView", "StepView", "read_run_view", "read_step_view"]

_RUN_QUERY = select(PipelineRunRow, ExperimentRow.name).join(
    ExperimentRow, ExperimentRow.id == PipelineRunRow.experiment_id
)

# A step run and its pipeline run in one row; the step's columns prefixed "s_".
_STEP_AND_RUN_QUERY = _RUN_QUERY.add_columns(*(c.label(f"s_{c.name}") for c in STEPS.c)).join(
    STEPS, STEPS.c.pipeline_run_id == PipelineRunRow.id
)


@dataclass(frozen=True)
class RunView:
    """A pipeline run, its step runs (oldest first) and its graph's JSON (None when the
    caller already knows that graph)."""

    run: PipelineRunRecord
    step_runs: list[StepRunRecord]
    graph: dict[str, Any] | None
    # What the run's ending set off (notifications, run triggers); empty while it runs.
    after_ending: list[OutboxRecord] = field(default_factory=list)


@dataclass(frozen=True)
class StepView:
    """A step run, its pipeline run, its graph's JSON (None when known), the run's step runs
    and the metrics of the step (of the run it reused, if it did)."""

    step: StepRunRecord
    run: PipelineRunRecord
    graph: dict[str, Any] | None
    step_runs: list[StepRunRecord]
    metrics: list[MetricRecord]


def _graph(session: Any, graph_id: str, known_graphs: Container[str]) -> dict[str, Any] | None:
    if graph_id in known_graphs:
        return None
    row = session.get(GraphRow, graph_id)
    return None if row is None else dict(row.graph)


def read_run_view(
    meta: SqlMetadataStore, run_id: str, known_graphs: Container[str] = ()
) -> RunView | None:
    """The run `run_id` with its step runs and graph, or None when there is no such run."""
    with meta.db.read() as s:
        found = s.execute(_RUN_QUERY.where(PipelineRunRow.id == run_id)).first()
        if found is None:
            return None
        run = pipeline_record(found[0], found[1])
        graph = _graph(s, run.graph_id, known_graphs)
        steps = [step_record(r) for r in s.execute(SELECT_PIPELINE_STEPS, {"_run_id": run.id})]
        after: list[OutboxRecord] = []
        if run.status in TERMINAL_STATUSES:
            rows = s.scalars(
                select(OutboxRow).where(OutboxRow.run_id == run.id).order_by(OutboxRow.id)
            )
            after = [outbox_record(r) for r in rows]
        return RunView(run, steps, graph, after)


def read_step_view(
    meta: SqlMetadataStore, step_run_id: str, known_graphs: Container[str] = ()
) -> StepView | None:
    """The step run `step_run_id` and what its page shows, or None when there is none."""
    with meta.db.read() as s:
        found = s.execute(_STEP_AND_RUN_QUERY.where(STEPS.c.id == step_run_id)).first()
        if found is None:
            return None
        mapping = found._mapping
        step = StepRunRecord(**{name: mapping[f"s_{name}"] for name in STEP_FIELDS})
        run = pipeline_record(found[0], found[1])
        graph = _graph(s, run.graph_id, known_graphs)
        steps = [step_record(r) for r in s.execute(SELECT_PIPELINE_STEPS, {"_run_id": run.id})]
        metric_rows = s.execute(
            select(METRICS).where(METRICS.c.run_id == step.data_run_id).order_by(METRICS.c.id)
        )
        metrics = [
            MetricRecord(r.run_id, r.name, r.kind, r.value, r.step, r.description, r.created_at)
            for r in metric_rows
        ]
        return StepView(step, run, graph, steps, metrics)
