"""The reaper: what lets a step outlive its agent without running twice.

A local step does not start as the agent's child but as the child of a tiny `/bin/sh`
reaper, in a session of its own, so it is not killed with the agent. The reaper waits for
the step and writes its exit status to the attempt's exit record
(`<run folder>/.headrace/exit-<attempt>`, one short line written once, so a reader sees a
whole line or none), then exits with the same status. The agent watches the reaper (its
pid is the attempt's recorded pid, its process group the step's) and reads the record when
it ends.

When an agent dies, the next one to claim the run adopts each attempt still marked
Running (`Agent._recover`):

- its exit record is there: the attempt ended while no agent watched; it is finished
  exactly as the dead agent would have (exit code, log files, the journal from the offset
  recorded with the last metrics, outputs committed; `commit.finalize` may run twice);
- its reaper still runs (same pid and start time): the new agent waits for it
  (`AdoptedProcess`), with its timeout and the run's cancel honoured;
- neither: the process never finished (it was killed with its agent, or never started),
  so the attempt runs again as the next attempt and its log says why.

The reaper costs about a millisecond per step (a shell and a fork). Its `$?` is 128 + the
signal for a step killed by a signal, so exit codes 129-159 read as that signal.
The record is not fsynced: the kernel keeps it whatever happens to the agent, and after a
machine crash, which kills the step too, a missing or empty record only means a rerun.

Ray steps run no reaper (their executor starts them elsewhere): a Ray step orphaned by its
agent is run again, as before.
"""

from __future__ import annotations

import contextlib
import os
import signal
from datetime import datetime, timezone
from pathlib import Path

from headrace.engine.processes import is_process_alive, kill_group, process_start_time

__all__ = [
    "EXIT_RECORD_PREFIX",
    "AdoptedProcess",
    "exit_record_path",
    "find_reaper",
    "is_reaper",
    "read_exit_record",
    "reaped_argv",
]

EXIT_RECORD_PREFIX = ".headrace/exit-"
# $1: the exit record; the rest: the step's argv. HUP, INT and TERM are caught (a handler,
# not ignored, so the step gets them with their default action): a stop the agent sends to
# the group ends the step, and the reaper still writes what it ended with.
_SCRIPT = 'r=$1; shift; trap : HUP INT TERM; "$@"; c=$?; echo "$c" > "$r"; exit "$c"'
_SIGNALS = {int(s) for s in signal.Signals}


def exit_record_path(run_dir: Path, attempt: int) -> Path:
    return run_dir / f"{EXIT_RECORD_PREFIX}{attempt}"


def reaped_argv(argv: list[str], record: Path) -> list[str]:
    """`argv` started under a reaper that writes its exit status to `record`."""
    return ["/bin/sh", "-c", _SCRIPT, "headrace-reaper", str(record), *argv]


def read_exit_record(record: Path) -> int | None:
    """The exit code in `record` (negative: killed by that signal), or None when there is
    no whole record (the reaper never got to write it)."""
    try:
        fd = os.open(record, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        raw = fh.read(16)
    if not raw.endswith(b"\n"):
        return None
    try:
        code = int(raw)
    except ValueError:
        return None
    if 128 < code < 192 and code - 128 in _SIGNALS:
        return -(code - 128)
    return code


class AdoptedProcess:
    """An attempt started by another (dead) agent, watched through its reaper.

    The reaper is not this agent's child: its end is seen through a pidfd (or by polling),
    and the exit code comes from the exit record. A reaper that ended without one was
    killed: the attempt is `lost` and runs again.
    """

    not_started: str | None = None

    def __init__(self, pid: int | None, started: float | None, record: Path) -> None:
        self.pid = pid
        self._started = started
        self.record = record
        self.lost: str | None = None
        self._code: int | None = None
        self._pidfd: int | None = None
        # A running reaper is waited for whatever its record says: the step may write that
        # folder, so it could have put a record there itself.
        if pid and is_process_alive(pid, started):
            with contextlib.suppress(AttributeError, OSError):
                self._pidfd = os.pidfd_open(pid)
            if not is_process_alive(pid, started):  # ended, or the pid was reused meanwhile
                self.close()

    @property
    def started(self) -> float | None:
        return self._started

    def ended_at(self) -> datetime | None:
        """When the reaper wrote the exit record: when the attempt ended."""
        try:
            return datetime.fromtimestamp(os.stat(self.record).st_mtime, timezone.utc)
        except OSError:
            return None

    def poll(self) -> int | None:
        if self._code is not None:
            return self._code
        if self.pid and is_process_alive(self.pid, self._started):
            return None
        self._code = read_exit_record(self.record)
        if self._code is None:
            self.lost = "its process ended while no agent watched it, without an exit code"
            self._code = -signal.SIGKILL
        if self.pid:
            kill_group(self.pid, signal.SIGKILL)  # what the step left behind in its group
        return self._code

    def wait_handle(self) -> int | None:
        return self._pidfd

    def terminate(self) -> None:
        if self.pid and is_process_alive(self.pid, self._started):
            kill_group(self.pid, signal.SIGTERM)

    def kill(self) -> None:
        if self.pid and is_process_alive(self.pid, self._started):
            kill_group(self.pid, signal.SIGKILL)

    def close(self) -> None:
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None


def is_reaper(pid: int) -> bool:
    """Whether `pid` is a reaper (a process of another executor, or of an agent from before
    reapers, is never waited for)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return b"\0headrace-reaper\0" in fh.read(4096)
    except OSError:
        return False


def find_reaper(pids: list[int]) -> tuple[int, float] | None:
    """Among processes of one attempt, its reaper and its start time: how an attempt whose
    pid was not recorded yet (its agent died right after starting it) is found again."""
    for pid in sorted(pids):
        if is_reaper(pid):
            started = process_start_time(pid)
            if started is not None:
                return pid, started
    return None
