"""Datasets in pipelines, in the shapes the SDK v1 notebooks use them: a dataset as a
PipelineParameter default consumed with DatasetConsumptionConfig, `as_named_input` and
`as_mount` in arguments, OutputFileDatasetConfig chains whose dependencies come from
passing them, register_on_complete, lineage, and reuse that follows the data."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from headrace import (
    Dataset,
    DatasetConsumptionConfig,
    Experiment,
    OutputFileDatasetConfig,
    Pipeline,
    PipelineParameter,
    PythonScriptStep,
    Workspace,
)

READ = textwrap.dedent(
    """
    import json, os, sys
    from headrace import FileDataset, Run
    run = Run.get_context()
    seen = {}
    for name, value in run.input_datasets.items():
        if isinstance(value, FileDataset):
            seen[name] = {"file_dataset": value.to_path()}
        elif isinstance(value, str):
            seen[name] = {"path": value, "is_file": os.path.isfile(value),
                          "files": sorted(os.path.relpath(os.path.join(d, f), value)
                                          for d, _, fs in os.walk(value) for f in fs)
                          if os.path.isdir(value) else [open(value).read()]}
        else:
            df = value.to_pandas_dataframe()
            seen[name] = {"rows": df.to_dict("list")}
    print("SEEN " + json.dumps({"argv": sys.argv[1:], "datasets": seen}), flush=True)
    """
)
# Copies its input folder (argv[1]) to its output folder (argv[2]) and adds a row.
COPY = textwrap.dedent(
    """
    import os, shutil, sys
    src, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    name = os.path.basename(src) if os.path.isfile(src) else "data.csv"
    text = open(src).read() if os.path.isfile(src) else open(os.path.join(src, "data.csv")).read()
    with open(os.path.join(out, "data.csv"), "w") as fh:
        fh.write(text + sys.argv[3] + "\\n")
    """
)


@pytest.fixture
def src(tmp_path: Path) -> Path:
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "read.py").write_text(READ)
    (folder / "copy_rows.py").write_text(COPY)
    return folder


@pytest.fixture
def store(ws: Workspace, tmp_path: Path):  # type: ignore[no-untyped-def]
    ds = ws.get_default_datastore()
    data = tmp_path / "upload"
    (data / "titanic").mkdir(parents=True)
    (data / "titanic" / "data.csv").write_text("name,age\nann,31\nbob,42\n")
    (data / "mnist" / "0").mkdir(parents=True)
    (data / "mnist" / "1").mkdir(parents=True)
    (data / "mnist" / "0" / "a.png").write_text("zero")
    (data / "mnist" / "1" / "b.png").write_text("one")
    (data / "mnist" / "readme.txt").write_text("not an image")
    ds.upload(str(data), target_path="", overwrite=True, show_progress=False)
    return ds


def seen(run, step: str) -> dict:  # type: ignore[no-untyped-def]
    log = run.find_step_run(step)[0].get_stdout_log()
    line = next(x for x in log.splitlines() if x.startswith("SEEN "))
    return json.loads(line[5:])  # type: ignore[no-any-return]


def finished(run) -> None:  # type: ignore[no-untyped-def]
    status = run.wait_for_completion(show_output=False, raise_on_error=False)
    assert status == "Finished", [
        (s.name, s.get_status(), s.get_details().get("error")) for s in run.get_steps()
    ]


def test_datasets_as_pipeline_parameter_defaults(ws: Workspace, store, src: Path) -> None:  # type: ignore[no-untyped-def]
    file_ds = Dataset.File.from_files((store, "titanic/data.csv"))
    table = Dataset.Tabular.from_delimited_files((store, "titanic/data.csv"))
    file_param = PipelineParameter(name="file_ds_param", default_value=file_ds)
    table_param = PipelineParameter(name="tabular_ds_param", default_value=table)
    step = PythonScriptStep(
        "read.py",
        name="read",
        inputs=[
            DatasetConsumptionConfig("file_dataset", file_param).as_mount(),
            DatasetConsumptionConfig("tabular_dataset", table_param),
        ],
        source_directory=str(src),
    )
    pipeline = Pipeline(ws, [step])
    run = Experiment(ws, "ds-param").submit(pipeline)
    finished(run)
    got = seen(run, "read")["datasets"]
    assert got["file_dataset"]["is_file"] and got["file_dataset"]["files"] == [
        "name,age\nann,31\nbob,42\n"
    ]
    assert got["tabular_dataset"]["rows"] == {"name": ["ann", "bob"], "age": [31, 42]}
    # another dataset at submit time
    other = Dataset.Tabular.from_delimited_files((store, "titanic/data.csv")).take(1)
    second = Experiment(ws, "ds-param").submit(
        pipeline, pipeline_parameters={"tabular_ds_param": other}
    )
    finished(second)
    assert seen(second, "read")["datasets"]["tabular_dataset"]["rows"] == {
        "name": ["ann"],
        "age": [31],
    }


def test_named_inputs_mount_download_and_globs(ws: Workspace, store, src: Path) -> None:  # type: ignore[no-untyped-def]
    pngs = Dataset.File.from_files(path=[(store, "mnist/**/*.png")])
    folder = Dataset.File.from_files(store.path("mnist"))
    step = PythonScriptStep(
        "read.py",
        name="read",
        arguments=["--pngs", pngs.as_named_input("pngs").as_mount(), "--all", folder.as_download()],
        source_directory=str(src),
    )
    run = Experiment(ws, "ds-named").submit(Pipeline(ws, [step]))
    finished(run)
    got = seen(run, "read")
    datasets = got["datasets"]
    assert datasets["pngs"]["files"] == ["0/a.png", "1/b.png"]
    (unnamed,) = (name for name in datasets if name.startswith("dataset_"))
    assert datasets[unnamed]["files"] == ["0/a.png", "1/b.png", "readme.txt"]
    assert got["argv"] == ["--pngs", datasets["pngs"]["path"], "--all", datasets[unnamed]["path"]]
    root = Path(ws.backend.local_datastore_path(store.name))
    assert not datasets[unnamed]["path"].startswith(str(root))  # downloaded: a copy


def test_two_unnamed_datasets_of_one_step_are_two_inputs(ws: Workspace, store, src: Path) -> None:  # type: ignore[no-untyped-def]
    zeros = Dataset.File.from_files((store, "mnist/0"))
    ones = Dataset.File.from_files((store, "mnist/1"))
    pngs = Dataset.File.from_files((store, "mnist/**/*.png")).skip(1)
    step = PythonScriptStep(
        "read.py",
        name="read",
        arguments=[zeros.as_mount(), ones.as_mount()],
        inputs=[pngs.as_named_input("direct")],  # direct mode: a FileDataset in the step
        source_directory=str(src),
    )
    run = Experiment(ws, "ds-unnamed").submit(Pipeline(ws, [step]))
    finished(run)
    got = seen(run, "read")
    direct = got["datasets"].pop("direct")
    assert direct == {"file_dataset": ["/1/b.png"]}
    assert sorted(d["files"] for d in got["datasets"].values()) == [["a.png"], ["b.png"]]
    first, second = got["argv"]
    assert first.endswith("mnist/0") and second.endswith("mnist/1")


def test_output_file_dataset_chain_registers_and_records_lineage(
    ws: Workspace,
    store,
    src: Path,  # type: ignore[no-untyped-def]
) -> None:
    raw = Dataset.File.from_files((store, "titanic")).register(ws, "raw")
    first = OutputFileDatasetConfig(name="first")
    second = OutputFileDatasetConfig(
        name="second", destination=(store, "results/{run-id}/{output-name}")
    ).register_on_complete("second_result")
    table = second.read_delimited_files()
    PythonScriptStep(  # a: the producer of `first`
        "copy_rows.py",
        name="a",
        arguments=[raw.as_named_input("raw").as_mount(), first, "cid,1"],
        source_directory=str(src),
    )
    PythonScriptStep(  # b: made a producer by passing `second` in its arguments
        "copy_rows.py",
        name="b",
        arguments=[first.as_input(), second, "dee,2"],
        source_directory=str(src),
    )
    c = PythonScriptStep(
        "read.py", name="c", inputs=[table.as_input("table")], source_directory=str(src)
    )
    run = Experiment(ws, "ofdc").submit(Pipeline(ws, [c]))  # closure: c needs b needs a
    finished(run)
    assert seen(run, "c")["datasets"]["table"]["rows"] == {
        "name": ["ann", "bob", "cid", "dee"],
        "age": [31, 42, 1, 2],
    }
    b_run = run.find_step_run("b")[0]
    registered = Dataset.get_by_name(ws, "second_result")
    assert registered.version == 1
    assert registered.to_path() == ["/data.csv"]
    assert registered.lineage()["produced_by"][0]["step_run_id"] == b_run.id
    root = Path(ws.backend.local_datastore_path(store.name))
    assert (root / "results" / b_run.id / "second" / "data.csv").is_file()
    a_run = run.find_step_run("a")[0]
    assert (root / "dataset" / a_run.id / "first" / "data.csv").is_file()
    consumed = raw.lineage()["consumed_by"]
    assert [(c["step_run_id"], c["port"], c["step_name"]) for c in consumed] == [
        (a_run.id, "raw", "a")
    ]
    # the same lineage in the CLI
    from tests.test_cli import hr, hr_json, one_error_line

    listed = hr_json("dataset", "list", "--workspace", ws.path)["datasets"]
    assert sorted(d["name"] for d in listed) == ["raw", "second_result"]
    shown = hr_json("datasets", "show", "second_result", "--workspace", ws.path)
    assert shown["content"]["file_count"] == 1 and shown["kind"] == "file"
    assert [(x["role"], x["step_run_id"]) for x in shown["lineage"]] == [("produced", b_run.id)]
    lineage = hr_json("dataset", "lineage", "raw", "--workspace", ws.path)["lineage"]
    assert [(x["role"], x["step_name"], x["port"]) for x in lineage] == [("consumed", "a", "raw")]
    assert "consumed" in hr("dataset", "show", "raw", "--workspace", ws.path).stdout
    versions = hr_json("dataset", "versions", "raw", "--workspace", ws.path)["versions"]
    assert [v["version"] for v in versions] == [1]
    error = one_error_line(hr("dataset", "show", "rwa", "--workspace", ws.path, code=1))
    assert "No dataset named 'rwa'" in error and "'raw'" in error


def test_reuse_follows_the_data_not_the_version(ws: Workspace, store, src: Path) -> None:  # type: ignore[no-untyped-def]
    def submit():  # type: ignore[no-untyped-def]
        ds = Dataset.get_by_name(ws, "titanic")
        step = PythonScriptStep(
            "read.py", name="read", inputs=[ds.as_named_input("t")], source_directory=str(src)
        )
        run = Experiment(ws, "reuse").submit(Pipeline(ws, [step]))
        finished(run)
        return run.find_step_run("read")[0]

    tab = Dataset.Tabular.from_delimited_files((store, "titanic/data.csv"))
    tab.register(ws, "titanic")
    first = submit()
    assert first.get_details()["properties"].get("azureml.reusedrunid") is None
    # a new version of the same data: reused
    Dataset.Tabular.from_delimited_files((store, "titanic/*.csv")).register(
        ws, "titanic", create_new_version=True
    )
    again = submit()
    assert again.get_details()["properties"].get("azureml.reusedrunid") == first.id
    # changed data behind the same definition: runs, and says why
    csv = Path(ws.backend.local_datastore_path(store.name)) / "titanic" / "data.csv"
    csv.write_text("name,age\nann,31\nbob,42\ncid,9\n")
    changed = submit()
    assert changed.get_details()["properties"].get("azureml.reusedrunid") is None
    assert "input t changed" in changed.get_details()["reuse"]["summary"]


def test_confined_steps_read_their_dataset_inputs(
    ws: Workspace,
    store,
    src: Path,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    from tests.test_step_isolation import needs_landlock

    if needs_landlock.args and needs_landlock.args[0]:
        pytest.skip(needs_landlock.kwargs.get("reason", "no Landlock"))
    monkeypatch.setenv("HEADRACE_STEP_ISOLATION", "on")  # read by the agent the submit starts
    pngs = Dataset.File.from_files((store, "mnist/**/*.png"))
    table = Dataset.Tabular.from_delimited_files((store, "titanic/*.csv"))
    out = OutputFileDatasetConfig(name="out").register_on_complete("confined_out")
    read = PythonScriptStep(
        "read.py",
        name="read",
        arguments=[pngs.as_named_input("pngs").as_mount(), table.as_named_input("table")],
        source_directory=str(src),
    )
    copy = PythonScriptStep(
        "copy_rows.py",
        name="copy",
        arguments=[Dataset.File.from_files((store, "titanic")).as_mount(), out, "eve,5"],
        source_directory=str(src),
    )
    run = Experiment(ws, "confined").submit(Pipeline(ws, [read, copy]))
    finished(run)
    got = seen(run, "read")["datasets"]
    assert got["pngs"]["files"] == ["0/a.png", "1/b.png"]
    assert got["table"]["rows"] == {"name": ["ann", "bob"], "age": [31, 42]}
    assert Dataset.get_by_name(ws, "confined_out").to_path() == ["/data.csv"]


def test_rest_submit_sets_dataset_parameters_by_id_or_name(
    ws: Workspace,
    store,
    src: Path,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    import httpx

    from headrace import PipelineRun
    from tests.servers import LiveServer, make_token

    small = Dataset.Tabular.from_delimited_files((store, "titanic/data.csv")).take(1)
    small = small.register(ws, "small")
    full = Dataset.Tabular.from_delimited_files((store, "titanic/data.csv")).register(ws, "full")
    param = PipelineParameter(name="table_param", default_value=full)
    step = PythonScriptStep(
        "read.py",
        name="read",
        inputs=[DatasetConsumptionConfig("table", param)],
        source_directory=str(src),
    )
    published = Pipeline(ws, [step]).publish(name="datasets-rest")
    root = Path(ws.path)
    headers = {"Authorization": f"Bearer {make_token(root, 'submitter')}"}
    bodies = {
        "default": {},
        "by id": {"table_param": {"SavedDataSetReference": {"Id": small.id}}},
        "by name": {"table_param": {"DataSetReference": {"Name": "small", "Version": "1"}}},
    }
    with LiveServer(root) as server:
        monkeypatch.setenv("HEADRACE_SERVER_URL", server.url)
        url = published.endpoint.replace(published.endpoint.split("/pipelines/")[0], server.url)
        runs = {}
        for label, assignments in bodies.items():
            response = httpx.post(
                url,
                headers=headers,
                json={"ExperimentName": "rest", "DataSetDefinitionValueAssignments": assignments},
                timeout=60,
            )
            assert response.status_code == 200, response.text
            runs[label] = response.json()["Id"]
        bad = httpx.post(
            url,
            headers=headers,
            json={
                "ExperimentName": "rest",
                "DataSetDefinitionValueAssignments": {
                    "table_param": {"DataSetReference": {"Name": "nope"}}
                },
            },
            timeout=60,
        )
        assert bad.status_code == 404 and "'small'" in bad.text, bad.text
        for label, run_id in runs.items():
            run = PipelineRun.get(ws, run_id)
            finished(run)
            rows = seen(run, "read")["datasets"]["table"]["rows"]
            assert rows["name"] == (["ann", "bob"] if label == "default" else ["ann"]), label
    consumers = {c["pipeline_run_id"] for c in small.lineage()["consumed_by"]}
    assert consumers == {runs["by id"], runs["by name"]}


def test_datasets_on_an_object_store(ws: Workspace, src: Path, tmp_path: Path) -> None:
    """S3 (moto on 127.0.0.1): a version records the objects' ETags; reading downloads to a
    cache; a step gets the files in its own folder; changed objects make a new version."""
    from tests.objectstores import MotoS3
    from tests.test_object_datastores import s3_store

    moto = MotoS3(tmp_path / "moto.log")
    try:
        store = s3_store(ws, moto)
        data = tmp_path / "s3data"
        (data / "t").mkdir(parents=True)
        (data / "t" / "a.csv").write_text("name,age\nann,31\n")
        (data / "t" / "b.csv").write_text("name,age\nbob,42\n")
        store.upload(str(data), target_path="", overwrite=True, show_progress=False)
        table = Dataset.Tabular.from_delimited_files((store, "t/*.csv"))
        first = table.register(ws, "s3table")
        assert first.content["file_count"] == 2
        assert sorted(table.to_pandas_dataframe()["name"]) == ["ann", "bob"]
        step = PythonScriptStep(
            "read.py", name="read", inputs=[first.as_named_input("t")], source_directory=str(src)
        )
        run = Experiment(ws, "s3-datasets").submit(Pipeline(ws, [step]))
        finished(run)
        assert sorted(seen(run, "read")["datasets"]["t"]["rows"]["name"]) == ["ann", "bob"]
        (data / "t" / "b.csv").write_text("name,age\nbob,43\n")
        store.upload(str(data), target_path="", overwrite=True, show_progress=False)
        second = table.register(ws, "s3table", create_new_version=True)
        assert second.version == 2 and second.content["hash"] != first.content["hash"]
        assert sorted(second.to_pandas_dataframe()["age"]) == [31, 43]
    finally:
        moto.stop()


def test_dataset_paths_cannot_leave_their_datastore_or_reach_a_confined_steps_host(
    ws: Workspace,
    store,
    src: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    from headrace import DatastorePathError

    with pytest.raises(DatastorePathError, match=r"'\.\.'"):
        Dataset.File.from_files((store, "../../headrace.db"))
    with pytest.raises(DatastorePathError, match="destination path"):
        OutputFileDatasetConfig("out", destination=(store, "../{run-id}"))
    # A confined step gets no dataset of paths on the server's machine (its sandbox would
    # have to grant them: the workspace's database, the server user's home).
    outside = tmp_path / "outside.csv"
    outside.write_text("a\n1\n")
    monkeypatch.setenv("HEADRACE_STEP_ISOLATION", "on")
    step = PythonScriptStep(
        "read.py",
        name="read",
        inputs=[Dataset.File.from_files(str(outside)).as_named_input("local").as_mount()],
        source_directory=str(src),
    )
    run = Experiment(ws, "confined-local").submit(Pipeline(ws, [step]))
    assert run.wait_for_completion(show_output=False, raise_on_error=False) == "Failed"
    error = run.find_step_run("read")[0].get_details()["error"]["error"]["message"]
    assert "reads paths of the server's machine" in error and "datastore" in error
