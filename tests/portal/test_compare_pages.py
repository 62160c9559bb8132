"""Comparing runs, as a user meets it: pick runs, see parameters and final metrics side by
side with the differing rows marked, and metric series overlaid in one uPlot chart."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import httpx

from headrace import Experiment, Pipeline, PipelineParameter, PythonScriptStep, Workspace
from tests.portal.conftest import counted_queries, screenshot
from tests.servers import LiveServer

TRAIN = textwrap.dedent(
    """
    import sys
    from headrace import Run

    run = Run.get_context()
    rate = float(sys.argv[1])
    for epoch in range(4):
        run.log("loss", rate * (4 - epoch), step=epoch)
    run.log("accuracy", 0.9)
    run.log_list("scores", [1, 2, 3])
    run.parent.log("pipeline_rate", rate)
    for epoch in range(2):
        run.log_row("curve", epoch=epoch, score=rate * epoch)
    run.log_table("confusion", {"label": ["a", "b"], "count": [4, 5]})
    run.log("note", "text " + str(rate))
    run.log("note", "done")
    """
)


def train_pipeline(ws: Workspace, root: Path, allow_reuse: bool = False) -> Pipeline:
    folder = root / "train_src"
    folder.mkdir(exist_ok=True)
    (folder / "train.py").write_text(TRAIN)
    rate = PipelineParameter("rate", default_value=0.5)
    step = PythonScriptStep(
        "train.py",
        name="train",
        arguments=[rate],
        source_directory=str(folder),
        allow_reuse=allow_reuse,
    )
    return Pipeline(ws, steps=[step])


def two_runs(ws: Workspace, root: Path) -> tuple[str, str]:
    """Two finished runs of one pipeline, with rate 0.5 and 2.0."""
    pipeline = train_pipeline(ws, root)
    ids = []
    for rate in (0.5, 2.0):
        run = Experiment(ws, "tuning").submit(pipeline, pipeline_parameters={"rate": rate})
        run.wait_for_completion(show_output=False)
        ids.append(str(run.id))
    return ids[0], ids[1]


def test_two_runs_side_by_side_mark_what_differs_and_overlay_the_series(
    ws: Workspace, root: Path, portal: LiveServer, page: Any
) -> None:
    first, second = two_runs(ws, root)

    twin = httpx.get(f"{portal.url}/ui/compare.json", params={"runs": f"{first},{second}"})
    assert twin.status_code == 200, twin.text
    data = twin.json()
    assert [run["id"] for run in data["runs"]] == [first, second]
    (rate,) = data["parameters"]
    assert rate == {"name": "rate", "values": [0.5, 2.0], "differs": True}
    metrics = {row["name"]: row for row in data["metrics"]}
    assert metrics["train / loss"] == {
        "name": "train / loss",
        "values": [0.5, 2.0],
        "differs": True,
    }
    assert metrics["train / accuracy"]["differs"] is False
    assert metrics["train / scores"]["values"] == [3, 3]
    assert metrics["pipeline_rate"]["values"] == [0.5, 2.0]  # logged on the pipeline run
    assert metrics["train / curve"]["values"] == [
        '{"epoch": 1, "score": 0.5}',
        '{"epoch": 1, "score": 2.0}',
    ]
    assert metrics["train / confusion"]["values"] == ["(table: on the step's page)"] * 2
    assert metrics["train / note"] == {
        "name": "train / note",
        "values": ["done", "done"],
        "differs": False,
    }
    charts = {chart["name"]: chart for chart in data["series"]}
    assert set(charts) == {"train / loss", "train / scores"}
    loss = charts["train / loss"]["runs"]
    assert loss[0]["x"] == [0, 1, 2, 3] and loss[1]["y"] == [8.0, 6.0, 4.0, 2.0]

    # The picker: tick two runs, press Compare.
    page.goto(f"{portal.url}/ui/compare")
    page.get_by_label(f"Compare run {first[:8]}").check()
    page.get_by_label(f"Compare run {second[:8]}").check()
    page.get_by_role("button", name="Compare").click()
    page.wait_for_selector("#metrics")
    differing = page.locator("#metrics tr.differs")
    assert differing.count() == 3  # pipeline_rate, train / curve and train / loss
    loss = page.locator("#metrics tr.differs[data-name='train / loss']")
    assert "≠" in loss.inner_text()  # a visible marker, not colour alone
    assert page.locator("#parameters tr.differs").count() == 1
    assert page.locator("#metrics tr:not(.differs)[data-name='train / accuracy']").count() == 1
    page.wait_for_selector("figure.chart .uplot canvas")
    assert page.locator("figure.chart canvas").count() == 2
    legend = page.locator("figure.chart").first.locator(".u-legend").inner_text()
    assert first[:8] in legend and second[:8] in legend
    screenshot(page, "compare")


def test_the_compare_page_fits_a_phone(
    ws: Workspace, root: Path, portal: LiveServer, browser: Any
) -> None:
    first, second = two_runs(ws, root)
    context = browser.new_context(viewport={"width": 390, "height": 800})
    tab = context.new_page()
    tab.goto(f"{portal.url}/ui/compare?runs={first},{second}")
    tab.wait_for_selector("figure.chart canvas")
    overflow = tab.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow} px wider than a 390 px screen"
    screenshot(tab, "compare-390px")
    context.close()


def test_fewer_than_two_runs_is_the_picker(ws: Workspace, root: Path, portal: LiveServer) -> None:
    first, _second = two_runs(ws, root)
    data = httpx.get(f"{portal.url}/ui/compare.json", params={"runs": first}).json()
    assert data["picker"]["chosen"] == [first]
    assert len(data["picker"]["runs"]) == 2 and data["metrics"] == []
    html = httpx.get(f"{portal.url}/ui/compare", params={"runs": first}).text
    assert f'value="{first}" checked' in html


def test_unknown_runs_are_a_404_naming_them(ws: Workspace, root: Path, portal: LiveServer) -> None:
    first, _second = two_runs(ws, root)
    answer = httpx.get(f"{portal.url}/ui/compare", params={"runs": f"{first},nope-1,nope-2"})
    assert answer.status_code == 404
    assert "nope-1" in answer.text and "nope-2" in answer.text and "/ui/compare" in answer.text
    twin = httpx.get(f"{portal.url}/ui/compare.json", params={"run": [first, "nope-1"]})
    assert twin.status_code == 404 and "'nope-1'" in twin.json()["Error"]["Message"]
    many = ",".join(f"r{i}" for i in range(11))
    too_many = httpx.get(f"{portal.url}/ui/compare", params={"runs": many})
    assert too_many.status_code == 400 and "at most 10" in too_many.text


def test_comparing_costs_a_handful_of_queries(
    ws: Workspace, root: Path, portal: LiveServer
) -> None:
    first, second = two_runs(ws, root)
    with counted_queries(portal) as statements:
        answer = httpx.get(f"{portal.url}/ui/compare", params={"runs": f"{first},{second}"})
        assert answer.status_code == 200
    assert len(statements) <= 5, statements
    with counted_queries(portal) as statements:
        assert httpx.get(f"{portal.url}/ui/compare").status_code == 200
    assert len(statements) <= 5, statements


def test_the_runs_lists_checkboxes_reach_the_comparison(
    ws: Workspace, root: Path, portal: LiveServer
) -> None:
    first, second = two_runs(ws, root)
    data = httpx.get(f"{portal.url}/ui/compare.json", params={"runs": [first, second]}).json()
    assert data["picker"] is None and [r["id"] for r in data["runs"]] == [first, second]


def test_comparing_on_sqlite_and_postgresql(any_ws: Workspace) -> None:
    assert any_ws.path is not None
    root = Path(any_ws.path)
    first, second = two_runs(any_ws, root)
    with LiveServer(root, auth=False) as live:
        with counted_queries(live) as statements:
            answer = httpx.get(f"{live.url}/ui/compare.json", params={"runs": f"{first},{second}"})
        assert answer.status_code == 200, answer.text
        assert len(statements) <= 5, statements
    data = answer.json()
    assert data["parameters"][0]["values"] == [0.5, 2.0]
    assert {m["name"] for m in data["metrics"] if m["differs"]} == {
        "pipeline_rate",
        "train / curve",
        "train / loss",
    }


def test_a_dark_screen_compare_page(
    ws: Workspace, root: Path, portal: LiveServer, browser: Any
) -> None:
    first, second = two_runs(ws, root)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme="dark")
    tab = context.new_page()
    tab.goto(f"{portal.url}/ui/compare?runs={first},{second}")
    tab.wait_for_selector("figure.chart canvas")
    screenshot(tab, "compare-dark")
    context.close()


def test_a_reused_step_shows_the_metrics_of_the_run_it_reused(
    ws: Workspace, root: Path, portal: LiveServer
) -> None:
    pipeline = train_pipeline(ws, root, allow_reuse=True)
    ids = []
    for _ in range(2):
        run = Experiment(ws, "reuse").submit(pipeline, pipeline_parameters={"rate": 1.0})
        run.wait_for_completion(show_output=False)
        ids.append(str(run.id))
    (reused,) = ws.backend.list_step_runs(ids[1])
    assert reused.reused_run_id is not None
    data = httpx.get(f"{portal.url}/ui/compare.json", params={"runs": ",".join(ids)}).json()
    metrics = {row["name"]: row for row in data["metrics"]}
    assert metrics["train / loss"] == {
        "name": "train / loss",
        "values": [1.0, 1.0],
        "differs": False,
    }
    assert not any(row["differs"] for row in data["parameters"])
