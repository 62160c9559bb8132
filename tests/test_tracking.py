"""Tracking: `Run.get_context()` inside step scripts, and the PipelineRun / StepRun API.

SDK v1 reference §3 and acceptance scenario 11: metrics logged in a step (series, lists,
rows, tables, images), files, tags and the parent pipeline's metrics; an offline run outside
a pipeline; run lookup, details, logs, outputs; and `wait_for_completion(show_output=True)`
streaming step output while the step still runs.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from headrace import (
    ActivityFailedException,
    Experiment,
    Pipeline,
    PipelineData,
    PipelineRun,
    PythonScriptStep,
    RunNotFoundError,
    StepRun,
    Workspace,
)

PNG_B64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg=="
)

TRACKED = textwrap.dedent(
    f"""
    import base64, os, pickle
    from headrace import Run

    run = Run.get_context()
    print("IDS", run.id, run.parent.id, flush=True)
    for value in (0.5, 0.7, 0.9):
        run.log("acc", value)
    run.log("loss", 0.25, description="final loss")
    run.log_list("losses", [3, 2, 1])
    for epoch in range(3):
        run.log_row("curve", epoch=epoch, score=epoch * 10)
    run.log_table("confusion", {{"label": ["a", "b"], "count": [4, 5]}})
    with open("plot.png", "wb") as fh:
        fh.write(base64.b64decode("{PNG_B64}"))
    run.log_image("roc", path="plot.png")
    with open("notes.txt", "w") as fh:
        fh.write("uploaded notes")
    run.upload_file("extra/notes.txt", "notes.txt")
    run.tag("stage", "training")
    run.tag("flag")
    os.makedirs("outputs", exist_ok=True)
    with open("outputs/model.pkl", "wb") as fh:
        pickle.dump([1, 2, 3], fh)
    run.parent.log("pm", 1)
    print("logged", run.get_metrics()["acc"], flush=True)
    """
)


def write_script(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return folder


def test_a_step_logs_metrics_files_tags_and_parent_metrics(
    any_ws: Workspace, tmp_path: Path
) -> None:
    src = write_script(tmp_path / "src", "train.py", TRACKED)
    step = PythonScriptStep("train.py", source_directory=str(src))
    run = Experiment(any_ws, "tracking").submit(Pipeline(any_ws, steps=[step]))
    assert run.wait_for_completion(show_output=False) == "Finished"
    train = run.find_step_run("train.py")[0]

    # The context is the step run, and its parent the pipeline run.
    ids = train.get_stdout_log().split("IDS ", 1)[1].split()[:2]
    assert ids == [train.id, run.id]
    assert "logged [0.5, 0.7, 0.9]" in train.get_stdout_log()

    metrics = train.get_metrics()
    assert metrics["acc"] == [0.5, 0.7, 0.9]
    assert metrics["loss"] == 0.25
    assert metrics["losses"] == [3, 2, 1]
    assert metrics["curve"] == {"epoch": [0, 1, 2], "score": [0, 10, 20]}
    assert metrics["confusion"] == {"label": ["a", "b"], "count": [4, 5]}
    assert metrics["roc"] == "images/roc.png"
    assert train.get_metrics(name="acc") == {"acc": [0.5, 0.7, 0.9]}

    names = train.get_file_names()
    for expected in ("outputs/model.pkl", "images/roc.png", "extra/notes.txt"):
        assert expected in names, names
    train.download_file("extra/notes.txt", str(tmp_path / "notes.txt"))
    assert (tmp_path / "notes.txt").read_text() == "uploaded notes"
    train.download_file("images/roc.png", str(tmp_path))
    assert (tmp_path / "roc.png").read_bytes().startswith(b"\x89PNG")

    assert train.tags["stage"] == "training" and train.tags["flag"] == ""
    assert train.tags["azureml.pipeline"] == run.id

    assert run.get_metrics() == {"pm": 1}
    everything = run.get_metrics(recursive=True)
    assert everything[run.id] == {"pm": 1}
    assert everything[train.id]["acc"] == [0.5, 0.7, 0.9]


def test_logging_a_list_with_log_fails_the_step_with_a_clear_message(
    ws: Workspace, tmp_path: Path
) -> None:
    src = write_script(
        tmp_path / "src",
        "bad.py",
        "from headrace import Run\nRun.get_context().log('scores', [1, 2, 3])\n",
    )
    run = Experiment(ws, "tracking").submit(
        Pipeline(ws, steps=[PythonScriptStep("bad.py", source_directory=str(src))])
    )
    with pytest.raises(ActivityFailedException) as caught:
        run.wait_for_completion(show_output=False)
    assert "log_list" in str(caught.value)
    error = run.find_step_run("bad.py")[0].get_details()["error"]["error"]
    assert "run.log('scores', ...) takes a single value" in error["traceback"]


def test_outside_a_pipeline_the_context_is_an_offline_run(tmp_path: Path) -> None:
    src = write_script(tmp_path / "src", "train.py", TRACKED)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEADRACE_", "AZUREML_"))}
    done = subprocess.run(
        [sys.executable, "train.py"],
        cwd=src,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "IDS OfflineRun_" in done.stdout
    assert "Attempted to log scalar metric acc:\n0.5" in done.stdout
    assert "Attempted to log image metric roc" in done.stdout
    # What an offline run logged can be read back, as inside a pipeline.
    assert "logged [0.5, 0.7, 0.9]" in done.stdout


METRICS_THEN_WAIT = textwrap.dedent(
    """
    import os, sys, time
    from headrace import Run
    run = Run.get_context()
    run.log("progress", 0.5)
    run.parent.log("pipeline_progress", 1)
    while not os.path.exists(sys.argv[1]):
        time.sleep(0.05)
    run.log("after_go", 1)
    raise SystemExit("stopping with an error after logging")
    """
)


def test_metrics_show_while_the_step_runs_and_are_kept_when_it_fails(
    ws: Workspace, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    src = write_script(tmp_path / "src", "work.py", METRICS_THEN_WAIT)
    step = PythonScriptStep("work.py", arguments=[str(go)], source_directory=src)
    run = Experiment(ws, "tracking").submit(Pipeline(ws, steps=[step]))
    deadline = time.monotonic() + 30
    live: dict[str, object] = {}
    while time.monotonic() < deadline:
        steps = run.get_steps()
        live = steps[0].get_metrics() if steps else {}
        if live:
            break
        time.sleep(0.1)
    assert live == {"progress": 0.5}
    assert run.get_steps()[0].get_status() == "Running"
    assert run.get_metrics() == {"pipeline_progress": 1}
    go.write_text("go")
    assert run.wait_for_completion(show_output=False, raise_on_error=False) == "Failed"
    assert run.get_steps()[0].get_metrics() == {"progress": 0.5, "after_go": 1}


# -- the run API --------------------------------------------------------------------------------
PRODUCER = textwrap.dedent(
    """
    import os, sys
    print("to stdout", flush=True)
    print("to stderr", file=sys.stderr, flush=True)
    with open(os.path.join(sys.argv[1], "result.txt"), "w") as fh:
        fh.write("the result")
    """
)


def test_pipeline_run_and_step_run_api(ws: Workspace, tmp_path: Path) -> None:
    src = write_script(tmp_path / "src", "produce.py", PRODUCER)
    result = PipelineData("result", pipeline_output_name="final_result")
    step = PythonScriptStep(
        "produce.py", name="produce", arguments=[result], outputs=[result], source_directory=src
    )
    run = Experiment(ws, "api").submit(Pipeline(ws, steps=[step]), tags={"team": "ml"})
    assert run.get_status() in ("NotStarted", "Running", "Finished")
    assert run.wait_for_completion(show_output=False) == "Finished"
    assert run.get_status() == "Finished"

    steps = run.get_steps()
    assert [s.name for s in steps] == ["produce"] and isinstance(steps[0], StepRun)
    produce = run.find_step_run("produce")[0]
    assert run.find_step_run("nope") == []
    assert produce.get_status() == "Finished"
    assert produce.pipeline_run_id == run.id
    assert produce.get_stdout_log() == "to stdout\n"
    assert produce.get_stderr_log() == "to stderr\n"

    details = produce.get_details()
    assert details["status"] == "Completed" and details["runId"] == produce.id
    assert "error" not in details
    assert run.get_details()["status"] == "Completed"
    assert run.get_details()["tags"] == {"team": "ml"}
    with_logs = produce.get_details_with_logs()
    assert with_logs["STDOUT"] == "to stdout\n" and with_logs["STDERR"] == "to stderr\n"
    assert "produce" in with_logs["JOBLOG"]

    port = produce.get_output_data("result")
    assert port.path_on_datastore == f"azureml/{produce.id}/result"
    target = Path(port.download(tmp_path / "dl", show_progress=False))
    assert (target / "result.txt").read_text() == "the result"
    named = run.get_pipeline_output("final_result")
    assert named.path_on_datastore == port.path_on_datastore
    with pytest.raises(ValueError, match="final_result"):
        run.get_pipeline_output("no_such_output")
    with pytest.raises(ValueError, match="result"):
        produce.get_output_data("no_such_port")

    again = PipelineRun.get(ws, run.id)
    assert again.id == run.id and again.get_status() == "Finished"
    assert again.experiment.name == "api"
    assert PipelineRun.get(ws, run.id[:8]).id == run.id
    with pytest.raises(RunNotFoundError, match="zzzz"):
        PipelineRun.get(ws, "zzzz")
    assert StepRun.get(ws, produce.id).name == "produce"


def test_details_of_a_failed_step_and_step_wait(ws: Workspace, tmp_path: Path) -> None:
    src = write_script(tmp_path / "src", "boom.py", "raise RuntimeError('boom at load')\n")
    run = Experiment(ws, "api").submit(
        Pipeline(ws, steps=[PythonScriptStep("boom.py", name="boom", source_directory=src)])
    )
    assert run.wait_for_completion(show_output=False, raise_on_error=False) == "Failed"
    boom = run.find_step_run("boom")[0]
    details = boom.get_details()
    assert details["status"] == "Failed"
    assert "RuntimeError: boom at load" in details["error"]["error"]["traceback"]
    with pytest.raises(ActivityFailedException, match="boom at load"):
        boom.wait_for_completion(show_output=False)
    assert boom.wait_for_completion(show_output=False, raise_on_error=False) == "Failed"


# -- live log streaming -------------------------------------------------------------------------
class StampedStream(io.TextIOBase):
    """A text stream that remembers when each line arrived."""

    def __init__(self) -> None:
        self.lines: list[tuple[float, str]] = []
        self._partial = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            now = time.time()
            data = self._partial + text
            *complete, self._partial = data.split("\n")
            self.lines.extend((now, line) for line in complete)
        return len(text)

    def text(self) -> str:
        with self._lock:
            return "\n".join(line for _, line in self.lines)


LIVE = textwrap.dedent(
    """
    import os, sys, time
    go = sys.argv[1]
    while not os.path.exists(go):
        time.sleep(0.05)
    print(f"FIRST-MARKER {time.time():.3f}", flush=True)
    time.sleep(4)
    print("SECOND-MARKER", flush=True)
    """
)


def test_wait_for_completion_streams_step_output_live(ws: Workspace, tmp_path: Path) -> None:
    go = tmp_path / "go"
    src = write_script(tmp_path / "src", "live.py", LIVE)
    step = PythonScriptStep("live.py", name="live", arguments=[str(go)], source_directory=src)
    run = Experiment(ws, "live").submit(Pipeline(ws, steps=[step]))

    stream = StampedStream()
    outcome: list[object] = []

    def wait() -> None:
        try:
            outcome.append(run.wait_for_completion(show_output=True, timeout_seconds=120))
        except BaseException as exc:  # reported by the assertion below
            outcome.append(exc)

    with contextlib.redirect_stdout(stream):
        waiter = threading.Thread(target=wait)
        waiter.start()
        # The step prints its first marker only once the waiter is already following.
        deadline = time.monotonic() + 30
        while "PipelineRunId" not in stream.text() and time.monotonic() < deadline:
            time.sleep(0.02)
        go.write_text("go")
        waiter.join(timeout=120)
    assert outcome == ["Finished"], stream.text()

    lines = stream.lines
    first = [(at, line) for at, line in lines if "FIRST-MARKER" in line]
    second = [(at, line) for at, line in lines if "SECOND-MARKER" in line]
    assert first and second, stream.text()
    seen_at, line = first[0]
    printed_at = float(line.rsplit(" ", 1)[1])
    assert seen_at - printed_at < 2.5, f"the first marker took {seen_at - printed_at:.2f} s"
    assert seen_at < second[0][0] - 1.0, "the first marker only appeared at the end"
    assert line.startswith("[live] "), line  # prefixed with the step name
    text = stream.text()
    assert "PipelineRun Execution Summary" in text
    assert "PipelineRun Status: Finished" in text
