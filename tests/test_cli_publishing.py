"""`headrace pipeline ...` and `headrace endpoint ...`: publishing from a file, listing,
showing, disabling, submitting with `--param`, endpoint versions, and the one-line errors.

The CLI runs in-process (typer's CliRunner), as in tests/test_cli.py.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

from headrace import PublishedPipeline, Workspace
from tests import shapes
from tests.servers import LiveServer, make_token
from tests.test_cli import hr, hr_json, one_error_line

PIPELINE_FILE = """
from headrace import Pipeline, PipelineParameter, PythonScriptStep, Workspace

ws = Workspace.from_config()
count = PipelineParameter("count", default_value=1)
label = PipelineParameter("label", default_value="{label}")
echo = PythonScriptStep(
    "step.py", name="echo", source_directory="steps_src",
    arguments=["--name", "echo", "--value", count, "--fail", "no", "--inp", label],
)
pipeline = Pipeline(ws, steps=[echo])
"""


@pytest.fixture(autouse=True)
def _no_server_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HEADRACE_SERVER_URL", raising=False)
    monkeypatch.delenv("HEADRACE_TOKEN", raising=False)
    monkeypatch.delenv("HEADRACE_WORKSPACE", raising=False)


def write_pipeline(root: Path, label: str = "a") -> Path:
    project = root / f"project-{label}"
    shapes.source_dir(project)
    # The step reads `--inp` as a folder; give it one holding data.txt so it prints the value.
    (project / "steps_src" / label).mkdir(exist_ok=True)
    path = project / "pipeline.py"
    text = textwrap.dedent(PIPELINE_FILE).replace("{label}", label)
    path.write_text(text)
    (project / "steps_src" / label / "data.txt").write_text("")
    return path


def publish(ws: Workspace, tmp_path: Path, name: str, *extra: object) -> dict[str, Any]:
    document: dict[str, Any] = hr_json(
        "pipeline", "publish", write_pipeline(tmp_path), "--name", name, "-w", ws.path, *extra
    )
    return document


def step_stdout(ws: Workspace, run_id: str) -> str:
    logs = hr_json("run", "logs", run_id, "-w", ws.path)
    (step,) = logs["steps"]
    return str(step["stdout"])


# -- publish, list, show ---------------------------------------------------------------------
def test_publish_from_a_file_then_list_and_show(ws: Workspace, tmp_path: Path) -> None:
    path = write_pipeline(tmp_path)
    result = hr(
        "pipeline", "publish", path, "--name", "echo", "--description", "echoes",
        "--version", "1.0", "-w", ws.path,
    )  # fmt: skip
    assert "Published pipeline 'echo': " in result.stdout
    assert "/PipelineRuns/PipelineSubmit/" in result.stdout

    (listed,) = hr_json("pipeline", "list", "-w", ws.path)["pipelines"]
    assert listed["name"] == "echo" and listed["version"] == "1.0"
    assert listed["status"] == "Active" and listed["description"] == "echoes"
    assert listed["endpoint"].endswith(f"/PipelineRuns/PipelineSubmit/{listed['id']}")
    table = hr("pipeline", "list", "-w", ws.path).stdout
    assert listed["id"] in table and "echo" in table and "Active" in table

    shown = hr_json("pipeline", "show", "echo", "-w", ws.path)  # by name
    assert shown["id"] == listed["id"]
    assert shown["parameters"] == [
        {"name": "count", "type": "int", "default": 1},
        {"name": "label", "type": "str", "default": "a"},
    ]
    assert [s["name"] for s in shown["steps"]] == ["echo"]
    assert shown["curl"].startswith(f"curl -X POST {listed['endpoint']} ")
    body = json.loads(shown["curl"].rsplit(" -d ", 1)[1].strip("'"))
    assert body == {
        "ExperimentName": "my-experiment",
        "ParameterAssignments": {"count": 1, "label": "a"},
    }
    text = hr("pipeline", "show", listed["id"][:8], "-w", ws.path).stdout  # by id prefix
    assert "count" in text and "int" in text and "echo" in text and "curl -X POST" in text


def test_disabled_pipeline_is_refused_until_enabled_and_params_are_converted(
    ws: Workspace, tmp_path: Path
) -> None:
    published = publish(ws, tmp_path, "echo")
    pid = published["id"]
    assert hr_json("pipeline", "disable", pid, "-w", ws.path)["status"] == "Disabled"
    assert hr_json("pipeline", "list", "-w", ws.path)["pipelines"] == []
    assert [p["id"] for p in hr_json("pipeline", "list", "--all", "-w", ws.path)["pipelines"]] == [
        pid
    ]

    refused = hr("pipeline", "submit", pid, "-e", "cli", "-w", ws.path, code=1)
    line = one_error_line(refused)
    assert "is Disabled" in line and f"headrace pipeline enable {pid}" in line

    assert "is now Active" in hr("pipeline", "enable", pid, "-w", ws.path).stdout
    run = hr_json(
        "pipeline", "submit", "echo", "-e", "cli", "--param", "count=5", "--wait", "-w", ws.path
    )
    assert run["status"] == "Finished"
    assert run["parameters"] == {"count": 5, "label": "a"}  # text "5" became the int 5
    assert "value=5" in step_stdout(ws, run["id"])


def test_bad_inputs_are_one_line_errors(ws: Workspace, tmp_path: Path) -> None:
    published = publish(ws, tmp_path, "echo")
    line = one_error_line(hr("pipeline", "show", "nope", "-w", ws.path, code=1))
    assert "No published pipeline with id or name 'nope'" in line and "pipeline list" in line

    unknown = hr("pipeline", "submit", "echo", "-e", "x", "-p", "cuont=3", "-w", ws.path, code=1)
    line = one_error_line(unknown)
    assert "'cuont' does not exist" in line and "did you mean 'count'" in line
    assert "count, label" in line

    wrong_type = hr(
        "pipeline", "submit", "echo", "-e", "x", "-p", "count=many", "-w", ws.path, code=1
    )
    assert "'count' expects an int, got 'many'" in one_error_line(wrong_type)

    bad_syntax = hr("pipeline", "submit", "echo", "-e", "x", "-p", "count", "-w", ws.path, code=1)
    assert "--param expects NAME=VALUE" in one_error_line(bad_syntax)

    # A second pipeline with the same name: the name no longer says which one.
    second = publish(ws, tmp_path, "echo", "--version", "2")
    ambiguous = one_error_line(hr("pipeline", "submit", "echo", "-e", "x", "-w", ws.path, code=1))
    assert "2 published pipelines are named 'echo'" in ambiguous
    assert published["id"] in ambiguous and second["id"] in ambiguous
    assert "version 2" in ambiguous and "pass the id" in ambiguous

    missing_file = hr("pipeline", "publish", "none.py", "--name", "x", "-w", ws.path, code=1)
    assert "No pipeline file" in one_error_line(missing_file)
    line = one_error_line(hr("endpoint", "show", "nope", "-w", ws.path, code=1))
    assert "No pipeline endpoint named 'nope'" in line and "endpoint list" in line


# -- endpoints -------------------------------------------------------------------------------
def test_endpoint_versions_default_and_submit_by_version(ws: Workspace, tmp_path: Path) -> None:
    first = publish(ws, tmp_path, "echo-a")
    second = hr_json(
        "pipeline", "publish", write_pipeline(tmp_path, "b"), "--name", "echo-b", "-w", ws.path
    )
    created = hr_json("endpoint", "publish", "ep", "--pipeline", first["id"], "-w", ws.path)
    assert created["default_version"] == "0"
    assert created["versions"] == [{"version": "0", "pipeline_id": first["id"], "default": True}]

    added = hr_json("endpoint", "add", "ep", "--pipeline", "echo-b", "-w", ws.path)
    assert added["default_version"] == "0"
    assert [v["pipeline_id"] for v in added["versions"]] == [first["id"], second["id"]]
    text = hr("endpoint", "show", "ep", "-w", ws.path).stdout
    assert re.search(r"Default version +0 *\n", text) and second["id"] in text

    hr("endpoint", "set-default", "ep", "1", "-w", ws.path)
    shown = hr_json("endpoint", "show", created["id"][:8], "-w", ws.path)
    assert shown["default_version"] == "1" and shown["curl"].startswith("curl -X POST ")
    line = one_error_line(hr("endpoint", "set-default", "ep", "7", "-w", ws.path, code=1))
    assert "no version '7'" in line and "0, 1" in line

    by_default = hr_json("endpoint", "submit", "ep", "-e", "ep", "--wait", "-w", ws.path)
    assert by_default["parameters"]["label"] == "b"  # version 1 is echo-b
    by_version = hr_json(
        "endpoint", "submit", "ep", "-e", "ep", "--version", "0", "-p", "count=7", "--wait",
        "-w", ws.path,
    )  # fmt: skip
    assert by_version["status"] == "Finished"
    assert by_version["parameters"] == {"count": 7, "label": "a"}
    assert "value=7" in step_stdout(ws, by_version["id"])


def test_endpoint_rename_disable_archive_reactivate(ws: Workspace, tmp_path: Path) -> None:
    published = publish(ws, tmp_path, "echo")
    hr("endpoint", "publish", "ep", "--pipeline", published["id"], "-w", ws.path)
    hr("endpoint", "rename", "ep", "ep2", "-w", ws.path)
    assert [e["name"] for e in hr_json("endpoint", "list", "-w", ws.path)["endpoints"]] == ["ep2"]

    assert hr_json("endpoint", "disable", "ep2", "-w", ws.path)["status"] == "Disabled"
    line = one_error_line(hr("endpoint", "submit", "ep2", "-e", "x", "-w", ws.path, code=1))
    assert "Disabled" in line and "headrace endpoint enable ep2" in line
    assert hr_json("endpoint", "list", "-w", ws.path)["endpoints"] == []
    assert hr_json("endpoint", "enable", "ep2", "-w", ws.path)["status"] == "Active"

    archived = hr_json("endpoint", "archive", "ep2", "-w", ws.path)
    assert archived["status"] == "Disabled" and archived["name"].startswith("ep2_")
    # The name is free again.
    hr("endpoint", "publish", "ep2", "--pipeline", "echo", "-w", ws.path)
    back = hr_json("endpoint", "reactivate", archived["id"], "--name", "old", "-w", ws.path)
    assert back["status"] == "Active" and back["name"] == "old"
    names = [e["name"] for e in hr_json("endpoint", "list", "--all", "-w", ws.path)["endpoints"]]
    assert names == ["ep2", "old"]


# -- remote ----------------------------------------------------------------------------------
def test_commands_work_against_a_server_with_server_and_token(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    published = publish(ws, tmp_path, "echo")
    local_run = hr_json("pipeline", "submit", "echo", "-e", "local", "--wait", "-w", ws.path)
    assert ws.path is not None
    root = Path(ws.path)
    token = make_token(root, "submitter")
    with LiveServer(root) as server:
        remote = ["--server", server.url, "--token", token]
        runs = hr_json(*remote, "run", "list")["runs"]
        assert [r["id"] for r in runs] == [local_run["id"]]
        assert "test-ws" not in hr(*remote, "run", "list").stderr

        (listed,) = hr_json(*remote, "pipeline", "list")["pipelines"]
        assert listed["id"] == published["id"]
        assert listed["endpoint"].startswith(f"{server.url}/pipelines/v1.0/")
        shown = hr_json(*remote, "pipeline", "show", "echo")
        assert shown["curl"].startswith(f"curl -X POST {server.url}/")

        run = hr_json(
            *remote, "pipeline", "submit", published["id"][:8], "-e", "remote",
            "-p", "count=3", "--wait",
        )  # fmt: skip
        assert run["status"] == "Finished" and run["parameters"]["count"] == 3
        assert "value=3" in step_stdout(ws, run["id"])

        # A pipeline file builds its pipeline on the workspace its config names: the served
        # one (a config with server_url) is published there; a local one is refused.
        path = write_pipeline(tmp_path, "remote")
        config = path.parent / ".azureml" / "config.json"
        config.parent.mkdir()
        config.write_text(json.dumps({"server_url": server.url, "token": token}))
        over_rest = hr_json(*remote, "pipeline", "publish", path, "--name", "remote-echo")
        assert PublishedPipeline.get(ws, over_rest["id"]).name == "remote-echo"
        config.unlink()
        monkeypatch.setenv("HEADRACE_WORKSPACE", str(root))  # the file opens the local folder
        refused = hr(*remote, "pipeline", "publish", path, "--name", "x", code=1)
        assert "builds its pipeline on the local workspace" in one_error_line(refused)
        monkeypatch.delenv("HEADRACE_WORKSPACE")

        # The workspace's name is checked against the server's; a bad token is one line.
        line = one_error_line(hr(*remote, "-w", "other", "run", "list", code=1))
        assert "serves workspace 'test-ws', not 'other'" in line
        bad = one_error_line(hr("--server", server.url, "--token", "nope", "run", "list", code=1))
        assert "token" in bad


def test_token_and_server_commands_stay_local(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    # $HEADRACE_SERVER_URL (read by the SDK for endpoint URLs) does not send them away...
    monkeypatch.setenv("HEADRACE_SERVER_URL", "http://127.0.0.1:1")
    assert hr_json("token", "list", "-w", ws.path) == []
    # ... and an explicit --server is a usage error naming the fix.
    result = hr("--server", "http://127.0.0.1:1", "token", "list", "-w", ws.path, code=2)
    text = " ".join(result.stderr.replace("│", " ").split())  # typer boxes usage errors
    assert "works on a local workspace folder; drop --server" in text
