"""The /api/v1 routes of registered datasets (what `RemoteBackend` needs for `Dataset`,
`ws.datasets` and lineage); included in `server.api`'s router. Records travel in the wire
format of `backend.wire`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from headrace.backend.wire import to_wire
from headrace.errors import UserError
from headrace.server.access import Reader, Submitter
from headrace.server.api_base import ClassNamedErrors, state

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["backend"], route_class=ClassNamedErrors)


class DatasetBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    definition: dict[str, Any]
    name: str = Field(min_length=1, max_length=255)
    description: str | None = Field(None, max_length=100_000)
    tags: dict[str, Any] = Field(default_factory=dict)
    create_new_version: bool = False


def _version(version: str) -> int | None:
    if version == "latest":
        return None
    try:
        return int(version)
    except ValueError:
        raise UserError(f"A dataset version is a number or 'latest', not {version!r}.") from None


@router.get("/datasets")
def list_datasets(request: Request, _token: Reader) -> list[dict[str, Any]]:
    """The latest version of every registered dataset."""
    return [to_wire(d) for d in state(request).backend.list_datasets()]


@router.post("/datasets")
def register_dataset(request: Request, body: DatasetBody, _token: Submitter) -> dict[str, Any]:
    """Register a version. Sources must be datastore paths or URLs: a path of the server's
    machine would let a caller learn what is in the server's files."""
    sources = body.definition.get("sources")
    if isinstance(sources, list) and any(isinstance(s, dict) and "local" in s for s in sources):
        raise UserError(
            "A dataset registered through a server reads datastores or URLs, not paths of the "
            "server's machine; upload the files to a datastore and use (datastore, 'path')."
        )
    record = state(request).backend.register_dataset(
        body.definition,
        name=body.name,
        description=body.description,
        tags=body.tags,
        create_new_version=body.create_new_version,
    )
    return to_wire(record)


@router.get("/datasets/{name}/versions")
def list_dataset_versions(request: Request, name: str, _token: Reader) -> list[dict[str, Any]]:
    return [to_wire(d) for d in state(request).backend.list_dataset_versions(name)]


@router.get("/datasets/{name}/versions/{version}")
def get_dataset(request: Request, name: str, version: str, _token: Reader) -> dict[str, Any]:
    """A version of a dataset by number, or `latest`."""
    return to_wire(state(request).backend.get_dataset(name, _version(version)))


@router.get("/dataset-versions/{dataset_id}")
def get_dataset_by_id(request: Request, dataset_id: str, _token: Reader) -> dict[str, Any]:
    return to_wire(state(request).backend.get_dataset_by_id(dataset_id))


@router.get("/dataset-versions/{dataset_id}/lineage")
def dataset_lineage(request: Request, dataset_id: str, _token: Reader) -> list[dict[str, Any]]:
    """The step runs that produced and consumed a dataset version."""
    return [to_wire(item) for item in state(request).backend.dataset_lineage(dataset_id)]
