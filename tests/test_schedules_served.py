"""Schedules where users meet them: `headrace server` fires them (through its REST API and
the SDK on a remote workspace), `headrace scheduler` fires them on a laptop, and the
`headrace schedule` commands. One server process for the module.
"""

from __future__ import annotations

import os
import pwd
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from headrace import (
    Pipeline,
    PipelineParameter,
    PythonScriptStep,
    Schedule,
    ScheduleRecurrence,
    TokenAuthentication,
    Workspace,
)
from headrace.cli.main import app as cli_app
from headrace.sdk.published import SUBMIT_PREFIX
from tests.conftest import stop_agents
from tests.servers import RUNNER, ServerProcess, bearer, make_token


def publish(ws: Workspace, folder: Path, name: str = "say") -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "say.py").write_text("import sys\nprint('n=' + sys.argv[1])\n")
    step = PythonScriptStep(
        "say.py",
        name="say",
        arguments=[PipelineParameter("n", default_value=1)],
        source_directory=str(folder),
    )
    return Pipeline(ws, steps=[step]).publish(name=name).id


def wait_for_runs(schedule: Schedule, count: int, timeout: float = 60) -> list[object]:
    deadline = time.monotonic() + timeout
    while True:
        runs = schedule.get_pipeline_runs()
        if len(runs) >= count:
            return list(runs)
        assert time.monotonic() < deadline, f"{len(runs)} runs after {timeout} s"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, ServerProcess]]:
    root = tmp_path_factory.mktemp("served") / "ws"
    Workspace.create("test-ws", path=root, show_output=False).backend.store.close()  # type: ignore[attr-defined]
    user = pwd.getpwuid(os.geteuid()).pw_name
    with ServerProcess(root, "--step-user", user) as process:
        yield root, process
    stop_agents(root)


def test_the_server_fires_a_schedule_made_through_the_sdk_and_rest_shows_it(
    server: tuple[Path, ServerProcess], tmp_path: Path
) -> None:
    root, process = server
    secret = make_token(root, "submitter", "sched-submitter")
    reader = make_token(root, "reader", "sched-reader")
    with Workspace.get("test-ws", url=process.url, auth=TokenAuthentication(secret)) as ws:
        pipeline_id = publish(ws, tmp_path / "src")
        schedule = Schedule.create(
            ws,
            "every-minute",
            pipeline_id,
            "served",
            ScheduleRecurrence("Minute", 1),
            pipeline_parameters={"n": 5},
        )
        (run,) = wait_for_runs(schedule, 1)  # no start time: the first run at once
        assert run.wait_for_completion(show_output=False) == "Finished"  # type: ignore[attr-defined]
        assert run.get_properties()["azureml.scheduleId"] == schedule.id  # type: ignore[attr-defined]
        (step,) = run.get_steps()  # type: ignore[attr-defined]
        assert step.get_stdout_log().strip() == "n=5"
        # The portal: the schedules page with its last run, the run page naming the schedule.
        listed = httpx.get(f"{process.url}/ui/schedules.json", headers=bearer(reader)).json()
        (row,) = listed["schedules"]
        assert (row["name"], row["last_run"]["id"]) == ("every-minute", run.id)  # type: ignore[attr-defined]
        assert row["next_fire_at"] is not None and listed["can_change"] is False
        run_page = httpx.get(f"{process.url}/ui/runs/{run.id}.json", headers=bearer(reader))  # type: ignore[attr-defined]
        assert run_page.json()["run"]["schedule"]["id"] == schedule.id
        assert run_page.json()["run"]["submitted_by"] == "a schedule"
        page = httpx.get(f"{process.url}/ui/schedules/{schedule.id}", headers=bearer(secret))
        csrf = re.search(r'name="csrf" value="([0-9a-f]*)"', page.text)
        assert csrf is not None and 'id="schedule-toggle">Disable' in page.text
        toggled = httpx.post(
            f"{process.url}/ui/schedules/{schedule.id}/status",
            data={"csrf": csrf.group(1), "status": "Disabled"},
            headers=bearer(secret),
        )
        assert toggled.status_code == 303
        schedule.refresh()
        assert schedule.status == "Disabled"
        schedule.enable()
        schedule.disable()
        assert Schedule.list(ws) == []
        assert [s.id for s in Schedule.list(ws, active_only=False)] == [schedule.id]

    prefix = SUBMIT_PREFIX.format(subscription="s", resource_group="rg", workspace="test-ws")
    listed = httpx.get(
        f"{process.url}{prefix}/Schedules",
        params={"active_only": "false"},
        headers=bearer(reader),
    )
    assert listed.status_code == 200
    (document,) = listed.json()
    assert (document["Id"], document["EntityStatus"]) == (schedule.id, "Disabled")
    assert document["Recurrence"]["Frequency"] == "Minute"
    refused = httpx.post(
        f"{process.url}/api/v1/schedules",
        json={"name": "x", "experiment_name": "x", "pipeline_id": pipeline_id},
        headers=bearer(reader),
    )
    assert refused.status_code == 403
    bad = httpx.post(
        f"{process.url}/api/v1/schedules",
        json={
            "name": "x",
            "experiment_name": "x",
            "pipeline_id": pipeline_id,
            "recurrence": {"frequency": "Minute", "interval": 1, "hours": [3]},
        },
        headers=bearer(secret),
    )
    assert bad.status_code == 400
    assert "hours and minutes can only" in bad.json()["Error"]["Message"]


def test_schedule_commands(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    ws = Workspace.create("test-ws", path=root, show_output=False)
    publish(ws, tmp_path / "src", name="nightly-say")
    created = RUNNER.invoke(
        cli_app,
        [
            "schedule", "create", "nightly", "--pipeline", "nightly-say", "-e", "cli",
            "--cron", "0 2 * * *", "--time-zone", "Europe/Amsterdam", "-p", "n=3", "-w", str(root),
        ],
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    assert "cron '0 2 * * *' (Europe/Amsterdam)" in created.output
    listed = RUNNER.invoke(cli_app, ["schedule", "list", "-w", str(root), "--json"])
    assert listed.exit_code == 0, listed.output
    assert '"pipeline_parameters": {\n        "n": "3"' in listed.output
    shown = RUNNER.invoke(cli_app, ["schedule", "show", "nightly", "-w", str(root)])
    assert shown.exit_code == 0 and "Europe/Amsterdam" in shown.output
    disabled = RUNNER.invoke(cli_app, ["schedule", "disable", "nightly", "-w", str(root)])
    assert "is Disabled" in disabled.output
    updated = RUNNER.invoke(
        cli_app,
        [
            "schedule",
            "update",
            "nightly",
            "--frequency",
            "Hour",
            "--interval",
            "3",
            "-w",
            str(root),
        ],
    )
    assert updated.exit_code == 0 and "every 3 hours" in updated.output
    runs = RUNNER.invoke(cli_app, ["schedule", "runs", "nightly", "-w", str(root)])
    assert "has queued no runs yet" in runs.output
    wrong = RUNNER.invoke(
        cli_app,
        ["schedule", "create", "bad", "--pipeline", "nightly-say", "-e", "cli",
         "--frequency", "Day", "--week-day", "Monday", "-w", str(root)],
    )  # fmt: skip
    assert wrong.exit_code != 0
    assert "week_days can only be given with frequency 'Week'" in wrong.output
    missing = RUNNER.invoke(cli_app, ["schedule", "show", "nightli", "-w", str(root)])
    assert missing.exit_code != 0 and "did you mean 'nightly'" in missing.output.lower()


def test_headrace_scheduler_fires_a_laptop_workspace_until_stopped(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    ws = Workspace.create("test-ws", path=root, show_output=False)
    pipeline_id = publish(ws, tmp_path / "src")
    schedule = Schedule.create(ws, "laptop", pipeline_id, "laptop", ScheduleRecurrence("Hour", 1))
    start = "import sys; from headrace.cli.main import main; sys.exit(main())"
    process = subprocess.Popen(
        [sys.executable, "-c", start, "scheduler", "-w", str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        (run,) = wait_for_runs(schedule, 1)
        assert run.wait_for_completion(show_output=False) == "Finished"  # type: ignore[attr-defined]
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
        stop_agents(root)
    assert process.returncode == 0, err
    assert "Scheduler stopped." in err
    assert len(schedule.get_pipeline_runs()) == 1  # the next slot is an hour away
