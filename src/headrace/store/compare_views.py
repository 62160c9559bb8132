"""Read-only queries the portal's compare and compute pages need, one statement each.

Comparing runs needs several pipeline runs and all their step runs at once, and the compute
page needs the running step runs of every target: asking the store run by run (or target by
target) would cost one query each. Nothing here writes.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from headrace.store.database import Database
from headrace.store.metadata import _pipeline_record
from headrace.store.orm import ExperimentRow, PipelineRunRow
from headrace.store.records import MetricRecord, PipelineRunRecord, Status, StepRunRecord
from headrace.store.step_runs import METRICS, STEPS, step_record

__all__ = ["comparison", "running_step_runs"]


def comparison(
    db: Database, run_ids: Sequence[str]
) -> tuple[dict[str, PipelineRunRecord], list[StepRunRecord], list[MetricRecord]]:
    """The pipeline runs among `run_ids` that exist (by id; missing ids left out), all their
    step runs (oldest first) and the metrics of those step runs (of the step run reused, for a
    reused step), in one read transaction."""
    if not run_ids:
        return {}, [], []
    ids = list(run_ids)
    runs_query = (
        select(PipelineRunRow, ExperimentRow.name)
        .join(ExperimentRow, ExperimentRow.id == PipelineRunRow.experiment_id)
        .where(PipelineRunRow.id.in_(ids))
    )
    steps_query = (
        select(STEPS)
        .where(STEPS.c.pipeline_run_id.in_(ids))
        .order_by(STEPS.c.created_at, STEPS.c.id)
    )
    with db.read() as s:
        runs = {row.id: _pipeline_record(row, name) for row, name in s.execute(runs_query).all()}
        if not runs:
            return {}, [], []
        steps = [step_record(r) for r in s.execute(steps_query).all()]
        content_ids = sorted({step.reused_run_id or step.id for step in steps})
        if not content_ids:
            return runs, steps, []
        rows = s.execute(
            select(METRICS).where(METRICS.c.run_id.in_(content_ids)).order_by(METRICS.c.id)
        ).all()
    metrics = [
        MetricRecord(r.run_id, r.name, r.kind, r.value, r.step, r.description, r.created_at)
        for r in rows
    ]
    return runs, steps, metrics


def running_step_runs(db: Database, limit: int = 500) -> list[StepRunRecord]:
    """Step runs that are running now, on any compute target, oldest first (at most `limit`)."""
    query = (
        select(STEPS)
        .where(STEPS.c.status == Status.RUNNING)
        .order_by(STEPS.c.started_at, STEPS.c.id)
        .limit(limit)
    )
    with db.read_conn() as conn:
        return [step_record(r) for r in conn.execute(query).all()]
