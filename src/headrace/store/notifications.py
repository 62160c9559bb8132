"""Notifications and the outbox of run endings in the metadata store.

`SqlMetadataStore` inherits `NotificationQueries`. A notification (table `notifications`)
says where to tell someone that a run ended: an email or a webhook, for which final
statuses, for which runs. `enqueue_for_ending` runs inside the transaction that records a
run's final status (`finish_pipeline_run`, `request_cancel` of a queued run) and adds one
`outbox` row per matching notification and run trigger (store/run_triggers.py): the ending
and the promise to act on it commit together, and the unique index (kind, target, run)
keeps a second ending of the same run (an agent that took a run over) from promising twice.
Senders (engine/outbox.py) lease rows with `claim_outbox`; nothing here sends anything, and
no secret is stored here (they live in the workspace secrets file; see engine/notifications.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from headrace.errors import ConflictError, NotFoundError
from headrace.store.database import Database
from headrace.store.orm import (
    ExperimentRow,
    NotificationRow,
    OutboxRow,
    PipelineEndpointVersionRow,
    PipelineRunRow,
    RunTriggerRow,
    utcnow,
)
from headrace.store.records import NOTIFY_PROPERTY

__all__ = [
    "DONE",
    "ENDED_STATUSES",
    "FAILED",
    "PENDING",
    "SENDING",
    "NotificationQueries",
    "NotificationRecord",
    "OutboxRecord",
    "enqueue_for_ending",
    "outbox_record",
]

ENDED_STATUSES = ("Finished", "Failed", "Canceled")
PENDING, SENDING, DONE, FAILED = "pending", "sending", "done", "failed"


@dataclass(frozen=True)
class NotificationRecord:
    name: str
    kind: str
    config: dict[str, Any]
    statuses: list[str]
    pipeline_id: str | None
    endpoint_id: str | None
    experiment_name: str | None
    on_request: bool
    created_at: datetime

    def document(self) -> dict[str, Any]:
        """What the API, CLI and portal show: no secret is in `config`."""
        return {
            "name": self.name,
            "kind": self.kind,
            "config": dict(self.config),
            "statuses": list(self.statuses),
            "pipeline_id": self.pipeline_id,
            "endpoint_id": self.endpoint_id,
            "experiment_name": self.experiment_name,
            "on_request": self.on_request,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True)
class OutboxRecord:
    id: int
    kind: str
    target: str
    run_id: str
    run_status: str
    state: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    result: dict[str, Any]
    created_at: datetime
    done_at: datetime | None

    def document(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "target": self.target,
            "run_id": self.run_id,
            "run_status": self.run_status,
            "state": self.state,
            "attempts": self.attempts,
            "next_attempt_at": self.next_attempt_at.isoformat(),
            "last_error": self.last_error,
            "result": dict(self.result),
            "created_at": self.created_at.isoformat(),
            "done_at": self.done_at.isoformat() if self.done_at else None,
        }


def _notification(row: NotificationRow) -> NotificationRecord:
    return NotificationRecord(
        name=row.name,
        kind=row.kind,
        config=dict(row.config or {}),
        statuses=list(row.statuses or []),
        pipeline_id=row.pipeline_id,
        endpoint_id=row.endpoint_id,
        experiment_name=row.experiment_name,
        on_request=bool(row.on_request),
        created_at=row.created_at,
    )


def outbox_record(row: OutboxRow) -> OutboxRecord:
    return OutboxRecord(
        id=row.id,
        kind=row.kind,
        target=row.target,
        run_id=row.run_id,
        run_status=row.run_status,
        state=row.state,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_error=row.last_error,
        result=dict(row.result or {}),
        created_at=row.created_at,
        done_at=row.done_at,
    )


def _in_scope(
    pipeline_id: str | None,
    endpoint_id: str | None,
    experiment_name: str | None,
    run_pipeline: str | None,
    run_experiment: str,
    endpoints_of_run: set[str],
) -> bool:
    if pipeline_id is not None and pipeline_id != run_pipeline:
        return False
    if endpoint_id is not None and endpoint_id not in endpoints_of_run:
        return False
    return experiment_name is None or experiment_name == run_experiment


def enqueue_for_ending(session: Session, run_id: str, status: str) -> int:
    """Add the outbox rows of a run that just ended with `status` (in the caller's write
    transaction); returns how many were added. Runs started by a run trigger are matched
    like any other, so triggers chain."""
    notifications = session.scalars(select(NotificationRow)).all()
    triggers = session.scalars(select(RunTriggerRow).where(RunTriggerRow.enabled)).all()
    wanted_n = [n for n in notifications if status in (n.statuses or [])]
    wanted_t = [t for t in triggers if status in (t.statuses or [])]
    if not wanted_n and not wanted_t:
        return 0
    found = session.execute(
        select(PipelineRunRow.properties, ExperimentRow.name)
        .join(ExperimentRow, ExperimentRow.id == PipelineRunRow.experiment_id)
        .where(PipelineRunRow.id == run_id)
    ).first()
    if found is None:
        return 0
    properties, experiment = dict(found[0] or {}), str(found[1])
    run_pipeline = properties.get("azureml.pipelineid")
    requested = str(properties.get(NOTIFY_PROPERTY, "")).lower() == "true"
    endpoints: set[str] = set()
    if run_pipeline and (
        any(n.endpoint_id for n in wanted_n) or any(t.source_endpoint_id for t in wanted_t)
    ):
        endpoints = set(
            session.scalars(
                select(PipelineEndpointVersionRow.endpoint_id).where(
                    PipelineEndpointVersionRow.pipeline_id == run_pipeline
                )
            )
        )
    targets: list[tuple[str, str]] = []
    for n in wanted_n:
        if n.on_request and not requested:
            continue
        if _in_scope(
            n.pipeline_id, n.endpoint_id, n.experiment_name, run_pipeline, experiment, endpoints
        ):
            targets.append(("notification", n.name))
    for t in wanted_t:
        if _in_scope(t.source_pipeline_id, t.source_endpoint_id, None, run_pipeline, "", endpoints):
            targets.append(("trigger", t.name))
    if not targets:
        return 0
    already = set(
        session.execute(
            select(OutboxRow.kind, OutboxRow.target).where(OutboxRow.run_id == run_id)
        ).tuples()
    )
    now = utcnow()
    added = 0
    for kind, target in targets:
        if (kind, target) in already:
            continue
        session.add(
            OutboxRow(
                kind=kind,
                target=target,
                run_id=run_id,
                run_status=status,
                state=PENDING,
                attempts=0,
                next_attempt_at=now,
                result={},
                created_at=now,
            )
        )
        added += 1
    return added


class NotificationQueries:
    db: Database

    # -- notifications ---------------------------------------------------------------------
    def add_notification(self, record: NotificationRecord, *, overwrite: bool) -> None:
        try:
            with self.db.write() as s:
                row = s.get(NotificationRow, record.name)
                if row is not None and not overwrite:
                    raise ConflictError(
                        f"A notification named {record.name!r} exists; remove it first "
                        "(`headrace notification remove`) or pass overwrite=True."
                    )
                if row is None:
                    row = NotificationRow(name=record.name, created_at=record.created_at)
                    s.add(row)
                row.kind = record.kind
                row.config = dict(record.config)
                row.statuses = list(record.statuses)
                row.pipeline_id = record.pipeline_id
                row.endpoint_id = record.endpoint_id
                row.experiment_name = record.experiment_name
                row.on_request = record.on_request
        except IntegrityError as exc:
            raise ConflictError(
                f"A notification named {record.name!r} was added at the same time; try again."
            ) from exc

    def list_notifications(self) -> list[NotificationRecord]:
        with self.db.read() as s:
            rows = s.scalars(select(NotificationRow).order_by(NotificationRow.name)).all()
            return [_notification(r) for r in rows]

    def find_notification(self, name: str) -> NotificationRecord | None:
        with self.db.read() as s:
            row = s.get(NotificationRow, name)
            return None if row is None else _notification(row)

    def get_notification(self, name: str) -> NotificationRecord:
        found = self.find_notification(name)
        if found is None:
            names = [n.name for n in self.list_notifications()]
            raise NotFoundError(
                f"No notification named {name!r} in this workspace; it has "
                f"{', '.join(repr(n) for n in names) if names else 'none'} "
                "(`headrace notification list`)."
            )
        return found

    def remove_notification(self, name: str) -> None:
        """Remove a notification and the deliveries still pending for it."""
        self.get_notification(name)
        with self.db.write() as s:
            s.execute(delete(NotificationRow).where(NotificationRow.name == name))
            s.execute(
                delete(OutboxRow).where(
                    OutboxRow.kind == "notification",
                    OutboxRow.target == name,
                    OutboxRow.state.in_([PENDING, SENDING]),
                )
            )

    # -- the outbox ------------------------------------------------------------------------
    def list_outbox(
        self,
        *,
        kind: str | None = None,
        target: str | None = None,
        run_id: str | None = None,
        limit: int = 50,
    ) -> list[OutboxRecord]:
        query = select(OutboxRow).order_by(OutboxRow.id.desc()).limit(limit)
        if kind is not None:
            query = query.where(OutboxRow.kind == kind)
        if target is not None:
            query = query.where(OutboxRow.target == target)
        if run_id is not None:
            query = query.where(OutboxRow.run_id == run_id)
        with self.db.read() as s:
            return [outbox_record(r) for r in s.scalars(query).all()]

    def outbox_due(self, now: datetime) -> datetime | None:
        """When the next row is due (None: nothing pending or leased), with a plain read."""
        with self.db.read() as s:
            pending = s.scalar(
                select(OutboxRow.next_attempt_at)
                .where(OutboxRow.state == PENDING)
                .order_by(OutboxRow.next_attempt_at)
                .limit(1)
            )
            leased = s.scalar(
                select(OutboxRow.lease_until)
                .where(OutboxRow.state == SENDING)
                .order_by(OutboxRow.lease_until)
                .limit(1)
            )
        times = [t for t in (pending, leased) if t is not None]
        return min(times) if times else None

    def claim_outbox(self, *, lease_seconds: float, limit: int = 8) -> list[OutboxRecord]:
        """Lease due rows: pending ones whose time has come, and rows whose sender's lease
        ran out (it died mid-send). Each row is taken by one sender only: the UPDATE names
        the state it read, so of two senders racing for a row one updates nothing."""
        now = utcnow()
        with self.db.read() as s:
            candidates = s.execute(
                select(OutboxRow.id, OutboxRow.state, OutboxRow.attempts)
                .where(
                    or_(
                        and_(OutboxRow.state == PENDING, OutboxRow.next_attempt_at <= now),
                        and_(OutboxRow.state == SENDING, OutboxRow.lease_until <= now),
                    )
                )
                .order_by(OutboxRow.next_attempt_at)
                .limit(limit)
            ).all()
        if not candidates:
            return []
        taken: list[int] = []
        lease = now + timedelta(seconds=lease_seconds)
        with self.db.write() as s:
            for row_id, state, attempts in candidates:
                result = s.execute(
                    update(OutboxRow)
                    .where(
                        OutboxRow.id == row_id,
                        OutboxRow.state == state,
                        OutboxRow.attempts == attempts,
                    )
                    .values(state=SENDING, lease_until=lease, attempts=attempts + 1)
                )
                if result.rowcount == 1:  # type: ignore[attr-defined]
                    taken.append(row_id)
        if not taken:
            return []
        with self.db.read() as s:
            rows = s.scalars(select(OutboxRow).where(OutboxRow.id.in_(taken))).all()
            return [outbox_record(r) for r in rows]

    def outbox_finished(
        self,
        row_id: int,
        attempts: int,
        *,
        state: str,
        error: str | None = None,
        result: dict[str, Any] | None = None,
        retry_at: datetime | None = None,
    ) -> bool:
        """Record what a sender did with a leased row (the attempt it leased, so a sender
        whose lease ran out and was taken over records nothing). `state`: "done",
        "failed" (given up), or "pending" again with `retry_at`."""
        values: dict[str, Any] = {"state": state, "lease_until": None, "last_error": error}
        if result is not None:
            values["result"] = result
        if state == PENDING:
            values["next_attempt_at"] = retry_at or utcnow()
        else:
            values["done_at"] = utcnow()
        with self.db.write() as s:
            done = s.execute(
                update(OutboxRow)
                .where(
                    OutboxRow.id == row_id,
                    OutboxRow.state == SENDING,
                    OutboxRow.attempts == attempts,
                )
                .values(**values)
            )
            return bool(done.rowcount == 1)  # type: ignore[attr-defined]
