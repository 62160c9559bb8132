"""A real uvicorn on 127.0.0.1 for tests, and API tokens made with the CLI as a user would;
an in-process client of an app for tests that need no socket.

Shared by the server tests and the remote-workspace contract tests.
"""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import uvicorn
from fastapi import FastAPI
from typer.testing import CliRunner

from headrace.cli.main import app as cli_app
from headrace.server.app import create_app
from headrace.server.routes import SUBMIT_PREFIX

__all__ = [
    "RUNNER",
    "LiveServer",
    "ServerProcess",
    "asgi_client",
    "bearer",
    "free_port",
    "make_token",
    "run_async",
    "served_workspace",
]

T = TypeVar("T")

RUNNER = CliRunner()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """uvicorn serving `create_app(...)` in a thread of the test process."""

    def __init__(self, root: Path, **options: Any) -> None:
        self.app = create_app(root, **options)
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=port, log_level="warning", ws="none"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert self.thread.is_alive(), "uvicorn did not start"
            assert time.monotonic() < deadline, "uvicorn did not start in 20 s"
            time.sleep(0.02)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def submit_url(self, pipeline_id: str, workspace: str = "test-ws") -> str:
        prefix = SUBMIT_PREFIX.format(subscription="s", resource_group="rg", workspace=workspace)
        return f"{self.url}{prefix}/PipelineRuns/PipelineSubmit/{pipeline_id}"


def make_token(root: Path, role: str, name: str | None = None, *extra: str) -> str:
    result = RUNNER.invoke(
        cli_app,
        ["token", "create", "--role", role, "--name", name or role, "-w", str(root), *extra],
    )
    assert result.exit_code == 0, result.output
    secret = result.stdout.strip().splitlines()[0]
    assert re.fullmatch(r"hr_[0-9a-f]{12}_\S+", secret), secret
    return secret


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def asgi_client(app: FastAPI, base_url: str = "http://127.0.0.1") -> httpx.AsyncClient:
    """A client of `app` in this process: no socket, no lifespan, no redirects followed."""
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url=base_url, follow_redirects=False)


def run_async(scenario: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """`asyncio.run(scenario())` on a thread of its own: the browser tests' Playwright keeps an
    event loop running on the main thread for the whole session."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(scenario())).result()


class ServerProcess:
    """`headrace server` as a subprocess, run by `python` (any interpreter with headrace),
    with the server's own defaults unless `options` say otherwise."""

    def __init__(
        self,
        root: Path,
        *options: str,
        python: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        import os
        import sys

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        start = "import sys; from headrace.cli.main import main; sys.exit(main())"
        self.argv = [python or sys.executable, "-c", start, "server", "-w", str(root)]
        self.argv += ["--port", str(self.port), *options]
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen[str] | None = None

    def __enter__(self) -> ServerProcess:
        import httpx

        self.process = subprocess.Popen(
            self.argv, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 40
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited: {self.process.communicate()[1]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not start in 40 s"
            time.sleep(0.1)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def __exit__(self, *_: object) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()


def local_or_served(
    how: str, tmp_path: Path, monkeypatch: Any, role: str, max_body_bytes: int
) -> Iterator[Any]:
    """A fresh workspace 'test-ws' under `tmp_path`, opened from its folder (`how` 'local')
    or through a server with a token of `role` and a small body limit (so files cross in
    several chunks); its agents are stopped afterwards."""
    from headrace import Workspace
    from tests.conftest import stop_agents

    root = tmp_path / "ws"
    local = Workspace.create("test-ws", path=root, show_output=False)
    if how == "local":
        yield local
    else:
        with served_workspace(root, monkeypatch, role, max_body_bytes=max_body_bytes) as ws:
            yield ws
    stop_agents(root)


@contextmanager
def served_workspace(
    root: Path, monkeypatch: Any, role: str = "admin", **options: Any
) -> Iterator[Any]:
    """The workspace folder `root` served by a `LiveServer`, opened through it with a token
    of `role`; steps get run tokens for it, as under `headrace server`."""
    from headrace import TokenAuthentication, Workspace

    token = make_token(root, role, f"served-{role}")
    live = LiveServer(root, **options)
    monkeypatch.setenv("HEADRACE_SERVER_URL", live.url)
    with live, Workspace.get("test-ws", url=live.url, auth=TokenAuthentication(token)) as ws:
        yield ws
