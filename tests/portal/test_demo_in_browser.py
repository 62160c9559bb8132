"""The issue's first browser scenario, with the real demo: submit the compare-models pipeline
(examples/compare_models) and watch its graph turn green in the portal without reloading,
then open a trainer's step page and its metric chart, and compare two runs of it."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from headrace import Experiment, Workspace
from tests.portal.conftest import screenshot
from tests.servers import LiveServer

pytest.importorskip("sklearn", reason="the demo needs scikit-learn: pip install 'headrace[demo]'")
pytestmark = pytest.mark.slow

DEMO = Path(__file__).resolve().parents[2] / "examples" / "compare_models"
STEPS = 6  # prepare, three trainers, compare, report


def demo_pipeline(ws: Workspace) -> Any:
    spec = importlib.util.spec_from_file_location("compare_models_pipeline", DEMO / "pipeline.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_pipeline(ws)


def test_the_demo_pipeline_turns_green_live_and_shows_its_metrics(
    ws: Workspace, portal: LiveServer, page: Any
) -> None:
    run = Experiment(ws, "compare-models").submit(demo_pipeline(ws))
    page.goto(f"{portal.url}/ui/runs/{run.id}")
    loaded_at = page.evaluate("window.headraceRunPage.loadedAt")
    assert page.locator("g.step").count() == STEPS
    page.locator("#run-status[data-status='Finished']").wait_for(timeout=180_000)
    assert page.locator("g.step[data-status='Finished']").count() == STEPS
    assert page.evaluate("window.headraceRunPage.loadedAt") == loaded_at  # never reloaded
    assert page.evaluate("window.headraceRunPage.polls") >= 2  # it watched the run go on
    outside = page.evaluate(
        """() => {
            const svg = document.querySelector('#graph svg');
            const box = svg.viewBox.baseVal;
            return [...svg.querySelectorAll('path.edge')].map((p) => p.getBBox()).filter((b) =>
                b.x < box.x || b.y < box.y ||
                b.x + b.width > box.x + box.width || b.y + b.height > box.y + box.height).length;
        }"""
    )
    assert outside == 0, f"{outside} edges are drawn outside the graph's frame"
    screenshot(page, "demo-run")

    page.locator("#graph a", has_text="train_forest").click()
    page.wait_for_url(f"{portal.url}/ui/steps/*")
    assert page.get_by_role("cell", name="accuracy", exact=True).is_visible()
    page.locator("figure.metric-chart canvas").first.wait_for()
    screenshot(page, "demo-step")

    second = Experiment(ws, "compare-models").submit(
        demo_pipeline(ws), pipeline_parameters={"n_estimators": 10}
    )
    assert second.wait_for_completion(show_output=False) == "Finished"
    page.goto(f"{portal.url}/ui/compare?runs={run.id},{second.id}")
    differing = page.locator("tr.differs")
    assert differing.filter(has_text="n_estimators").count() == 1
    screenshot(page, "demo-compare")
