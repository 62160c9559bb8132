"""The `headrace` command line: every noun and verb, their --json documents, and their errors.

Most tests drive the typer app in-process (fast); one runs the installed console script in a
real subprocess. Pipelines come from small files written into the test's folder, built with
`tests/shapes.py`'s step script.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from headrace import PipelineRun, Workspace
from headrace.cli.main import app
from headrace.engine.launcher import agent_alive
from tests import shapes

RUNNER = CliRunner()

PIPELINE_FILE = """
from headrace import Pipeline, PipelineData, PipelineParameter, PythonScriptStep, Workspace

ws = Workspace.from_config()
value = PipelineParameter("value", default_value="default")
out = PipelineData("out")
first = PythonScriptStep(
    "step.py", name="first", source_directory="steps_src", outputs=[out],
    arguments=["--name", "first", "--value", value, "--out", out, "--sleep", "{sleep}"],
)
second = PythonScriptStep(
    "step.py", name="second", source_directory="steps_src", inputs=[out],
    arguments=["--name", "second", "--inp", out],
)
pipeline = Pipeline(ws, steps=[second])
"""


@pytest.fixture(autouse=True)
def _restore_workspace_env() -> Any:
    saved = os.environ.pop("HEADRACE_WORKSPACE", None)
    yield
    os.environ.pop("HEADRACE_WORKSPACE", None)
    if saved is not None:
        os.environ["HEADRACE_WORKSPACE"] = saved


def hr(*args: object, code: int = 0) -> Result:
    """Run `headrace ARGS` in-process and check its exit code."""
    result = RUNNER.invoke(app, [str(a) for a in args])
    assert result.exit_code == code, (
        f"exit {result.exit_code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return result


def hr_json(*args: object, code: int = 0) -> Any:
    return json.loads(hr(*args, "--json", code=code).stdout)


def one_error_line(result: Result) -> str:
    """The error of a failed command: exactly one `error: ...` line on stderr, no traceback."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def write_pipeline(root: Path, sleep: float = 0, text: str = PIPELINE_FILE) -> Path:
    """A project folder with a pipeline file and its step sources (relative to the file)."""
    project = root / "project"
    shapes.source_dir(project)
    path = project / "pipeline.py"
    path.write_text(textwrap.dedent(text).replace("{sleep}", str(sleep)))
    return path


def submit(ws: Workspace, pipeline: Path, *extra: object) -> dict[str, Any]:
    document: dict[str, Any] = hr_json(
        "run", "submit", pipeline, "-e", "cli", "-w", ws.path, *extra
    )
    return document


def wait_until(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def step_status(ws: Workspace, run_id: str, name: str) -> str | None:
    for step in ws.backend.list_step_runs(run_id):
        if step.name == name:
            return step.status
    return None


# -- workspace -------------------------------------------------------------------------------
def test_workspace_create_writes_config_and_show_finds_it(tmp_path: Path) -> None:
    result = hr("workspace", "create", "lab", "--path", tmp_path / "lab")
    assert f"Workspace 'lab' is ready at {tmp_path / 'lab'}" in result.stdout
    assert (tmp_path / ".azureml" / "config.json").is_file()

    shown = hr("workspace", "show").stdout  # found through .azureml/config.json
    assert "lab" in shown and "workspaceblobstore" in shown and "local" in shown
    document = hr_json("workspace", "show")
    assert document["name"] == "lab"
    assert document["path"] == str(tmp_path / "lab")
    assert document["database"] == "sqlite"
    assert document["default_datastore"] == "workspaceblobstore"
    assert {d["name"] for d in document["datastores"]} == {
        "workspaceblobstore",
        "workspacefilestore",
    }
    assert [t["name"] for t in document["compute_targets"]] == ["local"]
    assert document["unfinished_runs"] == 0

    again = hr("workspace", "create", "lab", "--path", tmp_path / "lab", code=1)
    assert "already exists" in one_error_line(again)
    reopened = hr_json("workspace", "create", "lab", "--path", tmp_path / "lab", "--exist-ok")
    assert reopened["name"] == "lab"
    assert reopened["config_file"] == str(tmp_path / ".azureml" / "config.json")


def test_workspace_is_found_by_name_folder_or_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hr("workspace", "create", "named", "--no-write-config")
    assert not (tmp_path / ".azureml").exists()
    assert hr_json("workspace", "show", "-w", "named")["name"] == "named"
    folder = hr_json("workspace", "show", "-w", "named")["path"]
    assert hr_json("workspace", "show", "--workspace", folder)["name"] == "named"
    assert hr_json("-w", "named", "workspace", "show")["name"] == "named"
    monkeypatch.setenv("HEADRACE_WORKSPACE", "named")
    assert hr_json("workspace", "show")["name"] == "named"


def test_missing_workspace_is_one_line_naming_the_fix(tmp_path: Path) -> None:
    line = one_error_line(hr("workspace", "show", "-w", "nowhere", code=1))
    assert "No workspace named 'nowhere'" in line and "headrace workspace create" in line
    line = one_error_line(hr("run", "list", "-w", "./no/such/folder", code=1))
    assert "No workspace folder at" in line
    line = one_error_line(hr("run", "list", code=1))  # no config here or above
    assert "--workspace" in line


# -- datastores ------------------------------------------------------------------------------
def test_datastore_upload_list_download_round_trip(ws: Workspace, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("alpha")
    (tmp_path / "data" / "sub").mkdir(parents=True)
    (tmp_path / "data" / "x.csv").write_text("1,2")
    (tmp_path / "data" / "sub" / "y.csv").write_text("3,4")

    stores = hr_json("datastore", "list", "-w", ws.path)["datastores"]
    blob = next(d for d in stores if d["name"] == "workspaceblobstore")
    assert blob["is_default"] and Path(blob["root"]).is_dir()
    assert "workspacefilestore" in hr("datastore", "list", "-w", ws.path).stdout

    args = ["datastore", "upload", "workspaceblobstore", "a.txt", "data", "-w", ws.path]
    uploaded = hr_json(*args, "--target-path", "inputs")
    # A file lands at TARGET/NAME; a folder's contents land under TARGET (SDK v1 upload).
    assert sorted(uploaded["files"]) == ["inputs/a.txt", "inputs/sub/y.csv", "inputs/x.csv"]
    assert uploaded["uploaded"] == 3 and uploaded["skipped"] == []

    (tmp_path / "a.txt").write_text("changed")
    again = hr_json(*args, "--target-path", "inputs")
    assert again["uploaded"] == 0
    assert sorted(again["skipped"]) == ["inputs/a.txt", "inputs/sub/y.csv", "inputs/x.csv"]
    # One line for the skipped files, in the CLI's words.
    assert hr(*args, "--target-path", "inputs").stdout.splitlines()[-1] == (
        "3 files already there on datastore 'workspaceblobstore', skipped: pass --overwrite "
        "to replace them"
    )
    hr(*args, "--target-path", "inputs", "--overwrite")

    result = hr_json(
        "datastore", "download", "workspaceblobstore", "out", "--prefix", "inputs", "-w", ws.path
    )
    assert result["downloaded"] == 3
    assert (tmp_path / "out" / "inputs" / "a.txt").read_text() == "changed"
    assert (tmp_path / "out" / "inputs" / "sub" / "y.csv").read_text() == "3,4"
    # Existing local files are kept unless --overwrite.
    (tmp_path / "out" / "inputs" / "x.csv").write_text("local")
    hr("datastore", "download", "workspaceblobstore", "out", "-w", ws.path)
    assert (tmp_path / "out" / "inputs" / "x.csv").read_text() == "local"
    hr("datastore", "download", "workspaceblobstore", "out", "--overwrite", "-w", ws.path)
    assert (tmp_path / "out" / "inputs" / "x.csv").read_text() == "1,2"


def test_upload_outside_the_datastore_is_refused_in_one_line(ws: Workspace, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("alpha")
    root = Path(ws.get_default_datastore().root)
    result = hr(
        "datastore", "upload", "workspaceblobstore", "a.txt", "--target-path", "../escape",
        "-w", ws.path, code=1,
    )  # fmt: skip
    assert ".." in one_error_line(result)
    assert not (root.parent / "escape").exists()
    assert ws.get_default_datastore().list_files() == []

    line = one_error_line(hr("datastore", "upload", "nostore", "a.txt", "-w", ws.path, code=1))
    assert "No datastore named 'nostore'" in line and "workspaceblobstore" in line
    line = one_error_line(
        hr("datastore", "upload", "workspaceblobstore", "missing.txt", "-w", ws.path, code=1)
    )
    assert "missing.txt" in line


# -- runs ------------------------------------------------------------------------------------
def test_submit_then_list_show_logs_and_wait(any_ws: Workspace, tmp_path: Path) -> None:
    ws = any_ws
    pipeline = write_pipeline(tmp_path, sleep=0.3)
    run = submit(ws, pipeline, "--param", "value=fromcli")
    run_id = run["id"]
    assert run["experiment"] == "cli" and run["parameters"] == {"value": "fromcli"}

    # Follows the logs while the run goes on, each line prefixed with its step (and, from
    # the combined log, with its time and stream).
    followed = hr("run", "logs", run_id[:8], "--follow", "-w", ws.path).stdout
    stamped = r"^\[first\] \S+Z stdout step first start=.* value=fromcli$"
    assert re.search(stamped, followed, re.M), followed
    assert "stdout step second" in followed
    assert "PipelineRun Status: Finished" in followed

    assert "Finished" in hr("run", "wait", run_id[:8], "-w", ws.path).stdout
    shown = hr_json("run", "show", run_id[:8], "-w", ws.path)
    assert shown["id"] == run_id and shown["status"] == "Finished"
    assert [(s["name"], s["status"], s["reused"]) for s in shown["steps"]] == [
        ("first", "Finished", False),
        ("second", "Finished", False),
    ]
    assert shown["steps"][0]["run_reason"]["summary"] == "first run of step 'first'"
    table = hr("run", "show", run_id, "-w", ws.path).stdout
    assert "first run of step 'first'" in table and "value='fromcli'" in table

    listed = hr_json("run", "list", "-w", ws.path)["runs"]
    assert [r["id"] for r in listed] == [run_id]
    assert hr_json("run", "list", "--status", "finished", "-w", ws.path)["runs"]
    assert hr_json("run", "list", "--status", "Failed", "-w", ws.path)["runs"] == []
    assert hr_json("run", "list", "-e", "other", "-w", ws.path)["runs"] == []
    assert run_id in hr("run", "list", "-w", ws.path).stdout

    logs = hr_json("run", "logs", run_id, "--step", "first", "-w", ws.path)
    assert [s["name"] for s in logs["steps"]] == ["first"]
    assert "value=fromcli" in logs["steps"][0]["stdout"]
    plain = hr("run", "logs", run_id, "--step", "second", "-w", ws.path).stdout
    assert "[second]" in plain and "[first]" not in plain
    line = one_error_line(hr("run", "logs", run_id, "--step", "frist", "-w", ws.path, code=1))
    assert "did you mean 'first'" in line and "first, second" in line


def test_submit_json_keeps_stdout_machine_readable(ws: Workspace, tmp_path: Path) -> None:
    pipeline = write_pipeline(tmp_path)
    result = hr("run", "submit", pipeline, "-e", "cli", "-w", ws.path, "--wait", "--json")
    document = json.loads(result.stdout)  # only the JSON document is on stdout
    assert document["status"] == "Finished"
    assert [s["name"] for s in document["steps"]] == ["first", "second"]
    assert "Created step first" in result.stderr


def test_step_show_says_why_a_step_ran_or_which_run_it_reused(
    any_ws: Workspace, tmp_path: Path
) -> None:
    ws = any_ws
    pipeline = write_pipeline(tmp_path)
    first_run = submit(ws, pipeline, "--wait")
    original = {s["name"]: s["id"] for s in first_run["steps"]}

    second_run = submit(ws, pipeline, "--wait")
    reused = {s["name"]: s for s in second_run["steps"]}
    assert reused["first"]["reused_run_id"] == original["first"]

    details = hr_json("step", "show", reused["first"]["id"][:10], "-w", ws.path)
    assert details["reason"]["decision"] == "reused"
    assert details["reason"]["reused_run_id"] == original["first"]
    assert details["reason"]["reused_pipeline_run_id"] == first_run["id"]
    text = hr("step", "show", reused["first"]["id"], "-w", ws.path).stdout
    assert f"the outputs of step run {original['first']}" in text
    assert f"of pipeline run {first_run['id']}" in text

    third_run = submit(ws, pipeline, "--wait", "-p", "value=new")
    rerun = {s["name"]: s for s in third_run["steps"]}
    details = hr_json("step", "show", rerun["first"]["id"], "-w", ws.path)
    assert details["reason"]["decision"] == "run"
    assert "parameter value changed: 'default' -> 'new'" in details["reason"]["summary"]
    assert "--value new" in " ".join(details["command"])  # after substitution
    assert details["fingerprint_parts"]["parameters"] == {"value": "new"}
    [output] = details["outputs"]
    assert output["path"] == f"azureml/{rerun['first']['id']}/out"
    assert Path(output["local_path"], "data.txt").read_text() == "firstnew;"

    consumer = hr_json("step", "show", rerun["second"]["id"], "-w", ws.path)
    [inp] = consumer["inputs"]
    assert inp["producer"] == "first" and inp["path"] == output["path"]
    text = hr("step", "show", rerun["second"]["id"], "-w", ws.path).stdout
    assert "its producing step ran again" in text and "step first" in text

    # `run show` and `run logs` given a step run id show that step.
    assert "Why it ran" in hr("run", "show", rerun["second"]["id"], "-w", ws.path).stdout
    logs = hr_json("run", "logs", rerun["first"]["id"], "-w", ws.path)
    assert [s["name"] for s in logs["steps"]] == ["first"]

    line = one_error_line(hr("step", "show", third_run["id"], "-w", ws.path, code=1))
    assert "not a step run" in line and "first" in line


def test_failed_run_exits_non_zero_and_step_show_has_the_stderr_tail(
    ws: Workspace, tmp_path: Path
) -> None:
    pipeline = write_pipeline(tmp_path)
    (pipeline.parent / "failing.py").write_text(
        textwrap.dedent(
            """
            from headrace import Pipeline, PythonScriptStep, Workspace

            def build():
                return Pipeline(Workspace.from_config(), steps=[PythonScriptStep(
                    "step.py", name="breaks", source_directory="steps_src",
                    arguments=["--name", "breaks", "--fail", "yes"],
                )])
            """
        )
    )
    result = hr(
        "run", "submit", f"{pipeline.parent / 'failing.py'}:build", "-e", "cli", "--wait",
        "-w", ws.path, code=1,
    )  # fmt: skip
    assert "[breaks] step breaks is failing on purpose" in result.stdout
    line = one_error_line(result)
    assert "ended Failed" in line and "exited with code 3" in line
    step_id = re.search(r"headrace step show (\S+)\)", line).group(1)  # type: ignore[union-attr]

    text = hr("step", "show", step_id, "-w", ws.path).stdout
    assert "Failed" in text and "step breaks is failing on purpose" in text
    assert hr_json("step", "show", step_id, "-w", ws.path)["exit_code"] == 3
    [run] = hr_json("run", "list", "-w", ws.path)["runs"]
    waited = hr("run", "wait", run["id"], "-w", ws.path, code=1)
    assert "ended Failed" in one_error_line(waited)


def test_cancel_stops_a_running_run(ws: Workspace, tmp_path: Path) -> None:
    run = submit(ws, write_pipeline(tmp_path, sleep=30))
    wait_until(lambda: step_status(ws, run["id"], "first") == "Running")
    assert "Cancel requested" in hr("run", "cancel", run["id"][:8], "-w", ws.path).stdout
    result = hr("run", "wait", run["id"], "--timeout", "20", "-w", ws.path, code=1)
    assert "ended Canceled" in one_error_line(result)
    assert "already ended" in hr("run", "cancel", run["id"], "-w", ws.path).stdout
    shown = hr_json("run", "show", run["id"], "-w", ws.path)
    assert shown["status"] == "Canceled"
    # The consumer never started: it is listed with what it waited for.
    second = next(s for s in shown["steps"] if s["name"] == "second")
    assert second["id"] is None and second["waiting_for"] == ["first"]


def test_wait_timeout_exits_non_zero_while_the_run_goes_on(ws: Workspace, tmp_path: Path) -> None:
    run = submit(ws, write_pipeline(tmp_path, sleep=30))
    result = hr("run", "wait", run["id"], "--timeout", "0.3", "-w", ws.path, code=1)
    assert "timed out" in one_error_line(result)
    hr("run", "cancel", run["id"], "-w", ws.path)


DATAPATH_PIPELINE = """
from headrace import (
    DataPath, DataPathComputeBinding, Pipeline, PipelineData, PipelineParameter,
    PythonScriptStep, Workspace,
)

ws = Workspace.from_config()
data = PipelineParameter("data", default_value=DataPath(ws.get_default_datastore(), "data/one"))
pair = (data, DataPathComputeBinding(mode="mount"))
out = PipelineData("out")
pipeline = Pipeline(ws, steps=[PythonScriptStep(
    "step.py", name="reader", source_directory="steps_src", inputs=[pair], outputs=[out],
    arguments=["--name", "reader", "--inp", pair, "--out", out],
)])
"""


def test_datapath_param_is_given_as_datastore_and_path(ws: Workspace, tmp_path: Path) -> None:
    for name in ("one", "two"):
        (tmp_path / "data" / name).mkdir(parents=True)
        (tmp_path / "data" / name / "data.txt").write_text(name.upper())
    hr("datastore", "upload", "workspaceblobstore", "data", "--target-path", "data", "-w", ws.path)
    pipeline = write_pipeline(tmp_path, text=DATAPATH_PIPELINE)

    run = submit(ws, pipeline, "--wait", "--param", "data=workspaceblobstore:data/two")
    details = hr_json("step", "show", run["steps"][0]["id"], "-w", ws.path)
    [inp] = details["inputs"]
    assert (inp["kind"], inp["datastore"], inp["path"]) == (
        "datapath_parameter",
        "workspaceblobstore",
        "data/two",
    )
    [output] = details["outputs"]
    assert Path(output["local_path"], "data.txt").read_text() == "TWOreader;"

    line = one_error_line(
        hr("run", "submit", pipeline, "-e", "cli", "-w", ws.path, "-p", "data=two", code=1)
    )
    assert "DataPath parameter" in line and "DATASTORE:PATH" in line


def test_unknown_run_id_is_one_error_line(ws: Workspace) -> None:
    for command in (["run", "show"], ["run", "logs"], ["run", "wait"], ["run", "cancel"]):
        result = hr(*command, "nope", "-w", ws.path, code=1)
        assert one_error_line(result) == "error: No run with an id starting with 'nope'."
    line = one_error_line(hr("step", "show", "nope", "-w", ws.path, code=1))
    assert "'nope'" in line


def test_bad_param_is_refused_before_anything_runs(ws: Workspace, tmp_path: Path) -> None:
    pipeline = write_pipeline(tmp_path)
    args = ["run", "submit", pipeline, "-e", "cli", "-w", ws.path]
    line = one_error_line(hr(*args, "--param", "valeu=1", code=1))
    assert "'valeu' does not exist" in line and "did you mean 'value'" in line
    assert "parameters: value" in line
    line = one_error_line(hr(*args, "--param", "value", code=1))
    assert "NAME=VALUE" in line
    assert hr_json("run", "list", "-w", ws.path)["runs"] == []


def test_file_without_one_pipeline_is_refused_naming_the_choices(
    ws: Workspace, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "helpers.py").write_text("def build():\n    return 42\n\nx = 1\n")
    args = ["-e", "cli", "-w", ws.path]
    line = one_error_line(hr("run", "submit", project / "helpers.py", *args, code=1))
    assert "defines no Pipeline" in line and "helpers.py:FUNCTION" in line and "build" in line
    line = one_error_line(hr("run", "submit", f"{project / 'helpers.py'}:build", *args, code=1))
    assert "returned a int, not a Pipeline" in line
    line = one_error_line(hr("run", "submit", f"{project / 'helpers.py'}:biuld", *args, code=1))
    assert "no 'biuld'" in line and "did you mean 'build'" in line
    line = one_error_line(hr("run", "submit", project / "absent.py", *args, code=1))
    assert "No pipeline file" in line
    (project / "broken.py").write_text("import json\n\nraise ValueError('bad config')\n")
    line = one_error_line(hr("run", "submit", project / "broken.py", *args, code=1))
    assert line == "error: broken.py (line 3) raised ValueError while being loaded: bad config"

    two = PIPELINE_FILE + "\nother = Pipeline(ws, steps=[first])\n"
    pipeline = write_pipeline(tmp_path, text=two)
    line = one_error_line(hr("run", "submit", pipeline, *args, code=1))
    assert "several Pipelines (pipeline, other)" in line
    run = hr_json("run", "submit", f"{pipeline}:other", *args)
    assert run["status"] in {"NotStarted", "Running", "Finished"}
    assert hr("run", "wait", run["id"], "-w", ws.path)


def test_cli_call_resumes_a_run_whose_agent_was_killed(ws: Workspace, tmp_path: Path) -> None:
    assert ws.path is not None
    run = submit(ws, write_pipeline(tmp_path, sleep=1))
    wait_until(lambda: step_status(ws, run["id"], "first") == "Running")
    pid = int((ws.path / "agent" / "agent.lock").read_text().strip())
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not agent_alive(ws.path))
    time.sleep(0.3)
    assert ws.backend.get_pipeline_run(run["id"]).status == "Running"  # nobody runs it

    hr("run", "list", "-w", ws.path)  # any CLI call starts an agent, which resumes the run
    wait_until(
        lambda: ws.backend.get_pipeline_run(run["id"]).status in {"Finished", "Failed", "Canceled"},
        timeout=15,
    )
    assert ws.backend.get_pipeline_run(run["id"]).status == "Finished"


# -- the installed console script ------------------------------------------------------------
def test_console_script_submits_with_param_and_waits(ws: Workspace, tmp_path: Path) -> None:
    headrace = Path(sys.executable).with_name("headrace")
    assert headrace.is_file(), "the `headrace` console script is not installed in this venv"
    pipeline = write_pipeline(tmp_path)
    command = [headrace, "run", "submit", pipeline, "--experiment", "script"]
    command += ["--param", "value=from-the-shell", "--wait", "--workspace", ws.path]
    done = subprocess.run(
        [str(c) for c in command], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "value=from-the-shell" in done.stdout
    run_id = re.search(r"Submitted PipelineRun (\S+)", done.stdout).group(1)  # type: ignore[union-attr]
    run = PipelineRun.get(ws, run_id)
    assert run.get_status() == "Finished"
    assert "value=from-the-shell" in run.find_step_run("first")[0].get_stdout_log()

    bad = subprocess.run(
        [str(headrace), "run", "show", "nope", "-w", str(ws.path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 1
    assert bad.stderr == "error: No run with an id starting with 'nope'.\n"
