"""MLflow tracking with the real `mlflow` client: calls in a step land in that step's run, and
`ws.get_mlflow_tracking_uri()` reads runs from outside.

One pipeline per module (two steps: plain MLflow calls, and scikit-learn autologging), run
once on a workspace folder; the tests read what it left, as a user would (SDK, CLI).
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from headrace import (
    Experiment,
    Pipeline,
    PythonScriptStep,
    RunConfiguration,
    StepRun,
    Workspace,
)
from headrace.cli.main import app as cli_app
from headrace.server.app import create_app
from tests.conftest import stop_agents
from tests.servers import RUNNER, asgi_client, run_async

mlflow = pytest.importorskip("mlflow")

LOGGING = textwrap.dedent(
    """
    import os
    import mlflow

    print("URI", mlflow.get_tracking_uri(), flush=True)
    with mlflow.start_run() as run:
        print("RUN", run.info.run_id, run.info.experiment_id, flush=True)
        mlflow.log_param("alpha", 0.5)
        for i in range(3):
            mlflow.log_metric("loss", 1.0 / (i + 1), step=i)
        mlflow.log_metrics({"a": 1.0, "b": 2.0})
        mlflow.set_tag("stage", "train")
        with open("model.txt", "w") as fh:
            fh.write("weights")
        mlflow.log_artifact("model.txt", artifact_path="model")
        got = mlflow.get_run(run.info.run_id)
        print("PARAMS", got.data.params, flush=True)
        print("HISTORY", [m.value for m in mlflow.MlflowClient().get_metric_history(
            run.info.run_id, "loss")], flush=True)
    # A second run in the same script (MLFLOW_RUN_ID is used up): still the step's run.
    mlflow.set_experiment("some-other-name")
    with mlflow.start_run(run_name="second") as again:
        print("AGAIN", again.info.run_id, flush=True)
        mlflow.log_metric("after", 7)
    """
)

AUTOLOG = textwrap.dedent(
    """
    import mlflow
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    mlflow.sklearn.autolog()
    X, y = load_iris(return_X_y=True)
    LogisticRegression(max_iter=200, C=0.7).fit(X, y)
    print("MODEL", mlflow.last_logged_model().model_id, flush=True)
    """
)


async def _get(app: Any, url: str) -> Any:
    async with asgi_client(app) as http:
        answer = await http.get(url)
        assert answer.status_code == 200, answer.text
        return answer.json()


@dataclass
class Done:
    ws: Workspace
    root: Path
    plain: StepRun
    auto: StepRun


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Done]:
    base = tmp_path_factory.mktemp("mlflow")
    src = base / "src"
    src.mkdir()
    (src / "plain.py").write_text(LOGGING)
    (src / "auto.py").write_text(AUTOLOG)
    root = base / "ws"
    ws = Workspace.create("mlflow-ws", path=root, show_output=False)
    # Logging a model infers its pip requirements in a subprocess that imports mlflow and
    # scikit-learn again (10-20 s on a busy machine); MLflow falls back to its defaults after
    # this timeout, which keeps the test short and the autologging code path the default one.
    quick = RunConfiguration()
    quick.environment_variables = {"MLFLOW_REQUIREMENTS_INFERENCE_TIMEOUT": "1"}
    steps = [
        PythonScriptStep("plain.py", source_directory=str(src), name="plain"),
        PythonScriptStep("auto.py", source_directory=str(src), name="auto", runconfig=quick),
    ]
    run = Experiment(ws, "tracked").submit(Pipeline(ws, steps=steps))
    try:
        status = run.wait_for_completion(show_output=False, raise_on_error=False)
        plain, auto = run.find_step_run("plain")[0], run.find_step_run("auto")[0]
        assert status == "Finished", (plain.get_stderr_log(), auto.get_stderr_log())
        yield Done(ws, root, plain, auto)
    finally:
        stop_agents(root)
        ws.close()


def test_mlflow_calls_in_a_step_land_in_that_steps_run(done: Done) -> None:
    plain = done.plain
    out = plain.get_stdout_log()
    assert f"URI {done.ws.get_mlflow_tracking_uri()}" in out
    assert "View run" not in out  # MLflow's link to a UI that is not there
    assert f"RUN {plain.id} tracked" in out  # start_run() is the step's run, its experiment
    assert f"AGAIN {plain.id}" in out  # so is a second one, whatever set_experiment named
    assert "PARAMS {'alpha': '0.5'}" in out
    assert "HISTORY [1.0, 0.5, 0.3333333333333333]" in out

    metrics = plain.get_metrics()
    assert metrics["loss"] == [1.0, 0.5, 0.3333333333333333]
    assert metrics["a"] == 1.0 and metrics["b"] == 2.0 and metrics["after"] == 7.0
    assert plain.tags["stage"] == "train"
    assert plain.tags["mlflow.param.alpha"] == "0.5"
    assert "model/model.txt" in plain.get_file_names()

    # Where a user looks: the CLI and the portal's step page (its JSON twin).
    shown = RUNNER.invoke(cli_app, ["run", "metrics", plain.id, "-w", str(done.root), "--json"])
    assert shown.exit_code == 0, shown.output
    assert "loss" in shown.output and "0.3333333333333333" in shown.output
    app = create_app(done.root, auth=False)
    page = run_async(lambda: _get(app, f"/ui/steps/{plain.id}.json"))
    assert "loss" in json.dumps(page["metrics"]) and "after" in json.dumps(page["metrics"])


def test_sklearn_autolog_in_a_step_lands_in_its_run(done: Done) -> None:
    metrics = done.auto.get_metrics()
    assert 0.9 < metrics["training_accuracy_score"] <= 1.0, metrics
    assert done.auto.tags["mlflow.param.C"] == "0.7"
    assert done.auto.tags["estimator_name"] == "LogisticRegression"
    assert "during sklearn autologging" not in done.auto.get_stderr_log()  # its failures

    # The model autologging logged is kept with the run, and MLflow loads it by its id.
    model_id = done.auto.get_stdout_log().split("MODEL ", 1)[1].split()[0]
    files = done.auto.get_file_names()
    assert f"logged_models/{model_id}/MLmodel" in files, files
    mlflow.set_tracking_uri(done.ws.get_mlflow_tracking_uri())
    try:
        model = mlflow.sklearn.load_model(f"models:/{model_id}")
    finally:
        mlflow.set_tracking_uri(None)
    assert list(model.predict([[5.1, 3.5, 1.4, 0.2]])) == [0]


def test_the_tracking_uri_of_a_workspace_folder_reads_its_runs(done: Done) -> None:
    client = mlflow.MlflowClient(tracking_uri=done.ws.get_mlflow_tracking_uri())
    got = client.get_run(done.plain.id)
    assert got.data.params == {"alpha": "0.5"}
    assert got.data.metrics["loss"] == pytest.approx(1 / 3)
    assert got.info.status == "FINISHED" and got.info.experiment_id == "tracked"
    history = client.get_metric_history(done.plain.id, "loss")
    assert [(m.step, m.value) for m in history] == [(0, 1.0), (1, 0.5), (2, pytest.approx(1 / 3))]
    assert [a.path for a in client.list_artifacts(done.plain.id, "model")] == ["model/model.txt"]
    assert client.get_experiment_by_name("tracked").experiment_id == "tracked"
    found = client.search_runs(["tracked"])
    assert {r.info.run_id for r in found} == {done.plain.id, done.auto.id}

    # Logging to a finished run from outside lands too; a new run has nowhere to go.
    client.log_metric(done.plain.id, "late", 3.0)
    assert done.plain.get_metrics()["late"] == 3.0
    with pytest.raises(mlflow.exceptions.MlflowException, match="outside a pipeline step"):
        client.create_run("tracked")
    with pytest.raises(mlflow.exceptions.MlflowException, match="no-such-run"):
        client.get_run("no-such-run")
    assert json.loads(json.dumps(got.to_dictionary()))["info"]["run_id"] == done.plain.id


def test_a_step_that_cannot_reach_its_run_folder_is_told_why(done: Done, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    script = (
        "import mlflow\n"
        "try:\n"
        "    mlflow.log_metric('x', 1.0)\n"
        "except mlflow.exceptions.MlflowException as exc:\n"
        "    print('REFUSED', exc)\n"
    )
    env = {
        **os.environ,
        "HEADRACE_RUN_ID": done.plain.id,
        "HEADRACE_WORKSPACE": str(done.root),
        "HEADRACE_RUN_DIR": str(tmp_path / "not-here"),
        "MLFLOW_TRACKING_URI": done.ws.get_mlflow_tracking_uri(),
        "MLFLOW_RUN_ID": done.plain.id,
    }
    ran = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert "REFUSED" in ran.stdout, ran.stdout + ran.stderr
    assert "cannot reach its run" in ran.stdout and "Run.get_context().log" in ran.stdout
