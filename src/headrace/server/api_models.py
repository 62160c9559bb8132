"""The /api/v1 routes of the model registry that `RemoteBackend` speaks; included in
`server.api`'s router.

Reads (`SharedReader`) are open to readers and to a step's run token, whatever its run: a
scoring step's `Model.get_model_path` reads models other runs registered. Registering from
a run's files is `POST /runs/{run_id}/models` (`RunWriter`: a step's token for its own run);
registering uploaded files (`POST /models`, whose contents arrive as snapshot blobs),
changing and deleting are for submitters.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from headrace.backend.wire import to_wire
from headrace.errors import ModelNotFoundError
from headrace.server.access import RunWriter, SharedReader, Submitter
from headrace.server.api_base import ClassNamedErrors, state
from headrace.store.datastores import clean_relative_path
from headrace.store.models import check_model_name, model_folder

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["backend"], route_class=ClassNamedErrors)

_TEXT = 64 * 1024  # a description's limit


class DatasetLink(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scenario: str = Field("training", max_length=255)
    id: str | None = Field(None, max_length=255)
    name: str | None = Field(None, max_length=255)
    version: int | str | None = None


class ModelFields(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=255)
    description: str | None = Field(None, max_length=_TEXT)
    tags: dict[str, Any] = Field(default_factory=dict)
    properties: dict[str, Any] = Field(default_factory=dict)
    datasets: list[DatasetLink] = Field(default_factory=list, max_length=1000)

    def lineage(self) -> list[dict[str, Any]]:
        return [d.model_dump() for d in self.datasets]


class UploadedModel(ModelFields):
    root: str = Field(min_length=1, max_length=255)
    is_folder: bool
    files: dict[str, str]  # path below root ('' for a file model) -> sha256 of a blob


class RunModel(ModelFields):
    path: str = Field(min_length=1, max_length=1024)


class ModelChanges(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tags: dict[str, Any] | None = None
    properties: dict[str, Any] | None = None
    description: str | None = Field(None, max_length=_TEXT)


def _pairs(values: list[str] | None) -> list[Any] | None:
    """`?tag=key` / `?tag=key=value` as SDK v1's filter list."""
    if not values:
        return None
    return [v.split("=", 1) if "=" in v else v for v in values]


def _version(version: str) -> int:
    if not version.isdigit() or len(version) > 12:
        raise ModelNotFoundError(f"No model version {version[:20]!r}: versions are 1, 2, ...")
    return int(version)


@router.get("/models")
def list_models(
    request: Request,
    _token: SharedReader,
    name: str | None = None,
    tag: Annotated[list[str] | None, Query()] = None,
    prop: Annotated[list[str] | None, Query(alias="property")] = None,
    run_id: Annotated[str | None, Query(alias="runId")] = None,
    dataset_id: Annotated[str | None, Query(alias="datasetId")] = None,
    latest: bool = False,
) -> list[dict[str, Any]]:
    """Registered model versions by name, newest first; `?tag=key` or `?tag=key=value`
    (repeated: all of them), the same for `?property=`, `?latest=true`: the newest of each."""
    records = state(request).backend.list_models(
        name=name,
        tags=_pairs(tag),
        properties=_pairs(prop),
        run_id=run_id,
        dataset_id=dataset_id,
        latest=latest,
    )
    return [to_wire(r) for r in records]


@router.post("/models")
def register_model(request: Request, body: UploadedModel, _token: Submitter) -> dict[str, Any]:
    """Register files uploaded as snapshot blobs (`Model.register` on a remote workspace)."""
    record = state(request).backend.register_model_blobs(
        check_model_name(body.name),
        root=body.root,
        is_folder=body.is_folder,
        files=body.files,
        description=body.description,
        tags=body.tags,
        properties=body.properties,
        datasets=body.lineage(),
    )
    return to_wire(record)


@router.post("/runs/{run_id}/models")
def register_run_model(
    request: Request, run_id: str, body: RunModel, _token: RunWriter
) -> dict[str, Any]:
    """Register a file or folder of the run's files (`run.register_model`)."""
    record = state(request).backend.register_run_model(
        run_id,
        check_model_name(body.name),
        body.path,
        description=body.description,
        tags=body.tags,
        properties=body.properties,
        datasets=body.lineage(),
    )
    return to_wire(record)


@router.get("/models/{name}")
def get_latest_model(request: Request, name: str, _token: SharedReader) -> dict[str, Any]:
    return to_wire(state(request).backend.get_model(name))


@router.get("/models/{name}/versions/{version}")
def get_model(request: Request, name: str, version: str, _token: SharedReader) -> dict[str, Any]:
    return to_wire(state(request).backend.get_model(name, _version(version)))


@router.patch("/models/{name}/versions/{version}")
def update_model(
    request: Request, name: str, version: str, body: ModelChanges, _token: Submitter
) -> dict[str, Any]:
    record = state(request).backend.update_model(
        name,
        _version(version),
        tags=body.tags,
        properties=body.properties,
        description=body.description,
    )
    return to_wire(record)


@router.delete("/models/{name}/versions/{version}")
def delete_model(request: Request, name: str, version: str, _token: Submitter) -> dict[str, Any]:
    state(request).backend.delete_model(name, _version(version))
    return {"deleted": f"{name}:{version}"}


@router.get("/models/{name}/versions/{version}/location")
def model_location(
    request: Request, name: str, version: str, _token: SharedReader
) -> dict[str, Any]:
    """Where the server keeps the version's file or folder: a step on the server's machine
    reads it there in place (a confined step may read the registry, nothing else)."""
    backend = state(request).backend
    path = backend.model_local_path(backend.get_model(name, _version(version)))
    return {"path": None if path is None else str(path)}


@router.get("/models/{name}/versions/{version}/files/{path:path}")
def download_model_file(
    request: Request, name: str, version: str, path: str, _token: SharedReader
) -> Response:
    """One file of a model version, streamed (its path as the version's `files` lists it)."""
    backend = state(request).backend
    record = backend.get_model(name, _version(version))
    rel = clean_relative_path(path, what="model file name")
    if rel not in {str(f[0]) for f in record.files}:
        raise ModelNotFoundError(f"Model {record.id} has no file {path!r}.")
    return FileResponse(model_folder(state(request).store.artifacts, name, record.version) / rel)
