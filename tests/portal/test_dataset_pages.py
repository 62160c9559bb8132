"""Datasets in the portal: the list, a dataset's versions with their content identity, and
the lineage of a version (which steps produced and consumed it), linked to the runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from headrace import (
    Dataset,
    Experiment,
    OutputFileDatasetConfig,
    Pipeline,
    PythonScriptStep,
    Workspace,
)
from tests.portal.conftest import screenshot
from tests.servers import LiveServer


def _lineage_run(ws: Workspace, root: Path) -> tuple[Any, Any]:
    """A registered dataset `raw` consumed by step `copy`, which writes `copied` (registered
    on completion)."""
    up = root.parent / "up"
    up.mkdir()
    (up / "rows.csv").write_text("a,b\n1,2\n")
    store = ws.get_default_datastore()
    store.upload(str(up), target_path="raw", show_progress=False)
    raw = Dataset.Tabular.from_delimited_files((store, "raw/rows.csv")).register(
        ws, "raw", description="the raw rows"
    )
    src = root.parent / "src"
    src.mkdir()
    (src / "copy_it.py").write_text(
        "import os, shutil, sys\n"
        "os.makedirs(sys.argv[2], exist_ok=True)\n"
        "shutil.copy(sys.argv[1], os.path.join(sys.argv[2], 'rows.csv'))\n"
    )
    out = OutputFileDatasetConfig(name="copied").register_on_complete("copied")
    step = PythonScriptStep(
        "copy_it.py",
        name="copy",
        arguments=[Dataset.File.from_files((store, "raw/rows.csv")).as_mount(), out],
        inputs=[raw.as_named_input("raw_rows")],
        source_directory=str(src),
    )
    run = Experiment(ws, "portal-datasets").submit(Pipeline(ws, [step]))
    assert run.wait_for_completion(show_output=False, raise_on_error=False) == "Finished"
    return raw, run


def test_datasets_list_versions_and_lineage(ws: Workspace, root: Path, portal: LiveServer) -> None:
    raw, run = _lineage_run(ws, root)
    listed = httpx.get(f"{portal.url}/ui/datasets.json").json()["datasets"]
    assert sorted(d["name"] for d in listed) == ["copied", "raw"]
    page = httpx.get(f"{portal.url}/ui/datasets/raw.json").json()
    assert page["dataset"]["id"] == raw.id and page["dataset"]["file_count"] == 1
    assert [v["version"] for v in page["versions"]] == [1]
    step = run.find_step_run("copy")[0]
    assert [(x["role"], x["step_run_id"], x["port"]) for x in page["lineage"]] == [
        ("consumed", step.id, "raw_rows")
    ]
    copied = httpx.get(f"{portal.url}/ui/datasets/copied.json").json()
    assert [(x["role"], x["step_name"]) for x in copied["lineage"]] == [("produced", "copy")]
    html = httpx.get(f"{portal.url}/ui/datasets/raw").text
    assert "the raw rows" in html and f"/ui/steps/{step.id}" in html
    missing = httpx.get(f"{portal.url}/ui/datasets/rwa")
    assert missing.status_code == 404 and "&#39;raw&#39;" in missing.text


def test_dataset_lineage_in_a_browser(
    ws: Workspace, root: Path, portal: LiveServer, page: Any
) -> None:
    _raw, run = _lineage_run(ws, root)
    page.goto(f"{portal.url}/ui")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Datasets").click()
    page.get_by_role("link", name="raw", exact=True).click()
    row = page.locator("table.lineage tbody tr")
    assert row.count() == 1 and row.first.get_attribute("data-role") == "consumed"
    screenshot(page, "dataset")
    row.first.get_by_role("link", name="copy").click()
    page.wait_for_url(f"**/ui/steps/{run.find_step_run('copy')[0].id}")
