"""Canonical pipeline shapes (linear, diamond, fan-out/fan-in, failing, parameterized), built
in one place so every executor and backend test runs the same pipelines.

Every builder takes `target`, the compute target every step runs on (None: the local pool),
so the same shapes run on every executor (tests/test_pipeline_shapes.py).

Every step runs `step.py`, which appends its name to the text of its inputs and writes it to
its output, so a test can read the final output and see the path the data took.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from headrace import (
    Pipeline,
    PipelineData,
    PipelineParameter,
    PythonScriptStep,
    Workspace,
)

STEP_SCRIPT = textwrap.dedent(
    """
    import argparse, os, sys, time
    p = argparse.ArgumentParser()
    p.add_argument("--name", required=True)
    p.add_argument("--inp", action="append", default=[])
    p.add_argument("--out")
    p.add_argument("--sleep", type=float, default=0)
    p.add_argument("--fail", default="no")
    p.add_argument("--value", default="")
    a = p.parse_args()
    start = time.time()
    time.sleep(a.sleep)
    text = "".join(open(os.path.join(i, "data.txt")).read() for i in sorted(a.inp))
    print(f"step {a.name} start={start:.3f} end={time.time():.3f} value={a.value}", flush=True)
    if a.fail == "yes":
        print(f"step {a.name} is failing on purpose", file=sys.stderr)
        raise SystemExit(3)
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        with open(os.path.join(a.out, "data.txt"), "w") as fh:
            fh.write(text + a.name + a.value + ";")
    """
)


def source_dir(root: Path) -> Path:
    folder = root / "steps_src"
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "step.py"
    if not script.exists():
        script.write_text(STEP_SCRIPT)
    return folder


def step(
    root: Path,
    name: str,
    inputs: list[PipelineData] = (),  # type: ignore[assignment]
    output: PipelineData | None = None,
    *,
    sleep: float = 0,
    fail: bool = False,
    extra: list[object] | None = None,
    target: object = None,
    **kwargs: object,
) -> PythonScriptStep:
    args: list[object] = ["--name", name, "--sleep", str(sleep), "--fail", "yes" if fail else "no"]
    for item in inputs:
        args += ["--inp", item]
    if output is not None:
        args += ["--out", output]
    args += list(extra or [])
    if target is not None:
        kwargs["compute_target"] = target
    return PythonScriptStep(
        "step.py",
        name=name,
        arguments=args,
        inputs=list(inputs),
        outputs=[output] if output is not None else [],
        source_directory=str(source_dir(root)),
        **kwargs,  # type: ignore[arg-type]
    )


def linear(ws: Workspace, root: Path, n: int = 3, *, target: object = None) -> Pipeline:
    """s1 -> s2 -> ... -> sn over PipelineData."""
    data = [PipelineData(f"d{i}") for i in range(1, n + 1)]
    steps = [step(root, "s1", [], data[0], target=target)]
    for i in range(2, n + 1):
        steps.append(step(root, f"s{i}", [data[i - 2]], data[i - 1], target=target))
    return Pipeline(ws, steps=[steps[-1]])


def diamond(ws: Workspace, root: Path, sleep: float = 0, *, target: object = None) -> Pipeline:
    """a -> (b, c) -> d."""
    da, db, dc, dd = (PipelineData(n) for n in ("da", "db", "dc", "dd"))
    a = step(root, "a", [], da, target=target)
    b = step(root, "b", [da], db, sleep=sleep, target=target)
    c = step(root, "c", [da], dc, sleep=sleep, target=target)
    d = step(root, "d", [db, dc], dd, target=target)
    return Pipeline(ws, steps=[a, b, c, d])


def fan_out_fan_in(
    ws: Workspace, root: Path, width: int = 3, sleep: float = 0, *, target: object = None
) -> Pipeline:
    """One source, `width` parallel workers, one join."""
    src = PipelineData("src")
    outs = [PipelineData(f"w{i}") for i in range(width)]
    final = PipelineData("final")
    steps = [step(root, "source", [], src, target=target)]
    steps += [
        step(root, f"worker{i}", [src], outs[i], sleep=sleep, target=target) for i in range(width)
    ]
    steps.append(step(root, "join", outs, final, target=target))
    return Pipeline(ws, steps=steps)


def failing(ws: Workspace, root: Path, slow: float = 30, *, target: object = None) -> Pipeline:
    """A fails; B is independent and slow; C consumes A (SDK v1 acceptance scenario 10)."""
    da = PipelineData("da")
    a = step(root, "A", [], da, fail=True, target=target)
    b = step(root, "B", [], None, sleep=slow, target=target)
    c = step(root, "C", [da], None, target=target)
    return Pipeline(ws, steps=[a, b, c])


def parameterized(
    ws: Workspace, root: Path, default: int = 10, *, target: object = None
) -> tuple[Pipeline, PipelineParameter]:
    """One step receiving a PipelineParameter as an argument and inside an f-string."""
    param = PipelineParameter("pipeline_arg", default_value=default)
    out = PipelineData("out")
    s = step(root, "param_step", [], out, extra=["--value", f"v{param}"], target=target)
    return Pipeline(ws, steps=[s]), param
