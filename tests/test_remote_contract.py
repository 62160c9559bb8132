"""One contract, two workspaces: every scenario runs against a local folder and against the
same kind of folder served by a real uvicorn on 127.0.0.1 (auth on, an admin token), so a
script behaves the same whether it opened `Workspace.get(name, path=...)` or
`Workspace.get(name, url=..., auth=...)`.
"""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from headrace import (
    Datastore,
    DatastorePathError,
    Experiment,
    Pipeline,
    PipelineData,
    PipelineDisabledError,
    PipelineEndpoint,
    PipelineParameter,
    PipelineRun,
    PublishedPipeline,
    PythonScriptStep,
    RunNotFoundError,
    TokenAuthentication,
    Workspace,
)
from headrace.errors import ConfigError, NotFoundError, UserError
from tests.conftest import stop_agents
from tests.servers import LiveServer, bearer, local_or_served, make_token

PRODUCER = textwrap.dedent(
    """
    import os, sys
    from headrace import Run
    out, factor = sys.argv[1], int(sys.argv[2])
    run = Run.get_context()
    run.log("factor", factor)
    os.makedirs(out, exist_ok=True)
    open(os.path.join(out, "mid.txt"), "w").write(str(21 * factor))
    print("producer wrote", 21 * factor)
    """
)
CONSUMER = textwrap.dedent(
    """
    import os, sys
    print("consumer read", open(os.path.join(sys.argv[1], "mid.txt")).read())
    """
)


@pytest.fixture(params=["local", "server"])
def any_ws(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Workspace]:
    """The same fresh workspace, opened from its folder or through a server."""
    yield from local_or_served(request.param, tmp_path, monkeypatch, "admin", 200_000)


def two_step_pipeline(ws: Workspace, tmp_path: Path) -> Pipeline:
    source = tmp_path / "src"
    source.mkdir(exist_ok=True)
    (source / "producer.py").write_text(PRODUCER)
    (source / "consumer.py").write_text(CONSUMER)
    mid = PipelineData("mid", datastore=ws.get_default_datastore())
    factor = PipelineParameter("factor", default_value=2)
    producer = PythonScriptStep(
        "producer.py",
        name="producer",
        arguments=[mid, factor],
        outputs=[mid],
        source_directory=str(source),
    )
    consumer = PythonScriptStep(
        "consumer.py",
        name="consumer",
        arguments=[mid],
        inputs=[mid],
        source_directory=str(source),
    )
    return Pipeline(ws, steps=[producer, consumer])


def test_register_local_checks_and_creates_the_folder_where_the_workspace_is(
    any_ws: Workspace, tmp_path: Path
) -> None:
    missing = tmp_path / "not-yet"
    with pytest.raises(UserError, match="does not exist; create it first"):
        Datastore.register_local(any_ws, "refused", missing, create_if_not_exists=False)
    made = Datastore.register_local(any_ws, "made", missing)
    assert missing.is_dir()
    assert str(missing) in made.root  # a remote root also names the server
    assert "create_if_not_exists" not in any_ws.backend.find_datastore("made").config


def test_datastore_upload_download_and_paths(any_ws: Workspace, tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "nested").mkdir(parents=True)
    (data / "a.txt").write_text("alpha")
    (data / "nested" / "b.txt").write_text("beta" * 100_000)  # several chunks
    store = any_ws.get_default_datastore()

    reference = store.upload(str(data), target_path="inputs", show_progress=False)
    assert reference.path_on_datastore == "inputs"
    assert sorted(store.list_files("inputs")) == ["inputs/a.txt", "inputs/nested/b.txt"]

    # An existing file is kept unless overwrite=True.
    (tmp_path / "a.txt").write_text("changed")
    store.upload_files([str(tmp_path / "a.txt")], target_path="inputs", show_progress=False)
    target = tmp_path / "down"
    assert store.download(str(target), prefix="inputs", show_progress=False) == 2
    assert (target / "inputs" / "a.txt").read_text() == "alpha"
    assert (target / "inputs" / "nested" / "b.txt").read_text() == "beta" * 100_000
    store.upload_files(
        [str(tmp_path / "a.txt")], target_path="inputs", overwrite=True, show_progress=False
    )
    store.download(str(target), prefix="inputs/a.txt", overwrite=True, show_progress=False)
    assert (target / "inputs" / "a.txt").read_text() == "changed"

    with pytest.raises(DatastorePathError, match=r"'\.\.'"):
        store.upload_files([str(tmp_path / "a.txt")], target_path="../outside")
    assert store.path("inputs/a.txt").path_on_datastore == "inputs/a.txt"


def test_pipeline_runs_streams_logs_records_metrics_and_reuses(
    any_ws: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pipeline = two_step_pipeline(any_ws, tmp_path)
    experiment = Experiment(any_ws, "contract")
    run = experiment.submit(pipeline, pipeline_parameters={"factor": 3})
    assert run.wait_for_completion(show_output=True) == "Finished"
    printed = capsys.readouterr().out
    assert "[producer] producer wrote 63" in printed
    assert "[consumer] consumer read 63" in printed
    location = any_ws.backend.location
    if any_ws.path is None:  # the hints name the server, as the CLI takes it
        assert f"Watch it with: headrace --server {location} run show {run.id}\n" in printed
    else:
        assert f"Watch it with: headrace run show {run.id} --workspace {location}\n" in printed

    [producer] = run.find_step_run("producer")
    assert producer.get_metrics() == {"factor": 3}
    output = producer.get_output_data("mid")
    folder = Path(output.download(tmp_path / "out"))
    assert (folder / "mid.txt").read_text() == "63"
    assert any(f.endswith("stdout.txt") for f in producer.get_file_names())

    again = experiment.submit(pipeline, pipeline_parameters={"factor": 3})
    assert again.wait_for_completion(show_output=False) == "Finished"
    steps = again.get_steps()
    assert len(steps) == 2
    assert all(s.reused_run_id for s in steps)


def test_cancel_ends_a_running_step_canceled(any_ws: Workspace, tmp_path: Path) -> None:
    source = tmp_path / "slow"
    source.mkdir()
    (source / "slow.py").write_text("import time\nprint('started', flush=True)\ntime.sleep(60)\n")
    step = PythonScriptStep("slow.py", name="slow", source_directory=str(source))
    run = Experiment(any_ws, "cancel").submit(Pipeline(any_ws, steps=[step]))
    deadline = time.monotonic() + 20
    while not [s for s in run.get_steps() if s.get_status() == "Running"]:
        assert time.monotonic() < deadline, "the step did not start"
        time.sleep(0.1)
    run.cancel()
    assert run.wait_for_completion(show_output=False, raise_on_error=False) == "Canceled"
    assert run.find_step_run("slow")[0].get_status() == "Canceled"


def test_publish_submit_disable_and_endpoints(
    any_ws: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    published = two_step_pipeline(any_ws, tmp_path).publish(name="contract", version="1")
    assert PublishedPipeline.get(any_ws, published.id).name == "contract"
    run = published.submit(any_ws, "published", pipeline_parameters={"factor": "4"})
    assert run.wait_for_completion(show_output=True) == "Finished"
    assert "[consumer] consumer read 84" in capsys.readouterr().out

    endpoint = PipelineEndpoint.publish(any_ws, "contract-ep", "an endpoint", published)
    assert PipelineEndpoint.get(any_ws, name="contract-ep").default_version == "0"
    by_endpoint = Experiment(any_ws, "published").submit(endpoint)
    assert by_endpoint.wait_for_completion(show_output=False) == "Finished"
    assert by_endpoint.find_step_run("producer")[0].get_metrics() == {"factor": 2}  # default

    published.disable()
    with pytest.raises(PipelineDisabledError, match="Disabled"):
        published.submit(any_ws, "published")
    assert [p.id for p in PublishedPipeline.list(any_ws)] == []


def test_unknown_run_id_raises_the_same_error(any_ws: Workspace) -> None:
    with pytest.raises(RunNotFoundError):
        PipelineRun.get(any_ws, "no-such-run")
    with pytest.raises(NotFoundError):
        any_ws.backend.get_step_run("no-such-step-run")


# -- server only -------------------------------------------------------------------------
REMOTE_LOGGER = textwrap.dedent(
    """
    import os
    os.environ.pop("HEADRACE_RUN_DIR")  # as on a machine without the workspace folder
    from headrace import Run
    from headrace.backend.remote import RemoteBackend
    run = Run.get_context()
    run.log("through_server", 7)
    run.tag("where", "server")
    print("metrics seen by the step:", run.get_metrics())
    # A confined step (docs/security.md) gets its token in a file of its own.
    token = os.environ.get("HEADRACE_RUN_TOKEN") or open(os.environ["HEADRACE_RUN_TOKEN_FILE"]).read()
    other = RemoteBackend(os.environ["HEADRACE_SERVER_URL"], {"Authorization": "Bearer " + token})
    try:
        other.get_pipeline_run(os.environ["HEADRACE_PIPELINE_RUN_ID"])
    except Exception as exc:
        print("refused:", type(exc).__name__, exc)
    """
)


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Workspace, str]]:
    root = tmp_path / "ws"
    Workspace.create("test-ws", path=root, show_output=False)
    token = make_token(root, "submitter", "contract")
    live = LiveServer(root)
    monkeypatch.setenv("HEADRACE_SERVER_URL", live.url)
    with live, Workspace.get("test-ws", url=live.url, auth=TokenAuthentication(token)) as ws:
        yield ws, live.url
    stop_agents(root)


def test_a_step_logs_through_the_server_with_a_token_only_for_its_run(
    served: tuple[Workspace, str], tmp_path: Path
) -> None:
    ws, _url = served
    source = tmp_path / "logger"
    source.mkdir()
    (source / "logger.py").write_text(REMOTE_LOGGER)
    step = PythonScriptStep("logger.py", name="logger", source_directory=str(source))
    run = Experiment(ws, "remote-logging").submit(Pipeline(ws, steps=[step]))
    assert run.wait_for_completion(show_output=False) == "Finished"
    [step_run] = run.find_step_run("logger")
    assert step_run.get_metrics() == {"through_server": 7}
    assert step_run.get_tags()["where"] == "server"
    log = ws.backend.read_run_file(step_run.id, "user_logs/stdout.txt").decode()
    assert "metrics seen by the step: {'through_server': 7}" in log
    assert "refused: ConfigError" in log and f"limited to run {step_run.id}" in log


def test_bad_calls_get_clear_errors(served: tuple[Workspace, str], tmp_path: Path) -> None:
    _ws, url = served
    reader = make_token(Path(tmp_path / "ws"), "reader", "reader")
    as_reader = Workspace.get("test-ws", url=url, auth=TokenAuthentication(reader))
    with as_reader, pytest.raises(ConfigError, match="needs 'submitter' or higher"):
        as_reader.get_default_datastore().upload_files(
            [str(Path(__file__))], target_path="x", show_progress=False
        )
    with Workspace.get(None, url=url, auth=TokenAuthentication(reader)) as served_ws:
        assert served_ws.name == "test-ws"  # no name: the workspace the server serves
    with pytest.raises(ConfigError, match="needs a token: pass auth="):
        Workspace.get("test-ws", url=url)
    with pytest.raises(
        ConfigError, match=r"Cannot reach the headrace server at http://127\.0\.0\.1:9"
    ):
        Workspace.get("test-ws", url="http://127.0.0.1:9", auth=TokenAuthentication(reader))
    with pytest.raises(Exception, match="serves workspace 'test-ws', not 'other'"):
        Workspace.get("other", url=url, auth=TokenAuthentication(reader))
    # Path traversal in a file route is a 400 in the one error shape, never a 500.
    response = httpx.get(
        f"{url}/api/v1/datastores/workspaceblobstore/files/..%2F..%2Fworkspace.json",
        headers=bearer(reader),
    )
    assert response.status_code == 400, response.text
    assert "'..'" in response.json()["Error"]["Message"]
    response = httpx.get(f"{url}/api/v1/runs/x/files/..%2F..%2Fheadrace.db", headers=bearer(reader))
    assert response.status_code == 400, response.text


def test_a_snapshot_has_the_same_id_on_a_folder_and_through_its_server(
    served: tuple[Workspace, str], tmp_path: Path
) -> None:
    ws, _url = served
    source = tmp_path / "src"
    (source / "pkg").mkdir(parents=True)
    (source / "train.py").write_text("print('train')\n")
    (source / "pkg" / "util.py").write_text("X = 1\n")
    (source / ".amlignore").write_text("data/\n")
    (source / "data").mkdir()
    (source / "data" / "big.bin").write_bytes(b"0" * 1000)
    through_server = ws.backend.create_snapshot(str(source))
    assert through_server == ws.backend.create_snapshot(str(source))  # cached hashes
    with Workspace.get("test-ws", path=tmp_path / "ws") as local:
        assert local.backend.create_snapshot(str(source)) == through_server


def test_a_datastore_the_server_cannot_open_is_refused(
    served: tuple[Workspace, str], tmp_path: Path
) -> None:
    _ws, url = served
    admin = make_token(Path(tmp_path / "ws"), "admin", "admin")
    with Workspace.get("test-ws", url=url, auth=TokenAuthentication(admin)) as ws:
        with pytest.raises(UserError, match="needs type 'local'"):
            ws.backend.register_datastore("cloud", "s3", {"bucket": "b"}, overwrite=False)
        assert ws.backend.find_datastore("cloud") is None


def test_from_config_and_write_config_name_the_server(
    served: tuple[Workspace, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, url = served
    project = tmp_path / "project"
    written = Path(ws.write_config(path=project))
    config = json.loads(written.read_text())
    assert config["server_url"] == url and "headrace_workspace_path" not in config
    token = make_token(Path(tmp_path / "ws"), "reader", "from-config")
    config["token"] = token
    written.write_text(json.dumps(config))
    monkeypatch.chdir(project)
    with Workspace.from_config() as again:
        assert again.name == "test-ws" and again.path is None
        assert sorted(again.datastores) == sorted(ws.datastores)


def test_datasets_register_read_and_feed_a_step(any_ws: Workspace, tmp_path: Path) -> None:
    from headrace import Dataset, DatasetNotFoundError

    data = tmp_path / "data"
    (data / "t" / "sub").mkdir(parents=True)
    (data / "t" / "a.csv").write_text("x,y\n1,2\n")
    (data / "t" / "sub" / "b.csv").write_text("x,y\n3,4\n")
    (data / "t" / "skip.txt").write_text("no")
    store = any_ws.get_default_datastore()
    store.upload(str(data), target_path="", overwrite=True, show_progress=False)
    table = Dataset.Tabular.from_delimited_files((store, "t/**/*.csv")).register(any_ws, "tab")
    assert (table.version, table.content["file_count"]) == (1, 2)
    assert sorted(Dataset.get_by_name(any_ws, "tab").to_pandas_dataframe()["x"]) == [1, 3]
    assert list(any_ws.datasets) == ["tab"]
    with pytest.raises(DatasetNotFoundError, match="its versions are 1"):
        Dataset.get_by_name(any_ws, "tab", version=2)
    bad = {"kind": "file", "sources": [{"datastore": store.name, "path": "t"}]}
    for wrong in ({"transforms": [["take", "x"]]}, {"kind": "tabular", "format": {"type": 1}}):
        with pytest.raises(UserError):
            any_ws.backend.register_dataset(
                {**bad, **wrong}, name="bad", description=None, tags={}, create_new_version=False
            )
    local = Dataset.File.from_files(str(data / "t" / "a.csv"))
    if any_ws.path is None:  # a server reads no path of its own machine for a caller
        with pytest.raises(UserError, match="not paths of the server's machine"):
            local.register(any_ws, "local")
    else:
        assert local.register(any_ws, "local").content["file_count"] == 1
    source = tmp_path / "src"
    source.mkdir()
    (source / "read.py").write_text(
        "from headrace import Run\n"
        "import os\n"
        "ds = Run.get_context().input_datasets\n"
        "print('rows', sorted(ds['tab'].to_pandas_dataframe()['y']))\n"
        "print('files', sorted(os.listdir(ds['files'])))\n"
    )
    files = Dataset.File.from_files((store, "t/*.csv"))
    step = PythonScriptStep(
        "read.py",
        name="read",
        inputs=[table.as_named_input("tab"), files.as_named_input("files").as_mount()],
        source_directory=str(source),
    )
    run = Experiment(any_ws, "datasets").submit(Pipeline(any_ws, [step]))
    assert run.wait_for_completion(show_output=False, raise_on_error=False) == "Finished", (
        run.find_step_run("read")[0].get_details()
    )
    log = run.find_step_run("read")[0].get_stdout_log()
    assert "rows [2, 4]" in log and "files ['a.csv']" in log
    consumed = Dataset.get_by_name(any_ws, "tab").lineage()["consumed_by"]
    assert [(c["step_name"], c["port"]) for c in consumed] == [("read", "tab")]


def test_sdk_v1_notebook_lines_on_either_workspace(any_ws: Workspace) -> None:
    """What notebooks print first works the same on a folder and through a server."""
    from headrace.compat.azureml.exceptions import UserErrorException

    line = "\t".join([any_ws.name, any_ws.resource_group, any_ws.location, any_ws.subscription_id])
    assert line == "test-ws\tlocal\tlocal\tlocal"
    with pytest.raises(UserErrorException) as caught:
        Datastore.get(any_ws, "no-such-store")
    assert "no-such-store" in caught.value.message
