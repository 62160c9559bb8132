"""The model registry: what registering a model costs beyond copying it, and what
`Model.get_model_path` costs a scoring script.

- **Register** a 200 MB file (20 MB with --quick) with `Model.register`, against the floor of
  copying it while computing its sha256 (what registering must do at least: the copy
  makes the registered version independent of the source, the hash is its content
  identity), interleaved, each repeated. Target: within 1.3x of the floor.
- **get_model_path** of a registered folder model, in a fresh process set up as a step is
  (`HEADRACE_RUN_ID`, `HEADRACE_WORKSPACE`): it reads the registry's folder, without
  opening the database (importing SQLAlchemy and the store cost a scoring script 0.2-1.5 s
  on this machine before that) and without a copy, against the floor of starting Python
  and importing headrace's compat `Model`; and, with a workspace object at hand
  (`_workspace=ws`: one row read), in a process that has it open.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path

from benchmarks.common import (
    PYTHON,
    Context,
    Outcome,
    Row,
    bench_workspace,
    median,
    quiet,
    spread,
    time_command,
)

TARGET_RATIO = 1.3


def _copy_and_hash(source: Path, target: Path) -> str:
    digest = hashlib.sha256()
    with source.open("rb") as src, target.open("wb") as dst:
        for block in iter(lambda: src.read(1 << 20), b""):
            digest.update(block)
            dst.write(block)
    return digest.hexdigest()


def run(ctx: Context) -> Outcome:
    from headrace import Model

    outcome = Outcome("models", "Model registry: registering and get_model_path")
    reps = ctx.reps(7, 3)
    megabytes = 20 if ctx.quick else 200
    with bench_workspace(ctx, "models") as bws:
        ws = bws.ws
        data = bws.folder("data")
        big = data / "model.bin"
        with big.open("wb") as fh:
            for _ in range(megabytes):
                fh.write(os.urandom(1 << 20))
        register: list[float] = []
        floor: list[float] = []
        for i in range(reps):
            # Alternating which goes first: the first of a pair also pays for writing back
            # the dirty pages the other left.
            for which in ("floor", "register") if i % 2 else ("register", "floor"):
                started = time.perf_counter()
                if which == "floor":
                    _copy_and_hash(big, data / f"copy-{i}.bin")
                    floor.append(time.perf_counter() - started)
                else:
                    with quiet():
                        Model.register(ws, str(big), "big")
                    register.append(time.perf_counter() - started)
            (data / f"copy-{i}.bin").unlink()
        ratio = median(register) / median(floor)
        outcome.rows.append(
            Row(
                f"Model.register of a {megabytes} MB file",
                median(register) * 1000,
                "ms",
                median(floor) * 1000,
                "copy + sha256",
                f"<= {TARGET_RATIO}x",
                ratio <= TARGET_RATIO,
                ratio,
            )
        )
        outcome.details.append(f"Model.register: {spread(register, 1000, ' ms')}")
        outcome.details.append(f"copy + sha256: {spread(floor, 1000, ' ms')}")

        folder = bws.folder("net")
        for n in range(20):
            (folder / f"layer-{n}.bin").write_bytes(os.urandom(4096))
        with quiet():
            Model.register(ws, str(folder), "net")
        env = {
            **os.environ,
            "HEADRACE_RUN_ID": "bench-step",
            "HEADRACE_WORKSPACE": str(bws.path),
        }
        env.pop("HEADRACE_SERVER_URL", None)
        lookup = [
            PYTHON,
            "-c",
            "from headrace.compat.azureml.core import Model; Model.get_model_path('net')",
        ]
        baseline = [PYTHON, "-c", "from headrace.compat.azureml.core import Model"]
        in_step: list[float] = []
        imports: list[float] = []
        time_command(lookup, env=env)  # warm up: bytecode, page cache
        for _ in range(reps):
            imports.append(time_command(baseline, env=env))
            in_step.append(time_command(lookup, env=env))
        added = (median(in_step) - median(imports)) * 1000
        outcome.rows.append(
            Row(
                "Model.get_model_path in a fresh step process (the registry folder: no "
                "database, no copy)",
                added,
                "ms",
                median(imports) * 1000,
                "python + import Model",
                "report",
                None,
            )
        )
        Model.get_model_path("net", _workspace=ws)
        again: list[float] = []
        for _ in range(reps * 20):
            started = time.perf_counter()
            Model.get_model_path("net", _workspace=ws)
            again.append(time.perf_counter() - started)
        outcome.rows.append(
            Row(
                "Model.get_model_path(name, _workspace=ws) with the workspace open",
                median(again) * 1000,
                "ms",
                None,
                "",
                "report",
                None,
            )
        )
        outcome.details.append(f"fresh process with the lookup: {spread(in_step, 1000, ' ms')}")
        outcome.details.append(f"fresh process importing Model: {spread(imports, 1000, ' ms')}")
        outcome.details.append(f"workspace open: {spread(again, 1000, ' ms')}")
        shutil.rmtree(data, ignore_errors=True)
    return outcome
