"""ParallelRunStep end to end: real agent, real worker processes, entry scripts written here
the way the SDK v1 batch-scoring notebooks write theirs."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from headrace import (
    Dataset,
    Experiment,
    Pipeline,
    PipelineData,
    Workspace,
)
from headrace.compat.azureml.pipeline.steps import ParallelRunConfig, ParallelRunStep

SCORE_FILES = textwrap.dedent(
    """
    import os
    from azureml_user.parallel_run import EntryScript

    def init():
        global logger
        logger = EntryScript().logger
        logger.info("init in %d", os.getpid())

    def run(mini_batch):
        logger.info("batch of %d", len(mini_batch))
        return [f"{os.path.basename(p)}: {open(p).read().strip()}" for p in mini_batch]
    """
)

SCORE_TABLE = textwrap.dedent(
    """
    def init():
        pass

    def run(mini_batch):
        mini_batch["double"] = mini_batch["value"] * 2
        return mini_batch[["id", "double"]]
    """
)


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(textwrap.dedent(text))
    return folder


@pytest.fixture
def images(ws: Workspace, tmp_path: Path) -> Any:
    """A FileDataset of 23 files in two folders, on the default datastore."""
    data = tmp_path / "upload" / "digits"
    for i in range(23):
        folder = data / ("a" if i < 12 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"img{i:03d}.txt").write_text(str(i))
    store = ws.get_default_datastore()
    store.upload(str(tmp_path / "upload"), target_path="", overwrite=True, show_progress=False)
    return Dataset.File.from_files((store, "digits/**"))


def config(source: Path, script: str = "score.py", **changes: Any) -> ParallelRunConfig:
    settings: dict[str, Any] = dict(
        environment=None,
        entry_script=script,
        source_directory=str(source),
        error_threshold=10,
        output_action="append_row",
        compute_target="local",
        node_count=1,
        process_count_per_node=2,
        mini_batch_size=4,
        run_invocation_timeout=30,
    )
    settings.update(changes)
    return ParallelRunConfig(**settings)


def run_step(ws: Workspace, step: ParallelRunStep) -> Any:
    run = Experiment(ws, "batch").submit(Pipeline(ws, [step]))
    run.wait_for_completion(show_output=False, raise_on_error=False)
    return run


def output_lines(run: Any, step: str, output: str, tmp_path: Path, name: str) -> list[str]:
    step_run = run.find_step_run(step)[0]
    folder = Path(step_run.get_output_data(output).download(tmp_path / "dl", show_progress=False))
    found = list(folder.rglob(name))
    assert len(found) == 1, list(folder.rglob("*"))
    return found[0].read_text().splitlines()


def test_file_dataset_rows_come_back_once_in_input_order(
    ws: Workspace, images: Any, tmp_path: Path
) -> None:
    source = write(tmp_path / "src", "score.py", SCORE_FILES)
    out = PipelineData("scores", datastore=ws.get_default_datastore())
    step = ParallelRunStep(
        name="batch-score",
        parallel_run_config=config(source, append_row_file_name="digits.txt"),
        inputs=[images.as_named_input("digits").as_mount()],
        output=out,
    )
    run = run_step(ws, step)
    step_run = run.find_step_run("batch-score")[0]
    assert run.get_status() == "Finished", step_run.get_details().get("error")
    lines = output_lines(run, "batch-score", "scores", tmp_path, "digits.txt")
    assert lines == [f"img{i:03d}.txt: {i}" for i in range(23)]
    metrics = step_run.get_metrics()
    last = {k: v[-1] if isinstance(v, list) else v for k, v in metrics.items()}
    assert last["items_done"] == 23 and last["items_remaining"] == 0
    assert last["mini_batches_done"] == 6 and last["mini_batches_failed"] == 0
    names = step_run.get_file_names()
    assert "logs/summary.txt" in names, names
    workers = [n for n in names if n.startswith("logs/user/worker_")]
    assert len(workers) == 2, names
