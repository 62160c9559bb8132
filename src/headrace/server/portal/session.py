"""Signing in and out of the portal, and its home page."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Form, Request, Response
from fastapi.responses import RedirectResponse

from headrace.server.errors import ApiError
from headrace.server.portal.base import (
    SESSION_COOKIE,
    SESSION_SECONDS,
    ViewerDep,
    checked_form,
    end_session,
    page,
    render,
    router,
    state,
)
from headrace.server.portal.shapes import run_row

__all__: list[str] = []

HOME_RUNS = 25


@page("")
def home(request: Request, _viewer: ViewerDep) -> Response:
    """Recent runs across experiments."""
    runs = state(request).backend.list_pipeline_runs(limit=HOME_RUNS)
    data = {"runs": [run_row(run) for run in runs]}
    return render(request, "home.html", title="Home", data=data)


def _safe_next(target: str | None) -> str:
    """Where to go after signing in: only a portal page of this server (no open redirect)."""
    if target and target.startswith("/ui") and not target.startswith("//"):
        return target
    return "/ui"


@router.get("/login")
def login_form(request: Request, next: str | None = None) -> Response:
    if state(request).auth is None:
        return RedirectResponse(_safe_next(next), status_code=303)
    data = {"next": _safe_next(next), "error": None}
    return render(request, "login.html", title="Sign in", data=data)


@router.post("/login")
def login(
    request: Request,
    token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/ui",
) -> Response:
    auth = state(request).auth
    target = _safe_next(next)
    if auth is None:
        return RedirectResponse(target, status_code=303)
    try:
        record = auth.check(f"Bearer {token.strip()}", "reader")
        if record.scope_run_id is not None:
            raise ApiError(403, "Forbidden", "A step's run token cannot open the portal.")
    except ApiError as exc:
        data = {"next": target, "error": exc.message}
        return render(request, "login.html", title="Sign in", data=data, status=exc.status)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        request.app.state.portal.new_session(state(request).store.meta, record, time.time()),
        max_age=SESSION_SECONDS,
        path="/ui",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout")
async def logout(request: Request, viewer: ViewerDep) -> Response:
    await checked_form(request, viewer, "reader")
    end_session(request)
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/ui")
    return response
