"""Pages of other sites cannot use a server: a real uvicorn on 127.0.0.1, sent the Host,
Origin and Sec-Fetch-Site headers a browser would send for a hostile page.

The attack of issue 13: a page of evil.example whose name is rebound to 127.0.0.1 reads the
portal of `headrace ui` (and its CSRF field), uploads a snapshot and submits a pipeline that
runs a shell command. Every step of it must be refused, while the same requests addressed to
a loopback name still work.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from headrace import CommandStep, Experiment, Pipeline, PipelineRun, Workspace
from tests.servers import LiveServer, bearer, make_token

FORGED = "evil.example"


@pytest.fixture
def root(ws: Workspace) -> Path:
    return Path(str(ws.path))


@pytest.fixture
def token_free(root: Path) -> Iterator[LiveServer]:
    """What `headrace ui` and `headrace server --no-auth` serve."""
    with LiveServer(root, auth=False) as live:
        yield live


def port_of(server: LiveServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


def shell_pipeline(ws: Workspace, tmp_path: Path, marker: Path) -> Pipeline:
    source = tmp_path / "attack"
    source.mkdir(exist_ok=True)
    step = CommandStep(
        name="shell", command=f"touch {marker}", source_directory=str(source), allow_reuse=False
    )
    return Pipeline(ws, steps=[step])


def test_the_dns_rebinding_attack_chain_is_refused_at_every_step(
    ws: Workspace, root: Path, tmp_path: Path, token_free: LiveServer
) -> None:
    port = port_of(token_free)
    evil = {"Host": f"{FORGED}:{port}"}
    marker = tmp_path / "attacked"
    graph = shell_pipeline(ws, tmp_path, marker).graph.to_dict()
    form_page = (
        f"{token_free.url}/ui/pipelines/{shell_pipeline(ws, tmp_path, marker).publish('p').id}"
    )

    # 1. Read a portal page with a form (and its CSRF field) as evil.example: refused.
    page = httpx.get(form_page, headers=evil)
    assert page.status_code == 403 and "text/html" in page.headers["content-type"]
    assert 'name="csrf"' not in page.text
    assert "answers only requests addressed to 127.0.0.1, localhost or [::1]" in page.text
    assert f"not to &#x27;{FORGED}:{port}&#x27;" in page.text
    twin = httpx.get(f"{token_free.url}/ui.json", headers=evil)
    assert twin.status_code == 403 and twin.json()["Error"]["Code"] == "Forbidden"
    # 2. Upload a snapshot, 3. submit a run of a shell command: refused, nothing queued.
    snapshot = httpx.post(f"{token_free.url}/api/v1/snapshots", headers=evil, json={"files": {}})
    assert snapshot.status_code == 403, snapshot.text
    submit = httpx.post(
        f"{token_free.url}/api/v1/pipeline-runs",
        headers=evil,
        json={"graph": graph, "experiment_name": "attack"},
    )
    assert submit.status_code == 403, submit.text
    assert "answers only requests addressed to 127.0.0.1" in submit.json()["Error"]["Message"]
    assert ws.backend.list_pipeline_runs() == []

    # The same chain addressed to a loopback name works: the Host check is what stopped it.
    assert re.search(r'name="csrf" value="[0-9a-f]+"', httpx.get(form_page).text)
    with Workspace.get("test-ws", url=token_free.url) as remote:
        run = Experiment(remote, "local").submit(shell_pipeline(remote, tmp_path, marker))
        assert run.wait_for_completion(show_output=False) == "Finished"
    assert marker.exists()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "127.0.0.2", "LOCALHOST"])
def test_loopback_names_are_answered_with_or_without_the_port(
    token_free: LiveServer, host: str
) -> None:
    for value in (host, f"{host}:{port_of(token_free)}"):
        answer = httpx.get(f"{token_free.url}/ui.json", headers={"Host": value})
        assert answer.status_code == 200, (value, answer.text)


@pytest.mark.parametrize(
    "host",
    [
        FORGED,
        "127.0.0.1.evil.example",
        "localhost.evil.example:80",
        "evil.localhost",
        "10.0.0.7",
        "[::1",
        "127.0.0.1:x",
        "",
    ],
)
def test_other_host_names_are_refused(token_free: LiveServer, host: str) -> None:
    answer = httpx.get(f"{token_free.url}/health", headers={"Host": host})
    assert answer.status_code == 403, (host, answer.text)
    assert answer.json()["Error"]["Code"] == "Forbidden"


def test_cross_site_changes_are_refused_and_same_origin_ones_pass(
    ws: Workspace, root: Path, tmp_path: Path, token_free: LiveServer
) -> None:
    run = Experiment(ws, "e").submit(shell_pipeline(ws, tmp_path, tmp_path / "m"))
    run.wait_for_completion(show_output=False)
    port = port_of(token_free)
    own = f"http://127.0.0.1:{port}"
    cancel_api = f"{token_free.url}/api/v1/runs/{run.id}/cancel"
    cancel_page = f"{token_free.url}/ui/runs/{run.id}/cancel"
    refused = [
        {"Origin": "http://evil.example"},
        {"Origin": f"http://localhost:{port + 1}"},  # another local site
        {"Origin": f"http://localhost:{port}"},  # another origin than 127.0.0.1:PORT
        {"Origin": f"https://127.0.0.1:{port}"},
        {"Origin": "null"},  # a sandboxed frame or a file:// page
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},  # localhost:3000 -> localhost:PORT
        {"Origin": own, "Sec-Fetch-Site": "cross-site"},
    ]
    for headers in refused:
        api = httpx.post(cancel_api, headers=headers)
        assert api.status_code == 403, (headers, api.text)
        assert "came from a page of another site" in api.json()["Error"]["Message"]
        page = httpx.post(cancel_page, headers=headers, data={"csrf": "x"})
        assert page.status_code == 403 and "text/html" in page.headers["content-type"]
        assert "came from a page of another site" in page.text
    # Reading is not a change: a link from another site still opens the portal.
    assert httpx.get(f"{token_free.url}/ui", headers={"Sec-Fetch-Site": "cross-site"}).is_success
    for headers in (
        {},  # curl, the SDK
        {"Origin": own, "Sec-Fetch-Site": "same-origin"},  # the portal's own forms
        {"Origin": f"http://localhost:{port}", "Host": f"localhost:{port}"},
        {"Sec-Fetch-Site": "none"},  # typed in the address bar
    ):
        answer = httpx.post(cancel_api, headers=headers)
        assert answer.status_code == 200, (headers, answer.text)


def test_a_server_with_tokens_checks_portal_posts_only(
    ws: Workspace, root: Path, tmp_path: Path
) -> None:
    run = Experiment(ws, "e").submit(shell_pipeline(ws, tmp_path, tmp_path / "m"))
    run.wait_for_completion(show_output=False)
    token = make_token(root, "submitter")
    with LiveServer(root) as server:
        # Behind a reverse proxy the Host is the proxy's choice: a token is what counts.
        proxied = httpx.get(
            f"{server.url}/api/v1/runs/{run.id}",
            headers={"Host": "ml.example.com", **bearer(token)},
        )
        assert proxied.status_code == 200, proxied.text
        api = httpx.post(
            f"{server.url}/api/v1/runs/{run.id}/cancel",
            headers={"Sec-Fetch-Site": "cross-site", **bearer(token)},
        )
        assert api.status_code == 200, api.text  # no other site can send the bearer token
        # Another site signing a browser in with a token of its choosing: refused.
        login = f"{server.url}/ui/login"
        forced = httpx.post(login, data={"token": token}, headers={"Sec-Fetch-Site": "cross-site"})
        assert forced.status_code == 403 and "came from a page of another site" in forced.text
        assert "set-cookie" not in forced.headers
        own = httpx.post(login, data={"token": token}, headers={"Sec-Fetch-Site": "same-origin"})
        assert own.status_code == 303 and "headrace_session" in own.headers["set-cookie"]
        assert PipelineRun.get(ws, str(run.id)).get_status() == "Finished"
