"""Hardening of the server and the workspace folder (issue 13, item 9): headers on every
answer, `Allow` on every 405, path parameters the OpenAPI document declares, and files only
their owner can read.

In-process requests (httpx's ASGI transport) where no socket is needed; the browser tests in
tests/portal check that the portal's pages work under its Content-Security-Policy.
"""

from __future__ import annotations

import re
import sqlite3
import stat
from pathlib import Path

import httpx
from fastapi import FastAPI
from starlette.routing import Mount

from headrace import Workspace
from headrace.server.app import create_app
from tests.servers import LiveServer, asgi_client, run_async

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_every_answer_forbids_framing_and_sniffing(ws: Workspace) -> None:
    root = Path(str(ws.path))
    with LiveServer(root) as server:
        answers = {
            "portal page": httpx.get(f"{server.url}/ui/login"),
            "portal twin": httpx.get(f"{server.url}/ui.json"),
            "portal redirect": httpx.get(f"{server.url}/ui/runs"),
            "static file": httpx.get(f"{server.url}/ui/static/app.js"),
            "api": httpx.get(f"{server.url}/health"),
            "api error": httpx.get(f"{server.url}/api/v1/workspace"),
            "unknown route": httpx.get(f"{server.url}/nowhere"),
            "too large": httpx.post(f"{server.url}/api/v1/snapshots", content=b"x" * 1_000_001),
            "docs": httpx.get(f"{server.url}/docs"),
        }
    for what, answer in answers.items():
        headers = answer.headers
        assert headers["x-content-type-options"] == "nosniff", what
        assert headers["x-frame-options"] == "DENY", what
        assert "frame-ancestors 'none'" in headers["content-security-policy"], what
    portal = answers["portal page"].headers["content-security-policy"]
    assert "script-src 'self'" in portal and "style-src 'self'" in portal
    assert "unsafe-inline" not in portal and "object-src 'none'" in portal
    # /docs loads Swagger UI from a CDN: only framing is refused there.
    assert answers["docs"].headers["content-security-policy"] == "frame-ancestors 'none'"


async def _allow_answers(app: FastAPI) -> list[str]:
    """For each route's path, every method it refuses with 405: the problems found."""
    problems: list[str] = []
    paths = sorted({getattr(r, "path", "") for r in app.routes})
    async with asgi_client(app) as http:
        for template in paths:
            path = re.sub(r"\{[^}]+\}", "x", template)
            if any(isinstance(r, Mount) and r.path == template for r in app.routes):
                path += "/app.css"
            answers = {m: await http.request(m, path) for m in METHODS}
            accepted = {m for m, a in answers.items() if a.status_code != 405}
            for method, answer in answers.items():
                if answer.status_code != 405:
                    continue
                allow = answer.headers.get("allow")
                if allow is None or set(allow.split(", ")) != accepted:
                    problems.append(f"{method} {path}: Allow {allow!r}, accepted {accepted}")
    return problems


def test_every_405_says_which_methods_the_route_accepts(ws: Workspace) -> None:
    # With auth on and no token, an accepted method answers 401: nothing runs.
    app = create_app(Path(str(ws.path)))
    problems = run_async(lambda: _allow_answers(app))
    assert not problems, "\n".join(problems)


def test_the_openapi_document_declares_every_path_parameter(ws: Workspace) -> None:
    app = create_app(Path(str(ws.path)))
    document = app.openapi()
    submit_routes = 0
    for path, operations in document["paths"].items():
        wanted = set(re.findall(r"\{([^}:]+)", path))
        for method, operation in operations.items():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == wanted, (method, path, declared)
        if "/PipelineRuns/" in path:
            submit_routes += 1
            assert {"subscription", "resource_group"} <= wanted
    assert submit_routes == 4


def test_database_files_and_the_portal_key_are_private(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    workspace = Workspace.create("private", path=root, show_output=False)
    app = create_app(root)  # the server makes the portal key
    database = root / "headrace.db"
    files = [database, root / "headrace.db-wal", root / "headrace.db-shm", root / "portal.key"]
    for path in files:
        assert path.exists() and mode(path) == 0o600, (path, oct(mode(path)))
    app.state.headrace.store.close()
    workspace.backend.store.close()  # type: ignore[attr-defined]


def test_an_existing_workspace_is_made_private_when_opened(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    Workspace.create("older", path=root, show_output=False).backend.store.close()  # type: ignore[attr-defined]
    create_app(root).state.headrace.store.close()
    database, key = root / "headrace.db", root / "portal.key"
    # As an older version left them: readable by all, the -wal and -shm files open.
    database.chmod(0o644)
    key.chmod(0o644)
    older = sqlite3.connect(database)
    older.execute("PRAGMA journal_mode=WAL")
    older.execute("CREATE TABLE IF NOT EXISTS scratch (x)")
    older.commit()
    files = [database, root / "headrace.db-wal", root / "headrace.db-shm", key]
    try:
        assert all(mode(path) == 0o644 for path in files)
        app = create_app(root)
        for path in files:
            assert mode(path) == 0o600, (path, oct(mode(path)))
        app.state.headrace.store.close()
    finally:
        older.close()
