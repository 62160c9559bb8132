"""What every benchmark shares: result rows, fresh workspaces, floors, waiting for runs,
and looking at the detached agent (pid, memory, stopping it).

Timing rules (the machine is shared and noisy): every figure is a median of repeated runs,
and every benchmark measures its own floor (e.g. starting `python -c pass` with the same
interpreter path) in the same run, interleaved with the measurement where that is cheap.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH_ROOT = Path(os.environ.get("HEADRACE_BENCH_DIR") or REPO / ".bench")
# Steps run with the interpreter the agent runs with, which is the one running the
# benchmarks (the agent is spawned with sys.executable): the venv's python, not the pyenv shim.
PYTHON = sys.executable


class BenchError(RuntimeError):
    """A benchmark could not produce its figure (a run failed, a check did not hold)."""


@dataclass
class Row:
    """One line of the results table."""

    benchmark: str
    result: float
    unit: str
    floor: float | None
    floor_label: str
    target: str
    passed: bool | None  # None: informational, no target
    ratio: float | None = None

    def cells(self) -> list[str]:
        verdict = {True: "pass", False: "FAIL", None: "info"}[self.passed]
        floor = "—" if self.floor is None else f"{fmt(self.floor, self.unit)} ({self.floor_label})"
        ratio = "—" if self.ratio is None else f"{self.ratio:.2f}x"
        return [self.benchmark, fmt(self.result, self.unit), floor, ratio, self.target, verdict]


@dataclass
class Outcome:
    """What one benchmark module reports: table rows and the details behind them."""

    name: str
    title: str
    rows: list[Row] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    tables: list[tuple[str, str]] = field(default_factory=list)  # (title, markdown table)
    seconds: float = 0.0
    error: str | None = None


@dataclass
class Context:
    quick: bool
    keep: bool = False

    def reps(self, full: int, quick: int) -> int:
        return quick if self.quick else full


def fmt(value: float, unit: str) -> str:
    if unit == "ms":
        return f"{num(value)} ms"
    if unit == "s":
        return f"{value:.3f} s"
    if unit == "MB":
        return f"{value:.1f} MB"
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "%":
        return f"{value:.0f} %"
    if unit == "steps/s":
        return f"{value:.1f} steps/s"
    return f"{value:g} {unit}"


def median(values: list[float]) -> float:
    return statistics.median(values)


def num(value: float) -> str:
    """A number with about three significant digits."""
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def spread(values: list[float], scale: float = 1.0, unit: str = "") -> str:
    """`median X (min A, max B, n=N)` for the details section."""
    v = [x * scale for x in values]
    return (
        f"median {num(statistics.median(v))}{unit} "
        f"(min {num(min(v))}, max {num(max(v))}, n={len(v)})"
    )


# -- floors ------------------------------------------------------------------------------
def time_command(argv: list[str], **kwargs: Any) -> float:
    """Wall seconds of one run of `argv` (stdout/stderr discarded)."""
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)
    return time.perf_counter() - start


def python_start_times(reps: int) -> list[float]:
    """Seconds to start and end `python -c pass` with the steps' interpreter path."""
    time_command([PYTHON, "-c", "pass"])  # warm the page cache
    return [time_command([PYTHON, "-c", "pass"]) for _ in range(reps)]


# -- workspaces --------------------------------------------------------------------------
@dataclass
class BenchWorkspace:
    ws: Any  # headrace.Workspace
    root: Path

    @property
    def path(self) -> Path:
        return self.root / "ws"

    def folder(self, name: str) -> Path:
        target = self.root / name
        target.mkdir(parents=True, exist_ok=True)
        return target


@contextlib.contextmanager
def bench_workspace(ctx: Context, name: str, idle_seconds: float = 120) -> Iterator[BenchWorkspace]:
    """A fresh workspace (and HEADRACE_HOME) in `.bench/`; its agent is stopped afterwards and
    the folder removed when the process exits (kept with --keep)."""
    BENCH_ROOT.mkdir(exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=BENCH_ROOT))
    # mkdtemp makes it 0700: a server run as root confines steps as another user, who must
    # be able to pass through it to the workspace (docs/security.md).
    root.chmod(0o755)
    saved = {k: os.environ.get(k) for k in ("HEADRACE_HOME", "HEADRACE_AGENT_IDLE_SECONDS")}
    os.environ["HEADRACE_HOME"] = str(root / "home")
    os.environ["HEADRACE_AGENT_IDLE_SECONDS"] = str(idle_seconds)
    try:
        from headrace import Workspace

        with quiet():
            ws = Workspace.create(name, path=root / "ws", show_output=False)
        yield BenchWorkspace(ws, root)
    finally:
        stop_agent(root / "ws")
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if not ctx.keep:
            # Removed when the whole run ends, not now: on an ext4 without a journal (this
            # machine's), thousands of just-deleted inodes make every file the next benchmark
            # creates cost a scan past them (ext4's `recently_deleted`), which would charge
            # one benchmark's cleanup to the next one's numbers.
            atexit.register(shutil.rmtree, root, ignore_errors=True)


@contextlib.contextmanager
def quiet() -> Iterator[io.StringIO]:
    """Swallow what the SDK prints (submit's "Created step ..." lines)."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        yield buffer


def write_script(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


# -- submitting and waiting --------------------------------------------------------------
TERMINAL = ("Finished", "Failed", "Canceled")


def submit(bws: BenchWorkspace, pipeline: Any, experiment: str = "bench") -> tuple[float, Any]:
    """Submit; returns (wall time just before submit, PipelineRun)."""
    from headrace import Experiment

    with quiet():
        start = time.time()
        run = Experiment(bws.ws, experiment).submit(pipeline)
    return start, run


def wait_run(bws: BenchWorkspace, run_id: str, timeout: float = 600, poll: float = 0.02) -> Any:
    """Poll the store until the run ends; the finished PipelineRunRecord.

    Durations are taken from the record's `ended_at` (written by the agent), so the polling
    interval adds nothing to them.
    """
    backend = bws.ws.backend
    deadline = time.monotonic() + timeout
    while True:
        record = backend.get_pipeline_run(run_id)
        if record.status in TERMINAL:
            break
        if time.monotonic() > deadline:
            raise BenchError(f"run {run_id} did not end within {timeout:g} s ({record.status})")
        time.sleep(poll)
    if record.status != "Finished":
        raise BenchError(
            f"run {run_id} ended {record.status}: {record.error}\n"
            f"agent log tail:\n{agent_log_tail(bws.path)}"
        )
    return record


def run_pipeline(bws: BenchWorkspace, pipeline: Any) -> tuple[float, Any, Any]:
    """Submit and wait; returns (seconds from submit to the run's end, run, record)."""
    start, run = submit(bws, pipeline)
    record = wait_run(bws, run.id)
    return record.ended_at.timestamp() - start, run, record


def step_records(bws: BenchWorkspace, run_id: str) -> list[Any]:
    return list(bws.ws.backend.list_step_runs(run_id))


def step_stdout(bws: BenchWorkspace, step_run_id: str) -> str:
    data: bytes = bws.ws.backend.read_run_file(step_run_id, "user_logs/stdout.txt")
    return data.decode(errors="replace")


# -- the detached agent ------------------------------------------------------------------
def agent_pid(workspace: Path) -> int | None:
    from headrace.engine.launcher import agent_alive

    lock = workspace / "agent" / "agent.lock"
    if not lock.exists() or not agent_alive(workspace):
        return None
    try:
        return int(lock.read_text().strip() or 0) or None
    except ValueError:
        return None


def agent_log_tail(workspace: Path, lines: int = 20) -> str:
    log = workspace / "agent" / "agent.log"
    if not log.exists():
        return "(no agent log)"
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out waiting for {what}")
        time.sleep(0.005)


def stop_agent(workspace: Path) -> None:
    """SIGTERM the workspace's agent (if one runs) and wait until its lock is free."""
    from headrace.engine.launcher import agent_alive

    if not (workspace / "agent").exists():
        return
    pid = agent_pid(workspace)
    if pid is None:
        return
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not agent_alive(workspace), 15, f"agent {pid} to stop")
    _reap_children()


def _reap_children() -> None:
    """Collect agents this process spawned (ensure_agent's Popen) so no zombies pile up."""
    with contextlib.suppress(ChildProcessError):
        while True:
            pid, _ = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break


def proc_status_kb(pid: int, field_name: str) -> int | None:
    """A `kB` field of /proc/<pid>/status (VmRSS, VmHWM), or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def proc_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of `pid` so far (from /proc/<pid>/stat)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read().decode()
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
