"""Small helpers over OS processes: identity that survives pid reuse, group kills, and
finding a step's processes by their environment."""

from __future__ import annotations

import contextlib
import os
import signal
import socket

__all__ = [
    "agent_identity",
    "is_process_alive",
    "kill_group",
    "parse_agent_identity",
    "process_start_time",
    "processes_with_env",
    "signal_escaped",
    "step_processes",
]


def process_start_time(pid: int) -> float | None:
    """When `pid` started, in clock ticks since boot (Linux), or None if it is gone.

    A pid together with its start time names one process even after the pid is reused.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read().decode(errors="replace")
    except OSError:
        return None
    # The command name is in parentheses and may contain spaces; fields follow the last ')'.
    fields = raw[raw.rfind(")") + 2 :].split()
    try:
        if fields[0] == "Z":
            return None  # a zombie has finished
        return float(fields[19])
    except (IndexError, ValueError):
        return None


def is_process_alive(pid: int | None, started: float | None) -> bool:
    if not pid:
        return False
    now = process_start_time(pid)
    if now is None:
        return False
    return started is None or now == started


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> None:
    """Signal a whole process group; a group that is already gone is fine."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def agent_identity() -> str:
    """`host:pid:start` naming this process, so others can tell whether it is still alive."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{process_start_time(pid) or 0:.0f}"


def parse_agent_identity(identity: str) -> tuple[str, int, float] | None:
    try:
        host, pid, started = identity.rsplit(":", 2)
        return host, int(pid), float(started)
    except ValueError:
        return None


def is_local_agent_dead(identity: str) -> bool:
    """True only when `identity` names a process on this host that no longer runs."""
    parsed = parse_agent_identity(identity)
    if parsed is None:
        return False
    host, pid, started = parsed
    if host != socket.gethostname():
        return False
    return not is_process_alive(pid, started or None)


def processes_with_env(variable: str, values: set[str]) -> list[int]:
    """Pids of processes whose environment sets `variable` to one of `values`.

    Catches a step process started just before its agent died, before it was recorded.
    """
    if not values:
        return []
    wanted = {f"{variable}={v}".encode() for v in values}
    found = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                variables = set(fh.read().split(b"\0"))
        except OSError:
            continue
        if variables & wanted:
            found.append(int(entry))
    return found


def step_processes(pipeline_run_id: str) -> dict[int, str]:
    """The processes of a pipeline run's steps on this machine, each with the step run id
    in its environment (HEADRACE_RUN_ID)."""
    wanted = f"HEADRACE_PIPELINE_RUN_ID={pipeline_run_id}".encode()
    found: dict[int, str] = {}
    for pid in processes_with_env("HEADRACE_PIPELINE_RUN_ID", {pipeline_run_id}):
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                variables = fh.read().split(b"\0")
        except OSError:
            continue
        if wanted not in variables:
            continue
        for variable in variables:
            if variable.startswith(b"HEADRACE_RUN_ID="):
                found[pid] = variable.split(b"=", 1)[1].decode(errors="replace")
    return found


def signal_escaped(step_run_id: str, sig: int) -> None:
    """Signal the process groups of processes a step started that left its group.

    Only for stopped attempts (cancel, timeout, fail-fast): scanning /proc costs
    milliseconds, too much to pay at every step's end.
    """
    for pid in processes_with_env("HEADRACE_RUN_ID", {step_run_id}):
        with contextlib.suppress(OSError):
            kill_group(os.getpgid(pid), sig)
