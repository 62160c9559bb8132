"""ParallelRunStep progress, logs and resume, end to end: a real agent and worker processes.

A step is held mid-way (its last mini-batch waits for a file) so its progress can be
read live from its metrics and `headrace step show`; a step whose process is SIGKILLed is
retried (also after its agent died) and runs only the mini-batches not committed.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from headrace import Workspace
from headrace.cli.main import app
from headrace.engine.launcher import agent_alive, ensure_agent
from tests.parallel_steps import ALL, held_step, images_dataset, last_metrics, wait_for_items


@pytest.fixture
def images(ws: Workspace, tmp_path: Path) -> Any:
    return images_dataset(ws, tmp_path)


def show(step_id: str, root: Path, *more: str) -> str:
    result = CliRunner().invoke(app, ["step", "show", step_id, "-w", str(root), *more])
    assert result.exit_code == 0, result.output
    return result.output


def output_lines(step_run: Any, tmp_path: Path) -> list[str]:
    folder = Path(step_run.get_output_data("scores").download(tmp_path / "dl", show_progress=False))
    (found,) = folder.rglob("parallel_run_step.txt")
    return found.read_text().splitlines()


def test_progress_is_live_in_metrics_and_step_show_and_printed_as_a_bar(
    ws: Workspace, images: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, _ledger, go = held_step(ws, images, tmp_path)
    root = Path(str(ws.path))
    step_run = wait_for_items(run, 20)  # all but the held mini-batch
    metrics = last_metrics(step_run)
    assert metrics["items_remaining"] == 3
    assert metrics["mini_batches_done"] == 5 and metrics["mini_batches_remaining"] == 1
    details = json.loads(show(step_run.id, root, "--json"))
    progress = details["progress"]
    assert progress["items"] == {"done": 20, "failed": 0, "remaining": 3, "total": 23}
    assert progress["mini_batches"]["remaining"] == 1
    deadline = time.monotonic() + 20  # the workers table is logged every 5 s
    while not any(w["current_batch"] == 5 for w in progress["workers"]):
        assert time.monotonic() < deadline, progress["workers"]
        time.sleep(0.5)
        progress = json.loads(show(step_run.id, root, "--json"))["progress"]
    text = show(step_run.id, root)
    assert "items 20/23 done, 0 failed, 3 remaining" in text
    assert "LAST HEARTBEAT" in text
    go.touch()
    assert run.wait_for_completion(show_output=True) == "Finished"
    printed = capsys.readouterr().out
    assert "[held] progress [" in printed
    assert "100% | items 23/23 done, 0 failed, 0 remaining" in printed
    final = json.loads(show(step_run.id, root, "--json"))["progress"]
    assert final["items"]["done"] == 23 and final["percent"] == 100.0
    workers = final["workers"]
    assert [w["worker"] for w in workers] == [1, 2]
    assert sum(w["batches_done"] for w in workers) == 6
    assert all(w["current_batch"] == "" and w["last_heartbeat"] for w in workers)
    assert all(w["node"] == socket.gethostname() for w in workers)
    assert last_metrics(step_run)["peak_rss_mb_coordinator"] > 0


@pytest.mark.parametrize("how", ["retried", "agent-died"])
def test_a_killed_step_runs_only_the_mini_batches_not_committed(
    ws: Workspace, images: Any, tmp_path: Path, how: str
) -> None:
    """The step's process (and the held worker) SIGKILLed after 5 of 6 mini-batches were
    committed, retried (max_retries) by its agent or, its agent SIGKILLed first, by the next
    agent: the next attempt runs only the 6th; every row is written once."""
    run, ledger, go = held_step(ws, images, tmp_path, max_retries=1)
    root = Path(str(ws.path))
    step_run = wait_for_items(run, 20)
    pids = Path(str(go) + ".pids")
    worker, coordinator = (int(p) for p in pids.read_text().split())
    if how == "agent-died":
        os.kill(int((root / "agent" / "agent.lock").read_text()), signal.SIGKILL)
        while agent_alive(root):
            time.sleep(0.02)
    os.kill(coordinator, signal.SIGKILL)
    os.kill(worker, signal.SIGKILL)
    if how == "agent-died":
        assert ensure_agent(root)
    assert run.wait_for_completion(show_output=False, raise_on_error=False) == "Finished"
    scored = ledger.read_text().splitlines()
    first = sorted(n for a, n in (line.split() for line in scored) if a == "0")
    again = sorted(n for a, n in (line.split() for line in scored) if a == "1")
    assert first == [n for n in ALL if n not in again]
    assert again == ["img020.txt", "img021.txt", "img022.txt"]
    step_run = run.find_step_run("held")[0]
    assert output_lines(step_run, tmp_path) == [f"img{i:03d}.txt: {i}" for i in range(23)]
    summary = step_run.get_file_names()
    assert "logs/summary.txt" in summary
    path = tmp_path / "summary"
    step_run.download_file("logs/summary.txt", str(path))
    assert "5 mini-batches were committed by an earlier attempt" in path.read_text()
    assert last_metrics(step_run)["items_done"] == 23


def test_the_commit_journal_keeps_whole_records_of_the_same_plan_only(tmp_path: Path) -> None:
    """What a retried attempt reads back: whole records of the same plan; a record a kill
    cut short is dropped, and a journal of another plan (other inputs) is started over."""
    from headrace.kinds.parallel.commits import CommitJournal

    path = tmp_path / "committed"
    first = CommitJournal(path, "plan-a")
    first.commit(0, ["a", "b"], 2)
    first.commit(2, ["e"], 2)  # one item of two failed
    first.close()
    with path.open("ab") as fh:
        fh.write(b"1 40 2 2\nc\n")  # cut short by a kill
    again = CommitJournal(path, "plan-a")
    assert again.committed == {0: (2, 2), 2: (1, 2)} and again.resumed == 2
    again.commit(1, ["c", "d"], 2)
    out = tmp_path / "rows.txt"
    again.assemble(out)
    assert out.read_text() == "a\nb\nc\nd\ne\n"
    other = CommitJournal(path, "plan-b")
    assert other.committed == {} and other.resumed == 0
    other.remove()
    assert not path.exists()


TABLE_ROWS = textwrap.dedent(
    """
    def init():
        pass

    def run(mini_batch):
        return [f"{i} {v}" for i, v in zip(mini_batch["id"], mini_batch["value"])]
    """
)


def test_a_table_is_streamed_in_mini_batches_across_its_files_every_row_once_in_order(
    ws: Workspace, tmp_path: Path
) -> None:
    from headrace import Dataset, Experiment, Pipeline, PipelineData
    from headrace.compat.azureml.pipeline.steps import ParallelRunConfig, ParallelRunStep

    upload = tmp_path / "upload"
    upload.mkdir()
    for name, rows in (("a.csv", range(0, 300)), ("b.csv", range(300, 500))):
        (upload / name).write_text("id,value\n" + "".join(f"{i},{i * 3}\n" for i in rows))
    store = ws.get_default_datastore()
    store.upload(str(upload), target_path="two", overwrite=True, show_progress=False)
    source = tmp_path / "src"
    source.mkdir()
    (source / "score.py").write_text(TABLE_ROWS)
    config = ParallelRunConfig(
        environment=None,
        entry_script="score.py",
        source_directory=str(source),
        error_threshold=0,
        output_action="append_row",
        compute_target="local",
        node_count=1,
        process_count_per_node=2,
        mini_batch_size="1KB",  # 64 rows of two int64 columns: batches span both files
    )
    step = ParallelRunStep(
        name="two-files",
        parallel_run_config=config,
        inputs=[Dataset.Tabular.from_delimited_files((store, "two/*.csv")).as_named_input("t")],
        output=PipelineData("scores", datastore=store),
    )
    run = Experiment(ws, "batch").submit(Pipeline(ws, [step]))
    assert run.wait_for_completion(show_output=False, raise_on_error=False) == "Finished"
    step_run = run.find_step_run("two-files")[0]
    assert output_lines(step_run, tmp_path) == [f"{i} {i * 3}" for i in range(500)]
    metrics = last_metrics(step_run)
    assert metrics["mini_batches_done"] == 8 and metrics["items_done"] == 500
