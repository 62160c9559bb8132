"""The rest of what SDK v1 notebooks touch (issue 14 item 6): the workspace's Azure fields as
text, RunDetails in a terminal and in Jupyter, PipelineEndpoint.list_versions(), the SDK v1
exceptions around Datastore.get and their `.message`, validate() returning problems, and the
Databricks library descriptions. (REST ParameterAssignments the pipeline does not declare:
tests/test_server.py; getArgument in Databricks notebooks: tests/test_spark_step.py.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from headrace import Pipeline, PythonScriptStep, Workspace
from headrace.compat.azureml.exceptions import (
    ComputeTargetException,
    UserErrorException,
    WorkspaceException,
)


def write_step(folder: Path, name: str, code: str) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(textwrap.dedent(code))
    return str(folder)


# -- the workspace ---------------------------------------------------------------------------
def test_azure_fields_are_text_local_unless_given(tmp_path: Path) -> None:
    ws = Workspace.create("plain", path=str(tmp_path / "plain"))
    assert (ws.subscription_id, ws.resource_group, ws.location) == ("local", "local", "local")
    assert "Region: " + ws.location == "Region: local"  # a TypeError when it was None
    given = Workspace.create(
        "given", path=str(tmp_path / "given"), subscription_id="sub", location="westeurope"
    )
    assert (given.subscription_id, given.resource_group, given.location) == (
        "sub",
        "local",
        "westeurope",
    )
    # write_config keeps what was given (no "local" written for what was not).
    config = json.loads(Path(ws.write_config(str(tmp_path))).read_text())
    assert config["subscription_id"] is None
    again = Workspace.from_config(str(tmp_path))
    assert again.location == "local"


# -- exceptions ------------------------------------------------------------------------------
def test_an_unknown_datastore_is_a_user_error_exception_with_a_message(tmp_path: Path) -> None:
    from headrace.compat.azureml.core import Datastore

    ws = Workspace.create("w", path=str(tmp_path / "ws"))
    try:
        Datastore.get(ws, "images")
    except UserErrorException as caught:  # what SDK v1 code catches
        message = caught.message
    else:
        pytest.fail("Datastore.get of an unknown name did not raise")
    assert "images" in message and "workspaceblobstore" in message
    with pytest.raises(LookupError):  # still a not-found error for headrace's own code
        Datastore(ws, "images")


def test_compat_exceptions_have_their_message(tmp_path: Path) -> None:
    from headrace.compat.azureml.core import ComputeTarget

    ws = Workspace.create("w", path=str(tmp_path / "ws"))
    with pytest.raises(ComputeTargetException) as missing_target:
        ComputeTarget(ws, "gpu-cluster")
    with pytest.raises(WorkspaceException) as missing_workspace:
        Workspace.get("no-such-workspace-anywhere")
    for caught in (missing_target, missing_workspace):
        assert caught.value.message == str(caught.value)
        assert caught.value.message


# -- validate --------------------------------------------------------------------------------
def test_validate_returns_every_problem_instead_of_raising(tmp_path: Path) -> None:
    ws = Workspace.create("w", path=str(tmp_path / "ws"))
    src = str(tmp_path)
    broken = [
        PythonScriptStep("missing.py", name="a", source_directory=src),
        PythonScriptStep("train.py", name="b", source_directory=src + "/nowhere"),
        PythonScriptStep("missing.py", name="c", source_directory=src, compute_target="gpu"),
    ]
    problems = Pipeline(ws, broken).validate()
    assert isinstance(problems, list)
    assert [p.split(":")[0] for p in problems] == ["Step 'a'", "Step 'b'", "Step 'c'", "Step 'c'"]
    assert "compute target 'gpu'" in problems[-1]
    assert Pipeline(ws, []).validate() == [
        "The pipeline has no steps: pass at least one step to Pipeline(steps=[...])."
    ]


# -- pipeline endpoints ----------------------------------------------------------------------
def test_list_versions_gives_the_version_and_its_pipeline(tmp_path: Path) -> None:
    from headrace.compat.azureml.pipeline.core import PipelineEndpoint

    ws = Workspace.create("w", path=str(tmp_path / "ws"))
    src = write_step(tmp_path / "src", "s.py", "print(1)\n")
    step = PythonScriptStep("s.py", source_directory=src)
    first = Pipeline(ws, [step]).publish(name="p1")
    second = Pipeline(ws, [step]).publish(name="p2")
    endpoint = PipelineEndpoint.publish(ws, name="ep", pipeline=first, description="d")
    endpoint.add(second)
    versions = endpoint.list_versions()
    assert [(v.version, v.pipeline.id, v.pipeline_id) for v in versions] == [
        ("0", first.id, first.id),
        ("1", second.id, second.id),
    ]
    assert versions[1].pipeline.name == "p2"


# -- Databricks library descriptions ---------------------------------------------------------
@pytest.mark.usefixtures("aliased")
def test_databricks_libraries_import_from_both_sdk_v1_modules_and_are_recorded(
    tmp_path: Path,
) -> None:
    import azureml.core.databricks
    from azureml.core.databricks import MavenLibrary, PyPiLibrary
    from azureml.core.runconfig import JarLibrary
    from azureml.pipeline.steps import DatabricksStep

    assert azureml.core.databricks.JarLibrary is JarLibrary
    src = write_step(tmp_path / "src", "job.py", "print(1)\n")
    step = DatabricksStep(
        name="job",
        python_script_name="job.py",
        source_directory=src,
        num_workers=1,
        spark_version="13.3.x-scala2.12",
        node_type="Standard_D3_v2",
        jar_libraries=[JarLibrary("dbfs:/jars/udf.jar")],
        pypi_libraries=[PyPiLibrary("numpy==1.26.4")],
        maven_libraries=[MavenLibrary("com.example:lib:1.0", exclusions=["x:y"])],
    )
    assert step.libraries["jar"] == [JarLibrary(library="dbfs:/jars/udf.jar")]
    assert step.libraries["pypi"][0].package == "numpy==1.26.4"
    assert step.libraries["maven"][0].exclusions == ["x:y"]


# -- RunDetails ------------------------------------------------------------------------------
PIPELINE = """
from azureml.core import Experiment, Workspace
from azureml.pipeline.core import Pipeline, PipelineData
from azureml.pipeline.steps import PythonScriptStep

ws = Workspace.create("w", path={ws!r})
data = PipelineData("data", datastore=ws.get_default_datastore())
first = PythonScriptStep("slow.py", name="first", source_directory={src!r},
                         arguments=["--out", data], outputs=[data])
second = PythonScriptStep("slow.py", name="second", source_directory={src!r},
                          arguments=["--out", data], inputs=[data])
run = Experiment(ws, "details").submit(Pipeline(ws, [first, second]))
"""
SLOW = "import time\ntime.sleep(1)\nprint('done')\n"


def test_run_details_in_a_terminal_draws_the_steps_until_the_run_ends(
    tmp_path: Path, ws_folder: Path
) -> None:
    src = write_step(tmp_path / "src", "slow.py", SLOW)
    script = tmp_path / "watch.py"
    script.write_text(
        PIPELINE.format(ws=str(ws_folder), src=src)
        + "from azureml.widgets import RunDetails\n"
        + "RunDetails(run).show()\n"
        + "print('after show:', run.get_status())\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "headrace.v1", str(script)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        env={**os.environ, "COLUMNS": "120"},
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.rstrip().endswith("after show: Finished")  # show() returned when it ended
    final = out[out.rindex("Run ") :]
    assert "Finished" in final.splitlines()[0]
    for step in ("first", "second"):
        assert any(step in line and "Finished" in line for line in final.splitlines())


def test_run_details_in_jupyter_is_a_widget_that_follows_the_run(
    tmp_path: Path, ws_folder: Path
) -> None:
    import nbformat
    from nbclient import NotebookClient

    src = write_step(tmp_path / "src", "slow.py", SLOW)
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell("%load_ext headrace.v1"),
        nbformat.v4.new_code_cell(
            PIPELINE.format(ws=str(ws_folder), src=src)
            + "from azureml.widgets import RunDetails\n"
            + "details = RunDetails(run)\n"
            + "details.show()\n"
            + "print('returned while', run.get_status() in ('NotStarted', 'Running'))\n"
        ),
        nbformat.v4.new_code_cell(
            "run.wait_for_completion(show_output=False)\n"
            "details.wait(30)\n"
            "print(details.widget.value)\n"
        ),
    ]
    NotebookClient(notebook, timeout=180, kernel_name="python3", resources={}).execute()
    shown = notebook.cells[1].outputs
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in shown)
    assert any(o.get("text", "").strip() == "returned while True" for o in shown)
    final = "".join(o.get("text", "") for o in notebook.cells[2].outputs)
    assert "Finished" in final and "<td>first</td>" in final and "<td>second</td>" in final


# -- a CommandStep's command list ------------------------------------------------------------
def test_a_dataset_in_a_command_list_is_the_steps_input(tmp_path: Path, ws_folder: Path) -> None:
    from headrace import CommandStep, Dataset, Experiment, ScriptRunConfig

    ws = Workspace.create("w", path=str(ws_folder))
    data = tmp_path / "data"
    data.mkdir()
    (data / "rows.txt").write_text("a\nb\n")
    store = ws.get_default_datastore()
    store.upload(str(data), target_path="accidents")
    dataset = Dataset.File.from_files(path=[(store, "accidents/*.txt")])
    config = ScriptRunConfig(
        source_directory=write_step(tmp_path / "src", "noop.py", ""),
        command=["ls", dataset.as_mount(), "| wc -l"],
    )
    step = CommandStep(name="count", runconfig=config)  # no inputs=[...], as in SDK v1
    assert step.inputs == [config.command[1]]
    run = Experiment(ws, "commands").submit(Pipeline(ws, [step]))
    run.wait_for_completion(show_output=False, raise_on_error=False)
    step_run = run.find_step_run("count")[0]
    assert run.get_status() == "Finished", step_run.get_stderr_log()
    assert step_run.get_stdout_log().strip() == "1"  # the mounted folder holds rows.txt
