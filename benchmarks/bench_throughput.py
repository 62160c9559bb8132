"""200 independent steps on a 2-node local target vs two plain worker processes.

Each step runs `sum(range(200000))` (a few ms of real work on top of interpreter start).
headrace: submit to the run's end, warm agent, `AmlCompute` target with max_nodes=2.
Baseline: the same script file run 200 times by two threads, each running one subprocess at
a time with the same interpreter path (two plain worker processes at any moment).
Repetitions alternate the two so both see the same machine load.
"""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

from benchmarks.common import (
    PYTHON,
    Context,
    Outcome,
    Row,
    agent_pid,
    bench_workspace,
    median,
    proc_cpu_seconds,
    proc_status_kb,
    run_pipeline,
    spread,
    step_records,
)
from benchmarks.pipelines import parallel_work

TARGET = 0.80


def plain_workers(script: Path, n: int, workers: int = 2) -> float:
    """Seconds for `workers` threads to run `python script` n times in total."""
    remaining = list(range(n))
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                if not remaining:
                    return
                remaining.pop()
            subprocess.run(
                [PYTHON, script.name, "--i", "0"],
                cwd=script.parent,
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

    threads = [threading.Thread(target=work) for _ in range(workers)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start


def max_concurrency(steps: list[object]) -> int:
    events = []
    for step in steps:
        events.append((step.started_at.timestamp(), 1))  # type: ignore[attr-defined]
        events.append((step.ended_at.timestamp(), -1))  # type: ignore[attr-defined]
    level = peak = 0
    for _, delta in sorted(events, key=lambda e: (e[0], e[1])):
        level += delta
        peak = max(peak, level)
    return peak


def run(ctx: Context) -> Outcome:
    from headrace import AmlCompute, ComputeTarget

    n = ctx.reps(200, 60)
    reps = ctx.reps(5, 1)
    outcome = Outcome("throughput", f"{n} independent steps on a 2-node target vs 2 plain workers")
    ours: list[float] = []
    plain: list[float] = []
    in_steps: list[float] = []
    agent_cpu: list[float] = []
    peaks: list[int] = []
    with bench_workspace(ctx, "throughput") as bws:
        target = ComputeTarget.create(
            bws.ws, "two", AmlCompute.provisioning_configuration(max_nodes=2)
        )
        target.wait_for_completion(show_output=False)
        run_pipeline(bws, parallel_work(bws, 2, "warm-up", "two"))
        pid = agent_pid(bws.path)
        script = bws.root / "src-work" / "work.py"
        for rep in range(reps):
            plain.append(plain_workers(script, n))
            pipeline = parallel_work(bws, n, f"rep-{rep}", "two")
            cpu0 = proc_cpu_seconds(pid) if pid else None
            seconds, run, record = run_pipeline(bws, pipeline)
            cpu1 = proc_cpu_seconds(pid) if pid else None
            ours.append(seconds)
            steps = step_records(bws, run.id)
            first = min(s.started_at.timestamp() for s in steps)
            in_steps.append(record.ended_at.timestamp() - first)
            peaks.append(max_concurrency(steps))
            if cpu0 is not None and cpu1 is not None:
                agent_cpu.append((cpu1 - cpu0) / n)
        hwm = proc_status_kb(pid, "VmHWM") if pid else None
    ours_rate, plain_rate = n / median(ours), n / median(plain)
    ratio = ours_rate / plain_rate
    outcome.rows.append(
        Row(
            f"{n} independent steps, 2-node target (throughput)",
            ours_rate,
            "steps/s",
            plain_rate,
            "2 plain workers",
            f"≥ {TARGET:.0%} of floor",
            ratio >= TARGET,
            ratio,
        )
    )
    outcome.details.append(
        f"headrace submit → end: {spread(ours, 1, ' s')}; first step start → end: "
        f"{spread(in_steps, 1, ' s')}; at most {max(peaks)} steps ran at once"
    )
    outcome.details.append(f"2 plain workers: {spread(plain, 1, ' s')} for {n} scripts")
    outcome.details.append(
        f"per step: headrace {median(ours) / n * 1000:.1f} ms of wall time, plain "
        f"{median(plain) / n * 1000:.1f} ms (2 slots each)"
    )
    if agent_cpu:
        outcome.details.append(f"agent CPU per step: {spread(agent_cpu, 1000, ' ms')}")
    if hwm:
        outcome.details.append(f"agent peak RSS (VmHWM) after these runs: {hwm / 1024:.1f} MB")
    return outcome
