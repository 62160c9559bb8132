"""The CLI from a fresh shell: start-up, `run list` on 1,000 runs, and `run show`, `run metrics`
and `step show` on a 500-step run.

One run of 500 independent steps, each logging a 3-value series and a scalar (2,000 metric
values), on a workspace folder (SQLite); then 999 more finished runs of the same pipeline are
written straight into the store (as bench_portal does), so `run list` reads from 1,000. Then,
interleaved, the wall time of the console script (a new process each time, output piped so
tables are plain) beside two floors measured in the same loop: `python -c pass` and
`python -c "import typer"` (the CLI's own framework, which every command needs). The details
also give each command's CPU time (user + system of the process), which a loaded machine
inflates much less than wall time.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from benchmarks.common import (
    PYTHON,
    BenchError,
    Context,
    Outcome,
    Row,
    bench_workspace,
    median,
    run_pipeline,
    spread,
)
from benchmarks.pipelines import parallel_work

STEPS = 500
RUNS = 1000
# Issue 17: run show / run metrics on a 500-step run under 300 ms; issue 18: run list (and
# run show of an ordinary run, in bench_workloads) at most 0.2 s; start-up near typer's floor.
TARGETS = {"show": 0.3, "metrics": 0.3, "list": 0.2, "step": 0.2}
START_OVER_TYPER = 0.05

LOGS = """
import sys
from headrace import Run
run = Run.get_context()
i = int(sys.argv[sys.argv.index("--i") + 1])
for k in range(3):
    run.log("loss", 1.0 / (i + k + 1))
run.log("accuracy", i / 500)
"""


def _more_runs(bws: Any, record: Any, count: int) -> None:
    """`count` finished runs like `record`, older than it, written in one transaction."""
    from sqlalchemy import insert

    from headrace.store.orm import PipelineRunRow

    rows = []
    for i in range(count):
        created = record.created_at - timedelta(minutes=i + 1)
        rows.append(
            {
                "id": str(uuid.uuid4()),
                "experiment_id": record.experiment_id,
                "graph_id": record.graph_id,
                "status": "Finished",
                "parameters": {},
                "tags": {"i": str(i)},
                "properties": {},
                "description": f"run {i}",
                "run_source": "SDK",
                "continue_on_step_failure": False,
                "regenerate_outputs": False,
                "cancel_requested": False,
                "created_at": created,
                "started_at": created,
                "ended_at": created + timedelta(seconds=30),
            }
        )
    with bws.ws.backend.meta.db.write_conn() as conn:
        conn.execute(insert(PipelineRunRow), rows)


def _timed(argv: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one run of `argv` (output discarded)."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        raise BenchError(f"{' '.join(argv)} failed (wait status {status})")
    return wall, usage.ru_utime + usage.ru_stime


def _row(label: str, values: list[float], floor: float, floor_label: str, target: float) -> Row:
    wall = median(values)
    return Row(
        label,
        wall * 1000,
        "ms",
        floor * 1000,
        floor_label,
        f"≤ {target * 1000:.0f} ms",
        wall <= target,
        wall / floor,
    )


def run(ctx: Context) -> Outcome:
    outcome = Outcome("cli", "The CLI from a fresh shell: start-up, 1,000 runs, a 500-step run")
    reps = ctx.reps(11, 3)
    steps = STEPS if not ctx.quick else 100
    headrace = str(Path(PYTHON).with_name("headrace"))
    with bench_workspace(ctx, "cli", idle_seconds=30) as bws:
        pipeline = parallel_work(bws, steps, uuid.uuid4().hex, "local", work=LOGS, name="logs")
        seconds, _, record = run_pipeline(bws, pipeline)
        if record.status != "Finished":
            raise BenchError(f"the {steps}-step run ended {record.status}")
        _more_runs(bws, record, RUNS - 1)
        step_id = bws.ws.backend.list_step_runs(record.id)[steps // 2].id
        workspace = ["-w", str(bws.path)]
        floors = {
            "python -c pass": [PYTHON, "-c", "pass"],
            'python -c "import typer"': [PYTHON, "-c", "import typer"],
        }
        commands = {
            "--version": [headrace, "--version"],
            "--help": [headrace, "--help"],
            "list": [headrace, "run", "list", *workspace],
            "show": [headrace, "run", "show", record.id, *workspace],
            "metrics": [headrace, "run", "metrics", record.id, *workspace],
            "step": [headrace, "step", "show", step_id, *workspace],
        }
        walls: dict[str, list[float]] = {name: [] for name in [*floors, *commands]}
        cpus: dict[str, list[float]] = {name: [] for name in walls}
        for argv in [*floors.values(), *commands.values()]:
            _timed(argv)  # warm the page cache and byte-compiled files
        for _ in range(reps):
            for name, argv in [*floors.items(), *commands.items()]:
                wall, cpu = _timed(argv)
                walls[name].append(wall)
                cpus[name].append(cpu)
    floor = median(walls["python -c pass"])
    typer_floor = median(walls['python -c "import typer"'])
    for name in ("--version", "--help"):
        outcome.rows.append(
            _row(
                f"`headrace {name}` (fresh process)",
                walls[name],
                typer_floor,
                "python -c 'import typer'",
                typer_floor + START_OVER_TYPER,
            )
        )
    labels = {
        "list": f"`headrace run list` on {RUNS:,} runs (fresh process)",
        "show": f"`headrace run show` on a {steps}-step run (fresh process)",
        "metrics": f"`headrace run metrics` on a {steps}-step run (fresh process)",
        "step": "`headrace step show` of a step of that run (fresh process)",
    }
    for name, label in labels.items():
        outcome.rows.append(_row(label, walls[name], floor, "python -c pass", TARGETS[name]))
    for name, values in walls.items():
        outcome.details.append(
            f"`{name}`: {spread(values, 1000, ' ms')}; CPU {spread(cpus[name], 1000, ' ms')}"
        )
    outcome.details.append(
        f"the {steps}-step run (4 metric values per step) took {seconds:.1f} s to finish"
    )
    return outcome
