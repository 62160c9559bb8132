"""`headrace server`: a real uvicorn on 127.0.0.1 serving a fresh workspace, driven over HTTP.

Tokens are made with the CLI, as a user would; the SDK v1 REST submit is the seed notebook's
call verbatim (`requests.post(published_pipeline.endpoint, headers=aad_token, json=...)`).
"""

from __future__ import annotations

import json
import os
import pwd
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
import requests

from headrace import (
    ConfigError,
    ConflictError,
    NotFoundError,
    Pipeline,
    PipelineEndpoint,
    PipelineParameter,
    PipelineRun,
    PublishedPipeline,
    PythonScriptStep,
    Workspace,
)
from headrace.cli.main import app as cli_app
from headrace.compat.azureml.core.authentication import (
    InteractiveLoginAuthentication,
    ServicePrincipalAuthentication,
)
from headrace.server.auth import hash_secret
from headrace.store.workspace_store import WorkspaceStore
from tests.servers import RUNNER, LiveServer, bearer, free_port, make_token


def assert_error_shape(response: httpx.Response | requests.Response, status: int) -> str:
    """The one SDK v1 error shape; returns the message."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"Error", "Correlation"}
    assert set(body["Error"]) == {"Code", "Message", "Target", "Details"}
    assert isinstance(body["Error"]["Code"], str) and body["Error"]["Code"]
    assert isinstance(body["Error"]["Details"], list)
    assert body["Correlation"]["RequestId"]
    message: str = body["Error"]["Message"]
    assert message.endswith(".") or message.endswith(")"), message
    return message


@pytest.fixture
def root(ws: Workspace) -> Path:
    assert ws.path is not None
    return Path(ws.path)


@pytest.fixture
def server(root: Path) -> Iterator[LiveServer]:
    with LiveServer(root) as live:
        yield live


# -- health and tokens ---------------------------------------------------------------------
def test_health_needs_no_token(server: LiveServer) -> None:
    response = httpx.get(f"{server.url}/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "workspace": "test-ws"}


def test_token_from_the_cli_reads_and_is_never_listed(root: Path, server: LiveServer) -> None:
    token = make_token(root, "reader")
    response = httpx.get(f"{server.url}/api/v1/published-pipelines", headers=bearer(token))
    assert response.status_code == 200, response.text
    assert response.json() == {"Value": []}

    listed = RUNNER.invoke(cli_app, ["token", "list", "-w", str(root), "--json"])
    assert listed.exit_code == 0, listed.output
    assert token not in listed.output and hash_secret(token) not in listed.output
    (document,) = json.loads(listed.stdout)
    assert document["name"] == "reader" and document["state"] == "active"
    assert document["last_used_at"] is not None  # recorded on first use


def test_duplicate_token_name_is_one_error_line(root: Path) -> None:
    make_token(root, "reader", "ci")
    result = RUNNER.invoke(
        cli_app, ["token", "create", "--role", "reader", "--name", "ci", "-w", str(root)]
    )
    assert result.exit_code == 1
    assert "error: A token named 'ci' already exists" in result.stderr


def test_wrong_revoked_and_expired_tokens_are_401(root: Path, server: LiveServer) -> None:
    url = f"{server.url}/api/v1/published-pipelines"
    revoked = make_token(root, "admin", "old")
    assert httpx.get(url, headers=bearer(revoked)).status_code == 200
    result = RUNNER.invoke(cli_app, ["token", "revoke", "old", "-w", str(root)])
    assert result.exit_code == 0, result.output
    assert "revoked" in assert_error_shape(httpx.get(url, headers=bearer(revoked)), 401)

    store = WorkspaceStore.open(root)
    past = datetime.now(timezone.utc) - timedelta(minutes=1)
    secret = revoked[:16] + "expiredexpiredexpiredexpiredexpired"
    store.meta.create_token(
        name="expired", role="admin", token_hash=hash_secret(secret), expires_at=past
    )
    store.database.dispose()
    assert "expired" in assert_error_shape(httpx.get(url, headers=bearer(secret)), 401)

    unknown = revoked[:16] + "x" * 43
    assert_error_shape(httpx.get(url, headers=bearer(unknown)), 401)
    assert_error_shape(httpx.get(url, headers=bearer("not-a-token")), 401)
    assert_error_shape(httpx.get(url, headers={"Authorization": revoked}), 401)


def test_token_expiry_option_accepts_durations_and_dates(root: Path) -> None:
    make_token(root, "reader", "month", "--expires", "30d")
    make_token(root, "reader", "date", "--expires", "2999-12-31")
    bad = RUNNER.invoke(
        cli_app,
        [
            "token",
            "create",
            "--name",
            "x",
            "--role",
            "reader",
            "--expires",
            "soon",
            "-w",
            str(root),
        ],
    )
    assert bad.exit_code == 1 and "neither a duration" in bad.stderr
    listed = json.loads(RUNNER.invoke(cli_app, ["token", "list", "-w", str(root), "--json"]).stdout)
    assert {d["name"]: d["expires_at"][:10] for d in listed}["date"] == "2999-12-31"


def test_reader_cannot_submit_and_other_workspaces_tokens_are_403(
    root: Path, tmp_path: Path, server: LiveServer
) -> None:
    reader = make_token(root, "reader")
    body = {"ExperimentName": "e"}
    message = assert_error_shape(
        httpx.post(server.submit_url("any"), headers=bearer(reader), json=body), 403
    )
    assert "'reader'" in message and "submitter" in message

    other = Workspace.create("other-ws", path=tmp_path / "other", show_output=False)
    foreign = make_token(Path(str(other.path)), "admin")
    message = assert_error_shape(
        httpx.get(f"{server.url}/api/v1/published-pipelines", headers=bearer(foreign)), 403
    )
    assert "another workspace" in message


# -- bodies and errors ----------------------------------------------------------------------
def test_bad_bodies_get_400_or_413_in_the_one_error_shape(root: Path) -> None:
    with LiveServer(root, max_body_bytes=2000) as server:
        headers = bearer(make_token(root, "submitter"))
        url = server.submit_url("unknown-id")

        malformed = httpx.post(
            url, headers={**headers, "Content-Type": "application/json"}, content=b"{bad"
        )
        assert "not valid JSON" in assert_error_shape(malformed, 400)
        not_text = httpx.post(
            url, headers={**headers, "Content-Type": "application/json"}, content=b"\xff"
        )
        assert "not UTF-8 text" in assert_error_shape(not_text, 400)

        missing = httpx.post(url, headers=headers, json={"Description": "no experiment"})
        assert assert_error_shape(missing, 400) == "ExperimentName is required."

        wrong = httpx.post(
            url,
            headers=headers,
            json={"ExperimentName": 5, "ParameterAssignments": {"a": [1]}},
        )
        message = assert_error_shape(wrong, 400)
        assert "ExperimentName: Input should be a valid string." in message
        assert "ParameterAssignments.a must be a text, number or true/false value" in message
        assert len(wrong.json()["Error"]["Details"]) == 2

        not_object = httpx.post(url, headers=headers, json=[1, 2])
        assert "must be a JSON object" in assert_error_shape(not_object, 400)

        big = {"ExperimentName": "e", "Description": "x" * 5000}
        assert "limit of 2000 bytes" in assert_error_shape(
            httpx.post(url, headers=headers, json=big), 413
        )

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted while reading
            yield b'{"ExperimentName": "e", "Description": "'
            for _ in range(10):
                yield b"y" * 500
            yield b'"}'

        streamed = httpx.post(
            url, headers={**headers, "Content-Type": "application/json"}, content=chunks()
        )
        assert_error_shape(streamed, 413)

        unknown = httpx.post(url, headers=headers, json={"ExperimentName": "e"})
        assert "unknown-id" in assert_error_shape(unknown, 404)

        assert_error_shape(httpx.get(f"{server.url}/no/such/route", headers=headers), 404)
        assert_error_shape(httpx.get(f"{server.url}/api/v1/runs/nope", headers=headers), 404)
        wrong_ws = httpx.post(
            server.submit_url("x", workspace="elsewhere"),
            headers=headers,
            json={"ExperimentName": "e"},
        )
        assert "serves workspace 'test-ws'" in assert_error_shape(wrong_ws, 404)


def test_no_auth_is_refused_off_loopback(root: Path) -> None:
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "headrace"),
            "server",
            "-w",
            str(root),
            "--host",
            "0.0.0.0",
            "--no-auth",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    assert "Refusing to serve on 0.0.0.0 with --no-auth" in result.stderr

    workers = RUNNER.invoke(cli_app, ["server", "-w", str(root), "--workers", "0"])
    assert workers.exit_code == 1 and "--workers 0: a server needs at least one" in workers.stderr


def test_no_auth_on_loopback_needs_no_token(root: Path) -> None:
    with LiveServer(root, auth=False) as server:
        response = httpx.get(f"{server.url}/api/v1/published-pipelines")
        assert response.status_code == 200, response.text


# -- submitting published pipelines over REST -----------------------------------------------
STEP = textwrap.dedent(
    """
    import sys
    print("pipeline_arg=" + sys.argv[1])
    """
)


def publish_one_step(ws: Workspace, tmp_path: Path) -> PublishedPipeline:
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "echo.py").write_text(STEP)
    step = PythonScriptStep(
        "echo.py",
        name="echo",
        arguments=[PipelineParameter("pipeline_arg", default_value=1)],
        source_directory=str(folder),
        allow_reuse=False,
    )
    return Pipeline(ws, steps=[step]).publish(name="echo-it", description="echoes its argument")


def step_said(ws: Workspace, run_id: str) -> str:
    run = PipelineRun.get(ws, run_id)
    run.wait_for_completion(show_output=False)
    assert run.get_status() == "Finished"
    (step,) = run.get_steps()
    return str(step.get_stdout_log().strip())


def test_seed_notebook_rest_submit_runs_the_published_pipeline(
    ws: Workspace, root: Path, tmp_path: Path, server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEADRACE_SERVER_URL", server.url)
    monkeypatch.setenv("HEADRACE_TOKEN", make_token(root, "submitter"))
    published_pipeline1 = publish_one_step(ws, tmp_path)

    # The seed document's call, verbatim.
    aad_token = InteractiveLoginAuthentication().get_authentication_header()
    response = requests.post(
        published_pipeline1.endpoint,
        headers=aad_token,
        json={"ExperimentName": "My_Pipeline", "ParameterAssignments": {"pipeline_arg": 20}},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    entity = response.json()
    assert entity["IsSubmitted"] is True and entity["HasErrors"] is False
    assert entity["PipelineId"] == published_pipeline1.id
    assert entity["RunHistoryExperimentName"] == "My_Pipeline"
    assert entity["TotalRunSteps"] == 1
    assert entity["ParameterAssignments"]["pipeline_arg"] in (20, "20")
    assert step_said(ws, entity["Id"]) == "pipeline_arg=20"

    # Text and numbers are both accepted for an int parameter.
    for value in ("45", 45):
        response = requests.post(
            published_pipeline1.endpoint,
            headers=aad_token,
            json={"ExperimentName": "My_Pipeline", "ParameterAssignments": {"pipeline_arg": value}},
            timeout=60,
        )
        assert response.status_code == 200, response.text
        assert step_said(ws, response.json()["Id"]) == "pipeline_arg=45"

    status = httpx.get(f"{server.url}/api/v1/runs/{entity['Id']}", headers=aad_token)
    assert status.status_code == 200
    assert status.json()["Status"]["StatusCode"] == "Finished"
    assert [s["Name"] for s in status.json()["Steps"]] == ["echo"]

    listed = httpx.get(f"{server.url}/api/v1/published-pipelines", headers=aad_token).json()
    assert [p["Url"] for p in listed["Value"]] == [published_pipeline1.endpoint]


def test_undeclared_parameters_run_as_in_sdk_v1_and_are_recorded_as_ignored(
    ws: Workspace, root: Path, tmp_path: Path, server: LiveServer
) -> None:
    published = publish_one_step(ws, tmp_path)
    headers = bearer(make_token(root, "submitter"))
    response = httpx.post(
        server.submit_url(published.id),
        headers=headers,
        json={"ExperimentName": "e", "ParameterAssignments": {"pipeline_ar": 3, "extra": "x"}},
    )
    assert response.status_code == 200, response.text
    entity = response.json()
    assert entity["IgnoredParameterAssignments"] == ["pipeline_ar", "extra"]
    assert entity["ParameterAssignments"] == {"pipeline_arg": 1}
    assert step_said(ws, entity["Id"]) == "pipeline_arg=1"  # the default, as SDK v1 ran it
    run = PipelineRun.get(ws, entity["Id"])
    assert run.get_properties()["headrace.ignoredParameterAssignments"] == "extra, pipeline_ar"
    shown = RUNNER.invoke(cli_app, ["run", "show", entity["Id"], "--workspace", str(root)])
    assert "Ignored parameters" in shown.output and "extra, pipeline_ar" in shown.output
    declared_only = httpx.post(
        server.submit_url(published.id),
        headers=headers,
        json={"ExperimentName": "e", "ParameterAssignments": {"pipeline_arg": 2}},
    )
    assert "IgnoredParameterAssignments" not in declared_only.json()


def test_a_wrongly_typed_parameter_is_400_and_creates_no_run(
    ws: Workspace, root: Path, tmp_path: Path, server: LiveServer
) -> None:
    published = publish_one_step(ws, tmp_path)
    headers = bearer(make_token(root, "submitter"))
    before = len(ws.backend.list_pipeline_runs())
    wrong_type = httpx.post(
        server.submit_url(published.id),
        headers=headers,
        json={"ExperimentName": "e", "ParameterAssignments": {"pipeline_arg": "many"}},
    )
    assert "pipeline_arg" in assert_error_shape(wrong_type, 400)
    assert len(ws.backend.list_pipeline_runs()) == before


def test_disabled_pipeline_is_409_and_creates_no_run(
    ws: Workspace, root: Path, tmp_path: Path, server: LiveServer
) -> None:
    published = publish_one_step(ws, tmp_path)
    published.disable()
    headers = bearer(make_token(root, "submitter"))
    response = httpx.post(
        server.submit_url(published.id), headers=headers, json={"ExperimentName": "e"}
    )
    message = assert_error_shape(response, 409)
    assert response.json()["Error"]["Code"] == "PipelineDisabled"
    assert "enable" in message
    assert ws.backend.list_pipeline_runs() == []


def test_endpoint_routes_submit_by_id_version_and_name(
    ws: Workspace, root: Path, tmp_path: Path, server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEADRACE_SERVER_URL", server.url)
    published = publish_one_step(ws, tmp_path)
    endpoint = PipelineEndpoint.publish(ws, "echo-endpoint", "echoes", published)
    headers = bearer(make_token(root, "submitter"))
    body = {"ExperimentName": "ep", "ParameterAssignments": {"pipeline_arg": "7"}}
    base = server.submit_url("x").rsplit("/PipelineRuns/", 1)[0] + "/PipelineRuns"

    by_id = httpx.post(endpoint.endpoint, headers=headers, json=body)
    assert by_id.status_code == 200, by_id.text
    assert by_id.json()["PipelineId"] == published.id
    by_version = httpx.post(
        f"{base}/PipelineEndpointSubmit/Id/{endpoint.id}/0", headers=headers, json=body
    )
    assert by_version.status_code == 200, by_version.text
    by_name = httpx.post(
        f"{base}/PipelineEndpointSubmit/Name",
        params={"name": "echo-endpoint", "pipelineVersion": "0"},
        headers=headers,
        json=body,
    )
    assert by_name.status_code == 200, by_name.text
    assert step_said(ws, by_name.json()["Id"]) == "pipeline_arg=7"

    no_version = httpx.post(
        f"{base}/PipelineEndpointSubmit/Id/{endpoint.id}/9", headers=headers, json=body
    )
    assert "no version '9'" in assert_error_shape(no_version, 400)
    unknown = httpx.post(
        f"{base}/PipelineEndpointSubmit/Name", params={"name": "nope"}, headers=headers, json=body
    )
    assert_error_shape(unknown, 404)
    endpoint.disable()
    disabled = httpx.post(endpoint.endpoint, headers=headers, json=body)
    assert "Status must be Active" in assert_error_shape(disabled, 409)


def test_cancel_a_run_over_rest(
    ws: Workspace, root: Path, tmp_path: Path, server: LiveServer
) -> None:
    published = publish_one_step(ws, tmp_path)
    submitter = bearer(make_token(root, "submitter"))
    run_id = httpx.post(
        server.submit_url(published.id), headers=submitter, json={"ExperimentName": "e"}
    ).json()["Id"]
    canceled = httpx.post(f"{server.url}/api/v1/runs/{run_id}/cancel", headers=submitter)
    assert canceled.status_code == 200, canceled.text
    final = PipelineRun.get(ws, run_id)
    final.wait_for_completion(show_output=False, raise_on_error=False)
    assert final.get_status() in ("Canceled", "Finished")


def test_authentication_reads_the_workspace_config_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HEADRACE_TOKEN", raising=False)
    monkeypatch.delenv("HEADRACE_WORKSPACE", raising=False)
    with pytest.raises(ConfigError, match="headrace token create"):
        InteractiveLoginAuthentication().get_authentication_header()
    config = tmp_path / ".azureml" / "config.json"
    config.parent.mkdir()
    config.write_text(json.dumps({"workspace_name": "w", "token": "hr_from_config"}))
    sp = ServicePrincipalAuthentication("tenant", "app-id", "password")
    assert sp.get_authentication_header() == {"Authorization": "Bearer hr_from_config"}
    monkeypatch.setenv("HEADRACE_TOKEN", "hr_from_env")
    assert InteractiveLoginAuthentication(force=True).get_authentication_header() == {
        "Authorization": "Bearer hr_from_env"
    }


def test_token_queries_on_both_databases(any_ws: Workspace) -> None:
    store = any_ws.backend.store  # type: ignore[attr-defined]
    meta = store.meta
    created = meta.create_token(name="a", role="reader", token_hash="0" * 64)
    assert meta.find_token_by_hash("0" * 64) == created
    assert meta.find_token_by_hash("1" * 64) is None
    with pytest.raises(ConflictError, match="'a' already exists"):
        meta.create_token(name="a", role="admin", token_hash="2" * 64)
    revoked = meta.revoke_token("a")
    assert revoked.revoked_at is not None
    assert not revoked.usable_at(datetime.now(timezone.utc))
    with pytest.raises(NotFoundError, match="the tokens are: a"):
        meta.revoke_token("b")
    assert [t.name for t in meta.list_tokens()] == ["a"]

    # Portal sessions: found while live, gone when ended or expired.
    now = datetime.now(timezone.utc)
    meta.create_portal_session("s" * 64, created.id, now + timedelta(hours=1))
    meta.create_portal_session("t" * 64, created.id, now - timedelta(seconds=1))
    assert meta.find_session_token("s" * 64, now) == revoked
    assert meta.find_session_token("t" * 64, now) is None  # expired
    meta.end_portal_session("s" * 64)
    assert meta.find_session_token("s" * 64, now) is None


def test_cli_server_serves_and_stops_on_sigterm(root: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "headrace"),
            "server",
            "-w",
            str(root),
            "--port",
            str(port),
            # Steps as this user (confined by Landlock where the kernel has it): as root,
            # the default user nobody cannot run this interpreter under /root.
            "--step-user",
            pwd.getpwuid(os.geteuid()).pw_name,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.communicate()[1]
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.1)
        assert response.json()["workspace"] == "test-ws"
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
        # uvicorn drains, runs the shutdown, then re-raises the signal it caught.
        assert process.returncode in (0, -signal.SIGTERM), stderr
        assert "Application shutdown complete" in stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_openapi_document_describes_the_errors_the_server_sends(server: LiveServer) -> None:
    document = httpx.get(f"{server.url}/openapi.json").json()
    error = document["components"]["schemas"]["ErrorResponse"]
    assert error["required"] == ["Error"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "422" not in responses, (method, path)  # bad input is a 400 here
            schema = responses["default"]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, (method, path)


def test_lists_of_an_unknown_run_are_404_not_empty(root: Path, server: LiveServer) -> None:
    headers = bearer(make_token(root, "reader"))
    for route in (
        "/api/v1/pipeline-runs/nope/steps",
        "/api/v1/runs/nope/events",
        "/api/v1/runs/nope/files",
        "/api/v1/runs/nope/content/user_logs/stdout.txt",
    ):
        assert "nope" in assert_error_shape(httpx.get(server.url + route, headers=headers), 404)
