"""Fixtures of the portal tests: a live server on a workspace, and Debian's Chromium driven by
Playwright (never a downloaded browser).

`.ci/run` installs Chromium (`apt-get install -y chromium`); where it is missing the browser
tests skip with a message saying so (fail, under `.ci/run`). Screenshots go to `.test-artifacts/screenshots/`.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from headrace import Workspace
from tests.servers import LiveServer, make_token

CHROMIUM = os.environ.get("HEADRACE_TEST_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / ".test-artifacts" / "screenshots"
SKIP_BROWSER = (
    f"browser tests need Debian's Chromium at {CHROMIUM}: `apt-get install -y chromium` "
    "(`.ci/run` does), or set HEADRACE_TEST_CHROMIUM"
)


@pytest.fixture
def root(ws: Workspace) -> Path:
    assert ws.path is not None
    return Path(ws.path)


@pytest.fixture
def portal(root: Path) -> Iterator[LiveServer]:
    """The portal of a fresh workspace, auth off (as `headrace ui` serves it)."""
    with LiveServer(root, auth=False) as live:
        yield live


@pytest.fixture
def secured(root: Path) -> Iterator[LiveServer]:
    """The portal with auth on (as `headrace server` serves it)."""
    with LiveServer(root) as live:
        yield live


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        if os.environ.get("HEADRACE_TEST_REQUIRE_BROWSER"):  # CI: a missing browser is a failure
            pytest.fail(SKIP_BROWSER)
        pytest.skip(SKIP_BROWSER)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-background-networking", "--disable-gpu"],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser tab at 1280 px, failing the test on any JavaScript error and on
    anything the portal's Content-Security-Policy blocked (a script, a style, a request)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.on(
        "console",
        lambda message: (
            errors.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    tab.set_default_timeout(15_000)
    yield tab
    context.close()
    assert not errors, f"JavaScript errors or CSP violations on the page: {errors}"


def screenshot(tab: Any, name: str) -> Path:
    """Save a screenshot of the whole page under .test-artifacts/screenshots/NAME.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    tab.screenshot(path=str(path), full_page=True)
    return path


def sign_in(tab: Any, server: LiveServer, root: Path, role: str, name: str | None = None) -> str:
    """Sign `tab` in to `server` with a new token of `role`; returns the token."""
    token = make_token(root, role, name or role)
    tab.goto(f"{server.url}/ui/login")
    tab.get_by_label("API token").fill(token)
    tab.get_by_role("button", name="Sign in").click()
    tab.wait_for_url(f"{server.url}/ui")
    return token


@contextmanager
def counted_queries(server: LiveServer) -> Iterator[list[str]]:
    """The SQL statements the server's store runs inside the block (in the server's threads
    too: the listener is on the engine)."""
    from sqlalchemy import event

    engine = server.app.state.headrace.store.database.engine
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


def wait_for_step(server: LiveServer, run_id: str, name: str) -> str:
    """The id of the step run `name` of `run_id`, once the run has started it."""
    for _ in range(400):
        twin = httpx.get(f"{server.url}/ui/runs/{run_id}.json?live=1").json()
        found = {s["name"]: s["step_run_id"] for s in twin["steps"]}.get(name)
        if found:
            return str(found)
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not start step {name!r} in 20 s")
