"""Where a step's time goes on the agent side (informational; no target).

Runs chains of 50 no-op steps on an instrumented agent (benchmarks/agent_probe.py: the real
agent with timing wrappers and SQL counters), once with `run_after` edges and once with
PipelineData edges, then the PipelineData chain once more under cProfile. Reports, per
step: the step process's lifetime as the agent sees it (spawn to reap), the agent's dead
time between reaping one step and spawning the next, each phase's inclusive time, SQL
statements and transactions, and the top functions by own time.
"""

from __future__ import annotations

import cProfile
import json
import os
import pstats
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    PYTHON,
    REPO,
    BenchError,
    BenchWorkspace,
    Context,
    Outcome,
    Row,
    bench_workspace,
    median,
    python_start_times,
    run_pipeline,
    spread,
    stop_agent,
    submit,
    wait_run,
    wait_until,
)
from benchmarks.pipelines import noop_chain, parallel_work

N = 50


def start_probe(bws: BenchWorkspace, stats: Path, cprofile: bool) -> subprocess.Popen[bytes]:
    argv = [PYTHON, str(REPO / "benchmarks" / "agent_probe.py"), "--workspace", str(bws.path)]
    argv += ["--stats", str(stats)] + (["--cprofile"] if cprofile else [])
    with (bws.root / "probe.log").open("ab") as log:
        probe = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL)

    def up() -> bool:
        if probe.poll() is not None:
            log = (bws.root / "probe.log").read_text(errors="replace")
            raise BenchError(f"the probe agent exited ({probe.returncode}):\n{log[-2000:]}")
        # Not agent_alive(): it probes by taking the lock, and a probe that holds it at the
        # moment the agent tries makes the agent exit ("another agent serves").
        lock = bws.path / "agent" / "agent.lock"
        return lock.exists() and lock.read_text().strip() == str(probe.pid)

    wait_until(up, 60, "the probe agent to take the agent lock")
    return probe


def measured(
    probe: subprocess.Popen[bytes],
    stats: Path,
    bws: BenchWorkspace,
    pipeline: Any,
    submit_profile: cProfile.Profile | None = None,
) -> tuple[float, dict[str, Any], float]:
    """Run `pipeline` inside a measurement window: (submit to end, agent stats, submit call),
    seconds. With `submit_profile`, the submit call (in this process) runs under it."""
    for leftover in (stats, stats.with_suffix(".open")):
        leftover.unlink(missing_ok=True)
    os.kill(probe.pid, signal.SIGUSR1)
    wait_until(stats.with_suffix(".open").exists, 30, "the probe to open its window")
    if submit_profile is not None:
        submit_profile.enable()
    start, run = submit(bws, pipeline)
    submitted = time.time() - start
    if submit_profile is not None:
        submit_profile.disable()
    record = wait_run(bws, run.id)
    os.kill(probe.pid, signal.SIGUSR2)
    wait_until(stats.exists, 30, "the probe's statistics")
    return record.ended_at.timestamp() - start, json.loads(stats.read_text()), submitted


def phase_table(data: dict[str, Any], steps: int) -> str:
    rows = sorted(data["timers"].items(), key=lambda kv: -kv[1]["seconds"])
    sql_by = data.get("sql_by", {})
    lines = [
        "| phase (inclusive wall time) | calls/step | ms/step | SQL statements/step |",
        "|---|---:|---:|---:|",
    ]
    for label, entry in rows:
        ms = entry["seconds"] / steps * 1000
        if ms < 0.05:
            continue
        sql = sql_by.get(label, 0) / steps
        lines.append(
            f"| `{label}` | {entry['calls'] / steps:.2f} | {ms:.2f} | {sql:.1f} |"
            if sql
            else f"| `{label}` | {entry['calls'] / steps:.2f} | {ms:.2f} | |"
        )
    return "\n".join(lines)


def top_functions(
    stats: pstats.Stats, steps: int, limit: int = 20, *, cumulative: bool = False
) -> str:
    """Top functions by own time, or (cumulative=True) headrace's own functions by
    cumulative time, which reads as a call tree of where the time goes."""
    entries = []
    for (file, line, func), (_cc, calls, own, cum, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if cumulative and "/headrace/" not in file:
            continue
        name = f"{Path(file).name}:{line}({func})" if line else func
        if "site-packages" in file:
            name = file.split("site-packages/")[1].split("/")[0] + ": " + name
        entries.append((cum if cumulative else own, own, cum, calls, name))
    entries.sort(reverse=True)
    lines = ["| function | calls/step | own ms/step | cumulative ms/step |", "|---|---:|---:|---:|"]
    for _key, own, cum, calls, name in entries[:limit]:
        lines.append(
            f"| `{name}` | {calls / steps:.1f} | {own / steps * 1000:.2f} | "
            f"{cum / steps * 1000:.2f} |"
        )
    return "\n".join(lines)


def run(ctx: Context) -> Outcome:
    outcome = Outcome("profile", f"Where a step's time goes (instrumented agent, chain of {N})")
    results: dict[str, tuple[float, dict[str, Any], float]] = {}
    submit_profile = cProfile.Profile()
    wide = ctx.reps(200, 60)
    with bench_workspace(ctx, "profile") as bws:
        stats = bws.root / "stats.json"
        floors = python_start_times(10)
        probe = start_probe(bws, stats, cprofile=False)
        try:
            run_pipeline(bws, noop_chain(bws, 1, "warm-up", data=False))
            for kind, data in (("run_after", False), ("PipelineData", True)):
                pipeline = noop_chain(bws, N, kind, data=data)
                results[kind] = measured(probe, stats, bws, pipeline)
            # The PipelineData chain again, unchanged: every step reused.
            results["reused"] = measured(probe, stats, bws, pipeline, submit_profile)
            # A wide graph on a 2-node target, as in the throughput benchmark.
            from headrace import AmlCompute, ComputeTarget

            ComputeTarget.create(bws.ws, "two", AmlCompute.provisioning_configuration(max_nodes=2))
            results["wide"] = measured(probe, stats, bws, parallel_work(bws, wide, "wide", "two"))
        finally:
            stop_agent(bws.path)
            probe.wait(10)
        probe = start_probe(bws, stats, cprofile=True)
        try:
            run_pipeline(bws, noop_chain(bws, 1, "warm-up-2", data=False))
            profiled, _, _ = measured(probe, stats, bws, noop_chain(bws, N, "cprofile", data=True))
        finally:
            stop_agent(bws.path)
            probe.wait(10)
        agent_profile = pstats.Stats(str(stats.with_suffix(".prof")))
    floor = median(floors)
    for kind in ("run_after", "PipelineData"):
        seconds, data, _ = results[kind]
        gap, life = median(data["gaps"]), median(data["lifetimes"])
        outcome.rows.append(
            Row(
                f"agent dead time between chain steps ({kind})",
                gap * 1000,
                "ms",
                floor * 1000,
                "python -c pass",
                "info (reap → next spawn)",
                None,
                gap / floor,
            )
        )
        outcome.rows.append(
            Row(
                f"step process lifetime seen by the agent ({kind})",
                life * 1000,
                "ms",
                floor * 1000,
                "python -c pass",
                "info (spawn → reap)",
                None,
                life / floor,
            )
        )
        outcome.details.append(
            f"{kind}: {seconds / N * 1000:.1f} ms/step wall for the chain; reap → next spawn "
            f"{spread(data['gaps'], 1000, ' ms')}; spawn → reap "
            f"{spread(data['lifetimes'], 1000, ' ms')}; "
            f"agent CPU {data['agent_cpu'] / N * 1000:.1f} ms/step, step processes' CPU "
            f"{data['children_cpu'] / N * 1000:.1f} ms/step; {sql_summary(data['sql'])}"
        )
        outcome.tables.append(
            (f"Agent phases per step, chain of {N} ({kind})", phase_table(data, N))
        )
    seconds, data, submitted = results["reused"]
    outcome.details.append(
        f"unchanged resubmission of the PipelineData chain (all {N} reused): "
        f"{seconds / N * 1000:.2f} ms/step submit → end, of which the submit call "
        f"{submitted / N * 1000:.2f} ms/step (in the submitting process); agent CPU "
        f"{data['agent_cpu'] / N * 1000:.2f} ms/step; agent {sql_summary(data['sql'])}"
    )
    outcome.tables.append((f"Agent phases per reused step ({N} reused)", phase_table(data, N)))
    outcome.tables.append(
        (
            f"cProfile of the submit call of the unchanged resubmission ({N} steps): headrace "
            "functions by cumulative time",
            top_functions(pstats.Stats(submit_profile), N, 20, cumulative=True),
        )
    )
    seconds, data, submitted = results["wide"]
    outcome.details.append(
        f"{wide} independent steps on a 2-node target: {seconds / wide * 1000:.2f} ms/step "
        f"submit → end (2 slots), submit call {submitted / wide * 1000:.2f} ms/step; agent CPU "
        f"{data['agent_cpu'] / wide * 1000:.2f} ms/step, step processes' CPU "
        f"{data['children_cpu'] / wide * 1000:.2f} ms/step; {sql_summary(data['sql'], wide)}"
    )
    outcome.tables.append(
        (f"Agent phases per step, {wide} independent steps on 2 slots", phase_table(data, wide))
    )
    outcome.details.append(f"floor `python -c pass`: {spread(floors, 1000, ' ms')}")
    outcome.details.append(
        f"under cProfile the PipelineData chain took {profiled / N * 1000:.1f} ms/step "
        "(cProfile slows Python code, so use the table below for shares, not absolute times)"
    )
    outcome.tables.append(
        (
            f"cProfile of the agent, chain of {N} (PipelineData): headrace functions by "
            "cumulative time",
            top_functions(agent_profile, N, 25, cumulative=True),
        )
    )
    outcome.tables.append(
        (
            f"cProfile of the agent, chain of {N} (PipelineData): top 20 functions by own time",
            top_functions(agent_profile, N),
        )
    )
    return outcome


def sql_summary(sql: dict[str, int], steps: int = N) -> str:
    statements = sum(v for k, v in sql.items() if k not in ("COMMIT", "transactions"))
    by_kind = ", ".join(
        f"{k} {v / steps:.1f}" for k, v in sorted(sql.items()) if k != "transactions"
    )
    return (
        f"SQL per step: {statements / steps:.1f} statements in "
        f"{sql.get('transactions', 0) / steps:.1f} transactions ({by_kind})"
    )
