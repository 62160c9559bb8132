"""`headrace run show` and `headrace run metrics` from a fresh shell on a 500-step run.

One run of 500 independent steps, each logging a 3-value series and a scalar (2,000 metric
values), on a workspace folder (SQLite). Then, interleaved: the wall time of the console
script `headrace run show RUN` and `headrace run metrics RUN` (new process each time, output
piped so tables are plain), against `python -c pass` and `headrace --version` (the CLI's own
start: interpreter, typer and the command tree).
"""

from __future__ import annotations

import uuid
from pathlib import Path

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
    time_command,
)
from benchmarks.pipelines import parallel_work

TARGET_MS = 300.0
STEPS = 500

LOGS = """
import sys
from headrace import Run
run = Run.get_context()
i = int(sys.argv[sys.argv.index("--i") + 1])
for k in range(3):
    run.log("loss", 1.0 / (i + k + 1))
run.log("accuracy", i / 500)
"""


def run(ctx: Context) -> Outcome:
    outcome = Outcome("cli", "The CLI on a 500-step run, from a fresh shell")
    reps = ctx.reps(11, 3)
    steps = STEPS if not ctx.quick else 100
    headrace = str(Path(PYTHON).with_name("headrace"))
    with bench_workspace(ctx, "cli", idle_seconds=30) as bws:
        pipeline = parallel_work(bws, steps, uuid.uuid4().hex, "local", work=LOGS, name="logs")
        seconds, _, record = run_pipeline(bws, pipeline)
        if record.status != "Finished":
            raise BenchError(f"the {steps}-step run ended {record.status}")
        workspace = ["-w", str(bws.path)]
        commands = {
            "show": [headrace, "run", "show", record.id, *workspace],
            "metrics": [headrace, "run", "metrics", record.id, *workspace],
        }
        floors: list[float] = []
        starts: list[float] = []
        walls: dict[str, list[float]] = {name: [] for name in commands}
        for argv in commands.values():
            time_command(argv)  # warm the page cache and byte-compiled files
        for _ in range(reps):
            floors.append(time_command([PYTHON, "-c", "pass"]))
            starts.append(time_command([headrace, "--version"]))
            for name, argv in commands.items():
                walls[name].append(time_command(argv))
    floor = median(floors)
    for name, values in walls.items():
        wall = median(values)
        outcome.rows.append(
            Row(
                f"`headrace run {name}` on a {steps}-step run (fresh process)",
                wall * 1000,
                "ms",
                floor * 1000,
                "python -c pass",
                f"< {TARGET_MS:.0f} ms",
                wall * 1000 < TARGET_MS,
                wall / floor,
            )
        )
        outcome.details.append(f"`headrace run {name}`: {spread(values, 1000, ' ms')}")
    outcome.details.append(f"`headrace --version`: {spread(starts, 1000, ' ms')}")
    outcome.details.append(f"floor `python -c pass`: {spread(floors, 1000, ' ms')}")
    outcome.details.append(
        f"the {steps}-step run (4 metric values per step) took {seconds:.1f} s to finish"
    )
    return outcome
