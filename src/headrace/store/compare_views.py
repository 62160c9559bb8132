"""Read-only queries behind the portal's compare, publishing and compute pages.

Each page reads what it shows in one read transaction of a few statements: comparing runs
needs several pipeline runs with all their step runs and metrics; a published pipeline's
page needs its other versions and its graph; an endpoint's page its versions' pipelines and
one graph; the compute page the running step runs of every target. Asking the metadata store
thing by thing would cost a transaction each (or one per run or target). Nothing here writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import func, or_, select

from headrace.store.database import Database
from headrace.store.metadata import pipeline_record
from headrace.store.orm import (
    ExperimentRow,
    GraphRow,
    PipelineEndpointRow,
    PipelineRunRow,
    PublishedPipelineRow,
)
from headrace.store.publishing import PublishingQueries, published_record
from headrace.store.records import (
    MetricRecord,
    PipelineEndpointRecord,
    PipelineRunRecord,
    PublishedPipelineRecord,
    Status,
    StepRunRecord,
)
from headrace.store.step_runs import METRICS, STEPS, step_record

__all__ = [
    "EndpointView",
    "PublishedView",
    "StepName",
    "comparison",
    "endpoint_view",
    "published_view",
    "running_step_runs",
]

_UNFINISHED = (Status.NOT_STARTED, Status.QUEUED, Status.RUNNING)


class StepName(NamedTuple):
    """What comparing needs of a step run: whose it is, its name, where its metrics are."""

    id: str
    pipeline_run_id: str
    name: str
    reused_run_id: str | None


def comparison(
    db: Database, run_ids: Sequence[str]
) -> tuple[dict[str, PipelineRunRecord], list[StepName], list[MetricRecord]]:
    """The pipeline runs among `run_ids` that exist (by id; missing ids left out), all their
    step runs (oldest first), and the metrics logged on those runs and step runs (for a reused
    step, on the step run it reused), oldest first, in one read transaction. When an id is
    missing, only the runs are read (the caller answers "not found")."""
    if not run_ids:
        return {}, [], []
    ids = list(run_ids)
    runs_query = (
        select(PipelineRunRow, ExperimentRow.name)
        .join(ExperimentRow, ExperimentRow.id == PipelineRunRow.experiment_id)
        .where(PipelineRunRow.id.in_(ids))
    )
    steps_query = (
        select(STEPS.c.id, STEPS.c.pipeline_run_id, STEPS.c.name, STEPS.c.reused_run_id)
        .where(STEPS.c.pipeline_run_id.in_(ids))
        .order_by(STEPS.c.created_at, STEPS.c.id)
    )
    # A subquery, not a list of step ids: 10 runs of 500 steps stay one short statement.
    step_content = select(func.coalesce(STEPS.c.reused_run_id, STEPS.c.id)).where(
        STEPS.c.pipeline_run_id.in_(ids)
    )
    metrics_query = (
        select(METRICS)
        .where(or_(METRICS.c.run_id.in_(step_content), METRICS.c.run_id.in_(ids)))
        .order_by(METRICS.c.id)
    )
    with db.read() as s:
        runs = {row.id: pipeline_record(row, name) for row, name in s.execute(runs_query).all()}
        if len(runs) < len(set(ids)):
            return runs, [], []
        steps = [StepName(*r) for r in s.execute(steps_query).all()]
        rows = s.execute(metrics_query).all()
    metrics = [
        MetricRecord(r.run_id, r.name, r.kind, r.value, r.step, r.description, r.created_at)
        for r in rows
    ]
    return runs, steps, metrics


def running_step_runs(db: Database, limit: int = 500) -> list[StepRunRecord]:
    """Step runs that are running now, on any compute target, oldest first (at most `limit`).

    A step runs only inside an unfinished pipeline run, so the query starts from those (an
    index on pipeline run status) and reads their steps (an index on pipeline run id)
    instead of scanning every step run ever made."""
    unfinished = select(PipelineRunRow.id).where(PipelineRunRow.status.in_(sorted(_UNFINISHED)))
    query = (
        select(STEPS)
        .where(STEPS.c.pipeline_run_id.in_(unfinished), STEPS.c.status == Status.RUNNING)
        .order_by(STEPS.c.started_at, STEPS.c.id)
        .limit(limit)
    )
    with db.read_conn() as conn:
        return [step_record(r) for r in conn.execute(query).all()]


@dataclass(frozen=True)
class PublishedView:
    """A published pipeline, every version published under its name (newest first, itself
    included) and its graph (as stored: a dict)."""

    pipeline: PublishedPipelineRecord
    same_name: list[PublishedPipelineRecord]
    graph: dict[str, Any]


def published_view(db: Database, pipeline_id: str) -> PublishedView | None:
    """What a published pipeline's page shows, or None for an unknown id."""
    with db.read() as s:
        row = s.get(PublishedPipelineRow, pipeline_id)
        if row is None:
            return None
        pipeline = published_record(row)
        same = s.scalars(
            select(PublishedPipelineRow)
            .where(PublishedPipelineRow.name == pipeline.name)
            .order_by(PublishedPipelineRow.created_at.desc(), PublishedPipelineRow.id)
        ).all()
        graph = s.get(GraphRow, pipeline.graph_id)
        return PublishedView(
            pipeline, [published_record(r) for r in same], dict(graph.graph) if graph else {}
        )


@dataclass(frozen=True)
class EndpointView:
    """A pipeline endpoint, the published pipeline of each version, and the graph of one
    version (the one whose submit form the page shows)."""

    endpoint: PipelineEndpointRecord
    pipelines: dict[str, PublishedPipelineRecord]  # by pipeline id
    graph: dict[str, Any]


def endpoint_view(db: Database, name: str, version: str | None) -> EndpointView | None:
    """What an endpoint's page shows (with the graph of `version`, default: the default
    version), or None for an unknown name. An unknown version gets an empty graph."""
    with db.read() as s:
        row = s.scalars(select(PipelineEndpointRow).where(PipelineEndpointRow.name == name)).first()
        if row is None:
            return None
        endpoint = PublishingQueries.endpoint_record(
            row, PublishingQueries.endpoint_versions(s, row.id)
        )
        ids = sorted(set(endpoint.versions.values()))
        found = s.scalars(select(PublishedPipelineRow).where(PublishedPipelineRow.id.in_(ids)))
        pipelines = {r.id: published_record(r) for r in found}
        chosen = pipelines.get(endpoint.versions.get(version or endpoint.default_version, ""))
        graph = s.get(GraphRow, chosen.graph_id) if chosen is not None else None
        return EndpointView(endpoint, pipelines, dict(graph.graph) if graph else {})
