"""The same pipeline resubmitted unchanged: every step reused, time per step.

A chain of 50 no-op steps linked by PipelineData runs once; then the same Pipeline object is
resubmitted. Time per step = (submit to the run's end) / steps, and every step run must
carry a reused_run_id. Floor: one committed SQLite write transaction (BEGIN IMMEDIATE,
INSERT, COMMIT; WAL, synchronous=NORMAL, as the metadata store runs it), since a reused step
has to record at least one row.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from benchmarks.common import (
    BenchError,
    Context,
    Outcome,
    Row,
    bench_workspace,
    median,
    run_pipeline,
    spread,
    step_records,
)
from benchmarks.pipelines import noop_chain

N = 50
TARGET_MS = 5.0


def sqlite_write_floor(folder: Path, reps: int = 200) -> list[float]:
    """Seconds per committed one-row write transaction on a WAL database in `folder`."""
    conn = sqlite3.connect(folder / "floor.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, payload TEXT)")
    times = []
    for i in range(reps):
        start = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (payload) VALUES (?)", (f"row {i}" * 20,))
        conn.execute("COMMIT")
        times.append(time.perf_counter() - start)
    conn.close()
    return times


def run(ctx: Context) -> Outcome:
    outcome = Outcome("reuse", f"Unchanged resubmission of a {N}-step chain (all reused)")
    reps = ctx.reps(7, 3)
    with bench_workspace(ctx, "reuse") as bws:
        chain = noop_chain(bws, N, "reuse", data=True)
        single = noop_chain(bws, 1, "reuse-single", data=True)
        first, _, _ = run_pipeline(bws, chain)
        run_pipeline(bws, single)
        per_step: list[float] = []
        singles: list[float] = []
        floors: list[float] = []
        for _ in range(reps):
            floors += sqlite_write_floor(bws.root, 40)
            seconds, run, _ = run_pipeline(bws, chain)
            steps = step_records(bws, run.id)
            not_reused = [s.name for s in steps if not s.reused_run_id]
            if len(steps) != N or not_reused:
                raise BenchError(
                    f"resubmission did not reuse every step: {len(steps)} step runs, "
                    f"not reused: {not_reused[:5]}"
                )
            per_step.append(seconds / N)
            seconds_1, _, _ = run_pipeline(bws, single)
            singles.append(seconds_1)
    result, floor = median(per_step), median(floors)
    outcome.rows.append(
        Row(
            f"resubmit unchanged, {N} steps all reused (per step)",
            result * 1000,
            "ms",
            floor * 1000,
            "1 SQLite write txn",
            f"< {TARGET_MS:g} ms/step",
            result * 1000 < TARGET_MS,
            result / floor,
        )
    )
    marginal = (median(per_step) * N - median(singles)) / (N - 1)
    outcome.details.append(
        f"first run (all {N} steps ran): {first * 1000:.0f} ms; resubmission per step "
        f"{spread(per_step, 1000, ' ms')}; all {N} step runs had reused_run_id in every repetition"
    )
    outcome.details.append(
        f"1-step pipeline resubmitted: {spread(singles, 1000, ' ms')} (fixed cost: submit, "
        f"snapshot hash, agent claim poll, run end); marginal cost of a reused step "
        f"{marginal * 1000:.2f} ms"
    )
    outcome.details.append(f"floor, one SQLite write transaction: {spread(floors, 1000, ' ms')}")
    return outcome
