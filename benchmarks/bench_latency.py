"""Submit to first step start, with an agent already running (warm) and with none (cold).

The step prints `time.time()` as its first statement; latency = that moment minus the
moment just before `Experiment.submit`. Cold repetitions stop the agent first, so the submit
spawns one (interpreter start, imports, store open, claim) before the step can start.
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from pathlib import Path

from benchmarks.common import (
    PYTHON,
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
    step_records,
    step_stdout,
    stop_agent,
    submit,
    time_command,
    wait_run,
)
from benchmarks.pipelines import stamp_step

WARM_TARGET = 0.5
COLD_TARGET = 1.5


def _one(bws: BenchWorkspace, token: str) -> tuple[float, float]:
    """(submit to the step record's started_at, submit to the script's first line), seconds."""
    start, run = submit(bws, stamp_step(bws, token))
    wait_run(bws, run.id)
    (step,) = step_records(bws, run.id)
    out = step_stdout(bws, step.id)
    match = re.search(r"start=([\d.]+)", out)
    if not match:
        raise BenchError(f"the stamp step printed no start time: {out!r}")
    return step.started_at.timestamp() - start, float(match.group(1)) - start


def _agent_serving_since(workspace: Path) -> float | None:
    """Wall time of the last "agent ... serving" line of the agent log (ms precision)."""
    log = workspace / "agent" / "agent.log"
    lines = [x for x in log.read_text(errors="replace").splitlines() if " serving " in x]
    if not lines:
        return None
    stamp = lines[-1][:23]
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def run(ctx: Context) -> Outcome:
    outcome = Outcome("latency", "Submit to first step start (warm and cold agent)")
    warm_reps, cold_reps = ctx.reps(11, 3), ctx.reps(7, 2)
    warm: list[tuple[float, float]] = []
    cold: list[tuple[float, float]] = []
    agent_up: list[float] = []
    floors: list[float] = []
    agent_import: list[float] = []
    with bench_workspace(ctx, "latency") as bws:
        run_pipeline(bws, stamp_step(bws, "warm-up"))
        for rep in range(warm_reps):
            warm.append(_one(bws, f"warm-{rep}"))
        for rep in range(cold_reps):
            stop_agent(bws.path)
            floors += python_start_times(3)
            agent_import.append(time_command([PYTHON, "-c", "import headrace.engine.agent"]))
            before = time.time()
            cold.append(_one(bws, f"cold-{rep}"))
            serving = _agent_serving_since(bws.path)
            if serving is not None:
                agent_up.append(serving - before)
    floor = median(floors)
    for label, samples, target in (("warm", warm, WARM_TARGET), ("cold", cold, COLD_TARGET)):
        script = median([s[1] for s in samples])
        outcome.rows.append(
            Row(
                f"submit → first step start ({label} agent)",
                script,
                "s",
                floor,
                "python -c pass",
                f"< {target} s",
                script < target,
                script / floor,
            )
        )
        outcome.details.append(
            f"{label}: submit → step record started_at "
            f"{spread([s[0] for s in samples], 1000, ' ms')}; "
            f"submit → script's first line {spread([s[1] for s in samples], 1000, ' ms')}"
        )
    outcome.details.append(f"floor `python -c pass`: {spread(floors, 1000, ' ms')}")
    if agent_up:
        outcome.details.append(
            f"cold: submit → agent holds its lock and logs 'serving' "
            f"{spread(agent_up, 1000, ' ms')} (agent log timestamps, ms precision); "
            f"`python -c 'import headrace.engine.agent'` alone {spread(agent_import, 1000, ' ms')}"
        )
    return outcome
