"""Helpers of the ParallelRunStep progress tests (tests/test_parallel_progress.py and
tests/portal/test_parallel_pages.py): a step whose last mini-batch is held until a file
appears, so its progress can be read mid-way."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path
from typing import Any

from headrace import Dataset, Experiment, Pipeline, PipelineData, Workspace
from headrace.compat.azureml.pipeline.steps import ParallelRunConfig, ParallelRunStep

# Every mini-batch appends "<attempt> <file>" lines to the ledger; in the first attempt the
# last one (img020-022: none is queued behind it) writes its worker's and the coordinator's pids and waits for GO.
HELD = textwrap.dedent(
    """
    import os, sys, time
    LEDGER = sys.argv[sys.argv.index("--ledger") + 1]
    GO = sys.argv[sys.argv.index("--go") + 1]
    ATTEMPT = os.environ["HEADRACE_ATTEMPT"]

    def init():
        pass

    def run(mini_batch):
        names = [os.path.basename(p) for p in mini_batch]
        if "img020.txt" in names and ATTEMPT == "0":
            with open(GO + ".pids", "w") as fh:
                fh.write(f"{os.getpid()} {os.getppid()}")
            while not os.path.exists(GO):
                time.sleep(0.02)
        with open(LEDGER, "a") as fh:
            fh.write("".join(f"{ATTEMPT} {n}\\n" for n in names))
        return [f"{n}: {open(p).read()}" for n, p in zip(names, mini_batch)]
    """
)
ALL = [f"img{i:03d}.txt" for i in range(23)]


def images_dataset(ws: Workspace, tmp_path: Path) -> Any:
    """A FileDataset of 23 files: 6 mini-batches of 4 (the last one, of 3, is held)."""
    data = tmp_path / "upload" / "digits"
    data.mkdir(parents=True)
    for i in range(23):
        (data / f"img{i:03d}.txt").write_text(str(i))
    store = ws.get_default_datastore()
    store.upload(str(tmp_path / "upload"), target_path="", overwrite=True, show_progress=False)
    return Dataset.File.from_files((store, "digits/**"))


def held_step(ws: Workspace, images: Any, tmp_path: Path, **extra: Any) -> tuple[Any, Path, Path]:
    source = tmp_path / "src"
    source.mkdir()
    (source / "score.py").write_text(HELD)
    ledger, go = tmp_path / "ledger.txt", tmp_path / "go"
    config = ParallelRunConfig(
        environment=None,
        entry_script="score.py",
        source_directory=str(source),
        error_threshold=0,
        output_action="append_row",
        compute_target="local",
        node_count=1,
        process_count_per_node=2,
        mini_batch_size=4,
        run_invocation_timeout=60,
    )
    step = ParallelRunStep(
        name="held",
        parallel_run_config=config,
        inputs=[images.as_named_input("digits")],
        output=PipelineData("scores", datastore=ws.get_default_datastore()),
        arguments=["--ledger", str(ledger), "--go", str(go)],
        **extra,
    )
    run = Experiment(ws, "batch").submit(Pipeline(ws, [step]))
    return run, ledger, go


def last_metrics(step_run: Any) -> dict[str, Any]:
    found = step_run.get_metrics()
    return {k: v[-1] if isinstance(v, list) else v for k, v in found.items()}


def wait_for_items(run: Any, done: int) -> Any:
    """The step run, once its metrics say `done` items are done (the rest held)."""
    deadline = time.monotonic() + 60
    while True:
        steps = run.find_step_run("held")
        if steps and last_metrics(steps[0]).get("items_done") == done:
            return steps[0]
        assert time.monotonic() < deadline, "the step's progress did not reach the held batch"
        time.sleep(0.1)
