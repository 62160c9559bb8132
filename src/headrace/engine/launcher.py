"""Making sure a local agent serves a workspace folder.

The agent holds an exclusive lock on `<workspace>/agent/agent.lock` for as long as it runs.
`ensure_agent` tries that lock: if it can take it, no agent is alive, so it starts one,
detached in its own session, so it outlives the submitting process (a notebook can submit
and close). Submits and CLI calls call it, which is also how a run whose agent was killed
gets resumed.

Several agents may serve one workspace (a server's `--agents N`, or agents started by hand
with `python -m headrace.engine.agent --slot N`): slot 0 is `agent.lock`, the one
`ensure_agent` looks at; slot N > 0 is `agent.lock.N`. Whatever slot it holds, an agent
claims runs from the metadata store, which keeps two agents off the same run.

A running agent also listens on an abstract Unix datagram socket named after the workspace
(`wake_address`); `wake_agent` sends it one byte after a submit, so a new run is claimed at
once rather than at the agent's next poll. Where that is unavailable polling still works.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import functools
import hashlib
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "agent_alive",
    "agent_lock_path",
    "ensure_agent",
    "hold_agent_lock",
    "listen_for_wake",
    "started_agent_running",
    "wake_address",
    "wake_agent",
]

_spawned: list[int] = []


def agent_lock_path(workspace: Path, slot: int = 0) -> Path:
    """The lock file of agent slot `slot` (0: the workspace's usual agent)."""
    folder = Path(workspace) / "agent"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / ("agent.lock" if slot == 0 else f"agent.lock.{slot}")


@contextlib.contextmanager
def hold_agent_lock(workspace: Path, slot: int = 0) -> Iterator[bool]:
    """Take the lock of agent slot `slot` without waiting; yields whether it was taken."""
    fd = os.open(agent_lock_path(workspace, slot), os.O_RDWR | os.O_CREAT, 0o644)
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


def agent_alive(workspace: Path, slot: int = 0) -> bool:
    with hold_agent_lock(workspace, slot) as taken:
        return not taken


def ensure_agent(workspace: Path) -> bool:
    """Start a detached agent for `workspace` unless one runs; True when one was started."""
    _reap()
    if agent_alive(workspace):
        return False
    log_path = Path(workspace) / "agent" / "agent.log"
    argv = [sys.executable, "-m", "headrace.engine.agent", "--workspace", str(workspace)]
    # posix_spawn in a new session: no Popen object to outlive (and warn about), and file
    # descriptors Python opened are close-on-exec, so nothing of ours leaks into the agent.
    pid = os.posix_spawn(
        sys.executable,
        argv,
        dict(os.environ),
        file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, str(log_path), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ],
        setsid=True,
    )
    _spawned.append(pid)
    return True


def wake_address(workspace: Path) -> str:
    """The abstract socket address of the agent serving `workspace` (no file is made)."""
    digest = hashlib.sha256(os.path.realpath(workspace).encode()).hexdigest()[:24]
    return f"\0headrace-agent-{digest}"


def listen_for_wake(workspace: Path) -> socket.socket | None:
    """The agent's wake-up socket (non-blocking), or None where it cannot be had."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.bind(wake_address(workspace))
    except OSError:
        sock.close()  # another agent of this workspace listens; this one polls
        return None
    sock.setblocking(False)
    return sock


@functools.cache
def _waker() -> socket.socket:
    """The socket this process sends wake-ups from (one for all: a server wakes often)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.setblocking(False)
    atexit.register(sock.close)
    return sock


@functools.lru_cache(maxsize=64)
def _cached_wake_address(workspace: Path) -> str:
    return wake_address(workspace)


def wake_agent(workspace: Path) -> None:
    """Tell the workspace's agent that there is new work (best effort, never blocks)."""
    with contextlib.suppress(OSError):
        _waker().sendto(b"!", _cached_wake_address(workspace))


def started_agent_running() -> bool:
    """Whether an agent this process started is still running (it exits at once when
    another agent holds its slot, and when it cannot open the workspace)."""
    _reap()
    return bool(_spawned)


def _reap() -> None:
    """Collect agents this process started that have exited (no zombies left behind)."""
    for pid in list(_spawned):
        try:
            done, _status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done:
            _spawned.remove(pid)
