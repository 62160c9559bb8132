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
