"""Shared fixtures: a private HEADRACE_HOME per test, workspaces on SQLite and PostgreSQL,
and cleanup of the detached agents tests start.

PostgreSQL tests run when HEADRACE_TEST_POSTGRES_URL is set (`.ci/run` sets it to the
machine's server); each test gets its own schema, dropped afterwards.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from headrace import Workspace
from tests.objectstores import GcsEmulator

POSTGRES_URL = os.environ.get("HEADRACE_TEST_POSTGRES_URL")
SKIP_PG = (
    "PostgreSQL tests need a server: set HEADRACE_TEST_POSTGRES_URL, for example "
    "postgresql+psycopg://postgres@127.0.0.1:5432/test (`.ci/run` does)"
)


@pytest.fixture(autouse=True)
def headrace_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "headrace-home"
    monkeypatch.setenv("HEADRACE_HOME", str(home))
    # Agents started by a test exit soon after their work; the fixture below stops the rest.
    monkeypatch.setenv("HEADRACE_AGENT_IDLE_SECONDS", "3")
    monkeypatch.chdir(tmp_path)
    return home


def python_as_nobody(code: str) -> subprocess.CompletedProcess[str]:
    """Debian's Python running `code` as the user nobody (the tests run as root): another
    user's process, for what must refuse one."""
    return subprocess.run(
        ["/usr/bin/python3", "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
        user="nobody",
        cwd="/",
        env={"PATH": "/usr/bin:/bin"},
    )


def stop_agents(root: Path) -> None:
    """Stop the detached agent of a workspace folder, if one runs (SIGTERM, then wait).

    Waits for the agent lock to be free: the agent may be a not-yet-reaped child of this
    process, which a signal-0 probe would still see.
    """
    from headrace.engine.launcher import agent_alive

    lock = root / "agent" / "agent.lock"
    if not lock.exists() or not agent_alive(root):
        return
    try:
        pid = int(lock.read_text().strip() or 0)
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError):
        return
    deadline = time.monotonic() + 10
    while agent_alive(root) and time.monotonic() < deadline:
        time.sleep(0.02)


@pytest.fixture(scope="session")
def gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GcsEmulator]:
    """gcp-storage-emulator on 127.0.0.1 (the dev extra installs it), for GCS datastores."""
    server = GcsEmulator(tmp_path_factory.mktemp("gcs") / "gcs.log")
    yield server
    server.stop()


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    """A fresh workspace on SQLite in the test's folder."""
    workspace = Workspace.create("test-ws", path=tmp_path / "ws", show_output=False)
    yield workspace
    stop_agents(tmp_path / "ws")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL to a fresh, empty PostgreSQL schema (dropped after the test)."""
    if not POSTGRES_URL:
        pytest.skip(SKIP_PG)
    import sqlalchemy as sa

    schema = f"hr_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(POSTGRES_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in POSTGRES_URL else "?"
    yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_ws(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Workspace]:
    """A fresh workspace, once on SQLite and once on PostgreSQL."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    workspace = Workspace.create(
        "test-ws", path=tmp_path / "ws", database_url=url, show_output=False
    )
    yield workspace
    stop_agents(tmp_path / "ws")
    workspace.backend.store.close()  # type: ignore[attr-defined]


@pytest.fixture
def aliased() -> Iterator[None]:
    """The `azureml` import alias (headrace.v1) on in this process for one test, off after."""
    from headrace.compat.azureml import alias

    alias.install()
    try:
        yield
    finally:
        alias.uninstall()


@pytest.fixture
def ws_folder(tmp_path: Path) -> Iterator[Path]:
    """Where a test's subprocess creates its workspace; its agent is stopped afterwards."""
    yield tmp_path / "ws"
    stop_agents(tmp_path / "ws")
