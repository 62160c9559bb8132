"""Rerun and resume: `headrace run rerun RUN [--from-failed] [--param k=v]`,
`PipelineRun.rerun(...)`, the REST route and the portal's buttons.

The pipeline: `prepare` (allow_reuse=False) -> `train` (fails while a marker file exists, as a
step fails on a flaky outside service) -> `report`. The first run fails at `train`; the marker
is removed, as the user fixes what broke; then the run is resumed or rerun.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from headrace import PipelineRun, Workspace
from headrace.cli.main import app
from headrace.store.records import Status
from tests.conftest import stop_agents
from tests.servers import LiveServer, asgi_client, bearer, make_token, run_async

RUNNER = CliRunner()

STEP = """
import argparse, os, sys
p = argparse.ArgumentParser()
p.add_argument("--name"); p.add_argument("--inp"); p.add_argument("--out")
p.add_argument("--marker", default=""); p.add_argument("--value", default="")
a = p.parse_args()
if a.marker and os.path.exists(a.marker):
    sys.exit(f"{a.name}: the service is down ({a.marker} exists)")
text = open(os.path.join(a.inp, "data.txt")).read() if a.inp else ""
if a.out:
    os.makedirs(a.out, exist_ok=True)
    open(os.path.join(a.out, "data.txt"), "w").write(text + a.name + a.value + ";")
print(a.name, "done")
"""

PIPELINE = """
from headrace import Pipeline, PipelineData, PipelineParameter, PythonScriptStep, Workspace
ws = Workspace.from_config()
value = PipelineParameter("value", default_value="v1")
prepared, trained = PipelineData("prepared"), PipelineData("trained")
common = dict(script_name="step.py", source_directory="src")
prepare = PythonScriptStep(name="prepare", outputs=[prepared], allow_reuse=False,
    arguments=["--name", "prepare", "--value", value, "--out", prepared], **common)
train = PythonScriptStep(name="train", inputs=[prepared], outputs=[trained],
    arguments=["--name", "train", "--inp", prepared, "--out", trained, "--marker", {marker!r}],
    **common)
report = PythonScriptStep(name="report", inputs=[trained],
    arguments=["--name", "report", "--inp", trained], **common)
pipeline = Pipeline(ws, steps=[report])
"""


def hr(*args: object, code: int = 0) -> Result:
    result = RUNNER.invoke(app, [str(a) for a in args])
    assert result.exit_code == code, (
        f"exit {result.exit_code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return result


def hr_json(*args: object, code: int = 0) -> Any:
    return json.loads(hr(*args, "--json", code=code).stdout)


def failed_run(ws: Workspace, tmp_path: Path) -> tuple[dict[str, Any], Path]:
    """The first run, Failed at `train`; the marker is then removed."""
    marker = tmp_path / "service-down"
    marker.write_text("")
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "src" / "step.py").write_text(textwrap.dedent(STEP))
    (project / "pipeline.py").write_text(textwrap.dedent(PIPELINE).format(marker=str(marker)))
    args = ("run", "submit", project / "pipeline.py", "-e", "resume", "-w", ws.path, "--wait")
    first = hr_json(*args, code=1)
    assert [(s["name"], s["status"]) for s in first["steps"]] == [
        ("prepare", "Finished"),
        ("train", "Failed"),
    ]
    marker.unlink()
    return first, project


def by_name(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in document["steps"]}


def test_resume_from_failed_takes_finished_steps_and_runs_the_rest(
    any_ws: Workspace, tmp_path: Path
) -> None:
    ws = any_ws
    first, _ = failed_run(ws, tmp_path)
    prepared = by_name(first)["prepare"]

    resumed = hr_json("run", "rerun", first["id"][:8], "--from-failed", "--wait", "-w", ws.path)
    assert resumed["status"] == "Finished"
    assert resumed["rerun_of"] == first["id"] and resumed["resumes"] == first["id"]
    assert resumed["experiment"] == "resume" and resumed["parameters"] == {"value": "v1"}
    steps = by_name(resumed)
    # prepare says allow_reuse=False, yet it finished in the run being resumed: taken as is.
    assert steps["prepare"]["reused_run_id"] == prepared["id"]
    assert "which this run resumes" in steps["prepare"]["run_reason"]["summary"]
    assert not steps["train"]["reused"] and not steps["report"]["reused"]
    shown = hr("run", "show", resumed["id"], "-w", ws.path).stdout
    assert "which this run resumes" in shown
    assert re.search(rf"Rerun of +{first['id']} \(resumed from its failed steps\)", shown)

    # A plain rerun uses the usual rules: prepare always runs, so its consumers run too.
    plain = PipelineRun.get(ws, first["id"]).rerun()
    assert plain.wait_for_completion(show_output=False) == "Finished"
    assert not any(s.reused_run_id for s in plain.get_steps())
    assert plain.properties["headrace.rerunOf"] == first["id"]
    assert "headrace.recoverFrom" not in plain.properties

    # A changed parameter reaches prepare: it runs even when resuming, and so does train.
    changed = PipelineRun.get(ws, first["id"]).rerun({"value": "v2"}, from_failed=True)
    assert changed.wait_for_completion(show_output=False) == "Finished"
    assert {s.name: s.reused_run_id for s in changed.get_steps()}["prepare"] is None
    out = hr_json("run", "show", changed.id, "-w", ws.path)
    assert out["parameters"] == {"value": "v2"}

    wrong = hr("run", "rerun", first["id"], "--param", "valeu=3", "-w", ws.path, code=1)
    assert "did you mean 'value'" in wrong.stderr and "Traceback" not in wrong.output


def test_rerun_through_the_server_and_the_portal(ws: Workspace, tmp_path: Path) -> None:
    first, _ = failed_run(ws, tmp_path)
    root = Path(str(ws.path))
    submitter = make_token(root, "submitter", "rerunner")
    reader = make_token(root, "reader", "looker")
    try:
        with LiveServer(root) as live:
            remote = ("--server", live.url, "--token")
            refused = hr(*remote, reader, "run", "rerun", first["id"], code=1)
            assert "submitter" in refused.stderr and "Traceback" not in refused.output
            resumed = hr_json(
                *remote, submitter, "run", "rerun", first["id"][:8], "--from-failed", "--wait"
            )
            assert resumed["status"] == "Finished" and resumed["resumes"] == first["id"]

            async def portal() -> tuple[str, str, Any]:
                async with asgi_client(live.app) as client:
                    page = f"/ui/runs/{first['id']}"
                    as_reader = (await client.get(page, headers=bearer(reader))).text
                    as_submitter = (await client.get(page, headers=bearer(submitter))).text
                    posted = await client.post(
                        page + "/rerun", data={"from_failed": "1"}, headers=bearer(submitter)
                    )
                    return as_reader, as_submitter, posted

            as_reader, as_submitter, posted = run_async(portal)
            assert "Resume from failed steps" in as_submitter and "Rerun" in as_submitter
            assert "Resume from failed steps" not in as_reader
            assert posted.status_code == 303
            new_id = posted.headers["location"].rsplit("/", 1)[1]
            run = PipelineRun.get(ws, new_id)
            assert run.wait_for_completion(show_output=False) == Status.FINISHED
            assert run.properties["headrace.recoverFrom"] == first["id"]

            async def new_page() -> str:
                async with asgi_client(live.app) as client:
                    return (await client.get(f"/ui/runs/{new_id}", headers=bearer(reader))).text

            shown = run_async(new_page)
            assert f'<a href="/ui/runs/{first["id"]}">' in shown
            assert "(resumed from its failed steps)" in shown
    finally:
        stop_agents(root)


def test_resuming_a_run_that_has_not_ended_is_refused(ws: Workspace, tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "src" / "slow.py").write_text("import time\ntime.sleep(30)\n")
    (project / "pipeline.py").write_text(
        "from headrace import Pipeline, PythonScriptStep, Workspace\n"
        "ws = Workspace.from_config()\n"
        "pipeline = Pipeline(ws, steps=[PythonScriptStep('slow.py', source_directory='src')])\n"
    )
    run = hr_json("run", "submit", project / "pipeline.py", "-e", "slow", "-w", ws.path)
    try:
        line = hr("run", "rerun", run["id"], "--from-failed", "-w", ws.path, code=1).stderr.strip()
        assert line.startswith("error: Run ") and "headrace run wait" in line
    finally:
        hr("run", "cancel", run["id"], "-w", ws.path)
        hr("run", "wait", run["id"], "-w", ws.path, code=1)
