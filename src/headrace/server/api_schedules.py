"""The /api/v1 routes of schedules that `RemoteBackend` speaks, and SDK v1's read-only
`Schedules` routes under the submit prefix; included in `server.api`'s router.

Reading is for readers; creating, changing, enabling and disabling for submitters (a
schedule submits runs). A step's run token may do neither: a step has no business
scheduling more work behind the workspace's back.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from headrace.backend.wire import to_wire
from headrace.engine.recurrence import describe
from headrace.sdk.published import SUBMIT_PREFIX
from headrace.server.access import Reader, Submitter
from headrace.server.api_base import ClassNamedErrors, state
from headrace.server.routes import ResourceGroup, Subscription, check_workspace
from headrace.store.records import ScheduleRecord

__all__ = ["router", "v1_router"]

router = APIRouter(prefix="/api/v1", tags=["backend"], route_class=ClassNamedErrors)
v1_router = APIRouter()

_TEXT = 64 * 1024


class ScheduleFields(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=255)
    experiment_name: str = Field(min_length=1, max_length=255)
    pipeline_id: str | None = Field(None, max_length=36)
    pipeline_endpoint_id: str | None = Field(None, max_length=36)
    recurrence: dict[str, Any] | None = None
    description: str | None = Field(None, max_length=_TEXT)
    pipeline_parameters: dict[str, Any] = Field(default_factory=dict)
    datastore_name: str | None = Field(None, max_length=255)
    polling_interval: float = 5
    data_path_parameter_name: str | None = Field(None, max_length=255)
    continue_on_step_failure: bool | None = None
    path_on_datastore: str | None = Field(None, max_length=1024)
    include_subfolders: bool = False
    run_per: str = Field("file", max_length=16)
    catch_up: str = Field("latest", max_length=16)


class ScheduleChanges(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=255)
    description: str | None = Field(None, max_length=_TEXT)
    recurrence: dict[str, Any] | None = None
    pipeline_parameters: dict[str, Any] | None = None
    status: str | None = Field(None, max_length=32)
    datastore_name: str | None = Field(None, max_length=255)
    polling_interval: float | None = None
    data_path_parameter_name: str | None = Field(None, max_length=255)
    continue_on_step_failure: bool | None = None
    path_on_datastore: str | None = Field(None, max_length=1024)
    experiment_name: str | None = Field(None, min_length=1, max_length=255)
    catch_up: str | None = Field(None, max_length=16)


@router.get("/schedules")
def list_schedules(
    request: Request,
    _token: Reader,
    active_only: bool = True,
    pipeline_id: str | None = None,
    pipeline_endpoint_id: str | None = None,
) -> list[dict[str, Any]]:
    records = state(request).backend.list_schedules(
        active_only=active_only,
        pipeline_id=pipeline_id,
        pipeline_endpoint_id=pipeline_endpoint_id,
    )
    return [to_wire(r) for r in records]


@router.post("/schedules")
def create_schedule(request: Request, body: ScheduleFields, _token: Submitter) -> dict[str, Any]:
    return to_wire(state(request).backend.create_schedule(**body.model_dump()))


@router.get("/schedules/{schedule_id}")
def get_schedule(request: Request, schedule_id: str, _token: Reader) -> dict[str, Any]:
    return to_wire(state(request).backend.get_schedule(schedule_id))


@router.patch("/schedules/{schedule_id}")
def update_schedule(
    request: Request, schedule_id: str, body: ScheduleChanges, _token: Submitter
) -> dict[str, Any]:
    changes = body.model_dump(exclude_none=True)
    return to_wire(state(request).backend.update_schedule(schedule_id, **changes))


@router.get("/schedules/{schedule_id}/runs")
def list_schedule_runs(
    request: Request,
    schedule_id: str,
    _token: Reader,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    records = state(request).backend.list_schedule_runs(schedule_id, limit)
    return [to_wire(r) for r in records]


# -- SDK v1's Schedules routes (read-only) -----------------------------------------------------
def schedule_document(record: ScheduleRecord) -> dict[str, Any]:
    """A schedule as SDK v1's REST API spelled it (PascalCase)."""
    recurrence = record.recurrence
    return {
        "Id": record.id,
        "Name": record.name,
        "Description": record.description,
        "PipelineId": record.pipeline_id,
        "PipelineEndpointId": record.pipeline_endpoint_id,
        "ExperimentName": record.experiment_name,
        "EntityStatus": record.status,
        "ProvisioningStatus": "Completed",
        "Recurrence": None
        if recurrence is None
        else {
            "Frequency": recurrence["frequency"],
            "Interval": recurrence["interval"],
            "StartTime": recurrence.get("start_time"),
            "TimeZone": recurrence.get("time_zone") or "UTC",
            "Hours": recurrence.get("hours"),
            "Minutes": recurrence.get("minutes"),
            "WeekDays": recurrence.get("week_days"),
            "Cron": recurrence.get("cron"),
            "Description": describe(recurrence),
        },
        "DataStoreTriggerInfo": None
        if record.datastore_name is None
        else {
            "DataStoreName": record.datastore_name,
            "PathOnDataStore": record.path_on_datastore,
            "PollingInterval": record.polling_interval,
            "DataPathParameterName": record.data_path_parameter_name,
        },
        "PipelineParameterAssignments": record.pipeline_parameters,
        "ContinueRunOnStepFailure": record.continue_on_step_failure,
        "NextRunTime": None if record.next_fire_at is None else record.next_fire_at.isoformat(),
        "LastError": (record.last_error or {}).get("message"),
        "CreatedDate": record.created_at.isoformat(),
    }


@v1_router.get(SUBMIT_PREFIX + "/Schedules", tags=["sdk-v1"])
def v1_list_schedules(
    request: Request,
    subscription: Subscription,
    resource_group: ResourceGroup,
    workspace: str,
    _token: Reader,
    active_only: bool = True,
) -> list[dict[str, Any]]:
    check_workspace(request, workspace)
    records = state(request).backend.list_schedules(active_only=active_only)
    return [schedule_document(r) for r in records]


@v1_router.get(SUBMIT_PREFIX + "/Schedules/{schedule_id}", tags=["sdk-v1"])
def v1_get_schedule(
    request: Request,
    subscription: Subscription,
    resource_group: ResourceGroup,
    workspace: str,
    schedule_id: str,
    _token: Reader,
) -> dict[str, Any]:
    check_workspace(request, workspace)
    return schedule_document(state(request).backend.get_schedule(schedule_id))
