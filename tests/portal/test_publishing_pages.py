"""Published pipelines and endpoints in the portal, as a user meets them: the lists, a
pipeline's page with its REST URL and examples, the submit form (and who may use it)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from headrace import (
    Pipeline,
    PipelineEndpoint,
    PipelineParameter,
    PublishedPipeline,
    PythonScriptStep,
    Workspace,
)
from tests.portal.conftest import counted_queries, screenshot, sign_in
from tests.servers import LiveServer, bearer, make_token


def published(ws: Workspace, root: Path, name: str = "say-it") -> PublishedPipeline:
    """A published pipeline with an int, a bool and a float parameter."""
    folder = root / "say_src"
    folder.mkdir(exist_ok=True)
    (folder / "say.py").write_text("import sys\nprint('n=' + sys.argv[1])\n")
    step = PythonScriptStep(
        "say.py",
        name="say",
        arguments=[
            PipelineParameter("n", default_value=1),
            PipelineParameter("flag", default_value=False),
            PipelineParameter("rate", default_value=0.5),
        ],
        source_directory=str(folder),
    )
    return Pipeline(ws, steps=[step]).publish(name=name, description="says n", version="1.0")


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]*)"', html)
    assert found is not None, "no csrf field on the page"
    return found.group(1)


def test_the_list_and_a_pipeline_page_with_its_url_and_examples(
    ws: Workspace, root: Path, portal: LiveServer
) -> None:
    first = published(ws, root)
    second = published(ws, root)
    listing = httpx.get(f"{portal.url}/ui/pipelines.json").json()
    assert [p["id"] for p in listing["pipelines"]] == [second.id, first.id]
    assert listing["pipelines"][0]["status"] == "Active"
    assert "say-it" in httpx.get(f"{portal.url}/ui/pipelines").text

    data = httpx.get(f"{portal.url}/ui/pipelines/{first.id}.json").json()
    assert data["pipeline"]["name"] == "say-it" and data["pipeline"]["steps"] == 1
    assert {v["id"] for v in data["versions"]} == {first.id, second.id}
    assert [(p["name"], p["type"], p["default"]) for p in data["parameters"]] == [
        ("n", "int", 1),
        ("flag", "bool", False),
        ("rate", "float", 0.5),
    ]
    url = data["endpoint_url"]
    assert url == (
        f"{portal.url}/pipelines/v1.0/subscriptions/local/resourceGroups/local/providers/"
        f"Microsoft.MachineLearningServices/workspaces/test-ws/PipelineRuns/PipelineSubmit/{first.id}"
    )
    assert data["form"]["available"] is True

    # The curl example is a working command line: its URL and body are what the server takes.
    words = shlex.split(data["examples"]["curl"].replace("\\\n", " "))
    assert words[:4] == ["curl", "-X", "POST", url]
    assert "Authorization: Bearer $TOKEN" in words
    body = json.loads(words[words.index("-d") + 1])
    assert body == {
        "ExperimentName": "say-it",
        "ParameterAssignments": {"n": 1, "flag": False, "rate": 0.5},
    }
    answer = httpx.post(url, json=body)  # auth is off on this server
    assert answer.status_code == 200, answer.text

    python = data["examples"]["python"]
    assert f"PublishedPipeline.get(ws, '{first.id}')" in python
    assert "pipeline_parameters={'n': 1, 'flag': False, 'rate': 0.5}" in python
    compile(python, "example.py", "exec")


def test_submitting_from_the_form_lands_on_the_new_run(
    ws: Workspace, root: Path, portal: LiveServer, page: Any
) -> None:
    pipeline = published(ws, root)
    page.goto(f"{portal.url}/ui/pipelines/{pipeline.id}")
    screenshot(page, "pipeline")
    page.get_by_label("Experiment name").fill("from-portal")
    page.get_by_label("n (int)").fill("45")
    page.get_by_label("flag (bool)").select_option("true")
    page.get_by_role("button", name="Submit run").click()
    page.wait_for_url(re.compile(r".*/ui/runs/[0-9a-f-]{36}$"))
    run_id = page.url.rsplit("/", 1)[1]
    run = ws.backend.get_pipeline_run(run_id)
    assert run.experiment_name == "from-portal"
    assert run.parameters == {"n": 45, "flag": True, "rate": 0.5}
    assert run.run_source == "Portal"
    assert run.properties["azureml.pipelineid"] == pipeline.id


def test_bad_values_show_the_form_again_and_submit_nothing(
    ws: Workspace, root: Path, portal: LiveServer, page: Any
) -> None:
    pipeline = published(ws, root)
    page.goto(f"{portal.url}/ui/pipelines/{pipeline.id}")
    page.get_by_label("n (int)").fill("many")
    page.get_by_role("button", name="Submit run").click()
    alert = page.get_by_role("alert")
    assert "'n' expects an int, got 'many'" in alert.inner_text()
    assert page.get_by_label("n (int)").input_value() == "many"  # what was typed stays
    screenshot(page, "pipeline-bad-value")

    with httpx.Client(base_url=portal.url) as client:
        csrf = csrf_of(client.get(f"/ui/pipelines/{pipeline.id}").text)
        answer = client.post(
            f"/ui/pipelines/{pipeline.id}/submit",
            data={"csrf": csrf, "experiment": "../bad name", "param__n": "3"},
        )
        assert answer.status_code == 400 and "Experiment name" in answer.text
    assert ws.backend.list_pipeline_runs() == []


def test_a_disabled_pipeline_has_no_form_and_says_why(
    ws: Workspace, root: Path, portal: LiveServer
) -> None:
    pipeline = published(ws, root)
    active = published(ws, root, "still-active")
    pipeline.disable()
    data = httpx.get(f"{portal.url}/ui/pipelines/{pipeline.id}.json").json()
    assert data["form"]["available"] is False and "is Disabled" in data["form"]["reason"]
    html = httpx.get(f"{portal.url}/ui/pipelines/{pipeline.id}").text
    assert "Submit run" not in html and ".enable()" in html
    with httpx.Client(base_url=portal.url) as client:
        csrf = csrf_of(client.get(f"/ui/pipelines/{active.id}").text)  # a page with a form
        answer = client.post(
            f"/ui/pipelines/{pipeline.id}/submit", data={"csrf": csrf, "experiment": "x"}
        )
        assert answer.status_code == 400 and "is Disabled" in answer.text
    assert ws.backend.list_pipeline_runs() == []


def test_a_reader_sees_no_form_and_cannot_post(
    ws: Workspace, root: Path, secured: LiveServer, page: Any
) -> None:
    pipeline = published(ws, root)
    sign_in(page, secured, root, "reader", "rita")
    page.goto(f"{secured.url}/ui/pipelines/{pipeline.id}")
    assert page.get_by_role("button", name="Submit run").count() == 0
    assert "has role 'reader'" in page.locator("#no-submit").inner_text()
    csrf = csrf_of(page.content())
    answer = page.request.post(
        f"{secured.url}/ui/pipelines/{pipeline.id}/submit",
        form={"csrf": csrf, "experiment": "sneaky", "param__n": "2"},
    )
    assert answer.status == 403 and "needs 'submitter'" in answer.text().replace("&#39;", "'")
    assert ws.backend.list_pipeline_runs() == []

    token = make_token(root, "submitter", "sam")
    twin = httpx.get(f"{secured.url}/ui/pipelines/{pipeline.id}.json", headers=bearer(token))
    assert twin.json()["form"]["available"] is True


def test_endpoints_list_versions_and_submit_the_default_or_a_chosen_version(
    ws: Workspace, root: Path, portal: LiveServer
) -> None:
    first = published(ws, root, "v-first")
    second = published(ws, root, "v-second")
    endpoint = PipelineEndpoint.publish(ws, "nightly", "the nightly job", first)
    endpoint.add_default(second)

    listing = httpx.get(f"{portal.url}/ui/endpoints.json").json()
    (row,) = listing["endpoints"]
    assert row["name"] == "nightly" and row["default_version"] == "1"
    assert "nightly" in httpx.get(f"{portal.url}/ui/endpoints").text

    data = httpx.get(f"{portal.url}/ui/endpoints/nightly.json").json()
    assert [(v["version"], v["is_default"], v["pipeline"]["id"]) for v in data["versions"]] == [
        ("0", False, first.id),
        ("1", True, second.id),
    ]
    assert data["endpoint_url"].endswith(f"/PipelineRuns/PipelineEndpointSubmit/Id/{endpoint.id}")
    assert "PipelineEndpoint.get(ws, name='nightly')" in data["examples"]["python"]
    chosen = httpx.get(f"{portal.url}/ui/endpoints/nightly.json", params={"version": "0"}).json()
    assert chosen["chosen_version"] == "0"
    assert chosen["endpoint_url"].endswith(f"/Id/{endpoint.id}/0")
    assert "pipeline_version='0'" in chosen["examples"]["python"]

    with httpx.Client(base_url=portal.url) as client:
        csrf = csrf_of(client.get("/ui/endpoints/nightly").text)
        default = client.post(
            "/ui/endpoints/nightly/submit",
            data={"csrf": csrf, "experiment": "nightly", "param__n": "7"},
        )
        assert default.status_code == 303
        run = ws.backend.get_pipeline_run(default.headers["location"].rsplit("/", 1)[1])
        assert run.properties["azureml.pipelineid"] == second.id and run.parameters["n"] == 7
        old = client.post(
            "/ui/endpoints/nightly/submit",
            data={"csrf": csrf, "experiment": "nightly", "version": "0"},
        )
        assert old.status_code == 303
        run = ws.backend.get_pipeline_run(old.headers["location"].rsplit("/", 1)[1])
        assert run.properties["azureml.pipelineid"] == first.id


def test_unknown_pipelines_and_endpoints_are_404_pages(
    ws: Workspace, root: Path, portal: LiveServer
) -> None:
    published(ws, root)
    PipelineEndpoint.publish(ws, "ep", None, published(ws, root, "other"))
    for path, words in [
        ("/ui/pipelines/nope", "no published pipeline 'nope'"),
        ("/ui/endpoints/nope", "no pipeline endpoint named 'nope'"),
        ("/ui/endpoints/ep?version=9", "has no version '9'"),
    ]:
        answer = httpx.get(portal.url + path)
        assert answer.status_code == 404, path
        assert words in answer.text.replace("&#39;", "'"), answer.text
    twin = httpx.get(f"{portal.url}/ui/pipelines/nope.json")
    assert twin.status_code == 404 and twin.json()["Error"]["Code"] == "NotFound"


def test_publishing_pages_cost_a_handful_of_queries(
    ws: Workspace, root: Path, portal: LiveServer
) -> None:
    pipeline = published(ws, root)
    PipelineEndpoint.publish(ws, "ep", None, pipeline)
    for path in (
        "/ui/pipelines",
        f"/ui/pipelines/{pipeline.id}",
        "/ui/endpoints",
        "/ui/endpoints/ep",
    ):
        with counted_queries(portal) as statements:
            assert httpx.get(portal.url + path).status_code == 200, path
        assert len(statements) <= 5, (path, statements)


def test_the_pipeline_page_fits_a_phone(
    ws: Workspace, root: Path, portal: LiveServer, browser: Any
) -> None:
    pipeline = published(ws, root)
    context = browser.new_context(viewport={"width": 390, "height": 800})
    tab = context.new_page()
    tab.goto(f"{portal.url}/ui/pipelines/{pipeline.id}")
    overflow = tab.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow} px wider than a 390 px screen"
    screenshot(tab, "pipeline-390px")
    context.close()


def test_publishing_pages_on_sqlite_and_postgresql(any_ws: Workspace) -> None:
    assert any_ws.path is not None
    root = Path(any_ws.path)
    first = published(any_ws, root, "first")
    second = published(any_ws, root, "first")
    PipelineEndpoint.publish(any_ws, "ep", None, first).add_default(second)
    with LiveServer(root, auth=False) as live:
        pipeline = httpx.get(f"{live.url}/ui/pipelines/{first.id}.json").json()
        assert {v["id"] for v in pipeline["versions"]} == {first.id, second.id}
        endpoint = httpx.get(f"{live.url}/ui/endpoints/ep.json").json()
        assert [v["pipeline"]["id"] for v in endpoint["versions"]] == [first.id, second.id]
        assert [p["name"] for p in endpoint["parameters"]] == ["n", "flag", "rate"]
        compute = httpx.get(f"{live.url}/ui/compute.json").json()
        assert [t["name"] for t in compute["targets"]] == ["local"]


def test_an_endpoints_older_version_submitted_in_a_browser(
    ws: Workspace, root: Path, portal: LiveServer, page: Any
) -> None:
    first = published(ws, root, "v-first")
    PipelineEndpoint.publish(ws, "nightly", "the nightly job", first).add_default(
        published(ws, root, "v-second")
    )
    page.goto(f"{portal.url}/ui/endpoints")
    page.get_by_role("link", name="nightly").click()
    page.get_by_role("link", name="Submit version 0").click()
    page.wait_for_url("**/ui/endpoints/nightly?version=0")
    screenshot(page, "endpoint")
    page.get_by_role("button", name="Copy curl example").click()
    page.wait_for_function(
        "document.querySelector(\"button[data-copy='curl-example']\").textContent"
        " !== 'Copy curl example'"
    )
    said = page.locator("button[data-copy='curl-example']").inner_text()
    assert said in ("Copied", "Selected: press Ctrl+C")
    page.get_by_label("rate (float)").fill("0.25")
    page.get_by_role("button", name="Submit run").click()
    page.wait_for_url(re.compile(r".*/ui/runs/[0-9a-f-]{36}$"))
    run = ws.backend.get_pipeline_run(page.url.rsplit("/", 1)[1])
    assert run.properties["azureml.pipelineid"] == first.id
    assert run.parameters["rate"] == 0.25 and run.experiment_name == "nightly"


def test_the_python_example_runs_as_shown(ws: Workspace, root: Path, secured: LiveServer) -> None:
    pipeline = published(ws, root)
    token = make_token(root, "submitter", "sam")
    data = httpx.get(f"{secured.url}/ui/pipelines/{pipeline.id}.json", headers=bearer(token))
    example = data.json()["examples"]["python"]
    example += "print('RUN', run.id, run.get_status())\n"
    env = {**os.environ, "HEADRACE_TOKEN": token}
    env.pop("HEADRACE_WORKSPACE", None)
    done = subprocess.run(
        [sys.executable, "-c", example],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=root.parent,
    )
    assert done.returncode == 0, done.stderr
    run_id, status = done.stdout.split("RUN ")[1].split()
    assert status == "Finished"
    assert ws.backend.get_pipeline_run(run_id).properties["azureml.pipelineid"] == pipeline.id
