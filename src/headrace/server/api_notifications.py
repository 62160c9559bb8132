"""The /api/v1 routes of notifications and run triggers that `RemoteBackend` speaks
(backend/remote_notifications.py); included in `server.api`'s router.

Who may call them: adding, removing or testing a notification is an admin's right (its
request carries secrets, and a webhook makes the server POST to a URL of the caller's
choosing); listing them (no secret is in any answer) and their deliveries, a reader's.
Adding or removing a run trigger is a submitter's (it submits published pipelines, as the
submitter could); listing, a reader's. A step's token has no rule here.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict

from headrace.backend.local_notifications import LocalNotificationMethods
from headrace.server.access import Admin, Reader, Submitter
from headrace.server.api_base import ClassNamedErrors, state

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["backend"], route_class=ClassNamedErrors)

Limit = Annotated[int, Query(ge=1, le=500)]


def _backend(request: Request) -> LocalNotificationMethods:
    backend: LocalNotificationMethods = state(request).backend
    return backend


class NotificationBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    spec: dict[str, Any]
    overwrite: bool = False


class TriggerBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    spec: dict[str, Any]


@router.get("/notifications")
def list_notifications(request: Request, _token: Reader) -> list[dict[str, Any]]:
    return _backend(request).list_notifications()


@router.post("/notifications")
def add_notification(request: Request, body: NotificationBody, _token: Admin) -> dict[str, Any]:
    return _backend(request).add_notification(body.spec, overwrite=body.overwrite)


@router.get("/notifications/{name}")
def get_notification(request: Request, name: str, _token: Reader) -> dict[str, Any]:
    return _backend(request).get_notification(name)


@router.delete("/notifications/{name}")
def remove_notification(request: Request, name: str, _token: Admin) -> dict[str, Any]:
    _backend(request).remove_notification(name)
    return {"removed": name}


@router.post("/notifications/{name}/test")
def test_notification(request: Request, name: str, _token: Admin) -> dict[str, Any]:
    """Send a test message now; 424 with the reason when the far side refuses it."""
    return _backend(request).test_notification(name)


@router.get("/notification-deliveries")
def list_notification_deliveries(
    request: Request,
    _token: Reader,
    name: str | None = None,
    run_id: str | None = None,
    limit: Limit = 50,
) -> list[dict[str, Any]]:
    return _backend(request).list_notification_deliveries(name=name, run_id=run_id, limit=limit)


@router.get("/run-triggers")
def list_run_triggers(request: Request, _token: Reader) -> list[dict[str, Any]]:
    return _backend(request).list_run_triggers()


@router.post("/run-triggers")
def add_run_trigger(request: Request, body: TriggerBody, _token: Submitter) -> dict[str, Any]:
    return _backend(request).add_run_trigger(body.spec)


@router.get("/run-triggers/{name}")
def get_run_trigger(request: Request, name: str, _token: Reader) -> dict[str, Any]:
    return _backend(request).get_run_trigger(name)


class TriggerPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool


@router.patch("/run-triggers/{name}")
def set_run_trigger_enabled(
    request: Request, name: str, body: TriggerPatch, _token: Submitter
) -> dict[str, Any]:
    return _backend(request).set_run_trigger_enabled(name, body.enabled)


@router.delete("/run-triggers/{name}")
def remove_run_trigger(request: Request, name: str, _token: Submitter) -> dict[str, Any]:
    _backend(request).remove_run_trigger(name)
    return {"removed": name}


@router.get("/run-trigger-firings")
def list_trigger_firings(
    request: Request,
    _token: Reader,
    name: str | None = None,
    run_id: str | None = None,
    limit: Limit = 50,
) -> list[dict[str, Any]]:
    return _backend(request).list_trigger_firings(name=name, run_id=run_id, limit=limit)
