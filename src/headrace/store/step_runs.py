"""Step runs, metrics and events: the queries that run for every step attempt.

These are on the agent's hot path, so they use plain Core statements on a Connection (about
three times cheaper than going through an ORM Session) and one transaction per call.
`SqlMetadataStore` inherits them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, func, insert, select, update

from headrace.errors import RunNotFoundError
from headrace.store.database import Database
from headrace.store.metric_finals import copy_reused_finals, record_metric_finals
from headrace.store.orm import (
    DatasetLineageRow,
    EventRow,
    MetricRow,
    PipelineRunRow,
    StepRunRow,
    utcnow,
)
from headrace.store.records import (
    EventRecord,
    MetricRecord,
    Status,
    StepRunRecord,
)

__all__ = ["StepRunQueries", "StepWrites"]

STEPS = cast(Table, StepRunRow.__table__)
EVENTS = cast(Table, EventRow.__table__)
METRICS = cast(Table, MetricRow.__table__)
PIPELINES = cast(Table, PipelineRunRow.__table__)
STEP_FIELDS = tuple(StepRunRecord.__dataclass_fields__)

# Built once: SQLAlchemy then reuses their compiled form, which halves the cost of each call
# compared with building the statement anew.
INSERT_STEP = insert(STEPS)
INSERT_EVENT = insert(EVENTS)
INSERT_METRIC = insert(METRICS)
INSERT_LINEAGE = insert(cast(Table, DatasetLineageRow.__table__))
UPDATE_STEP = update(STEPS).where(STEPS.c.id == bindparam("_step_id"))
SELECT_STEP = select(STEPS).where(STEPS.c.id == bindparam("_step_id"))
SELECT_PIPELINE_STEPS = (
    select(STEPS)
    .where(STEPS.c.pipeline_run_id == bindparam("_run_id"))
    .order_by(STEPS.c.created_at, STEPS.c.id)
)


def _reusable() -> Any:
    """The newest finished step run of each fingerprint (window query): one row per
    fingerprint however often it was run or reused since."""
    newest = (
        func.row_number()
        .over(
            partition_by=STEPS.c.fingerprint,
            order_by=(STEPS.c.ended_at.desc(), STEPS.c.id.desc()),
        )
        .label("_newest")
    )
    ranked = (
        select(STEPS.c.id, newest)
        .where(
            STEPS.c.fingerprint.in_(bindparam("_fingerprints", expanding=True)),
            STEPS.c.status == Status.FINISHED,
        )
        .subquery()
    )
    return select(STEPS).join(ranked, ranked.c.id == STEPS.c.id).where(ranked.c._newest == 1)


SELECT_REUSABLE = _reusable()


def _previous_runs(same_experiment: bool) -> Any:
    """Newest fingerprinted run per step name, outside one pipeline run (window query)."""
    newest = (
        func.row_number()
        .over(partition_by=STEPS.c.name, order_by=(STEPS.c.created_at.desc(), STEPS.c.id))
        .label("_newest")
    )
    conditions = [
        STEPS.c.name.in_(bindparam("_names", expanding=True)),
        STEPS.c.fingerprint.is_not(None),
        STEPS.c.pipeline_run_id != bindparam("_run"),
    ]
    if same_experiment:
        conditions.append(PIPELINES.c.experiment_id == bindparam("_experiment"))
    ranked = (
        select(STEPS.c.id, newest)
        .join(PIPELINES, PIPELINES.c.id == STEPS.c.pipeline_run_id)
        .where(*conditions)
        .subquery()
    )
    return select(STEPS).join(ranked, ranked.c.id == STEPS.c.id).where(ranked.c._newest == 1)


SELECT_PREVIOUS_SAME = _previous_runs(same_experiment=True)
SELECT_PREVIOUS_ANY = _previous_runs(same_experiment=False)
_STEP_DEFAULTS: dict[str, Any] = {
    "attempt": 0,
    "compute_target": "local",
    "fingerprint": None,
    "reused_run_id": None,
    "pid": None,
    "pid_started": None,
    "exit_code": None,
    "error": None,
    "started_at": None,
    "ended_at": None,
}


def step_record(row: Any) -> StepRunRecord:
    mapping = row._mapping
    return StepRunRecord(**{name: mapping[name] for name in STEP_FIELDS})


def _event(
    events: list[dict[str, Any]],
    run_id: str,
    step_run_id: str | None,
    kind: str,
    payload: dict[str, Any],
) -> None:
    """Queue an event row; the caller inserts `events` in one executemany, in order."""
    events.append(
        {
            "run_id": run_id,
            "step_run_id": step_run_id,
            "kind": kind,
            "payload": payload,
            "created_at": utcnow(),
        }
    )


class StepWrites:
    """Step-run writes collected during one pass of the agent, applied in one transaction.

    The agent starts a step's process first and records it after, together with the ending
    of the step whose slot it took: one commit per step instead of two, off the path from
    one step's end to the next one's start. Writes apply in the order they were added.
    """

    def __init__(self) -> None:
        self.items: list[tuple[str, dict[str, Any]]] = []

    def __bool__(self) -> bool:
        return bool(self.items)

    def create(self, *, event: str, **fields: Any) -> StepRunRecord:
        """Queue a new step run; returns the record as it will be written."""
        values = _new_step_values(fields)
        self.items.append(("create", {"event": event, "values": values}))
        return StepRunRecord(**{name: values[name] for name in STEP_FIELDS})

    def update(
        self,
        step_run_id: str,
        *,
        pipeline_run_id: str,
        event: str,
        payload: dict[str, Any] | None = None,
        **fields: Any,
    ) -> None:
        self.items.append(
            (
                "update",
                {
                    "step_run_id": step_run_id,
                    "run_id": pipeline_run_id,
                    "event": event,
                    "payload": payload,
                    "fields": fields,
                },
            )
        )

    def complete(
        self,
        step_run_id: str,
        *,
        pipeline_run_id: str,
        event: str,
        payload: dict[str, Any],
        fields: dict[str, Any],
        metrics: Sequence[MetricRecord] = (),
        tags: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        """Queue the end of an attempt with its last metrics and tags."""
        self.update(
            step_run_id, pipeline_run_id=pipeline_run_id, event=event, payload=payload, **fields
        )
        if metrics or tags:
            self.items.append(("journal", {"metrics": metrics, "tags": tags or {}}))

    def lineage(self, rows: list[dict[str, Any]]) -> None:
        """Queue dataset lineage rows (store.dataset_queries.lineage_rows) of a step run."""
        if rows:
            self.items.append(("lineage", {"rows": rows}))

    def take(self) -> list[tuple[str, dict[str, Any]]]:
        items, self.items = self.items, []
        return items


def _new_step_values(fields: dict[str, Any]) -> dict[str, Any]:
    values = {**_STEP_DEFAULTS, **fields}
    for key in ("fingerprint_parts", "run_reason", "outputs", "tags", "properties"):
        values.setdefault(key, {})
    values.setdefault("command", [])
    values.setdefault("created_at", utcnow())
    return values


def _insert_step(
    conn: Connection, events: list[dict[str, Any]], event: str, values: dict[str, Any]
) -> None:
    conn.execute(INSERT_STEP, values)
    if values.get("reused_run_id"):
        copy_reused_finals(conn, values["pipeline_run_id"], values["name"], values["reused_run_id"])
    payload = {"status": values["status"], "name": values["name"]}
    _event(events, values["pipeline_run_id"], values["id"], event, payload)


def _update_step(
    conn: Connection,
    events: list[dict[str, Any]],
    step_run_id: str,
    run_id: str | None,
    event: str,
    payload: dict[str, Any] | None,
    fields: dict[str, Any],
) -> None:
    if run_id is None:
        run_id = conn.scalar(select(STEPS.c.pipeline_run_id).where(STEPS.c.id == step_run_id))
        if run_id is None:
            raise RunNotFoundError(f"No step run with id {step_run_id!r}.")
    if fields:
        result = conn.execute(UPDATE_STEP, {"_step_id": step_run_id, **fields})
        if not result.rowcount:
            raise RunNotFoundError(f"No step run with id {step_run_id!r}.")
    status = {k: v for k, v in fields.items() if k == "status"}
    _event(events, run_id, step_run_id, event, payload or status)


class StepRunQueries:
    db: Database

    # -- writes ----------------------------------------------------------------------------
    def create_step_run(self, *, event: str, **fields: Any) -> StepRunRecord:
        values = _new_step_values(fields)
        events: list[dict[str, Any]] = []
        with self.db.write_conn() as conn:
            _insert_step(conn, events, event, values)
            conn.execute(INSERT_EVENT, events)
        return StepRunRecord(**{name: values[name] for name in STEP_FIELDS})

    def update_step_run(
        self,
        step_run_id: str,
        *,
        event: str,
        payload: dict[str, Any] | None = None,
        pipeline_run_id: str | None = None,
        **fields: Any,
    ) -> None:
        events: list[dict[str, Any]] = []
        with self.db.write_conn() as conn:
            _update_step(conn, events, step_run_id, pipeline_run_id, event, payload, fields)
            conn.execute(INSERT_EVENT, events)

    def apply_step_writes(self, writes: StepWrites) -> None:
        """Apply every queued write in one transaction (nothing, if there are none)."""
        items = writes.take()
        if not items:
            return
        events: list[dict[str, Any]] = []
        with self.db.write_conn() as conn:
            for kind, args in items:
                if kind == "create":
                    _insert_step(conn, events, args["event"], args["values"])
                elif kind == "update":
                    _update_step(conn, events, **args)
                elif kind == "lineage":
                    conn.execute(INSERT_LINEAGE, args["rows"])
                else:
                    _add_metrics(conn, args["metrics"])
                    _merge_tags(conn, args["tags"])
            if events:  # one executemany, in the order the changes were made
                conn.execute(INSERT_EVENT, events)

    def record_journal(
        self,
        metrics: Sequence[MetricRecord],
        tags: dict[str, dict[str, Any]],
        offsets: dict[str, int] | None = None,
    ) -> None:
        """Metrics and tags a running step logged (ingested while it runs), and how far
        each step run's journal is now recorded (`offsets`), in the same transaction."""
        if not metrics and not tags and not offsets:
            return
        with self.db.write_conn() as conn:
            _add_metrics(conn, metrics)
            _merge_tags(conn, tags)
            for step_run_id, offset in (offsets or {}).items():
                conn.execute(UPDATE_STEP, {"_step_id": step_run_id, "journal_offset": offset})

    def journal_offsets(self, step_run_ids: Sequence[str]) -> dict[str, int]:
        """How far each step run's running attempt has its journal recorded (bytes)."""
        if not step_run_ids:
            return {}
        with self.db.read_conn() as conn:
            rows = conn.execute(
                select(STEPS.c.id, STEPS.c.journal_offset).where(STEPS.c.id.in_(list(step_run_ids)))
            ).all()
        return {row.id: int(row.journal_offset or 0) for row in rows}

    def add_metrics(self, records: Sequence[MetricRecord]) -> None:
        if records:
            with self.db.write_conn() as conn:
                _add_metrics(conn, records)

    # -- reads -----------------------------------------------------------------------------
    def find_step_run(self, step_run_id: str) -> StepRunRecord | None:
        with self.db.read_conn() as conn:
            row = conn.execute(SELECT_STEP, {"_step_id": step_run_id}).first()
            return None if row is None else step_record(row)

    def get_step_run(self, step_run_id: str) -> StepRunRecord:
        record = self.find_step_run(step_run_id)
        if record is None:
            raise RunNotFoundError(f"No step run with id {step_run_id!r} in this workspace.")
        return record

    def list_step_runs(self, pipeline_run_id: str) -> list[StepRunRecord]:
        with self.db.read_conn() as conn:
            rows = conn.execute(SELECT_PIPELINE_STEPS, {"_run_id": pipeline_run_id}).all()
            return [step_record(r) for r in rows]

    def count_running_steps(self, compute_target: str) -> int:
        with self.db.read_conn() as conn:
            count = conn.scalar(
                select(func.count())
                .select_from(STEPS)
                .where(STEPS.c.compute_target == compute_target, STEPS.c.status == Status.RUNNING)
            )
            return int(count or 0)

    def find_reusable_step_runs(self, fingerprints: Sequence[str]) -> dict[str, StepRunRecord]:
        """For each fingerprint, the newest successful step run that has it."""
        if not fingerprints:
            return {}
        with self.db.read_conn() as conn:
            rows = conn.execute(SELECT_REUSABLE, {"_fingerprints": sorted(set(fingerprints))}).all()
        found: dict[str, StepRunRecord] = {}
        for row in rows:
            record = step_record(row)
            if record.fingerprint is not None:
                found[record.fingerprint] = record
        return found

    def find_previous_step_runs(
        self, names: Sequence[str], experiment_id: str, *, exclude_run_id: str
    ) -> dict[str, StepRunRecord]:
        """For each step name, its newest fingerprinted run in another pipeline run,
        preferring the same experiment: what a rerun is explained against. Two queries at
        most, however many names."""
        if not names:
            return {}
        found: dict[str, StepRunRecord] = {}
        with self.db.read_conn() as conn:
            for same_experiment in (True, False):
                wanted = [n for n in names if n not in found]
                if not wanted:
                    break
                query = SELECT_PREVIOUS_SAME if same_experiment else SELECT_PREVIOUS_ANY
                params = {"_names": wanted, "_run": exclude_run_id, "_experiment": experiment_id}
                for row in conn.execute(query, params):
                    found.setdefault(row.name, step_record(row))
        return found

    def list_metrics(self, run_ids: Sequence[str]) -> list[MetricRecord]:
        with self.db.read_conn() as conn:
            rows = conn.execute(
                select(METRICS).where(METRICS.c.run_id.in_(list(run_ids))).order_by(METRICS.c.id)
            ).all()
            return [
                MetricRecord(r.run_id, r.name, r.kind, r.value, r.step, r.description, r.created_at)
                for r in rows
            ]

    def list_events(self, run_id: str, after_id: int = 0) -> list[EventRecord]:
        with self.db.read_conn() as conn:
            rows = conn.execute(
                select(EVENTS)
                .where(EVENTS.c.run_id == run_id, EVENTS.c.id > after_id)
                .order_by(EVENTS.c.id)
            ).all()
            return [
                EventRecord(r.id, r.run_id, r.step_run_id, r.kind, dict(r.payload), r.created_at)
                for r in rows
            ]


def _add_metrics(conn: Connection, metrics: Sequence[MetricRecord]) -> None:
    if not metrics:
        return
    now = utcnow()
    conn.execute(
        INSERT_METRIC,
        [
            {
                "run_id": m.run_id,
                "name": m.name,
                "kind": m.kind,
                "value": m.value,
                "step": m.step,
                "description": m.description,
                "created_at": m.created_at or now,
            }
            for m in metrics
        ],
    )
    record_metric_finals(conn, metrics)


def _merge_tags(conn: Connection, tags: dict[str, dict[str, Any]]) -> None:
    for run_id, values in tags.items():
        for table in (STEPS, PIPELINES):
            current = conn.execute(select(table.c.tags).where(table.c.id == run_id)).first()
            if current is not None:
                merged = {**(current[0] or {}), **values}
                conn.execute(update(table).where(table.c.id == run_id).values(tags=merged))
                break
