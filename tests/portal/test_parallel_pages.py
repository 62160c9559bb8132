"""A ParallelRunStep's step page: a progress bar and a per-worker table that move while the
step runs, and its logs (summary, failed items, one per worker) one click away."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import expect

from headrace import Workspace
from tests.parallel_steps import held_step, images_dataset, wait_for_items
from tests.portal.conftest import screenshot
from tests.servers import LiveServer


def test_the_step_page_shows_live_progress_workers_and_links_to_the_logs(
    ws: Workspace, tmp_path: Path, portal: LiveServer, page: Any
) -> None:
    run, _ledger, go = held_step(ws, images_dataset(ws, tmp_path), tmp_path)
    step_run = wait_for_items(run, 20)  # 5 of 6 mini-batches; the last one held
    url = f"{portal.url}/ui/steps/{step_run.id}"
    twin = httpx.get(url + ".json").json()["parallel"]
    assert twin["items"] == {"done": 20, "failed": 0, "remaining": 3, "total": 23}
    assert twin["logs"] == []  # moved into the run's files when the step ends

    page.goto(url)
    bar = page.locator("#parallel-bar")
    assert bar.get_attribute("value") == "20" and bar.get_attribute("max") == "23"
    assert page.locator('[data-count="items-remaining"]').inner_text() == "3"
    assert page.locator("#parallel-workers tbody tr").count() >= 1
    assert "linked here when the step ends" in page.locator("#parallel-logs").inner_text()
    screenshot(page, "parallel-step-running")

    go.touch()  # the page's own polling moves the bar to the end
    expect(page.locator('[data-count="items-done"]')).to_have_text("23", timeout=30_000)
    assert page.locator("#parallel-percent").inner_text() == "100%"
    assert run.wait_for_completion(show_output=False) == "Finished"

    page.goto(url)
    workers = page.locator("#parallel-workers tbody tr")
    assert workers.count() == 2
    assert workers.nth(0).locator("td").nth(0).inner_text() == "1"
    links = page.locator("#parallel-logs a")
    labels = [links.nth(i).inner_text() for i in range(links.count())]
    assert labels == ["summary", "failed items", "worker 1", "worker 2"]
    summary = httpx.get(portal.url + links.nth(0).get_attribute("href"))
    assert summary.status_code == 200
    assert "ParallelRunStep finished: 6 mini-batches (6 done, 0 failed)" in summary.text
    screenshot(page, "parallel-step-finished")
