"""Step environments: the first build of an environment, and what a cached one adds to a step.

First build: a one-step pipeline whose step declares `six` and `packaging` (pinned), in a
fresh workspace, minus the same step without an environment; once with uv's cache empty
(packages downloaded from the index) and once with it warm (the usual case: uv's cache is
per user, shared by workspaces). Reported, no target.

Cached environment: linear chains (`run_after`) of N no-op steps, each step with the
environment (already built) and without; the added time per step is
(T_env(N) - T_plain(N)) / N. Target: under 50 ms. Floor: starting `python -c pass` with the
steps' interpreter path, measured between the repetitions.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import (
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
)
from benchmarks.pipelines import NOOP, source

N = 30
TARGET_MS = 50.0
PINS = ["six==1.16.0", "packaging==24.1"]


def _environment(name: str) -> Any:
    from headrace import CondaDependencies, Environment

    env = Environment(name)
    env.python.conda_dependencies = CondaDependencies.create(pip_packages=PINS)
    return env


def _chain(bws: BenchWorkspace, n: int, token: str, *, env: bool) -> Any:
    from headrace import Pipeline, PythonScriptStep, RunConfiguration

    src = source(bws, "noop", "noop.py", NOOP)
    steps: list[Any] = []
    for i in range(n):
        config = RunConfiguration(environment=_environment("bench-env")) if env else None
        step = PythonScriptStep(
            "noop.py",
            name=f"s{i}",
            arguments=["--token", token],
            source_directory=src,
            runconfig=config,
        )
        if steps:
            step.run_after(steps[-1])
        steps.append(step)
    return Pipeline(bws.ws, steps=steps)


def _first_build(ctx: Context, label: str, cold: bool) -> tuple[float, float, str]:
    """(seconds of a one-step run whose environment is built, seconds of the same without,
    what uv said while building)."""
    saved = os.environ.get("UV_CACHE_DIR")
    with tempfile.TemporaryDirectory(prefix="bench-uv-cache-") as cache:
        if cold:
            os.environ["UV_CACHE_DIR"] = cache  # inherited by the agent this workspace starts
        try:
            with bench_workspace(ctx, f"environments-{label}") as bws:
                run_pipeline(bws, _chain(bws, 1, "warm-up", env=False))  # the agent is up
                plain, _, _ = run_pipeline(bws, _chain(bws, 1, "plain", env=False))
                built, run, _ = run_pipeline(bws, _chain(bws, 1, "built", env=True))
                (step,) = step_records(bws, run.id)
                log = bws.ws.backend.read_run_file(step.id, "user_logs/stderr.txt").decode()
                said = "; ".join(
                    line.strip()
                    for line in log.splitlines()
                    if line.startswith(("Resolved", "Prepared", "Installed", "Bytecode"))
                )
                envs = list((bws.path / "envs").glob("*/headrace-env-ready"))
                if len(envs) != 1:
                    raise RuntimeError(f"expected one built environment, found {len(envs)}")
        finally:
            if saved is None:
                os.environ.pop("UV_CACHE_DIR", None)
            else:
                os.environ["UV_CACHE_DIR"] = saved
    return built, plain, said


def run(ctx: Context) -> Outcome:
    outcome = Outcome("environments", "Step environments (uv-built, cached by spec hash)")
    for label, cold in (("cold uv cache", True), ("warm uv cache", False)):
        built, plain, said = _first_build(ctx, label.split()[0], cold)
        outcome.rows.append(
            Row(
                f"first build of an environment ({', '.join(PINS)}), {label}",
                (built - plain) * 1000,
                "ms",
                None,
                "",
                "reported",
                None,
            )
        )
        outcome.details.append(
            f"{label}: one-step run with the build {built * 1000:.0f} ms, "
            f"without an environment {plain * 1000:.0f} ms; uv: {said}"
        )

    reps = ctx.reps(5, 2)
    with bench_workspace(ctx, "environments") as bws:
        run_pipeline(bws, _chain(bws, 1, "warm-up", env=True))  # agent up, environment built
        floors: list[float] = []
        times: dict[bool, list[float]] = {True: [], False: []}
        for rep in range(reps):
            floors += python_start_times(4)
            for env in (False, True):
                seconds, _, _ = run_pipeline(bws, _chain(bws, N, f"r{rep}-{env}", env=env))
                times[env].append(seconds)
        floors += python_start_times(4)
        built = len(list((Path(bws.path) / "envs").glob("*/headrace-env-ready")))
    floor = median(floors)
    added = (median(times[True]) - median(times[False])) / N
    outcome.rows.append(
        Row(
            f"added per step by a cached environment, chain of {N}",
            added * 1000,
            "ms",
            floor * 1000,
            "python -c pass",
            f"< {TARGET_MS:g} ms",
            added * 1000 < TARGET_MS,
            added / floor,
        )
    )
    outcome.details += [
        f"floor `python -c pass` (same interpreter path): {spread(floors, 1000, ' ms')}",
        f"T({N}) without environment: {spread(times[False], 1000, ' ms')}; "
        f"with the cached environment: {spread(times[True], 1000, ' ms')}",
        f"environments built in that workspace: {built} (every step shared one)",
    ]
    return outcome
