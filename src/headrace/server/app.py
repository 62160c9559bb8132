"""`create_app`: the FastAPI application serving one workspace.

Here live the app's plumbing: opening the workspace, the body-size limit, and turning every
error (ours, FastAPI's validation errors, unknown routes, bugs) into the one SDK v1 error shape
of `server.errors`. The routes themselves are in `server.routes`.

Who executes runs depends on `agents` (see `create_app`): by default the workspace's detached
local agent, which `LocalBackend` starts on each submit; `headrace server` instead runs a
supervised pool of agents for the server's lifetime (`engine.pool.AgentPool`), drained by the
lifespan's shutdown, and submits only wake them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from headrace.backend.local import LocalBackend
from headrace.engine.isolation import (
    Isolation,
    Sandbox,
    make_undumpable,
    protect_workspace_files,
)
from headrace.engine.pool import AgentPool
from headrace.errors import ConfigError, HeadraceError
from headrace.server.auth import Authenticator
from headrace.server.errors import ApiError, error_body, status_of
from headrace.server.headers import SecurityHeaders
from headrace.server.limits import RequestLimits
from headrace.server.origins import OriginGuard
from headrace.store.layout import WorkspaceLayout
from headrace.store.records import Status
from headrace.store.workspace_store import WorkspaceStore

__all__ = ["ServerState", "create_app", "open_workspace_store", "prepare_isolation"]

log = logging.getLogger("headrace.server")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass
class ServerState:
    """What the routes share: the workspace, its backend and the token checker (None: no auth)."""

    store: WorkspaceStore
    backend: LocalBackend
    auth: Authenticator | None
    max_body_bytes: int


def open_workspace_store(path: Path, database_url: str | None = None) -> WorkspaceStore:
    """The workspace at `path`; `database_url`, if given, must be the workspace's own."""
    store = WorkspaceStore.open(path)
    if database_url and database_url != (store.config.get("database_url") or store.database.url):
        store.database.dispose()
        raise ConfigError(
            f"--database-url differs from the database of the workspace at {path} (in its "
            "workspace.json); the agent that executes runs reads workspace.json, so both must "
            "agree: omit --database-url, or set database_url in workspace.json."
        )
    return store


def prepare_isolation(root: Path, isolation: Isolation) -> None:
    """Before agents start confined steps: make the workspace's private files the server's
    alone (with a step user), keep this process's environment from steps of the same user,
    and start one confined process, so a setup that cannot run steps is refused now, in
    one line, rather than failing every step. Done once per workspace and settings in a
    process (`headrace server` checks before it says it serves)."""
    if not isolation.enabled or (root, isolation) in _PREPARED:
        return
    if isolation.user is not None:
        protect_workspace_files(root)
    make_undumpable()
    sandbox = Sandbox(isolation, root)
    try:
        sandbox.probe()
    finally:
        sandbox.close()
    _PREPARED.add((root, isolation))


_PREPARED: set[tuple[Path, Isolation]] = set()


class ServedBackend(LocalBackend):
    """A LocalBackend whose runs are executed by the server's own agents: a submit wakes
    them and never starts a detached agent that would outlive the server."""

    def ensure_agent(self) -> bool:
        """Nothing to start: the server's agents run (a submit then only wakes them)."""
        return False


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        "RequestEntityTooLarge",
        f"The request body is larger than the server's limit of {limit} bytes; send less.",
    )


class BodyLimit:
    """Refuse bodies over `limit` bytes: by Content-Length up front, and while reading."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await _send_error(send, _too_large(self.limit))
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _too_large(self.limit)
            return message

        await self.app(scope, limited, send)


async def _send_error(send: Send, error: ApiError) -> None:
    response = _error_response(error.status, error.code, error.message, target=error.target)
    await send(
        {
            "type": "http.response.start",
            "status": response.status_code,
            "headers": response.raw_headers,
        }
    )
    await send({"type": "http.response.body", "body": response.body})


def _error_response(
    status: int, code: str, message: str, *, target: str | None = None, details: Any = None
) -> JSONResponse:
    return JSONResponse(
        error_body(code, message, target=target, details=details), status_code=status
    )


# Pydantic names the member of a union that failed; people need the field.
_UNION_MEMBERS = {"str", "int", "float", "bool", "none"}


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    if parts and parts[-1] in _UNION_MEMBERS:
        parts.pop()
    return ".".join(parts) or "the request body"


def _validation_message(error: dict[str, Any]) -> str:
    loc = tuple(error.get("loc", ()))
    kind = error.get("type", "")
    if kind == "json_invalid":
        reason = (error.get("ctx") or {}).get("error", "invalid JSON")
        position = loc[1] if len(loc) > 1 else "?"
        return f"The request body is not valid JSON ({reason} at character {position})."
    field = _field(loc)
    if kind == "missing":
        if field == "the request body":
            return "The request body is missing; send a JSON object with ExperimentName."
        return f"{field} is required."
    if field == "the request body":
        return (
            'The request body must be a JSON object such as {"ExperimentName": "..."}, '
            "sent with Content-Type: application/json."
        )
    if loc and str(loc[-1]) in _UNION_MEMBERS:
        return f"{field} must be a text, number or true/false value, not a list or an object."
    if kind == "extra_forbidden":
        return f"{field} is not a known field."
    return f"{field}: {error.get('msg', 'invalid value')}."


def _validation_details(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """One detail per distinct problem (a union reports each of its members)."""
    details: list[dict[str, Any]] = []
    seen: set[str] = set()
    for error in errors:
        message = _validation_message(dict(error))
        if message in seen:
            continue
        seen.add(message)
        invalid_json = error.get("type") == "json_invalid"
        target = None if invalid_json else _field(tuple(error.get("loc", ())))
        details.append({"Code": "ValidationError", "Message": message, "Target": target})
    return details


def _install_error_handlers(app: FastAPI) -> None:
    async def on_api_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return _error_response(exc.status, exc.code, exc.message, target=exc.target)

    async def on_headrace_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HeadraceError)
        status, code = status_of(exc)
        if status >= 500:
            log.error("request failed: %s", exc, exc_info=exc)
        return _error_response(status, code, str(exc))

    async def on_validation_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = exc.errors()
        details = _validation_details(errors)
        code = "ValidationError"
        if any(e.get("type") == "json_invalid" for e in errors):
            code = "BadRequest"
        return _error_response(400, code, " ".join(d["Message"] for d in details), details=details)

    async def on_http_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if isinstance(exc.__cause__, ApiError):  # raised while FastAPI read the body
            return await on_api_error(_request, exc.__cause__)
        if exc.status_code == 404:
            return _error_response(
                404, "NotFound", "No such route; see /docs or /openapi.json for the routes."
            )
        if exc.status_code == 405:
            return _error_response(
                405, "MethodNotAllowed", "This route does not accept that HTTP method."
            )
        if exc.status_code == 400 and isinstance(exc.__cause__, RecursionError):
            # Python's parser gives up near 1,000 levels (RequestLimits refuses far less deep
            # bodies first; this is for an app without it).
            return _error_response(
                400,
                "BadRequest",
                "The request body's JSON is nested too deeply (lists and objects inside "
                "each other) for the server to read; flatten the data.",
            )
        if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
            # FastAPI's words when the body is not even text (not UTF-8), unlike broken JSON.
            return _error_response(
                400,
                "BadRequest",
                "The request body is not valid JSON (it is not UTF-8 text); send a JSON "
                "object encoded as UTF-8 with Content-Type: application/json.",
            )
        return _error_response(exc.status_code, "BadRequest", str(exc.detail))

    async def on_unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error", exc_info=exc)
        return _error_response(
            500,
            "InternalServerError",
            "The server failed unexpectedly; the cause is in its log. Please report it.",
        )

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(HeadraceError, on_headrace_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)


def create_app(
    workspace_path: Path,
    *,
    auth: bool = True,
    max_body_bytes: int = 1_000_000,
    database_url: str | None = None,
    agents: int | None = None,
    grace_seconds: float = 30.0,
    step_nice: int = 0,
    step_isolation: Isolation | None = None,
) -> FastAPI:
    """The REST server of the workspace at `workspace_path` (`auth=False`: no tokens needed).

    `agents`: None (default) lets submits start the workspace's detached agent, as in
    embedded use; N >= 1 runs N supervised agents for the app's lifetime, drained on
    shutdown with `grace_seconds` for running steps; 0 means another process runs the
    agents (the uvicorn master of a multi-worker server), so submits only wake them.
    `step_isolation`: how those agents confine steps (None: as their environment says);
    checked here by starting one confined process (`prepare_isolation`).
    """
    from headrace import __version__
    from headrace.server import api, api_mlflow, portal, routes

    if not WorkspaceLayout(Path(workspace_path).absolute()).exists():
        raise ConfigError(
            f"No workspace at {workspace_path}; create one with "
            "`headrace workspace create NAME --path DIR`."
        )
    store = open_workspace_store(Path(workspace_path), database_url)
    backend = LocalBackend(store) if agents is None else ServedBackend(store)
    root = Path(workspace_path).absolute()
    pool = None
    if agents:
        if step_isolation is not None:
            prepare_isolation(root, step_isolation)
        pool = AgentPool(
            root,
            agents,
            grace_seconds=grace_seconds,
            step_nice=step_nice,
            isolation=step_isolation,
        )
    state = ServerState(
        store=store,
        backend=backend,
        auth=Authenticator(store.meta) if auth else None,
        max_body_bytes=max_body_bytes,
    )

    # `headrace server` (agents >= 1) fires the workspace's schedules; with several uvicorn
    # workers (agents == 0 here) the master runs the scheduler (server/run.py).
    schedule_thread = None
    if agents:
        from headrace.engine.scheduler import Scheduler, SchedulerThread

        schedule_thread = SchedulerThread(Scheduler(store, on_fired=backend.start_work))

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if pool is not None:
            pool.start()
        if schedule_thread is not None:
            schedule_thread.start()
        # Runs left queued or running by a stopped server get an agent again.
        elif backend.list_pipeline_runs(statuses=[Status.NOT_STARTED, Status.RUNNING], limit=1):
            backend.ensure_agent()
        try:
            yield
        finally:
            # uvicorn has stopped accepting connections and finished the requests in flight:
            # no new run can be queued. Drain the agents (the grace period for running steps).
            if schedule_thread is not None:
                await asyncio.to_thread(schedule_thread.stop)
            if pool is not None:
                await asyncio.to_thread(pool.stop)
            store.database.dispose()

    app = FastAPI(
        title=f"headrace server: {store.name}",
        version=__version__,
        description="Azure ML SDK v1 pipeline REST submission, served by headrace.",
        lifespan=lifespan,
    )
    app.state.headrace = state
    _install_error_handlers(app)
    # The routes themselves, not included routers (which FastAPI now resolves lazily):
    # `app.routes` then lists every route, and the auth tests walk it.
    app.router.routes.extend(routes.router.routes)
    app.router.routes.extend(api.router.routes)  # the JSON API of RemoteBackend
    app.router.routes.extend(api_mlflow.router.routes)  # MLflow's tracking API
    portal.mount(app, root)  # the web portal under /ui
    app.add_middleware(RequestLimits)  # URL length, JSON nesting: inside the body limit
    app.add_middleware(BodyLimit, limit=max_body_bytes)
    # Outermost last: refusals of other sites' requests carry the security headers too.
    app.add_middleware(OriginGuard, token_free=not auth)
    app.add_middleware(SecurityHeaders)
    _document_errors(app)
    return app


_ERROR_SCHEMA: dict[str, Any] = {
    "title": "ErrorResponse",
    "description": "Every error, as SDK v1 answered it: a code and a message a person can act on.",
    "type": "object",
    "required": ["Error"],
    "properties": {
        "Error": {
            "type": "object",
            "required": ["Code", "Message"],
            "properties": {
                "Code": {"type": "string"},
                "Message": {"type": "string"},
                "Target": {"type": ["string", "null"]},
                "Details": {"type": "array", "items": {"type": "object"}},
            },
        },
        "Correlation": {"type": "object"},
    },
}


def _document_errors(app: FastAPI) -> None:
    """Make /openapi.json say what errors look like: FastAPI documents a 422 with its own
    body, which this server never sends (bad input is a 400 in the one error shape)."""
    from fastapi.openapi.utils import get_openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            for unused in ("HTTPValidationError", "ValidationError"):
                schemas.pop(unused, None)
            schemas["ErrorResponse"] = _ERROR_SCHEMA
            error = {
                "description": "An error (400 bad input, 401/403 token, 404, 409, 413, ...).",
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}
                },
            }
            for operations in document.get("paths", {}).values():
                for operation in operations.values():
                    responses = operation.setdefault("responses", {})
                    responses.pop("422", None)
                    responses.setdefault("default", error)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
