"""The /api/v1 routes of registered environments (`Environment.register`, `.get`, `.list`)
that `RemoteBackend` speaks; included in `server.api`'s router. Registering is a
submitter's right (like publishing a pipeline); reading, a reader's. A step's token has
no rule here."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict

from headrace.backend.wire import to_wire
from headrace.server.access import Reader, Submitter
from headrace.server.api_base import ClassNamedErrors, state

__all__ = ["router"]

# Its routes join `server.api`'s router, whose prefix and tag they carry.
router = APIRouter(prefix="/api/v1", tags=["backend"], route_class=ClassNamedErrors)


class EnvironmentBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    definition: dict[str, Any]


@router.get("/environments")
def list_environments(request: Request, _token: Reader) -> list[dict[str, Any]]:
    return [to_wire(e) for e in state(request).backend.list_environments()]


@router.get("/environments/{name}")
def get_environment(
    request: Request,
    name: str,
    _token: Reader,
    version: Annotated[int | None, Query(ge=1, le=2**31)] = None,
) -> dict[str, Any]:
    return to_wire(state(request).backend.get_environment(name, version))


@router.post("/environments/{name}")
def register_environment(
    request: Request, name: str, body: EnvironmentBody, _token: Submitter
) -> dict[str, Any]:
    return to_wire(state(request).backend.register_environment(name, body.definition))
