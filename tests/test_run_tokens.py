"""A step's run token end to end, under a real `headrace server`: what the docs promise a
running step may do with `HEADRACE_RUN_TOKEN` (submit a published pipeline as a child of its
run, then follow that child), and what it may not (anything else of the workspace).
"""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from headrace import (
    Experiment,
    Pipeline,
    PipelineRun,
    PythonScriptStep,
    TokenAuthentication,
    Workspace,
)
from tests.servers import free_port, make_token

LAUNCHER = textwrap.dedent(
    """
    # SDK v1's way for a step to start another pipeline: POST to its endpoint with the run
    # as parentRunId. headrace gives the step its server and a token in the environment.
    import json, os, sys, urllib.error, urllib.request

    server = os.environ["HEADRACE_SERVER_URL"]
    token = os.environ.get("HEADRACE_RUN_TOKEN")
    if token is None:  # a server that confines its steps may hand the token over in a file
        token = open(os.environ["HEADRACE_RUN_TOKEN_FILE"]).read().strip()
    auth = {"Authorization": "Bearer " + token}
    me = os.environ["HEADRACE_RUN_ID"]

    def call(method, url, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method, headers={
            **auth, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request) as answer:
                return answer.status, json.load(answer)
        except urllib.error.HTTPError as refused:
            return refused.code, json.load(refused)

    status, child = call("POST", sys.argv[1] + "?parentRunId=" + me, {"ExperimentName": "kids"})
    print("submitted", status, child.get("Id"))
    status, seen = call("GET", server + "/api/v1/runs/" + child["Id"])
    print("child seen", status, seen["tags"]["azureml.parentRunId"] == me)
    status, listed = call("GET", server + "/api/v1/published-pipelines?parentRunId=" + me)
    print("listing refused", status)
    """
)
CHILD = 'print("the child ran")\n'


@contextmanager
def headrace_server(root: Path, log: Path) -> Iterator[str]:
    """`headrace server` on a free port, as a user starts it (its log in `log`); its URL."""
    port = free_port()
    command = [str(Path(sys.executable).parent / "headrace"), "server", "-w", str(root)]
    # As root the server would run steps as nobody, who cannot run this checkout's Python
    # (tests/test_step_isolation.py covers that); steps stay confined by Landlock.
    command += ["--step-user", pwd.getpwuid(os.geteuid()).pw_name]
    with log.open("w") as output:
        process = subprocess.Popen([*command, "--port", str(port)], stdout=output, stderr=output)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/health", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.1)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def script_step(tmp_path: Path, name: str, text: str, *arguments: str) -> PythonScriptStep:
    folder = tmp_path / name
    folder.mkdir()
    (folder / f"{name}.py").write_text(text)
    return PythonScriptStep(
        f"{name}.py",
        name=name,
        arguments=list(arguments),
        source_directory=str(folder),
        allow_reuse=False,
    )


def test_a_step_submits_a_child_pipeline_with_its_run_token(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = Path(str(ws.path))
    token = make_token(root, "submitter")
    with headrace_server(root, tmp_path / "server.log") as url:
        monkeypatch.setenv("HEADRACE_SERVER_URL", url)  # where PublishedPipeline.endpoint points
        with Workspace.get("test-ws", url=url, auth=TokenAuthentication(token)) as remote:
            child = Pipeline(remote, steps=[script_step(tmp_path, "child", CHILD)])
            published = child.publish(name="child")
            launcher = script_step(tmp_path, "launcher", LAUNCHER, published.endpoint)
            parent = Experiment(remote, "parents").submit(Pipeline(remote, steps=[launcher]))
            assert parent.wait_for_completion(show_output=False) == "Finished"
            (step,) = parent.get_steps()
            said = step.get_stdout_log()
            assert "submitted 200" in said, said + step.get_stderr_log()
            assert "child seen 200 True" in said and "listing refused 403" in said
            child_id = said.split("submitted 200 ")[1].split()[0]
            child_run = PipelineRun.get(remote, child_id)
            assert child_run.wait_for_completion(show_output=False) == "Finished"
            assert child_run.get_tags()["azureml.parentRunId"] == step.id
            (child_step,) = child_run.get_steps()
            assert "the child ran" in child_step.get_stdout_log()
