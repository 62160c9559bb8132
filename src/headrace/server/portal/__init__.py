"""The web portal: server-rendered pages of runs, steps, pipelines, models and datastores,
each with a JSON twin, served under /ui by `headrace server` and `headrace ui`.

`mount(app, root)` adds it to an app. The plumbing (twins, sign-in, CSRF, errors) is in
`base`; each module registers its pages on `base.router` when imported, below.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from headrace.server.portal import (
    compare,
    datasets,
    datastores,
    metrics,
    models,
    notifications,
    publishing,
    run_pages,
    runs,
    schedules,
    session,
    step_pages,
)
from headrace.server.portal.base import HERE, PortalError, PortalState, ViewerDep, router

__all__ = ["mount"]

_PAGE_MODULES = (
    session,
    runs,
    run_pages,
    step_pages,
    metrics,
    compare,
    publishing,
    models,
    datastores,
    datasets,
    schedules,
    notifications,
)


@router.get("/")
def _slash() -> Response:
    return RedirectResponse("/ui", status_code=308)


@router.get("/{rest:path}")
def _unknown(_request: Request, _viewer: ViewerDep, rest: str) -> Response:
    raise PortalError(404, f"There is no portal page /ui/{rest}; start from the home page /ui.")


def mount(app: FastAPI, root: Path) -> None:
    """Serve the portal of the workspace folder `root` from `app`."""
    app.state.portal = PortalState(root)
    app.mount("/ui/static", StaticFiles(directory=HERE / "static"), name="portal-static")
    app.router.routes.extend(router.routes)  # listed in app.routes (the auth tests walk it)
