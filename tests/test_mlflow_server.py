"""MLflow against `headrace server`, with the real `mlflow` client: a confined step's MLflow
calls land in its run, and `ws.get_mlflow_tracking_uri()` of the served workspace (the
server's URL and a headrace token in `MLFLOW_TRACKING_TOKEN`) reads and writes runs and
artifacts through the server's MLflow REST API.

One server and one pipeline per module; the server runs its steps confined (Landlock, a step
user) as a server does.
"""

from __future__ import annotations

import os
import pwd
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from headrace import (
    Experiment,
    Pipeline,
    PythonScriptStep,
    StepRun,
    TokenAuthentication,
    Workspace,
)
from tests.conftest import stop_agents
from tests.servers import ServerProcess, make_token

mlflow = pytest.importorskip("mlflow")

STEP = textwrap.dedent(
    """
    import mlflow
    from headrace import Run

    # azureml-mlflow's habit: the workspace's tracking URI, from the step's run.
    ws = Run.get_context().experiment.workspace
    mlflow.set_tracking_uri(ws.get_mlflow_tracking_uri())
    mlflow.log_param("depth", 3)
    for i in range(5):
        mlflow.log_metric("rmse", 10.0 - i, step=i)
    with open("report.md", "w") as fh:
        fh.write("# report")
    mlflow.log_artifact("report.md")
    print("URI", mlflow.get_tracking_uri(), flush=True)
    """
)


@dataclass
class Served:
    url: str
    root: Path
    step: StepRun
    tokens: dict[str, str]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    base = tmp_path_factory.mktemp("mlflow-server")
    root = base / "ws"
    Workspace.create("served", path=root, show_output=False).close()
    src = base / "src"
    src.mkdir()
    (src / "fit.py").write_text(STEP)
    tokens = {role: make_token(root, role) for role in ("reader", "submitter")}
    me = pwd.getpwuid(os.geteuid()).pw_name
    try:
        with ServerProcess(root, "--step-user", me) as server:
            ws = Workspace.get(
                "served", url=server.url, auth=TokenAuthentication(tokens["submitter"])
            )
            step = PythonScriptStep("fit.py", source_directory=str(src), name="fit")
            run = Experiment(ws, "served-exp").submit(Pipeline(ws, steps=[step]))
            status = run.wait_for_completion(show_output=False, raise_on_error=False)
            fit = run.find_step_run("fit")[0]
            assert status == "Finished", fit.get_stderr_log()
            yield Served(server.url, root, fit, tokens)
            ws.close()
    finally:
        stop_agents(root)


def client(served: Served, role: str, monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", served.tokens[role])
    uri = Workspace.get("served", url=served.url, auth=TokenAuthentication(served.tokens[role]))
    return mlflow.MlflowClient(tracking_uri=uri.get_mlflow_tracking_uri())


def test_a_confined_steps_mlflow_calls_land_in_its_run(served: Served) -> None:
    fit = served.step
    assert fit.get_metrics()["rmse"] == [10.0, 9.0, 8.0, 7.0, 6.0]
    assert fit.tags["mlflow.param.depth"] == "3"
    assert "report.md" in fit.get_file_names()
    assert "URI headrace://" in fit.get_stdout_log()


def test_the_servers_tracking_uri_reads_and_writes_runs_and_artifacts(
    served: Served, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    mlf = client(served, "submitter", monkeypatch)
    assert served.url == mlf.tracking_uri  # type: ignore[attr-defined]
    run = mlf.get_run(served.step.id)  # type: ignore[attr-defined]
    assert run.data.params == {"depth": "3"} and run.data.metrics["rmse"] == 6.0
    assert run.info.status == "FINISHED" and run.info.experiment_id == "served-exp"
    history = mlf.get_metric_history(served.step.id, "rmse")  # type: ignore[attr-defined]
    assert [m.value for m in history] == [10.0, 9.0, 8.0, 7.0, 6.0]

    # Writing through the API, artifacts through MLflow's artifact proxy.
    mlf.log_metric(served.step.id, "late", 1.5)  # type: ignore[attr-defined]
    mlf.set_tag(served.step.id, "reviewed", "yes")  # type: ignore[attr-defined]
    notes = tmp_path / "notes.txt"
    notes.write_text("looked at it")
    mlf.log_artifact(served.step.id, str(notes), artifact_path="review")  # type: ignore[attr-defined]
    listed = mlf.list_artifacts(served.step.id)  # type: ignore[attr-defined]
    assert {(a.path, a.is_dir) for a in listed} >= {("report.md", False), ("review", True)}
    assert [a.path for a in mlf.list_artifacts(served.step.id, "review")] == [  # type: ignore[attr-defined]
        "review/notes.txt"
    ]
    got = mlf.download_artifacts(served.step.id, "review/notes.txt", str(tmp_path))  # type: ignore[attr-defined]
    assert Path(got).read_text() == "looked at it"
    assert served.step.get_metrics()["late"] == 1.5
    assert mlf.get_run(served.step.id).data.tags["reviewed"] == "yes"  # type: ignore[attr-defined]

    with pytest.raises(mlflow.exceptions.MlflowException, match="outside a pipeline step"):
        mlf.create_run("served-exp")  # type: ignore[attr-defined]
    with pytest.raises(mlflow.exceptions.MlflowException, match="no-such-run"):
        mlf.get_run("no-such-run")  # type: ignore[attr-defined]


def test_a_reader_token_reads_but_cannot_log(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    mlf = client(served, "reader", monkeypatch)
    assert mlf.get_run(served.step.id).data.params == {"depth": "3"}  # type: ignore[attr-defined]
    with pytest.raises(mlflow.exceptions.MlflowException, match="needs 'submitter'"):
        mlf.log_metric(served.step.id, "nope", 1.0)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("endpoint", "body", "says"),
    [
        ("runs/log-batch", {"metrics": "abc"}, "'metrics' must be a list of objects"),
        ("runs/log-batch", {"metrics": [{"key": "k", "value": 1, "step": 2**70}]}, "step"),
        ("runs/log-metric", {"key": "k" * 300, "value": 1}, "1 to 250 characters"),
        ("runs/log-metric", {"key": "k", "value": "high"}, "must be a number"),
        ("runs/set-tag", {"key": "k", "value": "v" * 9000}, "longer than 8000"),
        ("runs/log-parameter", {"value": "v"}, "needs 'key'"),
    ],
)
def test_malformed_mlflow_requests_are_refused_with_a_reason(
    served: Served, endpoint: str, body: dict[str, object], says: str
) -> None:
    import httpx

    answer = httpx.post(
        f"{served.url}/api/2.0/mlflow/{endpoint}",
        json={"run_id": served.step.id, **body},
        headers={"Authorization": f"Bearer {served.tokens['submitter']}"},
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert says in answer.json()["message"]


# MLflow warns about its own type-hint inference for scikit-learn's predict.
@pytest.mark.filterwarnings("ignore:.*Any type hint is inferred:UserWarning")
def test_a_model_logged_through_the_server_loads_back(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sklearn.linear_model import LogisticRegression

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", served.tokens["submitter"])
    monkeypatch.setenv("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    fitted = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    mlflow.set_tracking_uri(served.url)
    try:
        with mlflow.start_run(run_id=served.step.id):
            info = mlflow.sklearn.log_model(
                fitted,
                name="clf",
                pip_requirements=["scikit-learn"],
                serialization_format="cloudpickle",
            )
        loaded = mlflow.sklearn.load_model(f"models:/{info.model_id}")
        assert mlflow.MlflowClient().get_logged_model(info.model_id).source_run_id == served.step.id
    finally:
        mlflow.set_tracking_uri(None)
    assert list(loaded.predict([[0.2], [2.8]])) == [0, 1]
    assert info.model_id.startswith(f"m-{served.step.id}-")
