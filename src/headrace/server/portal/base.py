"""The portal's plumbing: pages and their JSON twins, sign-in with a session cookie, CSRF.

A page is a GET route registered twice by `page(path)`: at `path` (HTML from a Jinja2
template) and at `path + ".json"` (the same data as JSON, also served at `path` to a request
that accepts JSON and not HTML). A view builds one `data` dict and calls `render`; the twin is
that dict, so what the tests read is what the page shows.

Who is looking (`Viewer`): with auth off everybody is an admin. With auth on, a browser signs in
at /ui/login with an API token and gets a session cookie: `<session id>.<expiry>.<hmac>`, signed
with the workspace's portal key (a file in the workspace folder, made on first use, mode 0600).
The server keeps a row per session (`portal_sessions`, the hash of the session id and its
token): each request looks the session and its token up in one read, so signing out (which
deletes the row) ends that session wherever its cookie was copied, and revoking or expiring a
token ends all of its sessions. The token itself is never in the cookie. Scripts may send
`Authorization: Bearer <token>` instead. Forms carry a CSRF field, an HMAC of the session;
POST routes check it with `checked_form`.

Errors on portal routes are pages too (or JSON error bodies on the twins), never a traceback.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData

from headrace.errors import HeadraceError
from headrace.server.errors import ApiError, error_body, status_of
from headrace.server.portal import formatting
from headrace.store.layout import make_private
from headrace.store.tokens import TokenQueries, TokenRecord, hash_secret

__all__ = [
    "SESSION_COOKIE",
    "PortalError",
    "PortalRoute",
    "PortalState",
    "Viewer",
    "ViewerDep",
    "checked_form",
    "end_session",
    "page",
    "render",
    "router",
    "state",
    "templates",
    "wants_json",
]

log = logging.getLogger("headrace.server")

HERE = Path(__file__).parent
SESSION_COOKIE = "headrace_session"
SESSION_SECONDS = 12 * 3600
ROLE_RANK = {"reader": 0, "submitter": 1, "admin": 2}

F = TypeVar("F", bound=Callable[..., Any])


class PortalError(Exception):
    """An error a portal page shows: an HTTP status and a message naming the fix."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class LoginRequired(Exception):
    """No valid session: browsers go to the sign-in page, JSON clients get a 401."""


@dataclass(frozen=True)
class Viewer:
    """Who is looking at the portal: a token's name and role (None and admin: no auth)."""

    name: str | None
    role: str
    csrf: str
    auth: bool

    def can(self, role: str) -> bool:
        return ROLE_RANK.get(self.role, -1) >= ROLE_RANK[role]


class PortalState:
    """The portal's key (signs sessions and CSRF fields) for one workspace folder."""

    def __init__(self, root: Path) -> None:
        self.key = _portal_key(root / "portal.key")

    def sign(self, text: str) -> str:
        return hmac.new(self.key, text.encode(), hashlib.sha256).hexdigest()

    def new_session(self, meta: TokenQueries, token: TokenRecord, now: float) -> str:
        """Record a new session of `token`; returns the cookie's value."""
        expires = int(now) + SESSION_SECONDS
        if token.expires_at is not None:
            expires = min(expires, int(token.expires_at.timestamp()))
        session_id = secrets.token_hex(16)
        meta.create_portal_session(
            hash_secret(session_id), token.id, datetime.fromtimestamp(expires, timezone.utc)
        )
        body = f"{session_id}.{expires}"
        return f"{body}.{self.sign(body)}"

    def session_id(self, value: str | None, now: float) -> str | None:
        """The session id of a well-signed, unexpired session cookie, else None (a forged
        or stale cookie costs no database read)."""
        if not value or value.count(".") != 2:
            return None
        session_id, expires, signature = value.split(".")
        if not hmac.compare_digest(signature, self.sign(f"{session_id}.{expires}")):
            return None
        if not expires.isdigit() or int(expires) < now:
            return None
        return session_id

    def csrf(self, session: str) -> str:
        return self.sign(f"csrf:{session}")


def _portal_key(path: Path) -> bytes:
    """The key in `path`, made (mode 0600, atomically: several workers may race) if absent;
    a key made readable to others (older versions, a copy) is made private again."""
    make_private(path)
    if not path.exists():
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_hex(32))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process made it first: use theirs
        finally:
            tmp.unlink()
    return bytes.fromhex(path.read_text().strip())


def state(request: Request) -> Any:
    """The server's `ServerState` (store, backend, auth)."""
    return request.app.state.headrace


def _portal(request: Request) -> PortalState:
    portal: PortalState = request.app.state.portal
    return portal


def current_viewer(request: Request) -> Viewer:
    """The dependency of every portal route: who is looking, or LoginRequired."""
    auth = state(request).auth
    portal = _portal(request)
    if auth is None:
        viewer = Viewer(None, "admin", csrf=portal.csrf("anonymous"), auth=False)
    else:
        header = request.headers.get("authorization")
        if header:
            token = auth.check(header, "reader")
            if token.scope_run_id is not None:
                raise PortalError(403, "A step's run token cannot open the portal.")
            viewer = Viewer(token.name, token.role, csrf="", auth=True)
        else:
            cookie = request.cookies.get(SESSION_COOKIE)
            token = _session_token(request, cookie)
            if token is None or cookie is None:
                raise LoginRequired
            viewer = Viewer(token.name, token.role, csrf=portal.csrf(cookie), auth=True)
    request.state.viewer = viewer
    return viewer


def _session_token(request: Request, cookie: str | None) -> TokenRecord | None:
    now = time.time()
    session_id = _portal(request).session_id(cookie, now)
    if session_id is None:
        return None
    when = datetime.fromtimestamp(now, timezone.utc)
    token: TokenRecord | None = state(request).store.meta.find_session_token(
        hash_secret(session_id), when
    )
    if token is None or not token.usable_at(when):  # revoked or expired since sign-in
        return None
    return token


def end_session(request: Request) -> None:
    """Sign out the request's session on the server (its cookie stops working everywhere)."""
    session_id = _portal(request).session_id(request.cookies.get(SESSION_COOKIE), time.time())
    if session_id is not None:
        state(request).store.meta.end_portal_session(hash_secret(session_id))


ViewerDep = Annotated[Viewer, Depends(current_viewer)]


async def checked_form(request: Request, viewer: Viewer, role: str) -> FormData:
    """The posted form, after the CSRF check and the role check (PortalError if either fails)."""
    form = await request.form()
    if viewer.csrf and not hmac.compare_digest(str(form.get("csrf", "")), viewer.csrf):
        raise PortalError(
            403, "The form has expired or did not come from this portal; reload the page and retry."
        )
    if not viewer.can(role):
        raise PortalError(
            403,
            f"Your token {viewer.name!r} has role {viewer.role!r}; this needs {role!r} or "
            "higher. Sign in with another token.",
        )
    return form


def wants_json(request: Request) -> bool:
    if request.url.path.endswith(".json"):
        return True
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


# -- templates -----------------------------------------------------------------------------
templates = Jinja2Templates(directory=HERE / "templates")
formatting.register(templates.env.filters)  # num, count, size, seconds, duration, when
templates.env.filters["short"] = lambda text: (text or "")[:8]
templates.env.filters["status_class"] = lambda status: f"status-{(status or 'unknown').lower()}"
templates.env.globals["quote"] = quote


def render(
    request: Request, template: str, *, title: str, data: dict[str, Any], status: int = 200
) -> Response:
    """The page: `data` as JSON for the twin, else `template` rendered with it."""
    if wants_json(request):
        return JSONResponse(jsonable_encoder(data), status_code=status)
    viewer = getattr(request.state, "viewer", None)
    context = {
        "title": title,
        "data": data,
        "viewer": viewer,
        "workspace": state(request).store.name,
    }
    return templates.TemplateResponse(request, template, context, status_code=status)


def _error_page(request: Request, status: int, message: str) -> Response:
    if wants_json(request):
        code = {401: "Unauthorized", 403: "Forbidden", 404: "NotFound"}.get(status, "BadRequest")
        if status >= 500:
            code = "InternalServerError"
        return JSONResponse(error_body(code, message), status_code=status)
    data = {"status": status, "message": message}
    return render(request, "error.html", title=f"Error {status}", data=data, status=status)


def _to_login(request: Request) -> Response:
    if wants_json(request):
        return JSONResponse(
            error_body(
                "Unauthorized",
                "Sign in at /ui/login, or send 'Authorization: Bearer <token>'.",
            ),
            status_code=401,
        )
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/ui/login?next={quote(target)}", status_code=303)


class PortalRoute(APIRoute):
    """Portal routes answer errors with pages (or JSON errors on twins) and time themselves
    (the `Server-Timing` header: what the benchmark reads as server time)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            started = time.perf_counter()
            try:
                response = await handler(request)
            except LoginRequired:
                response = _to_login(request)
            except RequestValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in exc.errors()
                )
                response = _error_page(request, 400, f"Bad value in the address: {problems}.")
            except PortalError as exc:
                response = _error_page(request, exc.status, exc.message)
            except ApiError as exc:
                response = _error_page(request, exc.status, exc.message)
            except HeadraceError as exc:
                status, _code = status_of(exc)
                if status >= 500:
                    log.error("portal page failed: %s", exc, exc_info=exc)
                response = _error_page(request, status, str(exc))
            except Exception as exc:  # a bug: a page saying so, the traceback in the log
                log.error("portal page failed unexpectedly", exc_info=exc)
                response = _error_page(
                    request, 500, "The page failed unexpectedly; the cause is in the server's log."
                )
            elapsed_ms = (time.perf_counter() - started) * 1000
            response.headers["Server-Timing"] = f"app;dur={elapsed_ms:.1f}"
            return response

        return route


router = APIRouter(prefix="/ui", include_in_schema=False, route_class=PortalRoute)


def page(path: str) -> Callable[[F], F]:
    """Register a GET view at /ui`path` and its JSON twin at /ui`path`.json."""

    def register(view: F) -> F:
        # The twin first: `/runs/{run_id}.json` must not be read as run id "x.json".
        router.add_api_route(path + ".json", view, methods=["GET"])
        router.add_api_route(path, view, methods=["GET"])
        return view

    return register
