"""Kill injection (issue 13 item 3): SIGKILL the agent at random moments; no step runs twice.

Each trial submits a three-step chain (`a -> b -> c`, each passing a PipelineData of 20
files to the next, logging one metric and sleeping 0.3 or 5 s) to an agent, and SIGKILLs
that agent once:

- at a random moment of the run (three trials in four): uniform over the time a clean run
  takes, measured first (steps of 0.3 s mostly end while no agent is alive, steps of 5 s
  mostly still run when the next agent starts);
- right after it commits a step's outputs (every fourth trial): step `a` waits for a file;
  once its first metric is recorded and the agent has just written a heartbeat (its next
  is 5 s away), the benchmark takes the SQLite write lock and creates the file, so the
  agent's next write, the record of `a`'s end after it committed `a`'s outputs, waits; the
  agent is killed waiting, then the lock is released.

After a random pause (0-1 s, in which orphaned steps may end with no agent alive) a new agent
resumes the run. Every step appends its name and pipeline run id to a ledger each time its
script starts, so runs are counted on what actually ran: a "second run" is any execution of
a step beyond its first. Also checked: every run Finished, each step's metric recorded once,
and the last step read its input whole. The kill moments come from a fixed seed.

`python benchmarks/run.py kill` runs it; tests/test_kill_injection.py runs a short version.
"""

from __future__ import annotations

import contextlib
import random
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.common import (
    BenchError,
    BenchWorkspace,
    Context,
    Outcome,
    Row,
    agent_log_tail,
    bench_workspace,
    quiet,
    wait_until,
    write_script,
)

STEP = """
import os, sys, time
from headrace import Run
ledger, name, out, seconds, go = sys.argv[1:6]
with open(ledger, "a") as fh:
    fh.write(name + " " + os.environ["HEADRACE_PIPELINE_RUN_ID"] + "\\n")
Run.get_context().log("ran", 1)
if len(sys.argv) > 6:
    names = sorted(os.listdir(sys.argv[6]))
    assert names == [f"part-{i:02d}" for i in range(20)], names
while go != "-" and not os.path.exists(go):
    time.sleep(0.01)
time.sleep(float(seconds))
os.makedirs(out, exist_ok=True)
for i in range(20):
    with open(os.path.join(out, f"part-{i:02d}"), "w") as fh:
        fh.write(name)
print("done", name)
"""
STEPS = ("a", "b", "c")
SECONDS = (0.3, 5.0)  # how long each step sleeps: short steps end before the agent is back
SEED = 13


def _pipeline(bws: BenchWorkspace, ledger: Path) -> Any:
    from headrace import Pipeline, PipelineData, PipelineParameter, PythonScriptStep

    src = bws.folder("src")
    write_script(src, "step.py", STEP)
    go = PipelineParameter("go", default_value="-")  # a file the steps wait for
    seconds = PipelineParameter("seconds", default_value="0.3")  # each step sleeps this long
    steps, previous = [], None
    for name in STEPS:
        out = PipelineData(f"{name}_out")
        arguments: list[Any] = [str(ledger), name, out, seconds, go]
        if previous is not None:
            arguments.append(previous)
        steps.append(
            PythonScriptStep(
                "step.py",
                name=name,
                arguments=arguments,
                inputs=[previous] if previous is not None else [],
                outputs=[out],
                source_directory=str(src),
                allow_reuse=False,
            )
        )
        previous = out
    return Pipeline(bws.ws, steps=steps)


def _submit(bws: BenchWorkspace, pipeline: Any, go: str = "-", seconds: float = 0.3) -> str:
    from headrace import Experiment

    parameters = {"go": go, "seconds": str(seconds)}
    with quiet():
        run = Experiment(bws.ws, "kill").submit(pipeline, pipeline_parameters=parameters)
        return str(run.id)


def _wait_end(bws: BenchWorkspace, run_id: str, timeout: float = 180) -> Any:
    meta = bws.ws.backend.meta
    deadline = time.monotonic() + timeout
    while True:
        record = meta.get_pipeline_run(run_id)
        if record.status in ("Finished", "Failed", "Canceled"):
            return record
        if time.monotonic() > deadline:
            raise BenchError(f"run {run_id} did not end ({record.status})")
        time.sleep(0.02)


class _Agent:
    """The workspace's agent, started by the benchmark so it knows which process to kill.

    `--wait-for-slot`: looking whether an agent holds the workspace's lock takes the lock
    for a moment, which must not make a starting agent give up."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        from headrace.engine.launcher import agent_alive

        argv = [sys.executable, "-m", "headrace.engine.agent", "--workspace", str(self.root)]
        argv += ["--idle-seconds", "inf", "--wait-for-slot"]
        with (self.root / "agent" / "agent.log").open("ab") as log:
            self.process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_until(lambda: agent_alive(self.root), 60, "the agent to start")

    def kill(self) -> None:
        if self.process is None:
            raise BenchError("no agent to kill")
        self.process.kill()
        self.process.wait()
        self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(30)
            self.process = None


def _at_kill(bws: BenchWorkspace, run_id: str) -> str:
    """What the kill interrupted, seen from the store and the files (for the details)."""
    meta = bws.ws.backend.meta
    for record in meta.list_step_runs(run_id):
        if record.status != "Running":
            continue
        if _committed(bws, record.id):
            return f"step {record.name} committed, not recorded"
        run_dir = bws.path / "artifacts" / "runs" / record.id
        if not (run_dir / ".headrace" / f"exit-{record.attempt}").exists():  # engine/reaper.py
            return f"step {record.name} running"
        return f"step {record.name} ended, not recorded"
    return "between steps"


def _committed(bws: BenchWorkspace, step_run_id: str) -> bool:
    """Whether the agent has committed the step's output (its last file is in place)."""
    return any((bws.path / "datastores").rglob(f"azureml/{step_run_id}/*/part-19"))


def _commit_kill(
    bws: BenchWorkspace, agent: _Agent, run_id: str, go: Path, rng: random.Random
) -> str:
    """Kill the agent while it waits to record step `a`, whose outputs it has just committed
    (see the module docstring)."""
    meta = bws.ws.backend.meta

    def started() -> Any:
        steps = meta.list_step_runs(run_id)
        if steps and meta.list_metrics([steps[0].id]):  # its first metric is recorded
            return steps[0]
        return None

    wait_until(lambda: started() is not None, 60, "step a to start")
    step = started()
    # Right after a heartbeat the agent writes nothing for 5 s unless a step ends.
    beat = meta.get_pipeline_run(run_id).heartbeat_at
    wait_until(lambda: meta.get_pipeline_run(run_id).heartbeat_at != beat, 15, "a heartbeat")
    lock = sqlite3.connect(bws.path / "headrace.db", timeout=30, isolation_level=None)
    try:
        lock.execute("BEGIN IMMEDIATE")
        go.touch()
        wait_until(lambda: _committed(bws, step.id), 30, "step a's outputs to be committed")
        time.sleep(rng.uniform(0.05, 0.3))  # the agent now waits to write its record
        seen = _at_kill(bws, run_id)
        agent.kill()
    finally:
        with contextlib.suppress(sqlite3.Error):
            lock.execute("ROLLBACK")
        lock.close()
    return seen


def _check(
    bws: BenchWorkspace, run_id: str, ledger: Path, taken: Counter[str]
) -> tuple[int, int, list[str]]:
    """(second runs, metrics recorded more than once, problems) of one resumed run; counts
    in `taken` how the new agent took each interrupted attempt over."""
    record = _wait_end(bws, run_id)
    problems = [] if record.status == "Finished" else [f"run {run_id} {record.status}"]
    lines = [line.split() for line in ledger.read_text().splitlines()]
    counts = Counter(name for name, run in lines if run == run_id)
    second = sum(max(0, counts[name] - 1) for name in STEPS)
    meta = bws.ws.backend.meta
    for event in meta.list_events(run_id):
        if event.kind == "step.adopted":
            taken[f"adopted ({event.payload['process']})"] += 1
        elif event.kind == "step.interrupted":
            taken[f"rerun ({event.payload.get('reason')})"] += 1
    steps = meta.list_step_runs(run_id)
    metrics = Counter(m.run_id for m in meta.list_metrics([s.id for s in steps]))
    duplicated = sum(max(0, n - 1) for n in metrics.values())
    if len(steps) != len(STEPS) or any(counts[name] < 1 for name in STEPS):
        problems.append(f"run {run_id}: steps {sorted(s.name for s in steps)}, ran {counts}")
    return second, duplicated, problems


def run(ctx: Context) -> Outcome:
    trials = ctx.reps(20, 4)
    outcome = Outcome("kill", f"Kill injection: {trials} SIGKILLs of the agent mid-run")
    rng = random.Random(SEED)
    with bench_workspace(ctx, "kill", idle_seconds=30) as bws:
        agent = _Agent(bws.path)
        agent.start()
        try:
            _trials(bws, agent, trials, rng, outcome)
        finally:
            agent.stop()
    return outcome


def _trials(
    bws: BenchWorkspace, agent: _Agent, trials: int, rng: random.Random, outcome: Outcome
) -> None:
    ledger = bws.path.parent / "ledger.txt"
    ledger.touch()
    pipeline = _pipeline(bws, ledger)
    clean: dict[float, float] = {}  # what a run takes with a warm agent, by step length
    for seconds in SECONDS:
        durations = []
        for _ in range(3 if seconds < 1 else 1):
            start = time.monotonic()
            _wait_end(bws, _submit(bws, pipeline, seconds=seconds))
            durations.append(time.monotonic() - start)
        clean[seconds] = sorted(durations)[len(durations) // 2]
    took: list[float] = []
    totals = Counter[str]()
    taken = Counter[str]()
    moments: list[str] = []
    problems: list[str] = []
    for trial in range(trials):
        begun = time.monotonic()
        if trial % 4 == 3:
            go = bws.path.parent / f"go-{trial}"
            run_id = _submit(bws, pipeline, str(go))
            seen = _commit_kill(bws, agent, run_id, go, rng)
            how = "after a commit"
        else:
            seconds = SECONDS[trial % 2]
            run_id = _submit(bws, pipeline, seconds=seconds)
            time.sleep(rng.uniform(0, 0.9 * clean[seconds]))
            seen = _at_kill(bws, run_id)
            agent.kill()
            how = "at random"
        moments.append(f"{how}: {seen}")
        time.sleep(rng.uniform(0, 1.0))  # orphaned steps may end meanwhile
        agent.start()
        second, duplicated, found = _check(bws, run_id, ledger, taken)
        totals["second"] += second
        totals["duplicated"] += duplicated
        problems += found
        took.append(time.monotonic() - begun)
    committed = sum("committed" in m for m in moments)
    passed = totals["second"] == 0 and totals["duplicated"] == 0 and not problems
    outcome.rows.append(
        Row(
            f"second runs in {trials} kills (agent SIGKILLed mid-run, then resumed)",
            float(totals["second"]),
            "runs",
            None,
            "",
            "0",
            passed,
        )
    )
    outcome.details += [
        "A clean run of the 3-step chain takes "
        + " or ".join(f"{t:.2f} s (steps of {s:g} s)" for s, t in clean.items())
        + " with a warm agent; a trial "
        f"(submit, kill, pause, resume, check) {sum(took) / len(took):.1f} s on average.",
        f"Metrics recorded twice: {totals['duplicated']}. Problems: {problems or 'none'}.",
        f"Kills between an output commit and its record: {committed} of {trials}.",
        "How the new agent took the interrupted attempts over: "
        + ", ".join(f"{what}: {n}" for what, n in sorted(taken.items()))
        + ".",
        "What each kill interrupted: " + "; ".join(moments) + ".",
    ]
    if problems:
        outcome.details.append(f"agent log tail:\n{agent_log_tail(bws.path)}")
