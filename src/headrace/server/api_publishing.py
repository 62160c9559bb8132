"""The /api/v1 routes of published pipelines and pipeline endpoints that `RemoteBackend`
needs beyond `server.routes`; included in `server.api`'s router. Documents are the same as
the ones `server.routes` answers (`server.schemas`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from headrace.backend.wire import submission_to_wire
from headrace.server.access import Reader, Submitter
from headrace.server.api_base import ClassNamedErrors, parse_graph, state
from headrace.server.routes import _pipeline_url
from headrace.server.schemas import endpoint_document, published_pipeline_document

__all__ = ["router"]

# Its routes join `server.api`'s router, whose prefix and tag they carry.
router = APIRouter(prefix="/api/v1", tags=["backend"], route_class=ClassNamedErrors)


class PublishBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    graph: dict[str, Any]
    name: str = Field(min_length=1, max_length=255)
    description: str | None = None
    version: str | None = Field(None, max_length=255)
    continue_on_step_failure: bool = False
    source_run_id: str | None = None


@router.post("/published-pipelines")
def publish_pipeline(request: Request, body: PublishBody, _token: Submitter) -> dict[str, Any]:
    record = state(request).backend.publish_pipeline(
        parse_graph(body.graph),
        name=body.name,
        description=body.description,
        version=body.version,
        continue_on_step_failure=body.continue_on_step_failure,
        source_run_id=body.source_run_id,
    )
    return published_pipeline_document(record, _pipeline_url(request, record.id))


class StatusBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: str = Field(min_length=1)


@router.patch("/published-pipelines/{pipeline_id}")
def set_published_pipeline_status(
    request: Request, pipeline_id: str, body: StatusBody, _token: Submitter
) -> dict[str, Any]:
    record = state(request).backend.set_published_pipeline_status(pipeline_id, body.status)
    return published_pipeline_document(record, _pipeline_url(request, record.id))


class PublishedSubmitBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    experiment_name: str = Field(min_length=1, max_length=255)
    parameters: dict[str, Any] | None = None
    tags: dict[str, Any] | None = None
    description: str | None = None
    run_source: str = Field("SDK", max_length=64)
    continue_on_step_failure: bool | None = None
    data_path_assignments: dict[str, Any] | None = None


@router.post("/published-pipelines/{pipeline_id}/runs")
def submit_published_pipeline(
    request: Request, pipeline_id: str, body: PublishedSubmitBody, _token: Submitter
) -> dict[str, Any]:
    submission = state(request).backend.submit_published_pipeline(
        pipeline_id,
        experiment_name=body.experiment_name,
        parameters=body.parameters,
        tags=body.tags,
        description=body.description,
        run_source=body.run_source,
        continue_on_step_failure=body.continue_on_step_failure,
        data_path_assignments=body.data_path_assignments,
    )
    return submission_to_wire(submission)


class EndpointBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=255)
    description: str | None = None
    pipeline_id: str = Field(min_length=1)


@router.post("/pipeline-endpoints")
def create_pipeline_endpoint(
    request: Request, body: EndpointBody, _token: Submitter
) -> dict[str, Any]:
    record = state(request).backend.create_pipeline_endpoint(
        name=body.name, description=body.description, pipeline_id=body.pipeline_id
    )
    return endpoint_document(record)


@router.get("/pipeline-endpoints/by-name/{name}")
def get_pipeline_endpoint_by_name(request: Request, name: str, _token: Reader) -> dict[str, Any]:
    return endpoint_document(state(request).backend.get_pipeline_endpoint(name=name))


@router.get("/pipeline-endpoints/{endpoint_id}")
def get_pipeline_endpoint(request: Request, endpoint_id: str, _token: Reader) -> dict[str, Any]:
    return endpoint_document(state(request).backend.get_pipeline_endpoint(id=endpoint_id))


class VersionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pipeline_id: str = Field(min_length=1)
    make_default: bool = False


@router.post("/pipeline-endpoints/{endpoint_id}/versions")
def add_pipeline_endpoint_version(
    request: Request, endpoint_id: str, body: VersionBody, _token: Submitter
) -> dict[str, Any]:
    record = state(request).backend.add_pipeline_endpoint_version(
        endpoint_id, body.pipeline_id, body.make_default
    )
    return endpoint_document(record)


class DefaultBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: str = Field(min_length=1)


@router.post("/pipeline-endpoints/{endpoint_id}/default")
def set_pipeline_endpoint_default(
    request: Request, endpoint_id: str, body: DefaultBody, _token: Submitter
) -> dict[str, Any]:
    record = state(request).backend.set_pipeline_endpoint_default(endpoint_id, body.version)
    return endpoint_document(record)


class EndpointUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, max_length=255)
    description: str | None = None
    status: str | None = None


@router.patch("/pipeline-endpoints/{endpoint_id}")
def update_pipeline_endpoint(
    request: Request, endpoint_id: str, body: EndpointUpdate, _token: Submitter
) -> dict[str, Any]:
    record = state(request).backend.update_pipeline_endpoint(
        endpoint_id, name=body.name, description=body.description, status=body.status
    )
    return endpoint_document(record)
