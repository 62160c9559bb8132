"""Settings read from `HEADRACE_*` environment variables, always at call time.

Nothing is read at import, so tests and subprocesses can change the environment freely.
This module imports nothing from headrace.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "agent_idle_seconds",
    "agent_poll_seconds",
    "agent_requests_enabled",
    "headrace_home",
    "heartbeat_timeout_seconds",
    "outbox_backoff_seconds",
    "outbox_lease_seconds",
    "snapshot_max_bytes",
    "snapshot_max_files",
]


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError:
        return default


def headrace_home() -> Path:
    """Where named workspaces live: `$HEADRACE_HOME`, default `~/.headrace`."""
    raw = os.environ.get("HEADRACE_HOME")
    return Path(raw).expanduser() if raw else Path.home() / ".headrace"


def agent_idle_seconds() -> float:
    """How long a detached local agent waits with nothing to do before it exits."""
    return _float("HEADRACE_AGENT_IDLE_SECONDS", 60.0)


def agent_requests_enabled() -> bool:
    """Whether the SDK hands submits and run waits to a warm agent over its request socket
    (engine/agentsocket.py); `HEADRACE_AGENT_REQUESTS=0` makes it open the store itself."""
    raw = os.environ.get("HEADRACE_AGENT_REQUESTS", "1")
    return raw.strip().lower() not in {"0", "false", "no"}


def step_log_server_enabled() -> bool:
    """Whether local steps' output goes to the shared log server (engine/logreader.py);
    `HEADRACE_STEP_LOG_SERVER=0` makes every step fork a logger of its own."""
    raw = os.environ.get("HEADRACE_STEP_LOG_SERVER", "1")
    return raw.strip().lower() not in {"0", "false", "no"}


def agent_poll_seconds() -> float:
    """How often an agent looks for new runs and cancel requests."""
    return _float("HEADRACE_AGENT_POLL_SECONDS", 0.05)


def heartbeat_timeout_seconds() -> float:
    """After this long without a heartbeat, another agent may take a running run over."""
    return _float("HEADRACE_HEARTBEAT_TIMEOUT_SECONDS", 30.0)


def snapshot_max_bytes() -> int:
    """Source folders bigger than this are snapshotted with a warning (SDK v1 refused 300 MB)."""
    return int(_float("HEADRACE_SNAPSHOT_WARN_BYTES", 300 * 1024 * 1024))


def snapshot_max_files() -> int:
    """Source folders with more files than this are snapshotted with a warning."""
    return int(_float("HEADRACE_SNAPSHOT_WARN_FILES", 2000))


def outbox_backoff_seconds() -> float:
    """The first wait before a failed notification or trigger is tried again (doubling
    after each failure, at most 5 minutes)."""
    return _float("HEADRACE_OUTBOX_BACKOFF_SECONDS", 5.0)


def outbox_lease_seconds() -> float:
    """How long a sender holds a notification or trigger it works on; one whose sender died
    is taken over after this."""
    return _float("HEADRACE_OUTBOX_LEASE_SECONDS", 120.0)
