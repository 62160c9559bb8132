"""Published pipelines and pipeline endpoints: frozen code, text parameters, enable/disable,
versions, and the store queries behind them on SQLite and PostgreSQL.

One quick step (`say.py`) prints its version and parameters; the tests read its stdout.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from headrace import (
    ConflictError,
    DataPath,
    DataPathComputeBinding,
    Experiment,
    NotFoundError,
    ParameterError,
    Pipeline,
    PipelineDisabledError,
    PipelineEndpoint,
    PipelineParameter,
    PipelineRun,
    PublishedPipeline,
    PythonScriptStep,
    Workspace,
)
from headrace.store.database import Database, sqlite_url
from headrace.store.metadata import SqlMetadataStore

SCRIPT = textwrap.dedent(
    """
    import sys
    print("{version} n=" + sys.argv[1] + " flag=" + sys.argv[2] + " rate=" + sys.argv[3])
    """
)


def write_script(folder: Path, version: str) -> None:
    (folder / "say.py").write_text(SCRIPT.format(version=version))


def make_pipeline(ws: Workspace, folder: Path, *, allow_reuse: bool = False) -> Pipeline:
    folder.mkdir(exist_ok=True)
    if not (folder / "say.py").exists():
        write_script(folder, "v1")
    step = PythonScriptStep(
        "say.py",
        name="say",
        arguments=[
            PipelineParameter("n", default_value=1),
            PipelineParameter("flag", default_value=False),
            PipelineParameter("rate", default_value=0.5),
        ],
        source_directory=str(folder),
        allow_reuse=allow_reuse,
    )
    return Pipeline(ws, steps=[step])


def said(run: PipelineRun) -> str:
    run.wait_for_completion(show_output=False)
    (step,) = run.get_steps()
    return step.get_stdout_log().strip()


# -- published pipelines ---------------------------------------------------------------------
def test_published_pipeline_is_frozen_and_takes_parameters_as_text(
    ws: Workspace, tmp_path: Path
) -> None:
    folder = tmp_path / "src"
    published = make_pipeline(ws, folder).publish(
        name="say-it", description="says things", version="1.0"
    )
    write_script(folder, "v2")  # edited after publishing: the published pipeline keeps v1

    from_text = published.submit(
        ws, "pub", pipeline_parameters={"n": "45", "flag": "true", "rate": "2.5"}
    )
    from_values = Experiment(ws, "pub").submit(published, pipeline_parameters={"n": 45})

    assert said(from_text) == "v1 n=45 flag=True rate=2.5"
    assert said(from_values) == "v1 n=45 flag=False rate=0.5"
    assert from_text.get_properties()["azureml.pipelineid"] == published.id
    again = PublishedPipeline.get(ws, published.id)
    assert (again.name, again.description, again.version) == ("say-it", "says things", "1.0")
    assert again.status == "Active"
    assert again.get_step_names() == ["say"]
    assert again.total_run_steps == 1
    assert again.continue_on_step_failure is False


def test_wrong_parameters_name_the_parameter_and_list_the_valid_ones(
    ws: Workspace, tmp_path: Path
) -> None:
    published = make_pipeline(ws, tmp_path / "src").publish(name="p")
    with pytest.raises(ParameterError, match=r"'nn'.*did you mean 'n'.*flag, n, rate"):
        published.submit(ws, "pub", pipeline_parameters={"nn": 3})
    with pytest.raises(ParameterError, match=r"'n' expects an int, got 'many'"):
        published.submit(ws, "pub", pipeline_parameters={"n": "many"})
    with pytest.raises(ParameterError, match=r"'flag' expects a bool"):
        published.submit(ws, "pub", pipeline_parameters={"flag": "maybe"})
    with pytest.raises(ParameterError, match=r"'n' names no DataPath parameter"):
        ws.backend.submit_published_pipeline(
            published.id,
            experiment_name="pub",
            data_path_assignments={"n": {"DataStoreName": "d", "RelativePath": "x"}},
        )
    assert ws.backend.list_pipeline_runs() == []


def test_data_path_assignments_choose_a_datapath_parameter(ws: Workspace, tmp_path: Path) -> None:
    ds = ws.get_default_datastore()
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        (tmp_path / name / f"{name}.csv").write_text(name)
        ds.upload(str(tmp_path / name), target_path=f"data/{name}", show_progress=False)
    src = tmp_path / "src"
    src.mkdir()
    (src / "ls.py").write_text("import os, sys\nprint(sorted(os.listdir(sys.argv[1])))\n")
    param = PipelineParameter("input_data", default_value=DataPath(ds, "data/one"))
    pair = (param, DataPathComputeBinding(mode="mount"))
    step = PythonScriptStep(
        "ls.py", name="ls", arguments=[pair], inputs=[pair], source_directory=str(src)
    )
    published = Pipeline(ws, [step]).publish(name="datapath")
    submission = ws.backend.submit_published_pipeline(
        published.id,
        experiment_name="dp",
        run_source="API",
        data_path_assignments={
            "input_data": {"DataStoreName": ds.name, "RelativePath": "data/two"}
        },
    )
    assert submission.run.run_source == "API"
    run = PipelineRun.get(ws, submission.run.id)
    assert said(run) == "['two.csv']"
    assert said(published.submit(ws, "dp")) == "['one.csv']"


def test_publish_from_a_run_keeps_its_graph(ws: Workspace, tmp_path: Path) -> None:
    pipeline = make_pipeline(ws, tmp_path / "src", allow_reuse=True)
    run = Experiment(ws, "pub").submit(pipeline, continue_on_step_failure=True)
    published = run.publish_pipeline(name="from-run", description="d", version="2")
    assert published.source_run_id == run.id
    assert published.graph_id == run._record().graph_id
    assert published.continue_on_step_failure is True
    assert said(run) == "v1 n=1 flag=False rate=0.5"


def test_disable_refuses_submit_until_enabled(ws: Workspace, tmp_path: Path) -> None:
    published = make_pipeline(ws, tmp_path / "src").publish(name="toggle")
    other = make_pipeline(ws, tmp_path / "src").publish(name="other")
    published.disable()
    assert published.status == "Disabled"
    assert [p.id for p in PublishedPipeline.list(ws)] == [other.id]
    assert {p.id for p in PublishedPipeline.list(ws, active_only=False)} == {
        published.id,
        other.id,
    }
    with pytest.raises(PipelineDisabledError, match=r"is Disabled.*\.enable\(\)") as caught:
        published.submit(ws, "pub")
    assert isinstance(caught.value, ConflictError)
    assert ws.backend.list_pipeline_runs() == []
    PublishedPipeline.get(ws, published.id).enable()
    assert PublishedPipeline.get(ws, published.id).status == "Active"
    assert said(published.submit(ws, "pub")) == "v1 n=1 flag=False rate=0.5"


def test_unknown_published_pipeline_says_how_to_list_them(ws: Workspace) -> None:
    with pytest.raises(NotFoundError, match=r"'nope'.*PublishedPipeline\.list\(ws\)"):
        PublishedPipeline.get(ws, "nope")


def test_endpoint_urls_mirror_sdk_v1_rest_routes(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEADRACE_SERVER_URL", "http://hr.example:9000/")
    published = make_pipeline(ws, tmp_path / "src").publish(name="url")
    prefix = (
        "http://hr.example:9000/pipelines/v1.0/subscriptions/local/resourceGroups/local/"
        "providers/Microsoft.MachineLearningServices/workspaces/test-ws/PipelineRuns/"
    )
    assert published.endpoint == f"{prefix}PipelineSubmit/{published.id}"
    endpoint = PipelineEndpoint.publish(ws, "url-ep", None, published)
    assert endpoint.endpoint == f"{prefix}PipelineEndpointSubmit/Id/{endpoint.id}"


# -- pipeline endpoints ----------------------------------------------------------------------
def test_pipeline_endpoint_versions_and_submit(ws: Workspace, tmp_path: Path) -> None:
    folder = tmp_path / "src"
    endpoint = PipelineEndpoint.publish(ws, "ep", "the endpoint", make_pipeline(ws, folder))
    first = endpoint.get_pipeline()
    assert re.fullmatch(r"ep-\d\d-\d\d-\d{4}-\d\d-\d\d-Pipeline", first.name)
    with pytest.raises(ValueError, match="'ep' already exists"):
        PipelineEndpoint.publish(ws, "ep", None, first)

    write_script(folder, "v2")
    second = make_pipeline(ws, folder).publish(name="second")
    endpoint.add(second)
    assert endpoint.get_default_version() == "0"
    endpoint.add(second)  # already there: keeps its version
    assert [(v.version, v.pipeline_id) for v in endpoint.list_versions()] == [
        ("0", first.id),
        ("1", second.id),
    ]
    third = make_pipeline(ws, folder).publish(name="third")
    endpoint.add_default(third)
    assert endpoint.default_version == "2"
    endpoint.set_default_version("1")
    with pytest.raises(ValueError, match=r"no version '7'; its versions: 0, 1, 2"):
        endpoint.set_default_version("7")
    endpoint.set_default(first)
    assert endpoint.default_version == "0"
    endpoint.set_default(second)

    by_name = PipelineEndpoint.get(ws, name="ep")
    assert by_name == PipelineEndpoint.get(ws, id=endpoint.id)
    assert (by_name.default_version, by_name.description) == ("1", "the endpoint")
    assert by_name.get_pipeline("0") == first
    assert {p.id for p in by_name.list_pipelines()} == {first.id, second.id, third.id}

    old = endpoint.submit("ep-exp", pipeline_parameters={"n": "7"}, pipeline_version="0")
    default = Experiment(ws, "ep-exp").submit(endpoint)
    assert said(old) == "v1 n=7 flag=False rate=0.5"
    assert said(default) == "v2 n=1 flag=False rate=0.5"
    assert default.get_properties()["azureml.pipelineid"] == second.id


def test_disabled_archived_and_renamed_endpoints(ws: Workspace, tmp_path: Path) -> None:
    published = make_pipeline(ws, tmp_path / "src").publish(name="p")
    endpoint = PipelineEndpoint.publish(ws, "ep", None, published)
    endpoint.disable()
    with pytest.raises(ValueError, match="Status must be Active"):
        endpoint.submit("exp")
    with pytest.raises(PipelineDisabledError, match="Status must be Active"):
        Experiment(ws, "exp").submit(PipelineEndpoint.get(ws, name="ep"), pipeline_version="0")
    assert PipelineEndpoint.list(ws) == []
    endpoint.enable()
    assert [e.name for e in PipelineEndpoint.list(ws)] == ["ep"]

    endpoint.archive()
    assert endpoint.status == "Disabled"
    assert endpoint.name.startswith("ep_")
    assert PipelineEndpoint.list(ws) == []
    reused = PipelineEndpoint.publish(ws, "ep", None, published)  # the name is free again
    with pytest.raises(ValueError, match="'ep' already exists"):
        endpoint.reactivate("ep")
    reused.set_name("ep-new")
    endpoint.reactivate("ep")
    assert (endpoint.name, endpoint.status) == ("ep", "Active")
    names = [e.name for e in PipelineEndpoint.list(ws, active_only=False)]
    assert names == ["ep", "ep-new"]
    with pytest.raises(NotFoundError, match=r"PipelineEndpoint\.list\(ws\)"):
        PipelineEndpoint.get(ws, name="ghost")


def test_compat_imports_are_the_headrace_classes() -> None:
    from headrace.compat.azureml.pipeline.core import PipelineEndpoint as CompatEndpoint
    from headrace.compat.azureml.pipeline.core import PublishedPipeline as CompatPublished
    from headrace.compat.azureml.pipeline.core.graph import PublishedPipeline as GraphPublished
    from headrace.compat.azureml.pipeline.core.pipeline_endpoint import PipelineEndpoint as Ep

    assert CompatEndpoint is Ep is PipelineEndpoint
    assert CompatPublished is GraphPublished is PublishedPipeline


# -- the store, on SQLite and PostgreSQL -----------------------------------------------------
GRAPH = {"nodes": [], "schema_version": 1}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> SqlMetadataStore:
    url = (
        request.getfixturevalue("postgres_url")
        if request.param == "postgres"
        else sqlite_url(tmp_path / "meta.db")
    )
    db = Database(url)
    db.ensure_schema()
    yield SqlMetadataStore(db)
    db.dispose()


def test_store_publishes_and_versions_endpoints(store: SqlMetadataStore) -> None:
    def publish(name: str) -> str:
        return store.create_published_pipeline(
            name=name,
            description=None,
            version=None,
            graph=GRAPH,
            continue_on_step_failure=False,
        ).id

    a, b, c = publish("a"), publish("b"), publish("c")
    assert store.get_published_pipeline(a).graph_id == store.graph_id(GRAPH)
    assert store.get_graph(store.graph_id(GRAPH)) == GRAPH
    store.set_published_pipeline_status(c, "Disabled")
    assert {p.id for p in store.list_published_pipelines()} == {a, b}
    assert len(store.list_published_pipelines(active_only=False)) == 3
    with pytest.raises(ValueError, match="'Paused' is not valid"):
        store.set_published_pipeline_status(a, "Paused")
    assert store.find_published_pipeline("missing") is None

    ep = store.create_pipeline_endpoint(name="ep", description="x", pipeline_id=a)
    assert (ep.default_version, ep.versions) == ("0", {"0": a})
    with pytest.raises(ConflictError, match="already exists"):
        store.create_pipeline_endpoint(name="ep", description=None, pipeline_id=b)
    ep = store.add_pipeline_endpoint_version(ep.id, b, make_default=False)
    ep = store.add_pipeline_endpoint_version(ep.id, c, make_default=True)
    assert (ep.default_version, ep.versions) == ("2", {"0": a, "1": b, "2": c})
    assert store.add_pipeline_endpoint_version(ep.id, b, make_default=True).default_version == "1"
    with pytest.raises(ValueError, match="its versions: 0, 1, 2"):
        store.set_pipeline_endpoint_default(ep.id, "9")
    other = store.create_pipeline_endpoint(name="other", description=None, pipeline_id=a)
    with pytest.raises(ConflictError):
        store.update_pipeline_endpoint(other.id, name="ep")
    store.update_pipeline_endpoint(other.id, status="Disabled", description="off")
    assert [e.name for e in store.list_pipeline_endpoints()] == ["ep"]
    listed = store.list_pipeline_endpoints(active_only=False)
    assert [(e.name, e.versions) for e in listed] == [
        ("ep", {"0": a, "1": b, "2": c}),
        ("other", {"0": a}),
    ]
    assert store.get_pipeline_endpoint(name="other").description == "off"
    assert store.find_pipeline_endpoint(id="missing") is None
    with pytest.raises(NotFoundError):
        store.get_pipeline_endpoint(name="missing")
