"""The agent's end of the log server (engine/logreader.py): a local step's output handed over.

Before it starts a local step, `LocalExecutor` asks `hand_over` for the step's pipes: it
makes them, sends their read ends and the step's three open log files to the log server
(SCM_RIGHTS over an abstract SOCK_SEQPACKET socket), and gives back the write ends, which
become the step's fd 1 and 2 (and its channel). The server then writes the logs as the
step prints, and the step forks no logger of its own (several milliseconds a step).

There is one server per user and install of headrace (its address names both; a changed
logreader.py or steplog.py gets a new one). The first `hand_over` in a process without a
server starts it (a Python of its own, `-I -S`, in a session of its own) and waits until it
listens, about 20 ms once. When no server can be had (it cannot start, it went away, the socket is
full) `hand_over` answers None and the step starts with its own logger, as every step did
before the server existed; a server that went away is looked for again after
`RETRY_SECONDS`. `HEADRACE_STEP_LOG_SERVER=0` turns the server off.
"""

from __future__ import annotations

import array
import atexit
import contextlib
import functools
import hashlib
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass

from headrace.config import step_log_server_enabled
from headrace.engine.agentsocket import peer_uid

__all__ = ["StepPipes", "hand_over", "server_name"]

RETRY_SECONDS = 5.0
START_SECONDS = 5.0  # a Python start and a bind: well under a second on a busy machine
# engine/logreader.py and engine/steplog.py run as top-level modules of their folder, in
# the server and in steps: this process only needs where they are.
ENGINE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVER_FILES = ("logreader.py", "steplog.py")
HAND_OVER = b"step-output 1"  # logreader.HAND_OVER: what the server takes
SERVE = (
    f"import sys; sys.path.insert(0, {ENGINE_DIR!r}); import logreader; "
    "sys.exit(logreader.serve(sys.argv[1]))"
)


@dataclass
class StepPipes:
    """The write ends a step starts with: its fd 1 and 2, and its channel (-1: none)."""

    out: int
    err: int
    channel: int

    def close(self) -> None:
        """The agent's copies, once the step has its own (else the server never sees an end)."""
        for fd in (self.out, self.err, self.channel):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)


def server_name() -> str:
    """The name of this user's log server for this install of headrace (its abstract
    socket's address, without the leading NUL); `HEADRACE_STEP_LOG_SERVER_NAME` adds to
    it, to keep the steps of some agents apart (one test's from the others')."""
    own = os.environ.get("HEADRACE_STEP_LOG_SERVER_NAME", "")
    return f"headrace-steplogs-{os.getuid()}-{_install_digest()}" + (f"-{own}" if own else "")


@functools.cache
def _install_digest() -> str:
    stamps = [os.path.realpath(ENGINE_DIR)]
    for name in SERVER_FILES:
        found = os.stat(os.path.join(ENGINE_DIR, name))
        stamps.append(f"{name}:{found.st_size}:{found.st_mtime_ns}")
    return hashlib.sha256(" ".join(stamps).encode()).hexdigest()[:20]


class _Connection:
    """This process's connection to the server, made (and the server started) on first use."""

    def __init__(self) -> None:
        self.sock: socket.socket | None = None
        self.name = ""
        self.retry_at = 0.0

    def get(self) -> socket.socket | None:
        name = server_name()
        if self.sock is not None and name == self.name:
            return self.sock
        if self.sock is not None:
            self.drop()  # another server's name now
            self.retry_at = 0.0
        if time.monotonic() < self.retry_at:
            return None
        self.name = name
        sock = _connect(name)
        if sock is None and _start_server(name):
            sock = _connect(name)
        if sock is None:
            self.retry_at = time.monotonic() + RETRY_SECONDS
        self.sock = sock
        return sock

    def drop(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self.retry_at = time.monotonic() + RETRY_SECONDS


_connection = _Connection()
atexit.register(_connection.drop)  # closed, not collected unclosed at the exit


def hand_over(files: tuple[int, int, int], framed: bool) -> StepPipes | None:
    """Pipes whose output the log server writes to `files` (a step's open stdout.txt,
    stderr.txt and std_log.txt), with a channel when `framed` (a Python script run
    in-process); None when no server takes them (the step then needs its own logger)."""
    if not step_log_server_enabled():
        return None
    sock = _connection.get()
    if sock is None:
        return None
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    chan_r, chan_w = os.pipe() if framed else (-1, -1)
    reads = [fd for fd in (out_r, err_r, chan_r) if fd >= 0]
    pipes = StepPipes(out_w, err_w, chan_w)
    try:
        fds = array.array("i", [*reads, *files])
        sock.sendmsg(
            [HAND_OVER],
            [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)],
            socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL,
        )
    except OSError:
        pipes.close()  # the server has gone (or is swamped): this step reads its own
        _connection.drop()
        return None
    finally:
        for fd in reads:
            os.close(fd)
    return pipes


def _connect(name: str) -> socket.socket | None:
    """A connection to the server `name`, if one of this user listens there. An abstract
    socket has no file permissions: another user's process could take the name first, and
    would then read and write the logs of the steps handed to it."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    try:
        sock.connect("\0" + name)
        uid = peer_uid(sock)
    except OSError:
        sock.close()
        return None
    if uid != os.getuid():
        sock.close()
        return None
    return sock


def _start_server(name: str) -> bool:
    """Start the log server and wait until it listens (its first process exits then; the
    server goes on in a fork, in a session of its own, a child of no agent)."""
    try:
        pid = os.posix_spawn(
            sys.executable,
            [sys.executable, "-I", "-S", "-c", SERVE, name],
            {"PATH": os.environ.get("PATH", os.defpath)},
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
            ],  # fd 2 stays the agent's: agent.log for a detached agent
            setsid=True,
        )
    except OSError:
        return False
    deadline = time.monotonic() + START_SECONDS
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status) == 0
        if time.monotonic() >= deadline:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return False
        time.sleep(0.002)
