"""Starting the server: the bind checks, then uvicorn with the app of one workspace.

The checks come before FastAPI or uvicorn are imported, so a refusal is instant and works
without the `server` extra.

With one worker (the default) the app's lifespan runs the agent pool. With `workers > 1`,
uvicorn's master process starts the workers from an import string, so the pool runs in the
master, once, around `uvicorn.run`, and each worker's app only wakes the agents: uvicorn's
master handles SIGTERM by stopping its workers (no new submissions) and then returns, and
the pool is drained after that.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headrace.errors import ConfigError, MissingDependencyError, UserError

if TYPE_CHECKING:
    from fastapi import FastAPI

    from headrace.engine.isolation import Isolation

__all__ = [
    "STEP_NICE",
    "app_from_environment",
    "check_bind",
    "is_loopback",
    "serve",
    "serve_ui",
    "step_isolation",
]

log = logging.getLogger("headrace.server")

# How the master hands the app's settings to uvicorn's worker processes.
WORKER_SETTINGS = "HEADRACE_SERVER_WORKER_SETTINGS"
# A served workspace's steps run this much nicer than the server (`headrace server --step-nice`).
STEP_NICE = 10


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _connect_host(host: str) -> str:
    """How a process on this machine reaches a server bound to `host`."""
    if host in ("0.0.0.0", ""):  # noqa: S104 (comparing, not binding)
        return "127.0.0.1"
    if host in ("::", "[::]"):
        return "[::1]"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def check_bind(host: str, *, auth: bool, workers: int, agents: int = 1) -> None:
    """Refuse settings that would expose the workspace or that the server cannot honour."""
    if not auth and not is_loopback(host):
        raise ConfigError(
            f"Refusing to serve on {host} with --no-auth: anyone who can reach this machine "
            "could submit runs. Use --host 127.0.0.1, or keep auth on and create a token with "
            "`headrace token create --name NAME --role submitter`."
        )
    if workers < 1:
        raise UserError(f"--workers {workers}: a server needs at least one worker process.")
    if agents < 1:
        raise UserError(
            f"--agents {agents}: a server needs at least one agent to execute runs; use "
            "--agents 1 (the default) or more."
        )


def step_isolation(mode: str, step_user: str | None, *, auth: bool) -> Isolation:
    """How a server's agents confine steps (docs/security.md).

    With auth, `auto` is Landlock where the kernel has it plus user `nobody` when the server
    runs as root; a server where neither is possible is refused unless told `off`, since
    every submitter's step could then read the workspace's keys and database. Without auth
    (loopback, one user who is admin anyway) `auto` means off.
    """
    from headrace.engine.isolation import resolve

    if mode == "auto" and not auth and step_user is None:
        mode = "off"
    isolation = resolve(mode, step_user, default_user=True)
    if mode == "auto" and auth and not isolation.enabled:
        raise ConfigError(
            "Refusing to serve with token auth: steps would run unconfined as the server's "
            "user and could read the workspace's keys and database (this kernel has no "
            "Landlock and the server does not run as root). Run on Linux 5.19 or later, or "
            "as root with --step-user NAME, or accept it with --step-isolation off."
        )
    return isolation


def app_from_environment() -> FastAPI:
    """The app of one uvicorn worker of a multi-worker server (settings from the master)."""
    from headrace.server.app import create_app

    settings: dict[str, Any] = json.loads(os.environ[WORKER_SETTINGS])
    return create_app(
        Path(settings["workspace"]),
        auth=settings["auth"],
        max_body_bytes=settings["max_body_bytes"],
        database_url=settings["database_url"],
        agents=0,  # the master runs them
    )


def _import_server() -> Any:
    try:
        import fastapi  # noqa: F401 (the app needs it; missing, it is said here)
        import uvicorn
    except ImportError as exc:
        raise MissingDependencyError(
            f"The server needs FastAPI and uvicorn ({exc.name} is missing); install them with: "
            "pip install 'headrace[server]'"
        ) from exc
    return uvicorn


def _listen(host: str, port: int) -> socket.socket:
    """A socket bound to host:port, or ConfigError saying the port is taken (before anything
    claims the portal is there)."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"Port {port} on {host} is already in use (another `headrace ui` or server?); "
                "choose another with --port N, or stop what listens there."
            ) from exc
        raise ConfigError(f"Cannot listen on {host}:{port}: {exc.strerror}.") from exc
    sock.listen(128)
    return sock


def serve_ui(
    workspace: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8766,
    ready: Callable[[str], None] | None = None,
) -> None:
    """The portal of a workspace folder for its owner: no tokens, loopback only, and runs
    submitted from it executed by the workspace's own detached agent (as SDK submits are).
    `ready(url)` is called once the port is held and the app built, before serving: a missing
    server extra or a busy port is an error before any URL is announced."""
    if not is_loopback(host):
        raise ConfigError(
            f"Refusing to serve the portal on {host}: `headrace ui` needs no token, so it "
            "listens on loopback addresses only (127.0.0.1). To share the portal, run "
            "`headrace server`, where people sign in with API tokens."
        )
    uvicorn = _import_server()
    from headrace.server.app import create_app

    sock = _listen(host, port)
    try:
        app = create_app(workspace, auth=False, agents=None)
        if ready is not None:
            ready(f"http://{_connect_host(host)}:{sock.getsockname()[1]}/ui")
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        server.run(sockets=[sock])
    finally:
        sock.close()


def serve(
    workspace: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    workers: int = 1,
    auth: bool = True,
    database_url: str | None = None,
    max_body_bytes: int = 1_000_000,
    agents: int = 1,
    grace_seconds: float = 30.0,
    step_nice: int = STEP_NICE,
    isolation: Isolation | None = None,
) -> None:
    """Serve `workspace` until SIGTERM or SIGINT: uvicorn stops accepting and finishes the
    requests in flight, then the agents drain (running steps get `grace_seconds`). Steps run
    `step_nice` nicer than the server, so requests are answered first while steps keep the
    cores busy. `isolation`: how steps are confined (default: `step_isolation("auto", ...)`).
    """
    check_bind(host, auth=auth, workers=workers, agents=agents)
    if isolation is None:
        isolation = step_isolation("auto", None, auth=auth)
    # The agents started below (and their steps) inherit this: each step gets the URL and a
    # token scoped to its run, to log metrics and files through the server.
    os.environ["HEADRACE_SERVER_URL"] = f"http://{_connect_host(host)}:{port}"
    uvicorn = _import_server()
    from headrace.server.app import create_app

    if not auth:
        log.warning("serving %s without authentication (loopback only)", workspace)
    if workers == 1:
        app = create_app(
            workspace,
            auth=auth,
            max_body_bytes=max_body_bytes,
            database_url=database_url,
            agents=agents,
            grace_seconds=grace_seconds,
            step_nice=step_nice,
            step_isolation=isolation,
        )
        uvicorn.run(app, host=host, port=port, log_level="info", access_log=True)
        return
    from headrace.engine.pool import AgentPool
    from headrace.server.app import open_workspace_store, prepare_isolation

    # Checked here, in the master, so a wrong workspace or URL is one clear error.
    open_workspace_store(workspace, database_url).database.dispose()
    prepare_isolation(Path(workspace).absolute(), isolation)
    os.environ[WORKER_SETTINGS] = json.dumps(
        {
            "workspace": str(Path(workspace).absolute()),
            "auth": auth,
            "max_body_bytes": max_body_bytes,
            "database_url": database_url,
        }
    )
    pool = AgentPool(
        Path(workspace).absolute(),
        agents,
        grace_seconds=grace_seconds,
        step_nice=step_nice,
        isolation=isolation,
    )
    pool.start()
    from headrace.engine.launcher import wake_agent
    from headrace.engine.scheduler import Scheduler, SchedulerThread

    # The workers only wake the agents; the master fires the schedules.
    store = open_workspace_store(workspace, database_url)
    schedules = SchedulerThread(Scheduler(store, on_fired=lambda: wake_agent(store.root))).start()
    try:
        uvicorn.run(
            "headrace.server.run:app_from_environment",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="info",
            access_log=True,
        )
    finally:
        schedules.stop()
        store.close()
        pool.stop()
