"""Run triggers: a published pipeline started when a run of another ends, with the source
run's parameters, outputs and id; exactly once per source run, even when several senders
(agents or servers on one PostgreSQL workspace) fire it at the same moment.
"""

from __future__ import annotations

import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from headrace import (
    ConflictError,
    NotFoundError,
    Pipeline,
    PipelineData,
    PipelineEndpoint,
    PipelineParameter,
    PipelineRun,
    PublishedPipeline,
    PythonScriptStep,
    RunTrigger,
    UserError,
    Workspace,
)
from headrace.engine.run_triggers import fire
from headrace.store.run_triggers import triggered_run_id
from headrace.store.workspace_store import WorkspaceStore


def publish_train(ws: Workspace, folder: Path, *, fail: bool = False) -> PublishedPipeline:
    folder.mkdir(exist_ok=True)
    (folder / "train.py").write_text(
        textwrap.dedent(
            f"""
            import os, sys
            os.makedirs(sys.argv[2], exist_ok=True)
            open(os.path.join(sys.argv[2], "weights.txt"), "w").write("w=" + sys.argv[1])
            {"raise SystemExit('diverged')" if fail else ""}
            """
        )
    )
    model = PipelineData("model", datastore=ws.get_default_datastore())
    step = PythonScriptStep(
        "train.py",
        name="train",
        arguments=[PipelineParameter("n", default_value=1), model],
        outputs=[model],
        source_directory=str(folder),
        allow_reuse=False,
    )
    return Pipeline(ws, steps=[step]).publish(name="fail-train" if fail else "train")


def publish_score(ws: Workspace, folder: Path) -> PublishedPipeline:
    folder.mkdir(exist_ok=True)
    (folder / "score.py").write_text("import sys\nprint('score', *sys.argv[1:])\n")
    step = PythonScriptStep(
        "score.py",
        name="score",
        arguments=[
            PipelineParameter("m", default_value=0),
            PipelineParameter("model_path", default_value="none"),
            PipelineParameter("source", default_value="none"),
        ],
        source_directory=str(folder),
        allow_reuse=False,
    )
    return Pipeline(ws, steps=[step]).publish(name="score")


def wait_for_run(ws: Workspace, run_id: str, timeout: float = 60.0) -> PipelineRun:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ws.backend.find_step_run(run_id) is None:
            try:
                record = ws.backend.get_pipeline_run(run_id)
            except NotFoundError:
                time.sleep(0.1)
                continue
            from headrace import Experiment

            return PipelineRun(Experiment(ws, record.experiment_name), run_id, record)
        time.sleep(0.1)
    raise AssertionError(f"no run {run_id} within {timeout} s")


def wait_for(check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_a_finished_run_starts_the_target_with_its_parameters_and_outputs(
    ws: Workspace, tmp_path: Path
) -> None:
    train = publish_train(ws, tmp_path / "train")
    score = publish_score(ws, tmp_path / "score")
    trigger = RunTrigger.create(
        ws,
        "score-after-train",
        source=train,
        target=score,
        experiment_name="scoring",
        parameters={"m": "parameter:n", "model_path": "output:train/model", "source": "run:id"},
    )
    assert trigger.statuses == ["Finished"]
    assert [t.name for t in RunTrigger.list(ws)] == ["score-after-train"]

    source = train.submit(ws, "training", pipeline_parameters={"n": 7})
    source.wait_for_completion(show_output=False)
    started = wait_for_run(ws, triggered_run_id("score-after-train", source.id))
    started.wait_for_completion(show_output=False)

    (step,) = started.get_steps()
    out = step.get_stdout_log().split()
    assert out[:2] == ["score", "7"] and out[3] == source.id
    assert out[2].startswith("workspaceblobstore/azureml/") and out[2].endswith("/model")
    assert started.get_properties()["headrace.trigger"] == f"score-after-train:{source.id}"
    assert started.get_properties()["azureml.pipelineid"] == score.id
    (firing,) = wait_for(lambda: [f for f in trigger.firings() if f["state"] == "done"])
    assert (firing["state"], firing["run_id"], firing["started_run_id"]) == (
        "done",
        source.id,
        started.id,
    )
    # Firing again (a sender that crashed after submitting, another agent) starts nothing.
    assert fire(ws.backend.store, "score-after-train", source.id) == {  # type: ignore[attr-defined]
        "run_id": started.id,
        "started": False,
    }
    # A run of another pipeline, or one that failed, fires nothing.
    other = score.submit(ws, "scoring")
    other.wait_for_completion(show_output=False)
    assert len(trigger.firings()) == 1


def test_an_endpoint_trigger_on_failure_and_the_bad_inputs(ws: Workspace, tmp_path: Path) -> None:
    failing = publish_train(ws, tmp_path / "train", fail=True)
    score = publish_score(ws, tmp_path / "score")
    endpoint = PipelineEndpoint.publish(ws, "scorer", "runs failing training", failing)
    endpoint.add_default(score)  # the endpoint now runs the scoring pipeline
    RunTrigger.create(
        ws,
        "on-failure",
        source=failing,
        target=endpoint,
        experiment_name="alerts",
        statuses=["Failed"],
        parameters={"source": "run:status", "m": "value:3"},
    )
    source = failing.submit(ws, "training")
    source.wait_for_completion(show_output=False, raise_on_error=False)
    started = wait_for_run(ws, triggered_run_id("on-failure", source.id))
    started.wait_for_completion(show_output=False)
    (step,) = started.get_steps()
    assert step.get_stdout_log().split() == ["score", "3", "none", "Failed"]

    with pytest.raises(ConflictError, match="'on-failure' exists"):
        RunTrigger.create(ws, "on-failure", source=failing, target=score, experiment_name="x")
    with pytest.raises(UserError) as caught:
        RunTrigger.create(
            ws,
            "bad name!",
            source="no-such-pipeline",
            target=score,
            experiment_name="",
            statuses=["Done"],
            parameters={"m": "from:somewhere", "x": "output:nostep"},
        )
    message = str(caught.value)
    for part in (
        "name 'bad name!'",
        "source: No published pipeline",
        "statuses ['Done']",
        "experiment_name is missing",
        "'from:somewhere' must start with one of",
        "'output:nostep' must be 'output:STEP/OUTPUT'",
    ):
        assert part in message
    RunTrigger.get(ws, "on-failure").remove()
    with pytest.raises(NotFoundError, match="No run trigger named 'on-failure'"):
        RunTrigger.get(ws, "on-failure")


def test_senders_racing_on_one_firing_start_one_run(any_ws: Workspace, tmp_path: Path) -> None:
    """Four senders, each with its own connection, fire the same (trigger, source run) at
    once: one run is started, the others find it."""
    ws = any_ws
    train = publish_train(ws, tmp_path / "train")
    score = publish_score(ws, tmp_path / "score")
    source = train.submit(ws, "training")
    source.wait_for_completion(show_output=False)
    # Added after the source ended: no firing was queued, the senders below are the only ones.
    RunTrigger.create(ws, "raced", source=train, target=score, experiment_name="race")
    root = Path(ws.backend.location)
    stores = [WorkspaceStore.open(root) for _ in range(4)]
    barrier = threading.Barrier(len(stores))
    results: list[dict[str, Any]] = []

    def sender(store: WorkspaceStore) -> None:
        barrier.wait()
        results.append(fire(store, "raced", source.id))

    threads = [threading.Thread(target=sender, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in stores:
        store.close()
    assert sorted(r["started"] for r in results) == [False, False, False, True]
    assert {r["run_id"] for r in results} == {triggered_run_id("raced", source.id)}
    runs = ws.backend.list_pipeline_runs(experiment_name="race")
    assert [r.id for r in runs] == [triggered_run_id("raced", source.id)]


def test_the_cli_adds_lists_and_removes_run_triggers(ws: Workspace, tmp_path: Path) -> None:
    from tests.test_cli import hr, hr_json, one_error_line

    folder = tmp_path / "ws"
    train = publish_train(ws, tmp_path / "train")
    score = publish_score(ws, tmp_path / "score")
    added = hr(
        "trigger", "add", "t1", "--experiment", "scoring", "--source-pipeline", train.id,
        "--target-pipeline", score.id, "--status", "Finished", "--status", "Failed",
        "--param", "m=parameter:n", "-w", folder,
    )  # fmt: skip
    assert "Added run trigger 't1' (Finished, Failed)." in added.stdout
    (listed,) = hr_json("trigger", "list", "-w", folder)
    assert listed["parameters"] == {"m": "parameter:n"}
    assert listed["source_pipeline_id"] == train.id and listed["target_pipeline_id"] == score.id
    assert "t1" in hr("trigger", "list", "-w", folder).stdout
    bad = hr("trigger", "add", "t2", "--experiment", "x", "--param", "m", "-w", folder, code=1)
    assert "--param 'm' must be TARGET=SOURCE" in one_error_line(bad)
    hr("trigger", "disable", "t1", "-w", folder)
    assert RunTrigger.get(ws, "t1").enabled is False
    quiet = train.submit(ws, "training")
    quiet.wait_for_completion(show_output=False)
    hr("trigger", "enable", "t1", "-w", folder)
    source = train.submit(ws, "training")
    source.wait_for_completion(show_output=False)
    started = wait_for_run(ws, triggered_run_id("t1", source.id))
    (firing,) = wait_for(
        lambda: [
            f for f in hr_json("trigger", "firings", "t1", "-w", folder) if f["state"] == "done"
        ]
    )
    assert (firing["run_id"], firing["started_run_id"]) == (source.id, started.id)
    started.wait_for_completion(show_output=False)
    assert [r.id for r in ws.backend.list_pipeline_runs(experiment_name="scoring")] == [started.id]
    hr("trigger", "remove", "t1", "-w", folder)
    assert hr_json("trigger", "list", "-w", folder) == []
