"""Schedules over HTTP: the `Backend` schedule methods of `RemoteBackend`
(server/api_schedules.py answers them)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from headrace.backend.wire import from_wire, url_segment
from headrace.store.records import PipelineRunRecord, ScheduleRecord

__all__ = ["RemoteScheduleMethods"]


class RemoteScheduleMethods:
    if TYPE_CHECKING:  # provided by RemoteBackend

        def _json(self, method: str, path: str, **kwargs: Any) -> Any: ...

    def create_schedule(self, **fields: Any) -> ScheduleRecord:
        return from_wire(ScheduleRecord, self._json("POST", "/schedules", body=fields))

    def get_schedule(self, schedule_id: str) -> ScheduleRecord:
        doc = self._json("GET", f"/schedules/{url_segment(schedule_id)}")
        return from_wire(ScheduleRecord, doc)

    def list_schedules(
        self,
        *,
        active_only: bool = True,
        pipeline_id: str | None = None,
        pipeline_endpoint_id: str | None = None,
    ) -> list[ScheduleRecord]:
        params: dict[str, Any] = {"active_only": "true" if active_only else "false"}
        if pipeline_id is not None:
            params["pipeline_id"] = pipeline_id
        if pipeline_endpoint_id is not None:
            params["pipeline_endpoint_id"] = pipeline_endpoint_id
        docs = self._json("GET", "/schedules", params=params)
        return [from_wire(ScheduleRecord, d) for d in docs]

    def update_schedule(self, schedule_id: str, **changes: Any) -> ScheduleRecord:
        given = {k: v for k, v in changes.items() if v is not None}
        doc = self._json("PATCH", f"/schedules/{url_segment(schedule_id)}", body=given)
        return from_wire(ScheduleRecord, doc)

    def list_schedule_runs(self, schedule_id: str, limit: int = 100) -> list[PipelineRunRecord]:
        docs = self._json(
            "GET", f"/schedules/{url_segment(schedule_id)}/runs", params={"limit": limit}
        )
        return [from_wire(PipelineRunRecord, d) for d in docs]
