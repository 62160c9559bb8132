"""Datastores and compute targets in the portal, as a user meets them: browse folders,
download a file, paths that would leave the datastore refused; the steps running on each
compute target."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import httpx

from headrace import ComputeTarget, Experiment, Pipeline, Workspace
from headrace.store.records import Status
from tests import shapes
from tests.portal.conftest import counted_queries, screenshot
from tests.servers import LiveServer


def uploaded(ws: Workspace, root: Path) -> Path:
    """Files on the default datastore (data/train.csv, data/deep/notes.txt, readme.md);
    returns the datastore's folder."""
    src = root.parent / "upload"
    (src / "data" / "deep").mkdir(parents=True)
    (src / "data" / "train.csv").write_text("a,b\n1,2\n")
    (src / "data" / "deep" / "notes.txt").write_text("deep notes")
    (src / "readme.md").write_text("# hello")
    datastore = ws.get_default_datastore()
    datastore.upload(str(src), show_progress=False)
    return Path(ws.backend.datastore_root(datastore.name))


def test_the_datastores_list(ws: Workspace, root: Path, portal: LiveServer) -> None:
    folder = uploaded(ws, root)
    data = httpx.get(f"{portal.url}/ui/datastores.json").json()
    default = [d for d in data["datastores"] if d["is_default"]]
    assert len(default) == 1 and default[0]["type"] == "local"
    assert default[0]["where"] == str(folder)
    assert default[0]["name"] in httpx.get(f"{portal.url}/ui/datastores").text


def test_browse_folders_and_download_a_file_in_a_browser(
    ws: Workspace, root: Path, portal: LiveServer, page: Any
) -> None:
    uploaded(ws, root)
    name = ws.get_default_datastore().name
    page.goto(f"{portal.url}/ui/datastores")
    page.get_by_role("link", name=name, exact=True).click()
    page.get_by_role("link", name="data/").click()
    page.wait_for_url(f"**/ui/datastores/{name}/browse/data")
    rows = page.locator("table.files tbody tr")
    assert [rows.nth(i).get_attribute("data-path") for i in range(rows.count())] == [
        "data/deep",
        "data/train.csv",
    ]
    assert "8 B" in rows.nth(1).inner_text()
    crumbs = page.get_by_role("navigation", name="Folder")
    assert crumbs.inner_text().split() == [name, "data"]
    screenshot(page, "datastore")

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download train.csv").click()
    download = download_info.value
    assert download.suggested_filename == "train.csv"
    assert Path(download.path()).read_text() == "a,b\n1,2\n"

    crumbs.get_by_role("link", name=name).click()
    page.wait_for_url(f"**/ui/datastores/{name}")
    assert page.locator("tr[data-path='readme.md']").is_visible()


def test_browse_twins_and_downloads_over_http(
    ws: Workspace, root: Path, portal: LiveServer
) -> None:
    uploaded(ws, root)
    name = ws.get_default_datastore().name
    data = httpx.get(f"{portal.url}/ui/datastores/{name}/browse/data/deep.json").json()
    assert data["path"] == "data/deep" and data["kind"] == "folder"
    assert [(e["name"], e["size"]) for e in data["entries"]] == [("notes.txt", 10)]
    assert [c["name"] for c in data["breadcrumbs"]] == [name, "data", "deep"]
    file = httpx.get(portal.url + data["entries"][0]["url"])
    assert file.status_code == 200 and file.text == "deep notes"
    assert "attachment" in file.headers["content-disposition"]
    root_listing = httpx.get(f"{portal.url}/ui/datastores/{name}.json").json()
    assert [e["name"] for e in root_listing["entries"]] == ["data", "readme.md"]


def test_paths_that_leave_the_datastore_are_refused(
    ws: Workspace, root: Path, portal: LiveServer
) -> None:
    folder = uploaded(ws, root)
    secret = root.parent / "secret"
    secret.mkdir()
    (secret / "password.txt").write_text("hunter2")
    os.symlink(secret, folder / "escape")
    name = ws.get_default_datastore().name
    base = f"{portal.url}/ui/datastores/{name}"
    for path in ("browse/%2E%2E/secret", "download/data/%2E%2E/%2E%2E/secret/password.txt"):
        answer = httpx.get(f"{base}/{path}")
        assert answer.status_code == 400, (path, answer.text)
        assert "contains &#39;..&#39; and could leave the datastore" in answer.text
    for path in ("browse/escape", "download/escape/password.txt"):
        answer = httpx.get(f"{base}/{path}")
        assert answer.status_code == 400 and "leads outside the datastore" in answer.text
        assert "hunter2" not in answer.text
    absolute = httpx.get(f"{base}/download/%2Fetc%2Fpasswd")
    assert absolute.status_code == 400 and "is absolute" in absolute.text
    listing = httpx.get(f"{base}.json").json()
    assert "escape" not in [e["name"] for e in listing["entries"]]  # links out are not listed
    twin = httpx.get(f"{base}/browse/%2E%2E.json")
    assert twin.status_code == 400 and twin.json()["Error"]["Code"] == "BadRequest"


def test_unknown_datastores_and_paths_are_404_pages(
    ws: Workspace, root: Path, portal: LiveServer
) -> None:
    uploaded(ws, root)
    name = ws.get_default_datastore().name
    unknown = httpx.get(f"{portal.url}/ui/datastores/nope")
    assert unknown.status_code == 404 and "No datastore named" in unknown.text
    assert name in unknown.text  # the known ones are named
    for path in ("browse/missing", "download/missing.csv", "download/data"):
        answer = httpx.get(f"{portal.url}/ui/datastores/{name}/{path}")
        assert answer.status_code == 404, path
        assert f"/ui/datastores/{name}" in answer.text
    bad_page = httpx.get(f"{portal.url}/ui/datastores/{name}", params={"page": 7})
    assert bad_page.status_code == 400 and "this folder has 1" in bad_page.text


def test_a_big_folder_is_paged(ws: Workspace, root: Path, portal: LiveServer) -> None:
    folder = Path(ws.backend.datastore_root(ws.get_default_datastore().name)) / "many"
    folder.mkdir(parents=True)
    for i in range(520):
        (folder / f"f{i:04d}.txt").write_text("x")
    name = ws.get_default_datastore().name
    first = httpx.get(f"{portal.url}/ui/datastores/{name}/browse/many.json").json()
    assert first["total"] == 520 and first["pages"] == 2 and len(first["entries"]) == 500
    second = httpx.get(portal.url + first["next_url"].replace("?", ".json?")).json()
    assert second["entries"][0]["name"] == "f0500.txt"
    html = httpx.get(f"{portal.url}/ui/datastores/{name}/browse/many").text
    assert "520 entries: page 1 of 2" in html and "Next page" in html


def test_the_compute_page_shows_a_running_step(any_ws: Workspace, page: Any) -> None:
    assert any_ws.path is not None
    root = Path(any_ws.path)
    with LiveServer(root, auth=False) as portal:
        _compute_page_follows_a_running_step(any_ws, root, portal, page)


def _compute_page_follows_a_running_step(
    ws: Workspace, root: Path, portal: LiveServer, page: Any
) -> None:
    ComputeTarget.create(ws, "gpu-box", _cluster_config(max_nodes=3))
    slow = shapes.step(root, "slow", sleep=60)
    run = Experiment(ws, "compute").submit(Pipeline(ws, steps=[slow]))
    try:
        step = _wait_running(ws, str(run.id))
        data = httpx.get(f"{portal.url}/ui/compute.json").json()
        targets = {t["name"]: t for t in data["targets"]}
        assert targets["gpu-box"]["max_nodes"] == 3 and targets["gpu-box"]["running"] == 0
        assert targets["gpu-box"]["status"] == "Idle" and targets["local"]["status"] == "Running"
        local = targets["local"]
        assert local["running"] == 1 and local["running_steps"][0]["id"] == step
        assert local["running_steps"][0]["url"] == f"/ui/steps/{step}"

        page.goto(f"{portal.url}/ui/compute")
        assert page.locator("tr[data-target='local'] .running-count").inner_text() == "1"
        link = page.locator(f"tr[data-step-id='{step}'] a").first
        assert link.inner_text() == "slow" and link.get_attribute("href") == f"/ui/steps/{step}"
        assert page.locator("tr[data-target='local'] .target-status").inner_text() == "Running"
        screenshot(page, "compute")
        with counted_queries(portal) as statements:
            assert httpx.get(f"{portal.url}/ui/compute").status_code == 200
        assert len(statements) <= 5, statements
    finally:
        run.cancel()
        run.wait_for_completion(show_output=False, raise_on_error=False)
    # The open page follows: the step is gone from it without a reload.
    page.locator("section[data-target='local'] .nothing").wait_for(state="visible")
    assert page.locator("tr[data-target='local'] .running-count").inner_text() == "0"
    assert page.locator("tr[data-target='local'] .target-status").inner_text() == "Idle"


def _cluster_config(max_nodes: int) -> Any:
    from headrace import AmlCompute

    return AmlCompute.provisioning_configuration(max_nodes=max_nodes)


def _wait_running(ws: Workspace, run_id: str) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        steps = ws.backend.list_step_runs(run_id)
        if steps and steps[0].status == Status.RUNNING:
            return steps[0].id
        time.sleep(0.1)
    raise AssertionError("the step did not start in 30 s")


def test_datastore_pages_cost_a_handful_of_queries(
    ws: Workspace, root: Path, portal: LiveServer
) -> None:
    uploaded(ws, root)
    name = ws.get_default_datastore().name
    paths = ("/ui/datastores", f"/ui/datastores/{name}", f"/ui/datastores/{name}/browse/data")
    for path in (*paths, f"/ui/datastores/{name}/download/readme.md"):
        with counted_queries(portal) as statements:
            assert httpx.get(portal.url + path).status_code == 200, path
        assert len(statements) <= 5, (path, statements)


def test_the_datastore_page_fits_a_phone(
    ws: Workspace, root: Path, portal: LiveServer, browser: Any
) -> None:
    uploaded(ws, root)
    name = ws.get_default_datastore().name
    context = browser.new_context(viewport={"width": 390, "height": 800})
    tab = context.new_page()
    for path in (f"/ui/datastores/{name}/browse/data", "/ui/datastores", "/ui/compute"):
        tab.goto(portal.url + path)
        overflow = tab.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} is {overflow} px wider than a 390 px screen"
    screenshot(tab, "compute-390px")
    context.close()
