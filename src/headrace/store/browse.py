"""The portal's read queries over many runs: the runs list (filtered, sorted, one page of it)
and the experiments with their run counts and last runs.

SQLAlchemy Core on one connection per page, so a page costs a fixed handful of statements
whatever it shows (no query per row), the same on SQLite and PostgreSQL. Tags and the
published pipeline's id are read from the JSON columns with SQLAlchemy's JSON index
operators, which render as `JSON_EXTRACT` on SQLite and `->>` on PostgreSQL.

Counting every match of a filter over 100,000 runs costs a full scan, so the count stops at
`COUNT_CAP` (the page says "10,000+"). Only reads live here; nothing above the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, literal, or_, select
from sqlalchemy.engine import Connection

from headrace.store.database import Database
from headrace.store.metadata import pipeline_record
from headrace.store.orm import ExperimentRow, PipelineRunRow
from headrace.store.records import PipelineRunRecord

__all__ = [
    "COUNT_CAP",
    "SORT_KEYS",
    "ExperimentSummary",
    "RunFilter",
    "RunPage",
    "browse_runs",
    "experiment_summaries",
]

COUNT_CAP = 10_000
SORT_KEYS = ("submitted", "started", "ended", "duration", "status")

_runs = PipelineRunRow.__table__
_experiments = ExperimentRow.__table__


@dataclass(frozen=True)
class RunFilter:
    """Which runs a list shows; None or empty means no condition."""

    experiment: str | None = None
    statuses: tuple[str, ...] = ()
    pipeline: str | None = None  # a published pipeline's id or a graph id
    tag_key: str | None = None
    tag_value: str | None = None  # None: runs that have the tag at all
    submitted_from: datetime | None = None  # inclusive
    submitted_before: datetime | None = None  # exclusive


@dataclass(frozen=True)
class RunPage:
    """One page of a runs list: its runs, whether more follow, and the (capped) total."""

    runs: list[PipelineRunRecord]
    has_next: bool
    total: int
    total_capped: bool  # True: at least `total` runs match (counting stopped there)
    experiment_known: bool  # False: the filter names an experiment that does not exist
    experiments: list[str] = field(default_factory=list)  # every experiment's name, sorted


@dataclass(frozen=True)
class ExperimentSummary:
    name: str
    created_at: datetime
    run_count: int
    last_run_id: str | None
    last_status: str | None
    last_submitted: datetime | None


def browse_runs(
    db: Database,
    where: RunFilter,
    *,
    sort: str = "submitted",
    descending: bool = True,
    offset: int = 0,
    limit: int = 50,
) -> RunPage:
    """The runs matching `where`, sorted, `limit` of them from `offset`: three statements
    (experiment names, the page, the capped count) on one connection."""
    if sort not in SORT_KEYS:
        raise ValueError(f"sort must be one of {SORT_KEYS}, not {sort!r}")
    with db.read_conn() as conn:
        names = {
            row.name: row.id
            for row in conn.execute(
                select(_experiments.c.name, _experiments.c.id).order_by(_experiments.c.name)
            )
        }
        experiment_id = None
        if where.experiment is not None:
            experiment_id = names.get(where.experiment)
            if experiment_id is None:
                return RunPage([], False, 0, False, False, list(names))
        conditions = _conditions(where, experiment_id)
        order = _order(sort, descending, conn)
        # The page's ids first, then their rows: a sort no index serves (duration) then sorts
        # narrow rows rather than every run's JSON columns.
        page_ids = (
            select(_runs.c.id.label("page_id"))
            .where(*conditions)
            .order_by(*order)
            .offset(offset)
            .limit(limit + 1)
            .subquery()
        )
        query = (
            select(_runs, _experiments.c.name.label("experiment_name"))
            .join(page_ids, page_ids.c.page_id == _runs.c.id)
            .join(_experiments, _experiments.c.id == _runs.c.experiment_id)
            .order_by(*order)
        )
        rows = conn.execute(query).all()
        capped = select(literal(1)).select_from(_runs).where(*conditions).limit(COUNT_CAP + 1)
        total = int(conn.execute(select(func.count()).select_from(capped.subquery())).scalar_one())
    return RunPage(
        runs=[pipeline_record(row, row.experiment_name) for row in rows[:limit]],
        has_next=len(rows) > limit,
        total=min(total, COUNT_CAP),
        total_capped=total > COUNT_CAP,
        experiment_known=True,
        experiments=list(names),
    )


def experiment_summaries(db: Database) -> list[ExperimentSummary]:
    """Every experiment with its run count and its newest run, in one statement."""
    counts = (
        select(_runs.c.experiment_id, func.count().label("n"))
        .group_by(_runs.c.experiment_id)
        .subquery()
    )
    newest = (
        select(_runs.c.id)
        .where(_runs.c.experiment_id == _experiments.c.id)
        .order_by(_runs.c.created_at.desc(), _runs.c.id.desc())
        .limit(1)
        .correlate(_experiments)
        .scalar_subquery()
    )
    last = _runs.alias("last_run")
    query = (
        select(
            _experiments.c.name,
            _experiments.c.created_at,
            counts.c.n,
            last.c.id,
            last.c.status,
            last.c.created_at.label("last_submitted"),
        )
        .outerjoin(counts, counts.c.experiment_id == _experiments.c.id)
        .outerjoin(last, last.c.id == newest)
        .order_by(_experiments.c.name)
    )
    with db.read_conn() as conn:
        rows = conn.execute(query).all()
    return [
        ExperimentSummary(
            name=row.name,
            created_at=row.created_at,
            run_count=int(row.n or 0),
            last_run_id=row.id,
            last_status=row.status,
            last_submitted=row.last_submitted,
        )
        for row in rows
    ]


def _conditions(where: RunFilter, experiment_id: str | None) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if experiment_id is not None:
        conditions.append(_runs.c.experiment_id == experiment_id)
    if where.statuses:
        conditions.append(_runs.c.status.in_(where.statuses))
    if where.pipeline:
        conditions.append(
            or_(
                _runs.c.graph_id == where.pipeline,
                _runs.c.properties["azureml.pipelineid"].as_string() == where.pipeline,
            )
        )
    if where.tag_key:
        tag = _runs.c.tags[where.tag_key].as_string()
        conditions.append(tag.is_not(None) if where.tag_value is None else tag == where.tag_value)
    if where.submitted_from is not None:
        conditions.append(_runs.c.created_at >= where.submitted_from)
    if where.submitted_before is not None:
        conditions.append(_runs.c.created_at < where.submitted_before)
    return conditions


def _order(sort: str, descending: bool, conn: Connection) -> list[Any]:
    """ORDER BY terms: the sort key (runs without that time last either way), then the
    submission time and id, so pages never shuffle runs with equal keys."""
    if sort == "submitted":
        key: Any = _runs.c.created_at
    elif sort == "started":
        key = _runs.c.started_at
    elif sort == "ended":
        key = _runs.c.ended_at
    elif sort == "status":
        key = _runs.c.status
    elif conn.dialect.name == "sqlite":  # duration; to now while the run goes on
        key = func.julianday(func.coalesce(_runs.c.ended_at, "now")) - func.julianday(
            _runs.c.started_at
        )
    else:
        key = func.coalesce(_runs.c.ended_at, func.now()) - _runs.c.started_at
    if sort in ("submitted", "status"):  # never NULL; plain ordering lets an index serve it
        terms = [key.desc() if descending else key.asc()]
    else:
        terms = [key.desc().nulls_last() if descending else key.asc().nulls_last()]
    if sort != "submitted":
        terms.append(_runs.c.created_at.desc() if descending else _runs.c.created_at.asc())
    terms.append(_runs.c.id.desc() if descending else _runs.c.id.asc())
    return terms
