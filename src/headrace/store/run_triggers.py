"""Run triggers in the metadata store: start one published pipeline (or pipeline endpoint)
when a run of another ends.

`SqlMetadataStore` inherits `RunTriggerQueries`. A trigger's firings are outbox rows of kind
"trigger" (store/notifications.py adds them with the source run's ending); the run a firing
starts has an id derived from (trigger, source run) (`triggered_run_id`), so the run's
primary key is the claim that makes a firing start one run, whoever fires it and however
often (engine/run_triggers.py).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from headrace.errors import ConflictError, NotFoundError
from headrace.store.database import Database
from headrace.store.orm import OutboxRow, RunTriggerRow

__all__ = ["RunTriggerQueries", "RunTriggerRecord", "triggered_run_id"]

_NAMESPACE = uuid.UUID("6f1c1d1e-58a4-4b55-9d7e-2b1f4c3a9e10")


def triggered_run_id(trigger: str, source_run_id: str) -> str:
    """The id of the run that `trigger` starts for `source_run_id`: the same every time."""
    return str(uuid.uuid5(_NAMESPACE, f"{trigger}\n{source_run_id}"))


@dataclass(frozen=True)
class RunTriggerRecord:
    name: str
    source_pipeline_id: str | None
    source_endpoint_id: str | None
    statuses: list[str]
    target_pipeline_id: str | None
    target_endpoint_id: str | None
    experiment_name: str
    parameters: dict[str, Any]
    enabled: bool
    created_at: datetime

    def document(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source_pipeline_id": self.source_pipeline_id,
            "source_endpoint_id": self.source_endpoint_id,
            "statuses": list(self.statuses),
            "target_pipeline_id": self.target_pipeline_id,
            "target_endpoint_id": self.target_endpoint_id,
            "experiment_name": self.experiment_name,
            "parameters": dict(self.parameters),
            "enabled": self.enabled,
            "created_at": self.created_at.isoformat(),
        }


def _record(row: RunTriggerRow) -> RunTriggerRecord:
    return RunTriggerRecord(
        name=row.name,
        source_pipeline_id=row.source_pipeline_id,
        source_endpoint_id=row.source_endpoint_id,
        statuses=list(row.statuses or []),
        target_pipeline_id=row.target_pipeline_id,
        target_endpoint_id=row.target_endpoint_id,
        experiment_name=row.experiment_name,
        parameters=dict(row.parameters or {}),
        enabled=bool(row.enabled),
        created_at=row.created_at,
    )


class RunTriggerQueries:
    db: Database

    def add_run_trigger(self, record: RunTriggerRecord) -> None:
        try:
            with self.db.write() as s:
                if s.get(RunTriggerRow, record.name) is not None:
                    raise ConflictError(
                        f"A run trigger named {record.name!r} exists; remove it first "
                        "(`headrace trigger remove`) or choose another name."
                    )
                s.add(
                    RunTriggerRow(
                        name=record.name,
                        source_pipeline_id=record.source_pipeline_id,
                        source_endpoint_id=record.source_endpoint_id,
                        statuses=list(record.statuses),
                        target_pipeline_id=record.target_pipeline_id,
                        target_endpoint_id=record.target_endpoint_id,
                        experiment_name=record.experiment_name,
                        parameters=dict(record.parameters),
                        enabled=record.enabled,
                        created_at=record.created_at,
                    )
                )
        except IntegrityError as exc:
            raise ConflictError(
                f"A run trigger named {record.name!r} was added at the same time; try again."
            ) from exc

    def list_run_triggers(self) -> list[RunTriggerRecord]:
        with self.db.read() as s:
            rows = s.scalars(select(RunTriggerRow).order_by(RunTriggerRow.name)).all()
            return [_record(r) for r in rows]

    def find_run_trigger(self, name: str) -> RunTriggerRecord | None:
        with self.db.read() as s:
            row = s.get(RunTriggerRow, name)
            return None if row is None else _record(row)

    def get_run_trigger(self, name: str) -> RunTriggerRecord:
        found = self.find_run_trigger(name)
        if found is None:
            names = [t.name for t in self.list_run_triggers()]
            raise NotFoundError(
                f"No run trigger named {name!r} in this workspace; it has "
                f"{', '.join(repr(n) for n in names) if names else 'none'} "
                "(`headrace trigger list`)."
            )
        return found

    def set_run_trigger_enabled(self, name: str, enabled: bool) -> RunTriggerRecord:
        self.get_run_trigger(name)
        with self.db.write() as s:
            s.execute(
                update(RunTriggerRow).where(RunTriggerRow.name == name).values(enabled=enabled)
            )
        return self.get_run_trigger(name)

    def remove_run_trigger(self, name: str) -> None:
        """Remove a trigger and its firings not yet started."""
        self.get_run_trigger(name)
        with self.db.write() as s:
            s.execute(delete(RunTriggerRow).where(RunTriggerRow.name == name))
            s.execute(
                delete(OutboxRow).where(
                    OutboxRow.kind == "trigger",
                    OutboxRow.target == name,
                    OutboxRow.state == "pending",
                )
            )
