"""The portal while a step runs, as a user watching it sees it: the step page's metrics table
and charts take new values and new series without a reload, the run page shows the metrics
logged on the pipeline run itself (`run.parent.log`), live too, and a log pane the reader
scrolled up stays where it is while one left at the bottom follows the new lines."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import httpx

from headrace import Experiment, Pipeline, PythonScriptStep, Workspace
from tests.portal.conftest import screenshot, wait_for_step
from tests.portal.test_run_pages import PIXEL
from tests.servers import LiveServer

# Logs, waits for the test's first gate, logs again, waits for the second (so the second values
# are seen while the step still runs), and prints lines to both logs on the way.
SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    from headrace import Run

    def wait_for(path):
        deadline = time.time() + 60
        while not os.path.exists(path) and time.time() < deadline:
            time.sleep(0.05)

    run = Run.get_context()
    gates = sys.argv[1]
    run.log("loss", 0.9, step=0)
    run.log("loss", 0.5, step=1)
    run.log("accuracy", 0.5)
    run.parent.log("best_accuracy", 0.5)
    run.parent.log_image("sample", path="pixel.png")
    for i in range(150):
        print("before", i, flush=True)
        print("before", i, file=sys.stderr, flush=True)
    wait_for(os.path.join(gates, "first"))
    run.log("loss", 0.25, step=2)
    run.log("accuracy", 0.912345678)
    run.parent.log("best_accuracy", 0.912345678)
    run.parent.log("best_accuracy", 0.95)
    for i in range(150):
        print("after the gate", i, flush=True)
        print("after the gate", i, file=sys.stderr, flush=True)
    wait_for(os.path.join(gates, "second"))
    """
)


def test_metrics_and_logs_update_live_on_the_step_and_run_pages(
    ws: Workspace, root: Path, portal: LiveServer, page: Any
) -> None:
    source, gates = root / "live_src", root / "gates"
    source.mkdir()
    gates.mkdir()
    gates.chmod(0o777)
    (source / "train.py").write_text(SCRIPT)
    (source / "pixel.png").write_bytes(PIXEL)
    step = PythonScriptStep(
        "train.py", name="train", source_directory=str(source), arguments=[str(gates)]
    )
    run = Experiment(ws, "live-metrics").submit(Pipeline(ws, steps=[step]))
    try:
        step_id = wait_for_step(portal, run.id, "train")

        page.goto(f"{portal.url}/ui/steps/{step_id}")
        loaded_at = page.evaluate("window.headraceStepPage.loadedAt")
        table = page.locator("#scalar-metrics")
        loss_chart = page.locator("figure.metric-chart[data-series-name='loss']")
        loss_chart.locator("canvas").wait_for(timeout=30_000)
        assert table.locator("tr[data-metric='accuracy']").inner_text().count("0.5")
        assert page.locator("figure.metric-chart[data-series-name='accuracy']").count() == 0
        page.evaluate("window.lossChart = document.querySelector(\"[data-series-name='loss']\")")

        # The reader scrolls stdout up; stderr stays at its newest line.
        for stream in ("stdout", "stderr"):
            page.locator(f"#log-{stream}").filter(has_text="before 149").wait_for(timeout=30_000)
        page.evaluate("document.getElementById('log-stdout').scrollTop = 0")
        page.evaluate("(p => p.scrollTop = p.scrollHeight)(document.getElementById('log-stderr'))")

        run_tab = page.context.new_page()
        run_tab.goto(f"{portal.url}/ui/runs/{run.id}")
        run_tab.locator("#metrics tr[data-metric='best_accuracy']").wait_for(timeout=30_000)

        (gates / "first").write_text("")
        # The second values show on the open pages while the step still runs.
        page.locator("figure.metric-chart[data-series-name='loss'][data-points='3']").wait_for()
        accuracy = table.locator("tr[data-metric='accuracy']")
        accuracy.filter(has_text="0.9123").wait_for()
        assert accuracy.locator("[title]").get_attribute("title") == "0.912345678"
        page.locator("figure.metric-chart[data-series-name='accuracy'] canvas").wait_for()
        assert page.evaluate("document.querySelector(\"[data-series-name='loss']\") === lossChart")
        assert table.locator("tr[data-metric='loss']").inner_text().count("0.25")
        best = run_tab.locator("#metrics tr[data-metric='best_accuracy']")
        best.filter(has_text="0.95").wait_for()
        assert "3 times" in best.inner_text()
        run_tab.locator(
            "#metrics figure.metric-chart[data-series-name='best_accuracy'] canvas"
        ).wait_for()

        for stream in ("stdout", "stderr"):
            page.locator(f"#log-{stream}").filter(has_text="after the gate 149").wait_for()
        assert page.evaluate("document.getElementById('log-stdout').scrollTop") == 0
        assert page.evaluate(
            "(p => p.scrollTop + p.clientHeight >= p.scrollHeight - 4)"
            "(document.getElementById('log-stderr'))"
        )
        assert httpx.get(f"{portal.url}/ui/runs/{run.id}.json").json()["run"]["active"]
        assert page.evaluate("window.headraceStepPage.loadedAt") == loaded_at  # no reload
        screenshot(page, "step-metrics-live")
        screenshot(run_tab, "run-metrics-live")
    finally:
        (gates / "first").write_text("")
        (gates / "second").write_text("")
    run.wait_for_completion(show_output=False)
    page.locator("#metrics[data-ended='true']").wait_for(timeout=30_000)
    # The facts the page was loaded without follow the step: command, why, times.
    page.locator("body[data-step-ended='true']").wait_for(timeout=30_000)
    page.locator("#step-ended time").wait_for()
    assert "train.py" in page.locator("#command-line").inner_text()
    assert "first run of step" in page.locator("#run-reason").inner_text()
    assert page.locator("#step-started time").count() == 1

    # The pane's poll: nothing new after the cursor, the whole pane when asked from 0.
    twin = httpx.get(f"{portal.url}/ui/steps/{step_id}.json").json()
    url = f"{portal.url}/ui/steps/{step_id}/metrics"
    same = httpx.get(url, params={"after": twin["metrics_cursor"]}).json()
    assert same["html"] is None and same["metrics"] is None and same["active"] is False
    whole = httpx.get(url, params={"after": 0}).json()
    assert whole["metrics"] == twin["metrics"] and "scalar-metrics" in whole["html"]
    assert httpx.get(url, params={"after": -1}).status_code == 400
    assert httpx.get(f"{portal.url}/ui/steps/nope/metrics").status_code == 404
    run.log("logged_from_the_sdk", 1234567)  # PipelineRun.log lands on the same pane
    parent = httpx.get(f"{portal.url}/ui/runs/{run.id}.json").json()["metrics"]
    assert {"name": "best_accuracy", "value": 0.95, "logged": 3} in parent["scalars"]
    assert {"name": "logged_from_the_sdk", "value": 1234567, "logged": 1} in parent["scalars"]
    (image,) = parent["images"]  # the pipeline run's own file, served from its page's route
    assert httpx.get(portal.url + image["url"]).content == PIXEL
    run_page = httpx.get(f"{portal.url}/ui/runs/{run.id}").text
    assert "1,234,567" in run_page and "best_accuracy" in run_page
