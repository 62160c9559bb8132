"""Per-step overhead: linear chains of no-op PythonScriptSteps, N=1 and N=50, warm agent.

The marginal cost of a step is (T(50) - T(1)) / 49, T being submit to the run's end (its
`ended_at`, written by the agent). Floor: starting `python -c pass` with the same
interpreter path, measured between the repetitions. Chains are built two ways: `run_after`
edges (pure step overhead) and PipelineData edges (adds output staging and hand-over).
"""

from __future__ import annotations

from benchmarks.common import (
    Context,
    Outcome,
    Row,
    agent_pid,
    bench_workspace,
    median,
    proc_cpu_seconds,
    python_start_times,
    run_pipeline,
    spread,
)
from benchmarks.pipelines import noop_chain

N = 50
TARGET_RATIO = 1.5


def run(ctx: Context) -> Outcome:
    outcome = Outcome("overhead", "Per-step overhead (linear chains of no-op steps, warm agent)")
    reps = ctx.reps(7, 2)
    with bench_workspace(ctx, "overhead") as bws:
        run_pipeline(bws, noop_chain(bws, 1, "warm-up", data=False))  # the agent is up
        pid = agent_pid(bws.path)
        floors: list[float] = []
        times: dict[tuple[str, int], list[float]] = {}
        agent_cpu: dict[str, list[float]] = {"run_after": [], "PipelineData": []}
        for rep in range(reps):
            floors += python_start_times(4)
            for kind, data in (("run_after", False), ("PipelineData", True)):
                for n in (1, N):
                    cpu0 = proc_cpu_seconds(pid) if pid else None
                    seconds, _, _ = run_pipeline(
                        bws, noop_chain(bws, n, f"{kind}-{rep}", data=data)
                    )
                    cpu1 = proc_cpu_seconds(pid) if pid else None
                    times.setdefault((kind, n), []).append(seconds)
                    if n == N and cpu0 is not None and cpu1 is not None:
                        agent_cpu[kind].append((cpu1 - cpu0) / N)
        floors += python_start_times(4)
    floor = median(floors)
    outcome.details.append(
        f"floor `{'python -c pass'}` (same interpreter path): {spread(floors, 1000, ' ms')}"
    )
    for kind in ("run_after", "PipelineData"):
        t1, tn = median(times[(kind, 1)]), median(times[(kind, N)])
        marginal = (tn - t1) / (N - 1)
        ratio = marginal / floor
        outcome.rows.append(
            Row(
                f"step overhead, chain of {N} ({kind})",
                marginal * 1000,
                "ms",
                floor * 1000,
                "python -c pass",
                f"≤ {TARGET_RATIO}x floor",
                ratio <= TARGET_RATIO,
                ratio,
            )
        )
        outcome.details.append(
            f"{kind}: T(1) {spread(times[(kind, 1)], 1000, ' ms')}; "
            f"T({N}) {spread(times[(kind, N)], 1000, ' ms')}; "
            f"marginal {marginal * 1000:.1f} ms/step; whole chain {tn / N * 1000:.1f} ms/step"
        )
        if agent_cpu[kind]:
            outcome.details.append(
                f"{kind}: agent CPU (user+sys) per step during T({N}): "
                f"{spread(agent_cpu[kind], 1000, ' ms')}"
            )
    return outcome
