"""What confining a step costs (engine/isolation.py): the spawn alone, and a whole step.

1. Spawn: start and reap `/bin/true` the way the local executor starts a step (new
   session), plain and through a `Sandbox` (a thread that takes Landlock and, as root, user
   nobody, then an ordinary vfork spawn), interleaved. `/bin/true` costs almost nothing, so
   the difference is what confinement adds; it is compared with `python -c pass` measured
   alongside (the floor of every step). The workspace is in `.bench/`, so the allowlist
   has this machine's real width.
2. A whole step: the marginal cost of a no-op step in a chain of 50, with the embedded
   agent confining its steps (`HEADRACE_STEP_ISOLATION=on`) and without, in the same run,
   against `python -c pass` (the overhead benchmark's target, 1.5x).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks.common import (
    BENCH_ROOT,
    BenchWorkspace,
    Context,
    Outcome,
    Row,
    bench_workspace,
    median,
    python_start_times,
    run_pipeline,
    spread,
)
from benchmarks.pipelines import noop_chain
from headrace.engine import landlock
from headrace.engine.isolation import Isolation, Sandbox, find_user

N = 50
SPAWN_TARGET = 0.1  # confinement adds at most a tenth of starting Python
STEP_TARGET = 1.5


def _spawn_times(sandbox: Sandbox | None, folder: Path, reps: int) -> list[float]:
    """Seconds to start and reap `/bin/true` as the local executor starts a step."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(folder)}
    times = []
    for i in range(reps):
        cwd = folder / f"step-{i}"
        start = time.perf_counter()
        if sandbox is None:
            cwd.mkdir(parents=True)
            process = subprocess.Popen(
                ["/bin/true"],
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                close_fds=True,
            )
        else:
            writable = [cwd, folder / f"step-{i}.tmp", folder / "run"]
            process = sandbox.spawn(
                ["/bin/true"],
                cwd=cwd,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                writable=writable,
            )
        process.wait()
        times.append(time.perf_counter() - start)
    return times


def _spawn_rows(ctx: Context, outcome: Outcome) -> None:
    """The cost confinement adds to a spawn: confined minus plain `/bin/true` (a program
    that costs almost nothing itself), against `python -c pass` measured alongside."""
    variants = [("Landlock", Isolation(landlock=True))]
    if os.geteuid() == 0:
        user = find_user("nobody")
        variants += [
            ("user nobody", Isolation(user=user)),
            ("Landlock + user nobody", Isolation(landlock=True, user=user)),
        ]
    BENCH_ROOT.mkdir(exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="isolation-", dir=BENCH_ROOT))
    root.chmod(0o755)
    reps = ctx.reps(200, 40)
    try:
        for label, isolation in variants:
            workspace = root / label.replace(" ", "-").replace("+", "and")
            (workspace / "work").mkdir(parents=True)
            sandbox = Sandbox(isolation, workspace)
            plain: list[float] = []
            confined: list[float] = []
            floors: list[float] = []
            for rnd in range(4):  # interleaved, so load on the machine hits all alike
                plain += _spawn_times(None, workspace / "work" / f"p{rnd}", reps // 4)
                confined += _spawn_times(sandbox, workspace / "work" / f"c{rnd}", reps // 4)
                floors += python_start_times(3)
            sandbox.close()
            added, floor = median(confined) - median(plain), median(floors)
            outcome.rows.append(
                Row(
                    f"added to a step's spawn by confinement ({label})",
                    added * 1000,
                    "ms",
                    floor * 1000,
                    "python -c pass",
                    f"≤ {SPAWN_TARGET}x floor",
                    added / floor <= SPAWN_TARGET,
                    added / floor,
                )
            )
            outcome.details.append(
                f"spawn → reap of /bin/true, {label}: plain {spread(plain, 1000, ' ms')}; "
                f"confined {spread(confined, 1000, ' ms')}; floor {spread(floors, 1000, ' ms')}"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _started_with(bws: BenchWorkspace, isolation: str) -> None:
    """Start the workspace's embedded agent with HEADRACE_STEP_ISOLATION=`isolation` (read
    when it starts) by running a one-step warm-up."""
    saved = os.environ.get("HEADRACE_STEP_ISOLATION")
    os.environ["HEADRACE_STEP_ISOLATION"] = isolation
    try:
        run_pipeline(bws, noop_chain(bws, 1, "warm-up", data=False))
    finally:
        if saved is None:
            os.environ.pop("HEADRACE_STEP_ISOLATION", None)
        else:
            os.environ["HEADRACE_STEP_ISOLATION"] = saved


def _step_rows(ctx: Context, outcome: Outcome) -> None:
    """Chains of no-op steps, plain and confined, alternated (each workspace keeps its warm
    agent), so that the machine's load falls on both alike."""
    reps = ctx.reps(6, 2)
    floors: list[float] = []
    times: dict[tuple[str, int], list[float]] = {}
    with (
        bench_workspace(ctx, "isolation-off") as plain,
        bench_workspace(ctx, "isolation-on") as confined,
    ):
        _started_with(plain, "off")
        _started_with(confined, "on")
        for rep in range(reps):
            floors += python_start_times(2)
            for label, bws in (("plain", plain), ("confined", confined)):
                for n in (1, N):
                    seconds, _, _ = run_pipeline(bws, noop_chain(bws, n, f"c-{rep}", data=True))
                    times.setdefault((label, n), []).append(seconds)
        floors += python_start_times(2)
    floor = median(floors)
    for label, target in (("plain", None), ("confined", STEP_TARGET)):
        t1, tn = times[(label, 1)], times[(label, N)]
        marginal = (median(tn) - median(t1)) / (N - 1)
        outcome.rows.append(
            Row(
                f"step overhead {label}, chain of {N} (PipelineData)",
                marginal * 1000,
                "ms",
                floor * 1000,
                "python -c pass",
                f"≤ {target}x floor" if target else "info (same run)",
                marginal / floor <= target if target else None,
                marginal / floor,
            )
        )
        outcome.details.append(
            f"{label} chain: T(1) {spread(t1, 1000, ' ms')}; T({N}) {spread(tn, 1000, ' ms')}"
        )
    outcome.details.append(f"floor `python -c pass`: {spread(floors, 1000, ' ms')}")


def run(ctx: Context) -> Outcome:
    outcome = Outcome("isolation", "Step isolation: spawn and step cost, confined vs plain")
    if landlock.abi_version() < 2:
        outcome.details.append("this kernel has no Landlock (ABI 2+): nothing to measure")
        return outcome
    _spawn_rows(ctx, outcome)
    _step_rows(ctx, outcome)
    return outcome
