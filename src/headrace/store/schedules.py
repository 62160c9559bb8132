"""Schedules in the metadata store: their rows, the fires that make each slot run once, and
the listing a datastore trigger saw last.

`SqlMetadataStore` inherits these queries. Exactly once rests on one rule: a fire is a row
with a unique (schedule, fire key), inserted by `claim_fire` inside the transaction that
queues the run (`create_pipeline_run(..., in_transaction=...)`), so either both exist or
neither; a second scheduler inserting the same key fails and its run is rolled back.
Nothing here decides when to fire; that is engine/scheduler.py.
"""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Row, bindparam, delete, func, select, update

from headrace.errors import ConflictError, NotFoundError, UserError
from headrace.store.database import Database
from headrace.store.orm import ScheduleFireRow, ScheduleListingRow, ScheduleRow, utcnow
from headrace.store.records import PipelineRunRecord, ScheduleFireRecord, ScheduleRecord

__all__ = ["ACTIVE", "DISABLED", "AlreadyFired", "ScheduleQueries", "schedule_record"]

ACTIVE = "Active"
DISABLED = "Disabled"
_STATUSES = (ACTIVE, DISABLED)
_CHANGEABLE = {
    "name",
    "description",
    "experiment_name",
    "status",
    "recurrence",
    "datastore_name",
    "path_on_datastore",
    "polling_interval",
    "data_path_parameter_name",
    "trigger",
    "pipeline_parameters",
    "continue_on_step_failure",
    "catch_up",
    "next_fire_at",
    "last_error",
}


class AlreadyFired(ConflictError):
    """Another scheduler (or an earlier life of this one) fired this slot already."""


def schedule_record(row: ScheduleRow | Row[Any]) -> ScheduleRecord:
    return ScheduleRecord(
        id=row.id,
        name=row.name,
        description=row.description,
        pipeline_id=row.pipeline_id,
        pipeline_endpoint_id=row.pipeline_endpoint_id,
        experiment_name=row.experiment_name,
        status=row.status,
        recurrence=row.recurrence,
        datastore_name=row.datastore_name,
        path_on_datastore=row.path_on_datastore,
        polling_interval=row.polling_interval,
        data_path_parameter_name=row.data_path_parameter_name,
        trigger=dict(row.trigger or {}),
        pipeline_parameters=dict(row.pipeline_parameters or {}),
        continue_on_step_failure=row.continue_on_step_failure,
        catch_up=row.catch_up,
        next_fire_at=row.next_fire_at,
        last_error=row.last_error,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _not_found(schedule_id: str) -> NotFoundError:
    return NotFoundError(
        f"No schedule with id {schedule_id!r} in this workspace; Schedule.list(ws, "
        "active_only=False) (or `headrace schedule list --all`) lists them."
    )


class ScheduleQueries:
    db: Database

    if TYPE_CHECKING:  # provided by SqlMetadataStore

        def _insert(self, table: Any) -> Any: ...

        def _pipeline_query(self) -> Any: ...

    # -- schedules -------------------------------------------------------------------------
    def create_schedule(self, **fields: Any) -> ScheduleRecord:
        """A new schedule row from `fields` (the ScheduleRow columns but id and times)."""
        now = utcnow()
        with self.db.write() as s:
            row = ScheduleRow(id=str(uuid.uuid4()), created_at=now, updated_at=now, **fields)
            s.add(row)
            s.flush()
            return schedule_record(row)

    def find_schedule(self, schedule_id: str) -> ScheduleRecord | None:
        table = ScheduleRow.__table__
        with self.db.read_conn() as conn:
            row = conn.execute(select(table).where(table.c.id == schedule_id)).first()
            return None if row is None else schedule_record(row)

    def get_schedule(self, schedule_id: str) -> ScheduleRecord:
        record = self.find_schedule(schedule_id)
        if record is None:
            raise _not_found(schedule_id)
        return record

    def list_schedules(
        self,
        *,
        active_only: bool = True,
        pipeline_id: str | None = None,
        pipeline_endpoint_id: str | None = None,
    ) -> list[ScheduleRecord]:
        table = ScheduleRow.__table__
        query = select(table)
        if active_only:
            query = query.where(table.c.status == ACTIVE)
        if pipeline_id is not None:
            query = query.where(table.c.pipeline_id == pipeline_id)
        if pipeline_endpoint_id is not None:
            query = query.where(table.c.pipeline_endpoint_id == pipeline_endpoint_id)
        query = query.order_by(table.c.created_at.desc(), table.c.id)
        with self.db.read_conn() as conn:
            return [schedule_record(r) for r in conn.execute(query)]

    def update_schedule(self, schedule_id: str, **changes: Any) -> ScheduleRecord:
        unknown = set(changes) - _CHANGEABLE
        if unknown:
            raise UserError(f"A schedule has no changeable field(s) {', '.join(sorted(unknown))}.")
        if "status" in changes and changes["status"] not in _STATUSES:
            raise UserError(
                f"Schedule status {changes['status']!r} is not valid; use one of: "
                f"{', '.join(_STATUSES)}."
            )
        with self.db.write() as s:
            row = s.get(ScheduleRow, schedule_id)
            if row is None:
                raise _not_found(schedule_id)
            for key, value in changes.items():
                setattr(row, key, value)
            row.updated_at = utcnow()
            s.flush()
            return schedule_record(row)

    def due_schedules(self, now: datetime, limit: int = 1000) -> list[ScheduleRecord]:
        """Active schedules whose next slot or poll is at or before `now`, earliest first."""
        table = ScheduleRow.__table__
        query = (
            select(table)
            .where(table.c.status == ACTIVE, table.c.next_fire_at <= now)
            .order_by(table.c.next_fire_at, table.c.id)
            .limit(limit)
        )
        with self.db.read_conn() as conn:
            return [schedule_record(r) for r in conn.execute(query)]

    def next_schedule_time(self) -> datetime | None:
        """The earliest next slot or poll of any Active schedule."""
        table = ScheduleRow.__table__
        query = select(func.min(table.c.next_fire_at)).where(table.c.status == ACTIVE)
        with self.db.read_conn() as conn:
            value: datetime | None = conn.execute(query).scalar()
        return value

    def move_schedule(self, schedule_id: str, expected: datetime | None, new: datetime) -> bool:
        """Set next_fire_at to `new` if it is still `expected`: whoever moves it owns the
        poll (or the skip) of that time."""
        condition = (
            ScheduleRow.next_fire_at.is_(None)
            if expected is None
            else ScheduleRow.next_fire_at == expected
        )
        with self.db.write_conn() as conn:
            result = conn.execute(
                update(ScheduleRow)
                .where(ScheduleRow.id == schedule_id, condition)
                .values(next_fire_at=new)
            )
            return bool(result.rowcount)

    # -- fires -----------------------------------------------------------------------------
    def _claim_statements(self) -> tuple[Any, Any]:
        """The fire's INSERT ... ON CONFLICT DO NOTHING RETURNING and the schedule's UPDATE,
        built once (building them costs more than running them: a burst fires 1,000)."""
        built = getattr(self, "_claims", None)
        if built is None:
            fires = ScheduleFireRow.__table__
            insert_fire = (
                self._insert(ScheduleFireRow)
                .values(
                    schedule_id=bindparam("schedule_id"),
                    fire_key=bindparam("fire_key"),
                    run_id=bindparam("run_id"),
                    error=bindparam("error"),
                    created_at=bindparam("created_at"),
                )
                .on_conflict_do_nothing(index_elements=["schedule_id", "fire_key"])
                .returning(fires.c.id)
            )
            move = (
                update(ScheduleRow)
                .where(ScheduleRow.id == bindparam("sid"))
                .values(next_fire_at=bindparam("next_fire_at"))
            )
            built = self._claims = (insert_fire, move)
        return built

    def claim_fire(
        self,
        conn: Connection,
        *,
        schedule_id: str,
        fire_key: str,
        run_id: str | None,
        error: str | None = None,
        next_fire_at: datetime | None = None,
    ) -> None:
        """In the caller's transaction: insert the fire (AlreadyFired if the key is taken,
        which rolls the transaction back) and move the schedule to `next_fire_at`."""
        insert_fire, move = self._claim_statements()
        inserted = conn.execute(
            insert_fire,
            {
                "schedule_id": schedule_id,
                "fire_key": fire_key,
                "run_id": run_id,
                "error": error,
                "created_at": utcnow(),
            },
        )
        # RETURNING, not rowcount: psycopg reports a row for an insert that did nothing.
        if inserted.first() is None:
            raise AlreadyFired(f"Schedule {schedule_id} fired {fire_key!r} already.")
        if next_fire_at is not None:
            conn.execute(move, {"sid": schedule_id, "next_fire_at": next_fire_at})

    def record_failed_fire(
        self, schedule_id: str, fire_key: str, error: str, next_fire_at: datetime | None
    ) -> bool:
        """A slot that could not queue a run: recorded as fired (so it is not retried in a
        loop) with its error, which the schedule shows as its last error."""
        try:
            with self.db.write_conn() as conn:
                self.claim_fire(
                    conn,
                    schedule_id=schedule_id,
                    fire_key=fire_key,
                    run_id=None,
                    error=error,
                    next_fire_at=next_fire_at,
                )
                conn.execute(
                    update(ScheduleRow)
                    .where(ScheduleRow.id == schedule_id)
                    .values(last_error={"message": error, "at": utcnow().isoformat()})
                )
        except AlreadyFired:
            return False
        return True

    def set_schedule_error(self, schedule_id: str, error: str | None) -> None:
        value = None if error is None else {"message": error, "at": utcnow().isoformat()}
        with self.db.write_conn() as conn:
            conn.execute(
                update(ScheduleRow).where(ScheduleRow.id == schedule_id).values(last_error=value)
            )

    def fired_keys(self, schedule_id: str, keys: Iterable[str]) -> set[str]:
        wanted = list(keys)
        found: set[str] = set()
        table = ScheduleFireRow.__table__
        with self.db.read_conn() as conn:
            for i in range(0, len(wanted), 500):
                chunk = wanted[i : i + 500]
                found.update(
                    conn.execute(
                        select(table.c.fire_key).where(
                            table.c.schedule_id == schedule_id, table.c.fire_key.in_(chunk)
                        )
                    ).scalars()
                )
        return found

    def list_schedule_fires(self, schedule_id: str, limit: int = 100) -> list[ScheduleFireRecord]:
        table = ScheduleFireRow.__table__
        query = (
            select(table)
            .where(table.c.schedule_id == schedule_id)
            .order_by(table.c.id.desc())
            .limit(limit)
        )
        with self.db.read_conn() as conn:
            return [
                ScheduleFireRecord(r.schedule_id, r.fire_key, r.run_id, r.error, r.created_at)
                for r in conn.execute(query)
            ]

    def schedule_runs(self, schedule_id: str, limit: int = 100) -> list[PipelineRunRecord]:
        """The runs a schedule queued, newest first."""
        from headrace.store.metadata import pipeline_record
        from headrace.store.orm import PipelineRunRow

        fires = ScheduleFireRow.__table__
        query = (
            self._pipeline_query()
            .join(fires, fires.c.run_id == PipelineRunRow.id)
            .where(fires.c.schedule_id == schedule_id)
            .order_by(fires.c.id.desc())
            .limit(limit)
        )
        with self.db.read() as s:
            return [pipeline_record(row, name) for row, name in s.execute(query).all()]

    # -- what a datastore trigger saw -----------------------------------------------------
    def listing_summary(self, schedule_id: str) -> tuple[str, int] | None:
        """(digest, pending files) of the trigger's last listing; None before its first."""
        table = ScheduleListingRow.__table__
        query = select(table.c.digest, table.c.pending).where(table.c.schedule_id == schedule_id)
        with self.db.read_conn() as conn:
            row = conn.execute(query).first()
        return None if row is None else (str(row[0]), int(row[1]))

    def load_listing(self, schedule_id: str) -> dict[str, tuple[str, bool]]:
        """path -> (signature, pending) of every file the trigger saw last."""
        table = ScheduleListingRow.__table__
        query = select(table.c.listing).where(table.c.schedule_id == schedule_id)
        with self.db.read_conn() as conn:
            blob = conn.execute(query).scalar()
        if not blob:
            return {}
        seen: dict[str, tuple[str, bool]] = {}
        for line in zlib.decompress(blob).decode().split("\n"):
            if line:
                path, sig, pending = line.rsplit("\t", 2)
                seen[path] = (sig, pending == "1")
        return seen

    def save_listing(
        self, schedule_id: str, files: dict[str, tuple[str, bool]], digest: str
    ) -> None:
        """Replace what the trigger saw with `files` (path -> (signature, pending))."""
        text = "\n".join(
            f"{p}\t{sig}\t{1 if pending else 0}" for p, (sig, pending) in files.items()
        )
        values = {
            "schedule_id": schedule_id,
            "listing": zlib.compress(text.encode(), 1),
            "digest": digest,
            "files": len(files),
            "pending": sum(1 for _, pending in files.values() if pending),
            "updated_at": utcnow(),
        }
        statement = self._insert(ScheduleListingRow).values(values)
        statement = statement.on_conflict_do_update(
            index_elements=["schedule_id"],
            set_={k: statement.excluded[k] for k in values if k != "schedule_id"},
        )
        with self.db.write_conn() as conn:
            conn.execute(statement)

    def forget_listing(self, schedule_id: str) -> None:
        """The next poll takes stock afresh (the watched path changed)."""
        with self.db.write_conn() as conn:
            conn.execute(
                delete(ScheduleListingRow).where(ScheduleListingRow.schedule_id == schedule_id)
            )
