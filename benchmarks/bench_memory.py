"""The detached agent's memory while it runs a 200-step pipeline.

A fresh agent runs a 1-step warm-up, then a chain of 200 no-op steps linked by PipelineData.
A thread samples the agent's VmRSS every 10 ms; the peak reported is the larger of the
sampled maximum and VmHWM (the kernel's high-water mark) read just before the agent is
stopped. Floor: the same agent's RSS when idle after the warm-up (interpreter + imports).
"""

from __future__ import annotations

import subprocess
import threading

from benchmarks.common import (
    PYTHON,
    BenchError,
    Context,
    Outcome,
    Row,
    agent_pid,
    bench_workspace,
    proc_status_kb,
    run_pipeline,
)
from benchmarks.pipelines import noop_chain

TARGET_MB = 150.0


def bare_python_rss_kb() -> int:
    out = subprocess.run(
        [PYTHON, "-c", "print(open('/proc/self/status').read())"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    for line in out.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def run(ctx: Context) -> Outcome:
    n = ctx.reps(200, 50)
    outcome = Outcome("memory", f"Agent memory while running a {n}-step pipeline")
    samples: list[int] = []
    stop = threading.Event()
    with bench_workspace(ctx, "memory") as bws:
        run_pipeline(bws, noop_chain(bws, 1, "warm-up", data=True))
        pid = agent_pid(bws.path)
        if pid is None:
            raise BenchError("no agent is running after the warm-up run")
        idle = proc_status_kb(pid, "VmRSS") or 0

        def sample() -> None:
            while not stop.is_set():
                value = proc_status_kb(pid, "VmRSS")
                if value:
                    samples.append(value)
                stop.wait(0.01)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            seconds, _, _ = run_pipeline(bws, noop_chain(bws, n, "memory", data=True))
        finally:
            stop.set()
            sampler.join()
        hwm = proc_status_kb(pid, "VmHWM") or 0
        after = proc_status_kb(pid, "VmRSS") or 0
    bare = bare_python_rss_kb()
    peak = max([hwm, *samples])
    outcome.rows.append(
        Row(
            f"agent peak RSS, {n}-step chain",
            peak / 1024,
            "MB",
            idle / 1024,
            "idle agent",
            f"< {TARGET_MB:g} MB",
            peak / 1024 < TARGET_MB,
            peak / idle if idle else None,
        )
    )
    outcome.details.append(
        f"agent RSS: idle after warm-up {idle / 1024:.1f} MB; sampled max "
        f"{max(samples, default=0) / 1024:.1f} MB over {len(samples)} samples; VmHWM "
        f"{hwm / 1024:.1f} MB; after the run {after / 1024:.1f} MB; the run took {seconds:.1f} s"
    )
    outcome.details.append(f"a bare `python -c` peaks at {bare / 1024:.1f} MB")
    return outcome
