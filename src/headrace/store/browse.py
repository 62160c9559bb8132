"""The portal's read queries over many runs: the runs list (filtered, sorted, one page of it)
and the experiments with their run counts and last runs.

SQLAlchemy Core on one connection per page, so a page costs a fixed handful of statements
whatever it shows (no query per row), the same on SQLite and PostgreSQL. Tags and the
published pipeline's id are read from the JSON columns with SQLAlchemy's JSON index
operators, which render as `JSON_EXTRACT` on SQLite and `->>` on PostgreSQL.

Counting every match of a filter over 100,000 runs costs a full scan, so the count stops at
`COUNT_CAP` (the page says "10,000+"). Only reads live here; nothing above the store.

Chosen columns (`RunColumn`): a pipeline parameter (read from the run's `parameters` JSON) or
a metric's last value (from `run_metric_finals`, which the store keeps as metrics are
written). Sorting by a metric walks that table's (name, number) index: the page is the union
of the runs with a numeric value, in order, and the runs without one (newest first), each
branch limited to the page's end, so a page costs about its own size whatever the store holds.
The text search (`RunFilter.text`) matches run ids, descriptions, experiment names, tags
(keys and values) and parameter values, case-insensitively (a scan of the runs, as a tag
filter is).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    String,
    Text,
    cast,
    exists,
    func,
    literal,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection

from headrace.store.database import Database
from headrace.store.metadata import pipeline_record
from headrace.store.metric_finals import FINALS
from headrace.store.orm import ExperimentRow, PipelineRunRow
from headrace.store.records import PipelineRunRecord

__all__ = [
    "COLUMN_KINDS",
    "COUNT_CAP",
    "SORT_KEYS",
    "ExperimentSummary",
    "RunColumn",
    "RunFilter",
    "RunPage",
    "browse_runs",
    "experiment_summaries",
]

COUNT_CAP = 10_000
SORT_KEYS = ("submitted", "started", "ended", "duration", "status")
COLUMN_KINDS = ("param", "metric")
METRIC_CHOICES_CAP = 500  # metric names offered for a page's runs

_runs = PipelineRunRow.__table__
_experiments = ExperimentRow.__table__


@dataclass(frozen=True)
class RunColumn:
    """A column a runs list may add: `param:NAME` (a pipeline parameter) or `metric:NAME`
    (a pipeline-level metric's last value; `metric:STEP/NAME` for a step's)."""

    kind: str  # one of COLUMN_KINDS
    name: str

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.name}"

    @classmethod
    def parse(cls, text: str) -> RunColumn | None:
        kind, sep, name = text.partition(":")
        if not sep or kind not in COLUMN_KINDS or not name.strip() or len(name) > 600:
            return None
        return cls(kind, name.strip())


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
    text: str | None = None  # a case-insensitive search over ids, names, tags, parameters


@dataclass(frozen=True)
class RunPage:
    """One page of a runs list: its runs, whether more follow, and the (capped) total."""

    runs: list[PipelineRunRecord]
    has_next: bool
    total: int
    total_capped: bool  # True: at least `total` runs match (counting stopped there)
    experiment_known: bool  # False: the filter names an experiment that does not exist
    experiments: list[str] = field(default_factory=list)  # every experiment's name, sorted
    # The page's runs' last values of the chosen metric columns: run id -> name -> the
    # number, or the text of a value that is not a number
    metrics: dict[str, dict[str, float | str]] = field(default_factory=dict)
    metric_names: list[str] = field(default_factory=list)  # those the page's runs logged


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
    sort: str | RunColumn = "submitted",
    descending: bool = True,
    offset: int = 0,
    limit: int = 50,
    columns: Sequence[RunColumn] = (),
) -> RunPage:
    """The runs matching `where`, sorted, `limit` of them from `offset`, with the last values
    of the metric `columns`: four statements at most (experiment names, the page, the capped
    count, which a last page does without, and the page's metric values and names) on one
    connection."""
    if isinstance(sort, str) and sort not in SORT_KEYS:
        raise ValueError(f"sort must be one of {SORT_KEYS} or a RunColumn, not {sort!r}")
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
        conditions = _conditions(where, experiment_id, names, conn.dialect.name)
        if isinstance(sort, RunColumn) and sort.kind == "metric":
            page_ids, order = _metric_page(conditions, sort.name, descending, offset, limit)
        else:
            order_terms = _order(sort, descending, conn)
            # The page's ids first, then their rows: a sort no index serves (duration) then
            # sorts narrow rows rather than every run's JSON columns.
            page_ids = (
                select(_runs.c.id.label("page_id"))
                .where(*conditions)
                .order_by(*order_terms)
                .offset(offset)
                .limit(limit + 1)
                .subquery()
            )
            order = order_terms
        query = (
            select(_runs, _experiments.c.name.label("experiment_name"))
            .join(page_ids, page_ids.c.page_id == _runs.c.id)
            .join(_experiments, _experiments.c.id == _runs.c.experiment_id)
            .order_by(*order)
        )
        rows = conn.execute(query).all()[: limit + 1]
        if len(rows) <= limit and (rows or offset == 0):
            total = offset + len(rows)  # the last page: no count needed
        else:
            capped = select(literal(1)).select_from(_runs).where(*conditions).limit(COUNT_CAP + 1)
            count = select(func.count()).select_from(capped.subquery())
            total = int(conn.execute(count).scalar_one())
        shown = [row.id for row in rows[:limit]]
        metrics: dict[str, dict[str, float | str]] = {}
        logged: list[str] = []
        if shown:
            metrics, logged = _page_metrics(conn, shown, [c for c in columns if c.kind == "metric"])
    return RunPage(
        runs=[pipeline_record(row, row.experiment_name) for row in rows[:limit]],
        has_next=len(rows) > limit,
        total=min(total, COUNT_CAP),
        total_capped=total > COUNT_CAP,
        experiment_known=True,
        experiments=list(names),
        metrics=metrics,
        metric_names=logged,
    )


def _page_metrics(
    conn: Connection, run_ids: list[str], columns: list[RunColumn]
) -> tuple[dict[str, dict[str, float | str]], list[str]]:
    """In one statement: the runs' last values of the metric `columns` (run id -> name ->
    the number, or the text of a value that is not one) and the names of the metrics they
    logged (the Columns control's choices)."""
    in_page = FINALS.c.pipeline_run_id.in_(run_ids)
    logged = (
        select(FINALS.c.name)
        .where(in_page)
        .distinct()
        .order_by(FINALS.c.name)
        .limit(METRIC_CHOICES_CAP)
        .subquery()
    )
    nothing = cast(null(), String)
    query: Any = select(
        nothing.label("run_id"),
        logged.c.name,
        cast(null(), Float).label("number"),
        nothing.label("text"),
    )
    if columns:
        values = select(
            FINALS.c.pipeline_run_id, FINALS.c.name, FINALS.c.number, FINALS.c.text
        ).where(in_page, FINALS.c.name.in_(sorted({c.name for c in columns})))
        query = union_all(query, values)
    metrics: dict[str, dict[str, float | str]] = {}
    names: list[str] = []
    for run_id, name, number, text in conn.execute(query):
        if run_id is None:
            names.append(name)
        else:
            metrics.setdefault(run_id, {})[name] = number if number is not None else text or ""
    return metrics, sorted(names)


def _metric_page(
    conditions: list[ColumnElement[bool]], name: str, descending: bool, offset: int, limit: int
) -> tuple[Any, list[Any]]:
    """The page's ids sorted by the metric `name` (runs without a numeric value last, newest
    first) and the ORDER BY terms over that subquery."""
    end = offset + limit + 1
    number = FINALS.c.number.desc() if descending else FINALS.c.number.asc()
    newest = [_runs.c.created_at.desc(), _runs.c.id.desc()]  # ties: newest first, either way
    with_value = (
        select(
            _runs.c.id.label("page_id"),
            literal(0).label("missing"),
            FINALS.c.number.label("number"),
            _runs.c.created_at.label("created"),
        )
        .select_from(FINALS)
        .join(_runs, _runs.c.id == FINALS.c.pipeline_run_id)
        .where(FINALS.c.name == name, FINALS.c.number.is_not(None), *conditions)
        .order_by(number, *newest)
        .limit(end)
        .cte("with_value")
    )
    # The runs without a value are read only when those with one end before the page does
    # (a constant condition: both databases then skip the branch, rather than scanning
    # every run for the few without the metric).
    filled = select(func.count()).select_from(with_value).scalar_subquery() >= end
    has_value = exists().where(
        FINALS.c.pipeline_run_id == _runs.c.id,
        FINALS.c.name == name,
        FINALS.c.number.is_not(None),
    )
    without = (
        select(
            _runs.c.id.label("page_id"),
            literal(1).label("missing"),
            cast(null(), Float).label("number"),
            _runs.c.created_at.label("created"),
        )
        .where(~filled, ~has_value, *conditions)
        .order_by(*newest)
        .limit(end)
        .subquery()
    )
    both = union_all(select(with_value), select(without)).subquery()
    page = (
        select(both.c.page_id, both.c.missing, both.c.number, both.c.created)
        .order_by(*_union_order(both, descending))
        .offset(offset)
        .limit(limit + 1)
        .subquery()
    )
    return page, _union_order(page, descending)


def _union_order(table: Any, descending: bool) -> list[Any]:
    number = table.c.number.desc() if descending else table.c.number.asc()
    return [table.c.missing.asc(), number, table.c.created.desc(), table.c.page_id.desc()]


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


def _conditions(
    where: RunFilter, experiment_id: str | None, experiments: dict[str, str], dialect: str
) -> list[ColumnElement[bool]]:
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
    if where.text:
        conditions.append(_search(where.text, experiments, dialect))
    return conditions


def _search(text: str, experiments: dict[str, str], dialect: str) -> ColumnElement[bool]:
    """Runs whose id, description, experiment name, tags or parameters contain `text`
    (case-insensitive; tags and parameters as their JSON text, keys included): one LIKE over
    the columns joined, the experiments matched by name here (their names are at hand)."""
    needle = text.lower()
    escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    joined = (
        _runs.c.id
        + " "
        + func.coalesce(_runs.c.description, "")
        + " "
        + cast(_runs.c.tags, Text)
        + " "
        + cast(_runs.c.parameters, Text)
    )
    # SQLite's LIKE ignores ASCII case already; PostgreSQL's ILIKE ignores all case.
    match = (
        joined.like(f"%{escaped}%", escape="\\")
        if dialect == "sqlite"
        else joined.ilike(f"%{escaped}%", escape="\\")
    )
    named = [id_ for name, id_ in experiments.items() if needle in name.lower()]
    return or_(match, _runs.c.experiment_id.in_(named)) if named else match


def _order(sort: str | RunColumn, descending: bool, conn: Connection) -> list[Any]:
    """ORDER BY terms: the sort key (runs without that time or parameter last either way),
    then the submission time and id, so pages never shuffle runs with equal keys."""
    if isinstance(sort, RunColumn):  # a parameter (metrics: _metric_page)
        if conn.dialect.name == "sqlite":
            path = '$."' + sort.name.replace('"', '\\"') + '"'
            key: Any = func.json_extract(_runs.c.parameters, path)
        else:  # jsonb orders numbers as numbers, and every other type consistently
            key = cast(_runs.c.parameters, JSONB)[sort.name]
    elif sort == "submitted":
        key = _runs.c.created_at
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
