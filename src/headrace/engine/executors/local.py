"""`LocalExecutor`: runs each step as a process group on this machine, under a reaper.

A step's output goes through pipes to a logger (engine/logreader.py) that writes
`stdout.txt`, `stderr.txt` and the combined `std_log.txt` as the step prints (no pump in
the agent: the logs are on disk at once, and a step outlives its agent): the shared log
server, which the agent hands the pipes before the start (executors/logserver.py), or,
when none takes them, a logger the step's own process forks before any user code runs
(engine/steplog.py). Each step gets its own process group so cancel, timeout and crash
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

from headrace.engine.executors.logserver import ENGINE_DIR, StepPipes, hand_over
from headrace.engine.executors.scriptcode import close_quietly, compiled_script
from headrace.engine.processes import kill_group, process_start_time
from headrace.engine.reaper import read_exit_record, reaped_argv
from headrace.errors import ConfigError

if TYPE_CHECKING:
    from headrace.engine.isolation import Sandbox
    from headrace.engine.runtime import PreparedStep

__all__ = ["LocalExecutor", "LocalProcess", "open_log", "step_argv", "wait_for_logger"]

# How a step starts: importing engine/steplog.py (from its folder, as a top-level module)
# rather than running it as a script, which Python would compile at every start
# (milliseconds); an import reads the byte code the install compiled.
STEPLOG = (
    f"import sys; sys.path[0] = {ENGINE_DIR!r}; import steplog; "
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
            # Held by the open file, passed to the step's logger: free when it (the last
            # to hold it) ends (`wait_for_logger`). Not to be had while the logger of an
            # earlier attempt still runs (a daemon it left keeps writing): then the ending
            # waits for that one instead.
            with contextlib.suppress(OSError):
                fcntl.flock(combined.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            for log, text in zip((out, err, combined), prepared.log_header(), strict=True):
                if text:
                    log.write(text)
                    log.flush()
            files = (out.fileno(), err.fileno(), combined.fileno())
            pipes = hand_over(files, framed=prepared.in_process)
            code_fd = None
            if prepared.in_process:
                code_fd = compiled_script(prepared.argv, prepared.cwd, prepared.env)
            argv, passed = step_argv(prepared, pipes, combined.fileno(), code_fd)
            argv = reaped_argv(argv, prepared.exit_record)
            stdout, stderr = (out, err) if pipes is None else (pipes.out, pipes.err)
            try:
                popen = spawn(prepared, argv, stdout, stderr, self.sandbox, passed)
            finally:
                if pipes is not None:
                    pipes.close()  # the step has them now
                close_quietly(code_fd)
        if self.nice > 0:
            # Set on the step's new process group right after the start rather than in the
            # child (a preexec_fn would turn every spawn into a full fork).
            with contextlib.suppress(OSError):
                mine = os.getpriority(os.PRIO_PROCESS, 0)
                os.setpriority(os.PRIO_PGRP, popen.pid, min(19, mine + self.nice))
        return LocalProcess(popen, prepared.exit_record)


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
    out: io.BufferedWriter | int,
    err: io.BufferedWriter | int,
    sandbox: Sandbox | None,
    pass_fds: tuple[int, ...],
) -> subprocess.Popen[bytes]:
    """Start `argv` as the step's process: a new session, `out` and `err` (its logs or the
    log server's pipes) as stdout and stderr, `pass_fds` kept open (the combined log for
    its own logger, or its channel), confined by `sandbox` when there is one. The one
    place a local step process starts."""
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
            pass_fds=pass_fds,
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
        pass_fds=pass_fds,
    )


def step_argv(
    prepared: PreparedStep, pipes: StepPipes | None, log_fd: int, code_fd: int | None = None
) -> tuple[list[str], tuple[int, ...]]:
    """`prepared.argv` as the step starts it, and the descriptors it keeps open.

    With the log server's `pipes`, a Python script in the submitter's Python starts through
    engine/steplog.py (`attached`: it frames what it prints on the channel and runs the
    script in-process) and anything else (a command, a kind's program, an environment's
    Python) starts as it is. Without them the step forks its own logger: the script runs in
    the logger's first process (`run`), anything else is exec'd by it (`exec`, one `python
    -S` start more, of the step's Python: the one a confined step may run; for a command,
    the submitter's); `log_fd` is the combined log's open file. `code_fd`: the script's
    code, compiled by the agent (executors/scriptcode.py)."""
    if prepared.in_process:
        mode, fd = ("attached", pipes.channel) if pipes is not None else ("run", log_fd)
        code = -1 if code_fd is None else code_fd
        where = [str(fd), str(prepared.cwd), prepared.snapshot_dir or "-", str(code)]
        argv = [prepared.argv[0], "-c", STEPLOG, mode, *where, "--", *prepared.argv[1:]]
        return argv, (fd,) if code_fd is None else (fd, code_fd)
    if pipes is not None:
        return list(prepared.argv), ()
    where = [str(log_fd), "-", "-", "-1"]
    return [prepared.python, "-S", "-c", STEPLOG, "exec", *where, "--", *prepared.argv], (log_fd,)


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
