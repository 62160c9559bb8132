"""Schedules in the portal: every schedule with its trigger, next fire time, last run and
last error; one schedule's page with its runs; enable and disable for submitters.

The enable/disable form posts to `/ui/schedules/{id}/status` (CSRF, submitter role) and
comes back to the schedule's page.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response
from fastapi.responses import RedirectResponse

from headrace.engine.recurrence import describe
from headrace.errors import NotFoundError
from headrace.server.portal.base import PortalError, ViewerDep, checked_form, page, render, router
from headrace.server.portal.base import state as portal_state
from headrace.server.portal.shapes import run_row
from headrace.store.records import ScheduleRecord

__all__: list[str] = []


def _trigger(s: ScheduleRecord) -> str:
    if s.recurrence is not None:
        return describe(s.recurrence)
    every = f"{s.polling_interval:g} min"
    path = s.path_on_datastore or "/"
    options = []
    if s.trigger.get("include_subfolders"):
        options.append("with sub-folders")
    if s.trigger.get("run_per") == "batch":
        options.append("one run per batch")
    extra = f" ({', '.join(options)})" if options else ""
    return f"new or changed files in {s.datastore_name}:{path}, polled every {every}{extra}"


def _row(request: Request, s: ScheduleRecord) -> dict[str, Any]:
    runs = portal_state(request).store.meta.schedule_runs(s.id, 1)
    last = runs[0] if runs else None
    target = (
        {"name": "pipeline " + s.pipeline_id, "url": f"/ui/pipelines/{s.pipeline_id}"}
        if s.pipeline_id
        else {"name": f"endpoint {s.pipeline_endpoint_id}", "url": "/ui/endpoints"}
    )
    return {
        "id": s.id,
        "url": f"/ui/schedules/{s.id}",
        "name": s.name,
        "description": s.description,
        "status": s.status,
        "trigger": _trigger(s),
        "target": target,
        "experiment_name": s.experiment_name,
        "catch_up": s.catch_up,
        "next_fire_at": s.next_fire_at if s.status == "Active" else None,
        "last_run": None
        if last is None
        else {"id": last.id, "url": f"/ui/runs/{last.id}", "status": last.status},
        "last_error": (s.last_error or {}).get("message"),
    }


@page("/schedules")
def schedules(request: Request, viewer: ViewerDep) -> Response:
    """Every schedule, Active and Disabled, newest first."""
    found = portal_state(request).backend.list_schedules(active_only=False)
    data = {
        "schedules": [_row(request, s) for s in found],
        "can_change": viewer.can("submitter"),
    }
    return render(request, "schedules.html", title="Schedules", data=data)


@page("/schedules/{schedule_id}")
def schedule(request: Request, viewer: ViewerDep, schedule_id: str) -> Response:
    """One schedule: its trigger, next fire time, last error and the runs it queued."""
    meta = portal_state(request).store.meta
    record = meta.find_schedule(schedule_id)
    if record is None:
        raise PortalError(
            404,
            f"There is no schedule {schedule_id!r} in this workspace; the schedules are listed "
            "on /ui/schedules.",
        )
    data = {
        "schedule": {**_row(request, record), "parameters": record.pipeline_parameters},
        "runs": [run_row(r) for r in meta.schedule_runs(record.id, 50)],
        "can_change": viewer.can("submitter"),
    }
    return render(request, "schedule.html", title=f"Schedule {record.name}", data=data)


@router.post("/schedules/{schedule_id}/status")
async def set_status(request: Request, viewer: ViewerDep, schedule_id: str) -> Response:
    """Enable or disable a schedule from its page (submitters)."""
    form = await checked_form(request, viewer, "submitter")
    wanted = str(form.get("status", ""))
    if wanted not in ("Active", "Disabled"):
        raise PortalError(400, f"Status {wanted[:20]!r} is not valid: Active or Disabled.")
    try:
        portal_state(request).backend.update_schedule(schedule_id, status=wanted)
    except NotFoundError as exc:
        raise PortalError(404, str(exc)) from exc
    return RedirectResponse(f"/ui/schedules/{schedule_id}", status_code=303)
