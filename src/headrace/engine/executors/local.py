"""`LocalExecutor`: runs each step as a process group on this machine, under a reaper.

Each step starts through its logger (engine/steplog.py): the step's own process forks it
before any user code runs, and it writes `stdout.txt`, `stderr.txt` and the combined
`std_log.txt` as the step prints (no pump in the agent: the logs are on disk at once, and a
step outlives its agent). Each step gets its own process group so cancel, timeout and crash
recovery can stop it together with anything it started (the logger is outside it, to read
what a killed step left in its pipes). With a
`Sandbox` (engine.isolation) the step starts confined to its own folders, maybe as another
user. The log files are opened without following links: their folder is in the step's run
folder, which an isolated step may write, so it could leave a link there for the agent to
follow on the next attempt.

Each step starts under its reaper (engine/reaper.py), which leads the step's session and
process group and writes the step's exit status to the attempt's exit record: a step that
ends while its agent is dead is adopted by the next agent, not run again.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from headrace.engine import steplog
from headrace.engine.processes import kill_group, process_start_time
from headrace.engine.reaper import read_exit_record, reaped_argv
from headrace.errors import ConfigError

if TYPE_CHECKING:
    from headrace.engine.isolation import Sandbox
    from headrace.engine.runtime import PreparedStep

__all__ = ["LocalExecutor", "LocalProcess", "logger_argv", "open_log", "wait_for_logger"]

# How a step starts its logger: importing engine/steplog.py (from its folder, as a top-level
# module) rather than running it as a script, which Python would compile at every start
# (milliseconds); an import reads the byte code the agent's own import cached.
STEPLOG = (
    f"import sys; sys.path[0] = {os.path.dirname(steplog.__file__)!r}; import steplog; "
    "sys.exit(steplog.main(sys.argv[1:]))"
)
# How long the agent waits for an ended attempt's logger before reading its logs: it ends
# within a millisecond of the step, unless a process the step left behind keeps writing.
LOGGER_WAIT_SECONDS = 3.0


class LocalProcess:
    lost: str | None = None  # a local process is never lost to a node going away
    not_started: str | None = None  # it runs once it is spawned

    def __init__(self, popen: subprocess.Popen[bytes], record: Path | None = None) -> None:
        self._popen = popen
        self.record = record  # the reaper's exit record
        self.pid: int | None = popen.pid
        self._started: float | None = None
        try:
            self._pidfd: int | None = os.pidfd_open(popen.pid)
        except (AttributeError, OSError):
            self._pidfd = None

    @property
    def started(self) -> float | None:
        """The process's start time (read on first use: most short steps never need it)."""
        if self._started is None and self.pid:
            self._started = process_start_time(self.pid)
        return self._started

    def poll(self) -> int | None:
        code = self._popen.poll()
        if code is not None and self.pid:
            # Children the script left behind die with it.
            kill_group(self.pid, signal.SIGKILL)
            if self.record is not None:
                # The step's own status (the reaper's is 128 + a signal for a signaled
                # step); none when the reaper itself was killed with the group.
                recorded = read_exit_record(self.record)
                if recorded is not None:
                    code = recorded
        return code

    def wait_handle(self) -> int | None:
        return self._pidfd

    def terminate(self) -> None:
        if self.pid:
            kill_group(self.pid, signal.SIGTERM)

    def kill(self) -> None:
        if self.pid:
            kill_group(self.pid, signal.SIGKILL)

    def close(self) -> None:
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None


class LocalExecutor:
    """At most `capacity` steps at once, each a process group of its own.

    `nice` > 0 lowers the steps' CPU priority (what a server's agents do, so that its API
    answers quickly while steps keep the cores busy); whatever a step starts inherits it.
    """

    fetches_inputs = False

    def __init__(
        self, name: str, capacity: int, nice: int = 0, sandbox: Sandbox | None = None
    ) -> None:
        self.name = name
        self.capacity = max(1, capacity)
        self.nice = nice
        self.sandbox = sandbox

    @property
    def isolated(self) -> bool:
        """Whether steps start confined (`runtime.prepare(isolated=...)` then keeps the
        agent's secrets out of their environment)."""
        return self.sandbox is not None

    def start(self, prepared: PreparedStep) -> LocalProcess:
        _check_program(prepared)
        prepared.stdout_path.parent.mkdir(parents=True, exist_ok=True)
        with (
            open_log(prepared.stdout_path) as out,
            open_log(prepared.stderr_path) as err,
            open_log(prepared.combined_path) as combined,
        ):
            # Held by the open file, passed to the step: free when the step's logger (the
            # last to hold it) ends (`wait_for_logger`). Not to be had while the logger of
            # an earlier attempt still runs (a daemon it left keeps writing): then the
            # ending waits for that one instead.
            with contextlib.suppress(OSError):
                fcntl.flock(combined.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            for log, text in zip((out, err, combined), prepared.log_header(), strict=True):
                if text:
                    log.write(text)
                    log.flush()
            record = prepared.exit_record
            argv = reaped_argv(logger_argv(prepared, combined.fileno()), record)
            popen = spawn(prepared, argv, out, err, self.sandbox, combined.fileno())
        if self.nice > 0:
            # Set on the step's new process group right after the start rather than in the
            # child (a preexec_fn would turn every spawn into a full fork).
            with contextlib.suppress(OSError):
                mine = os.getpriority(os.PRIO_PROCESS, 0)
                os.setpriority(os.PRIO_PGRP, popen.pid, min(19, mine + self.nice))
        return LocalProcess(popen, record)


def _check_program(prepared: PreparedStep) -> None:
    """A step's interpreter that is not there fails its start with a message naming it (the
    reaper's shell would only say "exited with code 127")."""
    program = prepared.argv[0]
    if os.path.isabs(program) and not os.access(program, os.X_OK):
        whose = (
            "the Python that submitted the run"
            if program == prepared.python
            else "the step's interpreter"
        )
        raise ConfigError(
            f"{whose}, {program}, does not exist or cannot be run here. Fix: submit from a "
            "Python that exists on this machine, or correct the environment's "
            "python.interpreter_path."
        )


def spawn(
    prepared: PreparedStep,
    argv: list[str],
    out: io.BufferedWriter,
    err: io.BufferedWriter,
    sandbox: Sandbox | None,
    log_fd: int,
) -> subprocess.Popen[bytes]:
    """Start `argv` as the step's process: a new session, its logs as stdout and stderr
    (and `log_fd`, the combined log, for its logger), confined by `sandbox` when there is
    one. The one place a local step process starts."""
    if sandbox is not None:
        if prepared.argv[0] == prepared.python:  # a Python step without an environment
            sandbox.check_interpreter(prepared.python)
        return sandbox.spawn(
            argv,
            cwd=prepared.cwd,
            env=prepared.env,
            stdout=out,
            stderr=err,
            writable=prepared.writable,
            readable=[*prepared.input_paths.values(), *map(str, prepared.readable)],
            private_files=prepared.private_files,
            python=prepared.python,
            pass_fds=(log_fd,),
        )
    return subprocess.Popen(
        argv,
        cwd=prepared.cwd,
        env=prepared.env,
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=err,
        start_new_session=True,
        close_fds=True,
        pass_fds=(log_fd,),
    )


def logger_argv(prepared: PreparedStep, log_fd: int) -> list[str]:
    """`prepared.argv` started through the step's logger (engine/steplog.py): a Python
    script in the submitter's Python runs in the logger's first process (no second start);
    anything else (a command, a kind's program, an environment's Python) is exec'd by it,
    which costs one `python -S` start more: of the step's Python (the one a confined step
    may run; for a command, the submitter's)."""
    if prepared.in_process:
        snapshot = prepared.snapshot_dir or "-"
        where = [str(log_fd), str(prepared.cwd), snapshot]
        return [prepared.argv[0], "-c", STEPLOG, "run", *where, "--", *prepared.argv[1:]]
    where = [str(log_fd), "-", "-"]
    return [prepared.python, "-S", "-c", STEPLOG, "exec", *where, "--", *prepared.argv]


def wait_for_logger(path: Path, timeout_seconds: float = LOGGER_WAIT_SECONDS) -> bool:
    """Wait until the logger of an ended attempt has written everything (it holds a lock on
    the combined log `path` until then); False when it still runs after `timeout_seconds`
    (something the step started keeps its output open)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return True  # no combined log: a step that never started, or a Ray step
    try:
        deadline = time.monotonic() + timeout_seconds
        pause = 0.0002
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(pause)
                # Short sleeps: the logger ends within a moment of the step, and the chain
                # of steps waits for this ending (a wake-up a millisecond costs nothing).
                pause = min(pause * 2, 0.001)
            except OSError:
                return True
    finally:
        os.close(fd)


def open_log(path: Path) -> io.BufferedWriter:
    """Open a log file for appending, refusing a link in its place or its folder's."""
    folder = os.open(path.parent, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(path.name, flags, 0o644, dir_fd=folder)
    finally:
        os.close(folder)
    return open(fd, "ab")
