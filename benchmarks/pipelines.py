"""The pipelines the benchmarks submit, built with the public SDK as a user would.

Every builder takes a `token` that goes into the steps' arguments: a new token gives new
fingerprints, so a repetition runs its steps instead of reusing the previous repetition's.
"""

from __future__ import annotations

from typing import Any

from benchmarks.common import BenchWorkspace, write_script

NOOP = "pass\n"

# Prints the wall time as the script's first statement: the moment the step "starts".
STAMP = "import time\nprint(f'start={time.time():.6f}', flush=True)\n"

WORK = "sum(range(200000))\n"


def source(bws: BenchWorkspace, name: str, script: str, text: str) -> str:
    folder = bws.root / f"src-{name}"
    write_script(folder, script, text)
    return str(folder)


def noop_chain(
    bws: BenchWorkspace, n: int, token: str, *, data: bool, target: str = "local"
) -> Any:
    """n no-op steps in a line: `run_after` edges, or PipelineData edges (`data=True`), on
    compute target `target`."""
    from headrace import Pipeline, PipelineData, PythonScriptStep

    src = source(bws, "noop", "noop.py", NOOP)
    steps: list[Any] = []
    previous: Any = None
    for i in range(n):
        if data:
            out = PipelineData(f"d{i}")
            inputs = [previous] if previous is not None else []
            args: list[Any] = ["--token", token, "--out", out]
            if previous is not None:
                args += ["--inp", previous]
            step = PythonScriptStep(
                "noop.py",
                name=f"s{i}",
                arguments=args,
                inputs=inputs,
                outputs=[out],
                source_directory=src,
                compute_target=target,
            )
            previous = out
        else:
            step = PythonScriptStep(
                "noop.py",
                name=f"s{i}",
                arguments=["--token", token],
                source_directory=src,
                compute_target=target,
            )
            if steps:
                step.run_after(steps[-1])
        steps.append(step)
    return Pipeline(bws.ws, steps=steps)


def stamp_step(bws: BenchWorkspace, token: str) -> Any:
    """One step that prints when it started."""
    from headrace import Pipeline, PythonScriptStep

    src = source(bws, "stamp", "stamp.py", STAMP)
    step = PythonScriptStep(
        "stamp.py", name="stamp", arguments=["--token", token], source_directory=src
    )
    return Pipeline(bws.ws, steps=[step])


def parallel_work(
    bws: BenchWorkspace, n: int, token: str, target: str, work: str = WORK, name: str = "work"
) -> Any:
    """n independent steps, each running `work` (by default `sum(range(200000))`), on
    compute target `target`; the script is `src-<name>/work.py`."""
    from headrace import Pipeline, PythonScriptStep

    src = source(bws, name, "work.py", work)
    steps = [
        PythonScriptStep(
            "work.py",
            name=f"w{i}",
            arguments=["--token", token, "--i", str(i)],
            compute_target=target,
            source_directory=src,
        )
        for i in range(n)
    ]
    return Pipeline(bws.ws, steps=steps)
