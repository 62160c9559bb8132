"""The model registry (issue 14 item 3): `Model.register`, `run.register_model` in and after
a step, `Model(ws, name, version)`, `Model.list`, `download`, `Model.get_model_path` in a
scoring step, tags and properties, lineage (run, datasets) and the bad inputs: a path that
does not exist, a failed run, an unknown name or version.

The pipeline tests follow the SDK v1 notebooks' flows: a training step that registers what
it wrote to ./outputs, a step that registers a folder with `Model.register(workspace=
Run.get_context().experiment.workspace, ...)`, and a batch-scoring step whose `init()`
calls `Model.get_model_path(name)`.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from typer.testing import Result

from headrace import (
    ConflictError,
    Dataset,
    Datastore,
    Experiment,
    Model,
    ModelNotFoundError,
    Pipeline,
    PythonScriptStep,
    UserError,
    Workspace,
)
from headrace.cli.main import app as cli_app
from tests.conftest import stop_agents
from tests.servers import RUNNER, LiveServer, bearer, local_or_served, make_token


def _files(folder: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(textwrap.dedent(content))
    return folder


def _on_datastore(ws: Workspace, folder: Path, files: dict[str, str | bytes]) -> Datastore:
    """`files` written under `folder` and uploaded to the workspace's default datastore under
    the folder's name; its datastore, which a dataset can read locally and through a server."""
    _files(folder, files)
    datastore = ws.get_default_datastore()
    datastore.upload(str(folder), target_path=folder.name, show_progress=False)
    return datastore


def _run(ws: Workspace, steps: list[PythonScriptStep], experiment: str = "models") -> object:
    run = Experiment(ws, experiment).submit(Pipeline(ws, steps=steps))
    run.wait_for_completion(show_output=False, raise_on_error=False)
    return run


@pytest.fixture(params=["local", "server"])
def ws(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Workspace]:
    """A fresh workspace, opened from its folder or through a server (a submitter's token)."""
    yield from local_or_served(request.param, tmp_path, monkeypatch, "submitter", 100_000)


# -- registering from this machine ----------------------------------------------------------
def test_a_file_and_a_folder_register_as_versions_of_one_name(
    any_ws: Workspace, tmp_path: Path
) -> None:
    _files(tmp_path, {"models/net.meta": "graph", "models/weights/w.bin": b"\x00" * 64})
    _files(tmp_path, {"iris.pkl": pickle.dumps({"coef": [1, 2]})})

    first = Model.register(
        workspace=any_ws,
        model_path=str(tmp_path / "models") + "/",
        model_name="mnist-prs",
        tags={"pretrained": "mnist"},
        properties={"accuracy": "0.98"},
        description="tensorflow model",
        model_framework="TensorFlow",
        model_framework_version="2.0",
    )
    second = Model.register(any_ws, str(tmp_path / "iris.pkl"), "mnist-prs")

    assert (first.id, first.version, second.id) == ("mnist-prs:1", 1, "mnist-prs:2")
    assert first.tags == {"pretrained": "mnist"} and first.description == "tensorflow model"
    assert first.properties["accuracy"] == "0.98"
    assert (first.model_framework, first.model_framework_version) == ("TensorFlow", "2.0")
    assert first.run_id is None and first.run is None

    assert Model(any_ws, "mnist-prs").version == 2  # no version: the newest
    assert Model(any_ws, "mnist-prs", version=1).id == "mnist-prs:1"
    assert Model(any_ws, id="mnist-prs:1").tags == {"pretrained": "mnist"}
    assert Model(any_ws, "mnist-prs", tags=["pretrained"]).version == 1

    # Files are copied into the workspace: changing the source changes nothing registered.
    (tmp_path / "models" / "net.meta").write_text("changed")
    target = Path(first.download(str(tmp_path / "dl")))
    assert target == tmp_path / "dl" / "models"
    assert (target / "net.meta").read_text() == "graph"
    assert (target / "weights" / "w.bin").read_bytes() == b"\x00" * 64
    copy = Path(second.download(str(tmp_path / "dl")))
    assert pickle.loads(copy.read_bytes()) == {"coef": [1, 2]}


def test_the_same_content_has_the_same_hash_whatever_its_name(
    ws: Workspace, tmp_path: Path
) -> None:
    _files(tmp_path, {"a/m.bin": b"same", "b/m.bin": b"same", "c/m.bin": b"other"})
    one = Model.register(ws, str(tmp_path / "a" / "m.bin"), "one")
    two = Model.register(ws, str(tmp_path / "b" / "m.bin"), "two")
    three = Model.register(ws, str(tmp_path / "c" / "m.bin"), "one")
    assert one.content_hash == two.content_hash != three.content_hash
    assert len(one.content_hash) == 64


def test_list_filters_by_name_tags_properties_and_latest(ws: Workspace, tmp_path: Path) -> None:
    _files(tmp_path, {"m.pkl": b"m"})
    path = str(tmp_path / "m.pkl")
    Model.register(ws, path, "alpha", tags={"stage": "dev"})
    Model.register(ws, path, "alpha", tags={"stage": "prod", "team": "a"})
    Model.register(ws, path, "beta", tags={"stage": "prod"}, properties={"algo": "svm"})

    def ids(models: list[Model]) -> list[str]:
        return [m.id for m in models]

    assert ids(Model.list(ws)) == ["alpha:2", "alpha:1", "beta:1"]
    assert ids(Model.list(ws, name="alpha")) == ["alpha:2", "alpha:1"]
    assert ids(Model.list(ws, latest=True)) == ["alpha:2", "beta:1"]
    assert ids(Model.list(ws, tags=["team"])) == ["alpha:2"]
    assert ids(Model.list(ws, tags=[["stage", "prod"]])) == ["alpha:2", "beta:1"]
    assert ids(Model.list(ws, tags=[["stage", "dev"]], latest=True)) == ["alpha:1"]
    assert ids(Model.list(ws, properties=[["algo", "svm"]])) == ["beta:1"]
    assert ids(Model.list(ws, name="gamma")) == []
    assert set(ws.models) == {"alpha", "beta"} and ws.models["alpha"].version == 2


def test_tags_properties_update_delete_and_serialize(ws: Workspace, tmp_path: Path) -> None:
    _files(tmp_path, {"m.pkl": b"m"})
    model = Model.register(ws, str(tmp_path / "m.pkl"), "clf", tags={"a": "1"})
    model.add_tags({"b": "2"})
    model.remove_tags(["a"])
    model.add_properties({"auc": "0.9"})
    assert Model(ws, "clf").tags == {"b": "2"}
    assert Model(ws, "clf").properties == {"auc": "0.9"}
    model.add_properties({"auc": "0.9"})  # the same value again is fine
    with pytest.raises(UserError, match="cannot be changed, only added: auc"):
        model.add_properties({"auc": "0.5"})

    model.update(tags={"only": "this"}, description="now described")
    fresh = Model(ws, "clf")
    assert (fresh.tags, fresh.description) == ({"only": "this"}, "now described")

    data = model.serialize()
    assert data["id"] == "clf:1" and data["tags"] == {"only": "this"}
    assert Model.deserialize(ws, data) == model

    Model.register(ws, str(tmp_path / "m.pkl"), "clf")
    model.delete()
    assert [m.id for m in Model.list(ws)] == ["clf:2"]
    with pytest.raises(ModelNotFoundError, match="has no version 1; its versions are 2"):
        Model(ws, "clf", version=1)
    assert Model.register(ws, str(tmp_path / "m.pkl"), "clf").version == 3  # the newest + 1


def test_download_refuses_to_replace_unless_exist_ok(ws: Workspace, tmp_path: Path) -> None:
    _files(tmp_path, {"m.pkl": b"v1"})
    model = Model.register(ws, str(tmp_path / "m.pkl"), "clf")
    model.download(str(tmp_path / "out"))
    (tmp_path / "out" / "m.pkl").write_bytes(b"edited")
    with pytest.raises(UserError, match="exist_ok=True"):
        model.download(str(tmp_path / "out"))
    assert (tmp_path / "out" / "m.pkl").read_bytes() == b"edited"  # nothing half-written
    model.download(str(tmp_path / "out"), exist_ok=True)
    assert (tmp_path / "out" / "m.pkl").read_bytes() == b"v1"


def test_get_model_path_outside_a_step(ws: Workspace, tmp_path: Path) -> None:
    _files(tmp_path, {"m.pkl": b"m"})
    Model.register(ws, str(tmp_path / "m.pkl"), "clf")
    path = Model.get_model_path("clf", _workspace=ws)
    assert Path(path).read_bytes() == b"m" and Path(path).name == "m.pkl"
    # Without a workspace: SDK v1's local cache, ./azureml-models/<name>/<version>/.
    os.chdir(tmp_path)
    with pytest.raises(ModelNotFoundError, match=r"pass _workspace=ws"):
        Model.get_model_path("clf")
    _files(tmp_path, {"azureml-models/clf/3/m.pkl": b"cached"})
    assert Path(Model.get_model_path("clf")).read_bytes() == b"cached"


def test_dataset_lineage_names_the_registered_dataset_versions(
    ws: Workspace, tmp_path: Path
) -> None:
    _files(tmp_path, {"m.pkl": b"m"})
    store = _on_datastore(
        ws, tmp_path / "lineage", {"train.csv": "a,b\n1,2\n", "val.csv": "a,b\n3,4\n"}
    )
    train = Dataset.Tabular.from_delimited_files(path=[(store, "lineage/train.csv")])
    train = train.register(ws, "iris-train")
    validation = Dataset.File.from_files(path=[(store, "lineage/val.csv")]).register(ws, "iris-val")
    model = Model.register(
        ws,
        str(tmp_path / "m.pkl"),
        "clf",
        datasets=[("training", train), ("validation", validation)],
    )
    assert [(d.name, d.version, d.id) for d in model.datasets["training"]] == [
        ("iris-train", 1, train.id)
    ]
    assert Model(ws, "clf").datasets["validation"][0].to_path() == validation.to_path()
    assert Model(ws, "clf").serialize()["datasets"][0]["name"] == "iris-train"
    assert [m.id for m in Model.list(ws, dataset_id=train.id)] == ["clf:1"]
    assert Model.list(ws, dataset_id=validation.id + "0") == []

    with pytest.raises(UserError, match="datasets= takes datasets"):
        Model.register(ws, str(tmp_path / "m.pkl"), "clf", datasets=["not a dataset"])
    unregistered = Dataset.File.from_files(path=[(store, "lineage/val.csv")])
    with pytest.raises(UserError, match="is not registered"):
        Model.register(ws, str(tmp_path / "m.pkl"), "clf", datasets=[unregistered])
    assert [m.version for m in Model.list(ws)] == [1]


# -- bad input --------------------------------------------------------------------------------
def test_a_model_path_that_does_not_exist_is_refused(ws: Workspace, tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"model path '.*nothing\.pkl' does not exist"):
        Model.register(ws, str(tmp_path / "nothing.pkl"), "clf")
    assert Model.list(ws) == []
    assert not [p for p in (tmp_path / "ws" / "artifacts" / "models").rglob("*") if p.is_file()]


def test_an_unknown_model_name_or_version_lists_what_exists(ws: Workspace, tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="no model is registered yet"):
        Model(ws, "clf")
    _files(tmp_path, {"m.pkl": b"m"})
    Model.register(ws, str(tmp_path / "m.pkl"), "clf")
    Model.register(ws, str(tmp_path / "m.pkl"), "clf")
    Model.register(ws, str(tmp_path / "m.pkl"), "reg")
    with pytest.raises(ModelNotFoundError, match="the registered models are: clf, reg"):
        Model(ws, "clff")
    with pytest.raises(ModelNotFoundError, match="has no version 9; its versions are 1, 2"):
        Model(ws, "clf", version=9)
    with pytest.raises(ModelNotFoundError, match="its versions are 1, 2"):
        Model(ws, id="clf:9")
    with pytest.raises(UserError, match="is not valid"):
        Model.register(ws, str(tmp_path / "m.pkl"), "../escape")
    with pytest.raises(UserError, match=r"Model\.deploy deploys models to Azure web services"):
        Model.deploy(ws, "service", [Model(ws, "clf")])


# -- models from pipeline steps ----------------------------------------------------------------
TRAIN = """
    import os, pickle, sys
    from headrace.compat.azureml.core import Run

    run = Run.get_context()
    os.makedirs("outputs", exist_ok=True)
    with open("outputs/model.pkl", "wb") as fh:
        pickle.dump({"weights": [0.5, 1.5]}, fh)
    model = run.register_model(
        model_name="iris-clf", model_path="outputs/model.pkl", tags={"area": "iris"},
    )
    print("REGISTERED", model.id, model.run_id, flush=True)
    if "--fail" in sys.argv:
        sys.exit(3)
"""

SCORE = """
    import pickle
    from headrace.compat.azureml.core.model import Model

    def init():
        global weights
        with open(Model.get_model_path("iris-clf"), "rb") as fh:
            weights = pickle.load(fh)["weights"]

    init()
    print("SCORED", sum(weights), flush=True)
"""


def test_a_step_registers_its_output_and_a_later_step_scores_with_it(
    any_ws: Workspace, tmp_path: Path
) -> None:
    src = _files(tmp_path / "src", {"train.py": TRAIN, "score.py": SCORE})
    train = PythonScriptStep("train.py", source_directory=str(src), allow_reuse=False)
    score = PythonScriptStep("score.py", source_directory=str(src), allow_reuse=False)
    score.run_after(train)
    run = _run(any_ws, [train, score])
    assert run.get_status() == "Finished", run.get_details()
    trained = run.find_step_run("train.py")[0]
    assert f"REGISTERED iris-clf:1 {trained.id}" in trained.get_stdout_log()
    assert "SCORED 2.0" in run.find_step_run("score.py")[0].get_stdout_log()

    model = Model(any_ws, "iris-clf")
    assert model.run_id == trained.id and model.experiment_name == "models"
    assert model.run.id == trained.id and model.tags == {"area": "iris"}
    assert "outputs/model.pkl" in trained.get_file_names()
    assert [m.id for m in Model.list(any_ws, run_id=trained.id)] == ["iris-clf:1"]
    listed = RUNNER.invoke(
        cli_app, ["model", "list", "--run", trained.id, "--json", "-w", str(any_ws.path)]
    )
    assert [m["run_id"] for m in json.loads(listed.stdout)["models"]] == [trained.id]


def test_a_finished_step_run_registers_a_model_from_its_files(
    ws: Workspace, tmp_path: Path
) -> None:
    src = _files(
        tmp_path / "src",
        {
            "fit.py": """
                import os
                os.makedirs("outputs/net", exist_ok=True)
                open("outputs/net/w.bin", "wb").write(b"weights")
                open("outputs/net/cfg.json", "w").write("{}")
            """
        },
    )
    run = _run(ws, [PythonScriptStep("fit.py", source_directory=str(src))])
    step = run.find_step_run("fit.py")[0]
    model = step.register_model("net", model_path="outputs/net", description="from a run")
    assert model.run_id == step.id and model.description == "from a run"
    folder = Path(Model.get_model_path("net", _workspace=ws))
    assert sorted(p.name for p in folder.iterdir()) == ["cfg.json", "w.bin"]

    with pytest.raises(UserError, match=r"has no file or folder 'outputs/nope.pkl'; its files"):
        step.register_model("net", model_path="outputs/nope.pkl")
    assert [m.version for m in Model.list(ws, name="net")] == [1]


def test_registering_a_model_from_a_failed_run_is_refused(ws: Workspace, tmp_path: Path) -> None:
    src = _files(tmp_path / "src", {"train.py": TRAIN})
    step = PythonScriptStep("train.py", source_directory=str(src), arguments=["--fail"])
    run = _run(ws, [step])
    assert run.get_status() == "Failed"
    failed = run.find_step_run("train.py")[0]
    with pytest.raises(ConflictError, match=r"ended Failed; a model is registered only from"):
        failed.register_model("again", model_path="outputs/model.pkl")
    assert [m.name for m in Model.list(ws)] == ["iris-clf"]  # what it registered while running


def test_a_step_registers_a_folder_through_its_workspace(ws: Workspace, tmp_path: Path) -> None:
    # The hyperparameter-tuning notebook's register_model.py: Model.register inside a step.
    src = _files(
        tmp_path / "src",
        {
            "register.py": """
                import os, shutil
                from headrace.compat.azureml.core import Model, Run

                os.makedirs("./model/", exist_ok=True)
                open("./model/saved.h5", "w").write("weights")
                ws = Run.get_context().experiment.workspace
                model = Model.register(workspace=ws, model_name="tf-dnn", model_path="./model/")
                print("VERSION", model.version, flush=True)
            """
        },
    )
    run = _run(ws, [PythonScriptStep("register.py", source_directory=str(src))])
    assert run.get_status() == "Finished", run.find_step_run("register.py")[0].get_stderr_log()
    step = run.find_step_run("register.py")[0]
    assert "Registering model tf-dnn\nVERSION 1" in step.get_stdout_log()
    model = Model(ws, "tf-dnn")
    assert model.run_id == step.id
    assert (Path(Model.get_model_path("tf-dnn", _workspace=ws)) / "saved.h5").read_text() == (
        "weights"
    )


def test_a_scoring_step_asking_for_an_unknown_model_fails_naming_what_exists(
    ws: Workspace, tmp_path: Path
) -> None:
    _files(tmp_path, {"m.pkl": b"m"})
    Model.register(ws, str(tmp_path / "m.pkl"), "iris-clf-v0")
    src = _files(tmp_path / "src", {"score.py": SCORE})
    run = _run(ws, [PythonScriptStep("score.py", source_directory=str(src))])
    assert run.get_status() == "Failed"
    log = run.find_step_run("score.py")[0].get_stderr_log()
    assert "ModelNotFoundError" in log
    assert "No model named 'iris-clf' is registered" in log and "iris-clf-v0" in log


def test_a_model_a_step_registers_records_the_registered_datasets_it_read(
    ws: Workspace, tmp_path: Path
) -> None:
    store = _on_datastore(
        ws, tmp_path / "read", {"iris.csv": "a,b\n1,2\n3,4\n", "images/1.png": b"png"}
    )
    iris = Dataset.Tabular.from_delimited_files(path=[(store, "read/iris.csv")])
    iris = iris.register(ws, "iris")
    images = Dataset.File.from_files(path=[(store, "read/images")]).register(ws, "images")
    src = _files(
        tmp_path / "src",
        {
            "fit.py": """
                import os
                from headrace.compat.azureml.core import Model, Run
                run = Run.get_context()
                rows = len(run.input_datasets["iris"].to_pandas_dataframe())
                os.makedirs("outputs", exist_ok=True)
                open("outputs/model.txt", "w").write(str(rows))
                run.register_model("fitted", model_path="outputs/model.txt")
                Model.register(run.experiment.workspace, "outputs/model.txt", "also-fitted")
            """
        },
    )
    step = PythonScriptStep(
        "fit.py",
        source_directory=str(src),
        inputs=[iris.as_named_input("iris"), images.as_named_input("images").as_mount()],
    )
    run = _run(ws, [step])
    assert run.get_status() == "Finished", run.find_step_run("fit.py")[0].get_stderr_log()
    listed = RUNNER.invoke(
        cli_app, ["model", "list", "--dataset", "iris:1", "--json", "-w", str(tmp_path / "ws")]
    )
    if ws.path is not None:  # the CLI opens the workspace folder
        assert [m["id"] for m in json.loads(listed.stdout)["models"]] == [
            "also-fitted:1",
            "fitted:1",
        ]
    for name in ("fitted", "also-fitted"):
        model = Model(ws, name)
        assert Path(Model.get_model_path(name, _workspace=ws)).read_text() == "2"
        trained_on = sorted((d.name, d.version) for d in model.datasets["training"])
        assert trained_on == [("images", 1), ("iris", 1)], name


# -- the command line ------------------------------------------------------------------------
def _cli(*args: object, code: int = 0) -> Result:
    result = RUNNER.invoke(cli_app, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result


def test_the_cli_lists_shows_and_downloads_models(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    ws = Workspace.create("test-ws", path=root, show_output=False)
    _files(tmp_path, {"net/w.bin": b"w" * 2000, "net/cfg.json": "{}", "clf.pkl": b"c"})
    Model.register(ws, str(tmp_path / "net"), "net", tags={"stage": "dev"})
    Model.register(ws, str(tmp_path / "clf.pkl"), "net", tags={"stage": "prod"})
    Model.register(ws, str(tmp_path / "clf.pkl"), "clf", properties={"auc": "0.9"})

    listed = json.loads(_cli("model", "list", "-w", root, "--json").stdout)["models"]
    assert [m["id"] for m in listed] == ["clf:1", "net:2", "net:1"]
    latest = json.loads(
        _cli("models", "list", "--latest", "--tag", "stage=prod", "-w", root, "--json").stdout
    )
    assert [m["id"] for m in latest["models"]] == ["net:2"]
    table = _cli("model", "list", "-w", root).stdout
    assert "net" in table and "stage=dev" in table and "2.0 KB" in table

    shown = json.loads(_cli("model", "show", "net:1", "-w", root, "--json").stdout)
    assert shown["versions"] == [1, 2] and shown["is_folder"] and shown["size"] == 2002
    assert sorted(f["path"] for f in shown["files"]) == ["net/cfg.json", "net/w.bin"]
    assert json.loads(_cli("model", "show", "net", "-w", root, "--json").stdout)["version"] == 2
    assert "net/w.bin" in _cli("model", "show", "net", "--version", "1", "-w", root).stdout

    done = json.loads(
        _cli("model", "download", "net:1", tmp_path / "dl", "-w", root, "--json").stdout
    )
    assert done["path"] == str(tmp_path / "dl" / "net")
    assert (tmp_path / "dl" / "net" / "w.bin").read_bytes() == b"w" * 2000
    again = _cli("model", "download", "net:1", tmp_path / "dl", "-w", root, code=1)
    assert "--exist-ok" in again.stderr and "Traceback" not in again.output
    _cli("model", "download", "net:1", tmp_path / "dl", "--exist-ok", "-w", root)

    missing = _cli("model", "show", "nett", "-w", root, code=1)
    assert missing.stderr.strip() == (
        "error: No model named 'nett' is registered in this workspace; the registered models "
        "are: clf, net. Register one with Model.register(ws, model_path, model_name)."
    )
    assert "its versions are 1, 2" in _cli("model", "show", "net:7", "-w", root, code=1).stderr


# -- the batch-scoring notebooks, with their azureml imports unchanged -------------------------
SUBMIT_V1 = """
    import json, os, pickle
    from azureml.core import Experiment, Workspace
    from azureml.core.model import Model
    from azureml.pipeline.core import Pipeline
    from azureml.pipeline.steps import PythonScriptStep

    ws = Workspace.create("w", path={ws!r})
    # tabular-dataset-inference-iris: a model file fetched from a datastore, then registered
    model_datastore = ws.get_default_datastore()
    os.makedirs("upload/iris_model.pkl", exist_ok=True)
    pickle.dump({{"weights": [0.5, 0.25]}}, open("upload/iris_model.pkl/iris_model.pkl", "wb"))
    model_datastore.upload("upload", show_progress=False)
    model_datastore.download(".", prefix="iris_model.pkl", show_progress=False)
    model = Model.register(model_path="iris_model.pkl/iris_model.pkl", model_name="iris-prs",
                           tags={{"pretrained": "iris"}}, workspace=ws)
    # file-dataset-image-inference-mnist: a folder of model files
    os.makedirs("models", exist_ok=True)
    open("models/mnist-tf.model.meta", "w").write("graph")
    Model.register(model_path="models/", model_name="mnist-prs",
                   tags={{"pretrained": "mnist"}}, description="Mnist model", workspace=ws)

    step = PythonScriptStep("iris_score.py", source_directory={src!r}, name="score",
                            arguments=["--model_name", "iris-prs"])
    run = Experiment(ws, "batch").submit(Pipeline(ws, [step]))
    run.wait_for_completion(raise_on_error=False)
    score = run.find_step_run("score")[0]
    print(json.dumps([run.get_status(), score.get_stdout_log(), score.get_stderr_log(),
                      model.id, sorted(ws.models)]))
"""

SCORE_V1 = """
    import argparse, os, pickle
    from azureml.core.model import Model
    from azureml.core import Model as SameModel

    def init():
        global iris_model, meta
        parser = argparse.ArgumentParser(description="Iris model serving")
        parser.add_argument("--model_name", dest="model_name", required=True)
        args, unknown_args = parser.parse_known_args()
        model_path = Model.get_model_path(args.model_name)
        with open(model_path, "rb") as model_file:
            iris_model = pickle.load(model_file)
        meta = open(os.path.join(SameModel.get_model_path("mnist-prs"), "mnist-tf.model.meta")).read()

    def run(rows):
        w = iris_model["weights"]
        return [w[0] * a + w[1] * b for a, b in rows]

    init()
    print("PREDICTIONS", run([(2, 4), (4, 8)]), meta, flush=True)
"""


def test_the_batch_scoring_notebooks_flow_with_unmodified_imports(tmp_path: Path) -> None:
    src = _files(tmp_path / "src", {"iris_score.py": SCORE_V1})
    (tmp_path / "submit.py").write_text(
        textwrap.dedent(SUBMIT_V1).format(ws=str(tmp_path / "ws"), src=str(src))
    )
    done = subprocess.run(
        [sys.executable, "-m", "headrace.v1", "submit.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    try:
        assert done.returncode == 0, done.stderr
        status, stdout, stderr, model_id, names = json.loads(done.stdout.splitlines()[-1])
        assert status == "Finished", stderr
        assert "PREDICTIONS [2.0, 4.0] graph" in stdout
        assert model_id == "iris-prs:1" and names == ["iris-prs", "mnist-prs"]
    finally:
        stop_agents(tmp_path / "ws")


def test_a_link_among_a_runs_files_to_outside_them_is_not_registered(
    ws: Workspace, tmp_path: Path
) -> None:
    # A step may leave links among its run's files; the server (which may read what the
    # step may not) must not copy what they point at into a model the step can then read.
    secret = tmp_path / "secret.txt"
    secret.write_text("not the step's")
    src = _files(
        tmp_path / "src",
        {
            "fit.py": f"""
                import os
                os.makedirs("outputs/net", exist_ok=True)
                open("outputs/net/w.bin", "wb").write(b"weights")
                os.symlink("w.bin", "outputs/net/inside.bin")
                os.symlink({str(secret)!r}, "outputs/net/outside.txt")
                os.symlink({str(secret)!r}, "outputs/alone.txt")
            """
        },
    )
    run = _run(ws, [PythonScriptStep("fit.py", source_directory=str(src))])
    step = run.find_step_run("fit.py")[0]
    assert run.get_status() == "Finished", run.get_details()["error"]
    with pytest.raises(UserError, match=r"'outside\.txt' is a link that leads outside"):
        step.register_model("net", model_path="outputs/net")
    with pytest.raises(UserError, match="leads outside"):
        step.register_model("alone", model_path="outputs/alone.txt")
    assert Model.list(ws) == []


def test_concurrent_registrations_of_one_name_get_distinct_versions_with_their_files(
    any_ws: Workspace, tmp_path: Path
) -> None:
    sources = []
    for n in range(8):
        _files(tmp_path, {f"m{n}/model.bin": f"content {n}".encode() * 1000})
        sources.append(tmp_path / f"m{n}" / "model.bin")
    with ThreadPoolExecutor(8) as pool:
        models = list(pool.map(lambda p: Model.register(any_ws, str(p), "shared"), sources))
    assert sorted(m.version for m in models) == list(range(1, 9))
    for source, model in zip(sources, models, strict=True):
        path = Model.get_model_path("shared", version=model.version, _workspace=any_ws)
        assert Path(path).read_bytes() == source.read_bytes()
    newest = models[[m.version for m in models].index(8)]
    newest.delete()
    assert Model(any_ws, "shared").version == 7
    registry = tmp_path / "ws" / "artifacts" / "models"
    assert sorted(p.name for p in (registry / "shared").iterdir()) == [str(v) for v in range(1, 8)]
    assert not list((registry / ".staging").iterdir())


def test_bad_rest_requests_are_4xx_naming_the_problem(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    ws = Workspace.create("test-ws", path=root, show_output=False)
    _files(tmp_path, {"m.pkl": b"m"})
    Model.register(ws, str(tmp_path / "m.pkl"), "clf")
    token = make_token(root, "submitter", "rest")
    with LiveServer(root) as live, httpx.Client(base_url=live.url, headers=bearer(token)) as http:

        def error(response: httpx.Response, status: int) -> str:
            assert response.status_code == status, response.text
            return str(response.json()["Error"]["Message"])

        base = {"name": "up", "root": "m.pkl", "is_folder": False}
        missing = http.post("/api/v1/models", json={**base, "files": {"": "a" * 64}})
        assert "contents were not uploaded: m.pkl" in error(missing, 400)
        bad_name = http.post("/api/v1/models", json={**base, "name": "../x", "files": {}})
        assert "is not valid" in error(bad_name, 400)
        escape = {**base, "is_folder": True, "files": {"../../portal.key": "a" * 64}}
        assert "contains '..'" in error(http.post("/api/v1/models", json=escape), 400)
        unknown = http.get("/api/v1/models/clff")
        assert "the registered models are: clf" in error(unknown, 404)
        assert "its versions are 1" in error(http.get("/api/v1/models/clf/versions/4"), 404)
        assert error(http.get("/api/v1/models/clf/versions/one"), 404)
        outside = http.get("/api/v1/models/clf/versions/1/files/../../../headrace.db")
        assert outside.status_code in (400, 404)
        no_run = http.post("/api/v1/runs/nope/models", json={"name": "x", "path": "outputs"})
        assert error(no_run, 404)
        assert http.get("/api/v1/models/clf/versions/1/files/m.pkl").content == b"m"
    assert [m.id for m in Model.list(ws)] == ["clf:1"]


def test_a_reused_step_run_registers_the_files_of_the_run_it_reused(
    ws: Workspace, tmp_path: Path
) -> None:
    src = _files(
        tmp_path / "src",
        {
            "fit.py": 'import os\nos.makedirs("outputs", exist_ok=True)\nopen("outputs/m.txt", "w").write("m")\n'
        },
    )
    first = _run(ws, [PythonScriptStep("fit.py", source_directory=str(src))])
    again = _run(ws, [PythonScriptStep("fit.py", source_directory=str(src))])
    original, reused = first.find_step_run("fit.py")[0], again.find_step_run("fit.py")[0]
    assert reused.reused_run_id == original.id
    model = reused.register_model("m", model_path="outputs/m.txt")
    assert model.run_id == original.id  # the run that made the file
    assert Path(Model.get_model_path("m", _workspace=ws)).read_text() == "m"
