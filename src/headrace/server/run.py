"""Starting the server: the bind checks, then uvicorn with the app of one workspace.

The checks come before FastAPI or uvicorn are imported, so a refusal is instant and works
without the `server` extra.
"""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path

from headrace.errors import ConfigError, MissingDependencyError, UserError

__all__ = ["check_bind", "is_loopback", "serve"]

log = logging.getLogger("headrace.server")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, *, auth: bool, workers: int) -> None:
    """Refuse settings that would expose the workspace or that the server cannot honour."""
    if not auth and not is_loopback(host):
        raise ConfigError(
            f"Refusing to serve on {host} with --no-auth: anyone who can reach this machine "
            "could submit runs. Use --host 127.0.0.1, or keep auth on and create a token with "
            "`headrace token create --name NAME --role submitter`."
        )
    if workers != 1:
        raise UserError(
            f"--workers {workers} is not supported yet: run one worker (the default) and put "
            "more servers behind a proxy if needed."
        )


def serve(
    workspace: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    workers: int = 1,
    auth: bool = True,
    database_url: str | None = None,
    max_body_bytes: int = 1_000_000,
) -> None:
    """Serve `workspace` until SIGTERM or SIGINT (uvicorn then stops accepting and drains)."""
    check_bind(host, auth=auth, workers=workers)
    try:
        import uvicorn

        from headrace.server.app import create_app
    except ImportError as exc:
        raise MissingDependencyError(
            f"The server needs FastAPI and uvicorn ({exc.name} is missing); install them with: "
            "pip install 'headrace[server]'"
        ) from exc
    app = create_app(workspace, auth=auth, max_body_bytes=max_body_bytes, database_url=database_url)
    if not auth:
        log.warning("serving %s without authentication (loopback only)", workspace)
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=True)
