"""The notifications page: notifications (no secret), run triggers, and the latest
deliveries with their state and last error; HTML and its JSON twin."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from headrace import Notification, Pipeline, PythonScriptStep, RunTrigger, Workspace
from tests.servers import LiveServer, free_port

TOKEN = "T111/B111/YYYYsecretYYYY"


def test_the_page_lists_notifications_triggers_and_failed_deliveries(
    ws: Workspace, root: Path, portal: LiveServer, tmp_path: Path
) -> None:
    Notification.webhook(
        ws, "dead-hook", url=f"http://127.0.0.1:{free_port()}/{TOKEN}", max_attempts=1
    )
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "a.py").write_text("print('a')\n")
    pipeline = Pipeline(ws, [PythonScriptStep("a.py", name="a", source_directory=str(folder))])
    published = pipeline.publish(name="a")
    RunTrigger.create(
        ws, "again", source=published, target=published, experiment_name="e", statuses="Failed"
    )
    run = published.submit(ws, "e")
    run.wait_for_completion(show_output=False)

    deadline = time.monotonic() + 30
    while True:
        data = httpx.get(f"{portal.url}/ui/notifications.json").json()
        if any(d["state"] == "failed" for d in data["deliveries"]) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    (notification,) = data["notifications"]
    assert notification["name"] == "dead-hook" and notification["scope"] == ["every run"]
    assert notification["where"].startswith("http://127.0.0.1:")
    (trigger,) = data["triggers"]
    assert (trigger["name"], trigger["statuses"]) == ("again", ["Failed"])
    (delivery,) = data["deliveries"]
    assert (delivery["run_id"], delivery["state"], delivery["attempts"]) == (run.id, "failed", 1)
    assert "connection refused" in delivery["last_error"]
    assert data["firings"] == []  # the run finished; the trigger waits for a failure

    html = httpx.get(f"{portal.url}/ui/notifications").text
    assert 'data-notification="dead-hook"' in html and 'data-trigger="again"' in html
    assert "connection refused" in html
    assert TOKEN not in html and TOKEN not in str(data)


def test_a_run_page_names_its_trigger_and_what_its_ending_set_off(
    ws: Workspace, root: Path, portal: LiveServer, tmp_path: Path
) -> None:
    from headrace.store.run_triggers import triggered_run_id

    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "a.py").write_text("print('a')\n")
    step = PythonScriptStep("a.py", name="a", source_directory=str(folder))
    source = Pipeline(ws, [step]).publish(name="source")
    target = Pipeline(ws, [step]).publish(name="target")
    RunTrigger.create(ws, "next", source=source, target=target, experiment_name="e")
    run = source.submit(ws, "e")
    run.wait_for_completion(show_output=False)
    started = triggered_run_id("next", run.id)

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        data = httpx.get(f"{portal.url}/ui/runs/{run.id}.json").json()
        if any(d.get("state") == "done" for d in data.get("after_ending", [])):
            break
        time.sleep(0.1)
    (firing,) = data["after_ending"]
    assert (firing["kind"], firing["target"], firing["started_run_id"]) == (
        "trigger",
        "next",
        started,
    )
    assert f'href="/ui/runs/{started}"' in httpx.get(f"{portal.url}/ui/runs/{run.id}").text
    page = httpx.get(f"{portal.url}/ui/runs/{started}")
    assert page.status_code == 200
    assert 'id="run-trigger"' in page.text and f'href="/ui/runs/{run.id}"' in page.text
    facts = httpx.get(f"{portal.url}/ui/runs/{started}.json").json()["run"]
    assert facts["trigger"] == {
        "name": "next",
        "source_run_id": run.id,
        "source_url": f"/ui/runs/{run.id}",
    }
    assert facts["submitted_by"] == "a run trigger"
