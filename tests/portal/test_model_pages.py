"""The model registry in the portal: the models list, a model's versions with their lineage
(the run that registered each, linked to its page), unknown names and versions as 404 pages
naming what exists, and a handful of queries a page."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import httpx

from headrace import Dataset, Experiment, Model, Pipeline, PythonScriptStep, Workspace
from tests.portal.conftest import counted_queries, screenshot
from tests.servers import LiveServer

TRAIN = """
    import os
    from headrace.compat.azureml.core import Run
    os.makedirs("outputs", exist_ok=True)
    open("outputs/model.pkl", "wb").write(b"trained")
    Run.get_context().register_model("iris", model_path="outputs/model.pkl", tags={"by": "step"})
"""


def registered(ws: Workspace, root: Path) -> str:
    """iris:1 from a file, iris:2 registered by a step (whose id is returned), net:1 a folder."""
    src = root.parent / "model-src"
    (src / "net").mkdir(parents=True)
    (src / "net" / "w.bin").write_bytes(b"w" * 10)
    (src / "m.pkl").write_bytes(b"m")
    (src / "train.py").write_text(textwrap.dedent(TRAIN))
    Model.register(ws, str(src / "m.pkl"), "iris", tags={"stage": "dev"}, description="first")
    run = Experiment(ws, "portal-models").submit(
        Pipeline(ws, steps=[PythonScriptStep("train.py", source_directory=str(src))])
    )
    assert run.wait_for_completion(show_output=False) == "Finished"
    images = Dataset.File.from_files(path=str(src / "net")).register(ws, "images")
    Model.register(ws, str(src / "net"), "net", datasets=[("training", images)])
    return str(run.find_step_run("train.py")[0].id)


def test_the_models_list_and_a_models_versions_with_lineage(
    ws: Workspace, root: Path, portal: LiveServer
) -> None:
    step_id = registered(ws, root)
    listed = httpx.get(f"{portal.url}/ui/models.json").json()["models"]
    assert [(m["name"], m["version"], m["versions"]) for m in listed] == [
        ("iris", 2, 2),
        ("net", 1, 1),
    ]
    assert listed[0]["run_url"] == f"/ui/steps/{step_id}" and listed[1]["run_url"] is None
    html = httpx.get(f"{portal.url}/ui/models").text
    assert 'href="/ui/models/iris"' in html and f'href="/ui/steps/{step_id}"' in html

    iris = httpx.get(f"{portal.url}/ui/models/iris.json").json()
    assert [v["version"] for v in iris["versions"]] == [2, 1]
    assert iris["selected"]["version"] == 2 and iris["selected"]["tags"] == {"by": "step"}
    first = httpx.get(f"{portal.url}/ui/models/iris.json?version=1").json()["selected"]
    assert (first["description"], first["run_url"]) == ("first", None)

    net = httpx.get(f"{portal.url}/ui/models/net.json").json()["selected"]
    assert [(d["name"], d["version"], d["scenario"]) for d in net["datasets"]] == [
        ("images", 1, "training")
    ]
    assert net["datasets"][0]["url"] == "/ui/datasets/images?version=1"
    page = httpx.get(f"{portal.url}/ui/models/net").text
    assert 'href="/ui/datasets/images?version=1">images:1</a>' in page and "net/w.bin" in page
    assert httpx.get(portal.url + net["datasets"][0]["url"]).status_code == 200


def test_unknown_models_and_versions_are_404_pages_naming_what_exists(
    ws: Workspace, root: Path, portal: LiveServer
) -> None:
    registered(ws, root)
    missing = httpx.get(f"{portal.url}/ui/models/iriss")
    assert missing.status_code == 404
    assert "No model named &#39;iriss&#39;" in missing.text and "iris, net" in missing.text
    version = httpx.get(f"{portal.url}/ui/models/iris.json?version=7")
    assert version.status_code == 404 and "its versions are 1, 2" in version.text
    empty = httpx.get(f"{portal.url}/ui/models.json").json()
    assert len(empty["models"]) == 2


def test_model_pages_cost_a_handful_of_queries(
    ws: Workspace, root: Path, portal: LiveServer
) -> None:
    registered(ws, root)
    for path in ("/ui/models", "/ui/models/iris", "/ui/models/net?version=1"):
        with counted_queries(portal) as statements:
            assert httpx.get(portal.url + path).status_code == 200, path
        assert len(statements) <= 5, (path, statements)


def test_a_models_page_in_a_browser(
    ws: Workspace, root: Path, portal: LiveServer, page: Any
) -> None:
    registered(ws, root)
    page.goto(f"{portal.url}/ui")
    page.get_by_role("link", name="Models", exact=True).click()
    page.get_by_role("link", name="iris", exact=True).click()
    page.wait_for_url("**/ui/models/iris")
    rows = page.locator("table.versions tbody tr")
    assert [rows.nth(i).get_attribute("data-version") for i in range(rows.count())] == ["2", "1"]
    screenshot(page, "model")
