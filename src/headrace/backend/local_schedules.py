"""Schedules of a workspace folder: the `Backend` schedule methods of `LocalBackend`.

The checks are engine/schedules.py's; firing is the scheduler's (engine/scheduler.py), which
runs in `headrace server` or `headrace scheduler`, not here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from headrace.engine import schedules
from headrace.store.records import PipelineRunRecord, ScheduleRecord

if TYPE_CHECKING:
    from headrace.store.workspace_store import WorkspaceStore

__all__ = ["LocalScheduleMethods"]


class LocalScheduleMethods:
    store: WorkspaceStore

    def create_schedule(self, **fields: Any) -> ScheduleRecord:
        return schedules.create_schedule(self.store, **fields)

    def get_schedule(self, schedule_id: str) -> ScheduleRecord:
        return self.store.meta.get_schedule(schedule_id)

    def list_schedules(
        self,
        *,
        active_only: bool = True,
        pipeline_id: str | None = None,
        pipeline_endpoint_id: str | None = None,
    ) -> list[ScheduleRecord]:
        return self.store.meta.list_schedules(
            active_only=active_only,
            pipeline_id=pipeline_id,
            pipeline_endpoint_id=pipeline_endpoint_id,
        )

    def update_schedule(self, schedule_id: str, **changes: Any) -> ScheduleRecord:
        given = {k: v for k, v in changes.items() if v is not None}
        return schedules.update_schedule(self.store, schedule_id, **given)

    def list_schedule_runs(self, schedule_id: str, limit: int = 100) -> list[PipelineRunRecord]:
        self.store.meta.get_schedule(schedule_id)  # NotFoundError for an unknown id
        return self.store.meta.schedule_runs(schedule_id, limit)
