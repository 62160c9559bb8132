"""Reads for the portal's run and step pages: everything one page shows, in one transaction.

A page that asked the store method by method would open a transaction per question (on SQLite
each is a BEGIN of its own); these read the same records in one. Graphs are immutable (keyed
by the hash of their JSON), so the caller says which ones it already holds
(`known_graphs`) and those are not read again (a graph not held comes in the run's own row).
`read_metrics_after` is what the live metric panes poll: the newest metric's id (a cursor),
and all of the run's metrics only when one is newer than the caller's. Nothing here writes.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Container
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Text, case, cast, func, literal, null, select

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

__all__ = [
    "MetricsView",
    "RunView",
    "StepView",
    "read_metrics_after",
    "read_run_view",
    "read_step_view",
]

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
    # The pipeline run's own metrics (`run.parent.log`, `PipelineRun.log`), unless not asked
    # for, and the id of the newest (0: none), where the live pane's polls start.
    metrics: list[MetricRecord] = field(default_factory=list)
    metrics_cursor: int = 0


@dataclass(frozen=True)
class StepView:
    """A step run, its pipeline run, its graph's JSON (None when known), the run's step runs
    and the metrics of the step (of the run it reused, if it did)."""

    step: StepRunRecord
    run: PipelineRunRecord
    graph: dict[str, Any] | None
    step_runs: list[StepRunRecord]
    metrics: list[MetricRecord]
    metrics_cursor: int = 0  # the id of the newest metric (0: none)


@dataclass(frozen=True)
class MetricsView:
    """A run's status, the id of its newest metric (0: none) and, when that is newer than
    the caller's cursor, all of its metrics (else None: nothing new)."""

    status: str
    cursor: int
    metrics: list[MetricRecord] | None


def _graph(session: Any, graph_id: str, known_graphs: Container[str]) -> dict[str, Any] | None:
    if graph_id in known_graphs:
        return None
    row = session.get(GraphRow, graph_id)
    return None if row is None else dict(row.graph)


def _metrics(session: Any, run_id: str) -> tuple[list[MetricRecord], int]:
    """All metrics of `run_id`, oldest first, and the id of the newest (0: none)."""
    rows = session.execute(select(METRICS).where(METRICS.c.run_id == run_id).order_by(METRICS.c.id))
    records, cursor = [], 0
    for r in rows:
        records.append(
            MetricRecord(r.run_id, r.name, r.kind, r.value, r.step, r.description, r.created_at)
        )
        cursor = r.id
    return records, cursor


def _run_and_graph_query(known_graphs: Collection[str]) -> Any:
    """The run with its graph's JSON as text (one query fewer than reading the graph after
    it), or NULL for a graph the caller holds: a 500-step graph is half a megabyte."""
    graph: Any = cast(GraphRow.graph, Text)
    if known_graphs:
        graph = case((PipelineRunRow.graph_id.in_(list(known_graphs)), null()), else_=graph)
    return _RUN_QUERY.add_columns(graph).outerjoin(GraphRow, GraphRow.id == PipelineRunRow.graph_id)


def read_run_view(
    meta: SqlMetadataStore, run_id: str, known_graphs: Collection[str] = (), metrics: bool = True
) -> RunView | None:
    """The run `run_id` with its step runs, graph and (with `metrics`) its own metrics, or
    None when there is no such run."""
    with meta.db.read() as s:
        query = _run_and_graph_query(known_graphs).where(PipelineRunRow.id == run_id)
        found = s.execute(query).first()
        if found is None:
            return None
        run = pipeline_record(found[0], found[1])
        graph = None
        if run.graph_id not in known_graphs and found[2] is not None:
            graph = dict(json.loads(found[2]))  # parsed only when the caller needs it
        steps = [step_record(r) for r in s.execute(SELECT_PIPELINE_STEPS, {"_run_id": run.id})]
        own, cursor = _metrics(s, run.id) if metrics else ([], 0)
        after: list[OutboxRecord] = []
        if run.status in TERMINAL_STATUSES:
            rows = s.scalars(
                select(OutboxRow).where(OutboxRow.run_id == run.id).order_by(OutboxRow.id)
            )
            after = [outbox_record(r) for r in rows]
        return RunView(run, steps, graph, after, own, cursor)


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
        metrics, cursor = _metrics(s, step.data_run_id)
        return StepView(step, run, graph, steps, metrics, cursor)


def read_metrics_after(
    meta: SqlMetadataStore, run_id: str, after: int, *, step: bool
) -> MetricsView | None:
    """The status of the step run (`step`) or pipeline run `run_id` and its metrics if any is
    newer than id `after` (a step that reused another shows that one's); None: no such run."""
    with meta.db.read() as s:
        query: Any = (
            select(STEPS.c.status, STEPS.c.reused_run_id).where(STEPS.c.id == run_id)
            if step
            else select(PipelineRunRow.status, literal(None)).where(PipelineRunRow.id == run_id)
        )
        found = s.execute(query).first()
        if found is None:
            return None
        status, content_id = str(found[0]), found[1] or run_id
        newest = s.scalar(select(func.max(METRICS.c.id)).where(METRICS.c.run_id == content_id))
        if not newest or newest <= after:
            return MetricsView(status, newest or 0, None)
        records, cursor = _metrics(s, content_id)
        return MetricsView(status, cursor, records)
