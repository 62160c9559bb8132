"""Whole pipelines from a fresh shell: what a user waits for on `python pipeline.py`.

Issue 18's workloads, each a new `python workload.py W...` process that opens the workspace
(`Workspace.get`), builds the pipeline with the public SDK, submits it and waits for its end
(`wait_for_completion(show_output=False)`), timed from the process's start to its exit, like
`hyperfine 'python pipeline.py'`:

- W0: two steps passing one value (PipelineData);
- W1: a chain of 22 steps, each passing a value to the next;
- W2: 50 independent steps on a target that runs 2 at a time, then one step joining their 50
  outputs;
- W3: W1 submitted again unchanged: every step reused;
- W4: a fresh 200 MB numpy array saved by one step and loaded by the next.

"warm": the workspace's agent is already running (the previous repetition left it up);
"cold": it was stopped first, so the submit starts it. Each repetition uses a new token in
the steps' arguments (new fingerprints, so steps run) except W3.

Floors, measured in the same run: `python -c pass` (W0, W3); 22 of them in a row (W1); 51 of
them 2 at a time (W2); `np.save` of the same array in one process then `np.load` in another
(W4; a new file each time, kept as a pipeline keeps its outputs, alternated with W4's runs,
each of them after an `os.sync()` so that none pays the write-back of the one before).
Then the CLI: `headrace run list` and `headrace run show` (W1's run) from a fresh shell.
"""

from __future__ import annotations

import os
import subprocess
import uuid
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
    spread,
    stop_agent,
    time_command,
    write_script,
)

ARRAY_ITEMS = 25_000_000  # float64: 200 MB

# The steps read their arguments by hand: importing argparse (re, enum, gettext) costs a
# process about 9 ms on the reference machine, the step's own cost on any system, which the
# floors (a bare `python -c pass`) do not count either.
ARGUMENTS = """
import os, sys
args = sys.argv[1:]
def option(name):
    return [args[i + 1] for i, arg in enumerate(args) if arg == name]
"""

VALUE_STEP = (
    ARGUMENTS
    + """
total = sum(int(open(os.path.join(i, "v")).read()) for i in option("--inp"))
for out in option("--out"):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "v"), "w") as fh:
        fh.write(str(total + 1))
"""
)

ARRAY_STEP = (
    ARGUMENTS
    + """
import numpy as np
for out in option("--out"):
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(abs(hash(option("--token")[0])) % 2**32)
    np.save(os.path.join(out, "a.npy"), rng.random(%(items)d))
for inp in option("--inp"):
    print(float(np.load(os.path.join(inp, "a.npy")).sum()))
""".replace("%(items)d", str(ARRAY_ITEMS))
)

# The user's pipeline file: argv = workload, workspace folder, source folder, token.
WORKLOAD = """
import sys
from headrace import Experiment, Pipeline, PipelineData, PythonScriptStep, Workspace

workload, folder, src, token = sys.argv[1:5]
ws = Workspace.get("workloads", path=folder)


def step(name, script="value.py", inputs=(), out=True, target="local"):
    outputs = [PipelineData(name + "_out")] if out else []
    args = ["--token", token]
    for data in inputs:
        args += ["--inp", data]
    if outputs:
        args += ["--out", outputs[0]]
    built = PythonScriptStep(script, name=name, arguments=args, inputs=list(inputs),
                             outputs=outputs, source_directory=src, compute_target=target)
    return built, (outputs[0] if outputs else None)


steps = []
if workload == "W0":
    first, data = step("a")
    steps = [first, step("b", inputs=[data], out=False)[0]]
elif workload == "W1":
    data = None
    for i in range(22):
        built, data = step(f"s{i}", inputs=[data] if data is not None else [])
        steps.append(built)
elif workload == "W2":
    outs = []
    for i in range(50):
        built, data = step(f"w{i}", target="two")
        steps.append(built)
        outs.append(data)
    steps.append(step("join", inputs=outs, out=False)[0])
elif workload == "W4":
    first, data = step("save", script="array.py")
    steps = [first, step("load", script="array.py", inputs=[data], out=False)[0]]
run = Experiment(ws, "workloads").submit(Pipeline(ws, steps))
status = run.wait_for_completion(show_output=False)
print(run.id, status)
"""

PARALLEL_FLOOR = """
import subprocess, sys
from concurrent.futures import ThreadPoolExecutor
with ThreadPoolExecutor(2) as pool:
    list(pool.map(lambda _: subprocess.run([sys.executable, "-c", "pass"], check=True), range(51)))
"""

SAVE = "import numpy as np, sys; np.save(sys.argv[1], np.random.default_rng(1).random({n}))"
LOAD = "import numpy as np, sys; print(float(np.load(sys.argv[1]).sum()))"

TARGETS = {  # (workload, agent) -> seconds at most; W4 is floor + 0.1 s
    ("W0", "warm"): 0.15,
    ("W0", "cold"): 0.5,
    ("W1", "warm"): 0.6,
    ("W1", "cold"): 1.0,
    ("W2", "warm"): 1.0,
    ("W3", "warm"): 0.15,
}
CLI_TARGET = 0.2
DESCRIPTIONS = {
    "W0": "W0: 2 steps passing a value",
    "W1": "W1: chain of 22 steps",
    "W2": "W2: 50 steps 2 at a time + a join",
    "W3": "W3: W1 again, all 22 reused",
    "W4": "W4: 200 MB array, step to step",
}


class Workloads:
    def __init__(self, bws: BenchWorkspace) -> None:
        self.bws = bws
        self.src = bws.folder("src")
        write_script(self.src, "value.py", VALUE_STEP)
        write_script(self.src, "array.py", ARRAY_STEP)
        self.script = write_script(bws.root, "workload.py", WORKLOAD)

    def argv(self, workload: str, token: str) -> list[str]:
        return [PYTHON, str(self.script), workload, str(self.bws.path), str(self.src), token]

    def once(self, workload: str, token: str) -> str:
        """Run a workload untimed; its run id (failing loudly when it did not finish)."""
        done = subprocess.run(
            self.argv(workload, token), capture_output=True, text=True, check=False
        )
        last = (done.stdout.strip().splitlines() or [""])[-1].split()
        if done.returncode != 0 or last[-1:] != ["Finished"]:
            raise BenchError(
                f"{workload} did not finish (exit {done.returncode}):\n{done.stdout[-2000:]}\n"
                f"{done.stderr[-2000:]}"
            )
        return last[0]

    def timed(self, workload: str, token: str, cold: bool) -> float:
        if cold:
            stop_agent(self.bws.path)
        return time_command(self.argv(workload, token))


def _floors(reps: int) -> dict[str, list[float]]:
    floors: dict[str, list[float]] = {"pass": [], "22 in a row": [], "51, 2 at a time": []}
    for _ in range(reps):
        floors["pass"].append(time_command([PYTHON, "-c", "pass"]))
        floors["22 in a row"].append(sum(time_command([PYTHON, "-c", "pass"]) for _ in range(22)))
        floors["51, 2 at a time"].append(time_command([PYTHON, "-c", PARALLEL_FLOOR]))
    return floors


def _array_floor(array: Path) -> float:
    """np.save of a new 200 MB array to a new file, then np.load of it, in two processes. The
    file is kept, as a pipeline keeps its outputs (a file deleted at once would have its
    dirty pages dropped, never written: cheaper than any kept output)."""
    save = [PYTHON, "-c", SAVE.format(n=ARRAY_ITEMS), str(array)]
    return time_command(save) + time_command([PYTHON, "-c", LOAD, str(array)])


FLOOR_OF = {
    "W0": ("pass", "python -c pass"),
    "W1": ("22 in a row", "22 x python -c pass in a row"),
    "W2": ("51, 2 at a time", "51 x python -c pass, 2 at a time"),
    "W3": ("pass", "python -c pass"),
    "W4": ("np.save + np.load", "np.save + np.load of the array, 2 processes"),
}


def _row(label: str, values: list[float], floor: float, floor_name: str, target: float) -> Row:
    wall = median(values)
    target_text = f"≤ {target:.2f} s"
    return Row(label, wall, "s", floor, floor_name, target_text, wall <= target, wall / floor)


def run(ctx: Context) -> Outcome:
    from headrace import AmlCompute, ComputeTarget

    outcome = Outcome("workloads", "Whole pipelines from a fresh shell (issue 18's W0-W4)")
    reps = ctx.reps(7, 2)
    cold_reps = ctx.reps(5, 2)
    samples: dict[tuple[str, str], list[float]] = {}
    cli: dict[str, list[float]] = {"run list": [], "run show": []}
    with bench_workspace(ctx, "workloads", idle_seconds=120) as bws:
        ComputeTarget.create(bws.ws, "two", AmlCompute.provisioning_configuration(max_nodes=2))
        work = Workloads(bws)
        work.once("W0", "warm-up")  # the agent is up, bytecode and page cache warm
        reused_run = work.once("W1", "reused")  # W3 resubmits this one
        for workload in ("W0", "W1", "W2"):
            work.once(workload, f"warm-up-{workload}")
            samples[(workload, "warm")] = [
                work.timed(workload, uuid.uuid4().hex, cold=False) for _ in range(reps)
            ]
        work.once("W4", "warm-up-W4")
        samples[("W4", "warm")], array_floor = [], []
        for rep in range(reps):  # alternated with its floor: the same disk under both
            # Each starts with nothing left to write back: the previous one's 200 MB is
            # written between them (untimed), not into the next one's time.
            os.sync()
            samples[("W4", "warm")].append(work.timed("W4", uuid.uuid4().hex, cold=False))
            os.sync()
            array_floor.append(_array_floor(bws.root / f"floor-{rep}.npy"))
        samples[("W3", "warm")] = [work.timed("W1", "reused", cold=False) for _ in range(reps)]
        for workload in ("W0", "W1"):
            samples[(workload, "cold")] = [
                work.timed(workload, uuid.uuid4().hex, cold=True) for _ in range(cold_reps)
            ]
        headrace = str(Path(PYTHON).with_name("headrace"))
        commands = {
            "run list": [headrace, "run", "list", "-w", str(bws.path)],
            "run show": [headrace, "run", "show", reused_run, "-w", str(bws.path)],
        }
        for argv in commands.values():
            time_command(argv)  # warm
        for _ in range(reps):
            for name, argv in commands.items():
                cli[name].append(time_command(argv))
        stop_agent(bws.path)  # the floors on a CPU the agent does not share
        floors = _floors(ctx.reps(5, 2))
        floors["np.save + np.load"] = array_floor
    for (workload, agent), values in samples.items():
        key, floor_name = FLOOR_OF[workload]
        floor = median(floors[key])
        target = floor + 0.1 if workload == "W4" else TARGETS[(workload, agent)]
        label = f"{DESCRIPTIONS[workload]} (agent {agent})"
        outcome.rows.append(_row(label, values, floor, floor_name, target))
        outcome.details.append(f"{label}: {spread(values, 1000, ' ms')}")
    pass_floor = median(floors["pass"])
    for name, values in cli.items():
        label = f"`headrace {name}` from a fresh shell"
        outcome.rows.append(_row(label, values, pass_floor, "python -c pass", CLI_TARGET))
        outcome.details.append(f"{label}: {spread(values, 1000, ' ms')}")
    for key, values in floors.items():
        outcome.details.append(f"floor {key}: {spread(values, 1000, ' ms')}")
    return outcome
