"""Making sure a local agent serves a workspace folder.

The agent holds an exclusive lock on `<workspace>/agent/agent.lock` for as long as it runs.
`ensure_agent` tries that lock: if it can take it, no agent is alive, so it starts one,
detached in its own session, so it outlives the submitting process (a notebook can submit
and close). Submits and CLI calls call it, which is also how a run whose agent was killed
gets resumed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

__all__ = ["agent_alive", "ensure_agent", "hold_agent_lock"]

_spawned: list[subprocess.Popen[bytes]] = []


def _lock_path(workspace: Path) -> Path:
    folder = Path(workspace) / "agent"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "agent.lock"


@contextlib.contextmanager
def hold_agent_lock(workspace: Path) -> Iterator[bool]:
    """Take the workspace's agent lock without waiting; yields whether it was taken."""
    fd = os.open(_lock_path(workspace), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def agent_alive(workspace: Path) -> bool:
    with hold_agent_lock(workspace) as taken:
        return not taken


def ensure_agent(workspace: Path) -> bool:
    """Start a detached agent for `workspace` unless one runs; True when one was started."""
    for proc in list(_spawned):
        if proc.poll() is not None:
            _spawned.remove(proc)
    if agent_alive(workspace):
        return False
    log_path = Path(workspace) / "agent" / "agent.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "headrace.engine.agent", "--workspace", str(workspace)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            close_fds=True,
        )
    _spawned.append(proc)
    return True
