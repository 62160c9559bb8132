"""Data objects and parameters as SDK v1 documents them: DataReference, DataPath,
PipelineData, PortDataReference and PipelineParameter, on their own and inside real runs."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

from headrace import (
    DataPath,
    DataPathComputeBinding,
    DataReference,
    Experiment,
    InputPortBinding,
    ParameterError,
    Pipeline,
    PipelineData,
    PipelineParameter,
    PortDataReference,
    PythonScriptStep,
    Workspace,
)

# Prints one JSON line: its arguments and the data/parameter environment variables; every
# argument that is a folder gets a file `made.txt` (outputs) or is listed (inputs).
SHOW = textwrap.dedent(
    """
    import json, os, sys
    env = {k: v for k, v in os.environ.items()
           if k.startswith(("AZUREML_DATAREFERENCE_", "AML_PARAMETER_"))}
    seen = {}
    for arg in sys.argv[1:]:
        if os.path.isdir(arg):
            seen[arg] = sorted(os.listdir(arg))
        elif os.path.isfile(arg):
            seen[arg] = open(arg).read()
    print("SHOW " + json.dumps({"argv": sys.argv[1:], "env": env, "seen": seen}), flush=True)
    """
)
WRITE = textwrap.dedent(
    """
    import os, sys
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "made.txt"), "w") as fh:
        fh.write(sys.argv[2] if len(sys.argv) > 2 else "made")
    """
)


@pytest.fixture
def src(tmp_path: Path) -> Path:
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "show.py").write_text(SHOW)
    (folder / "write.py").write_text(WRITE)
    return folder


def shown(run: Any, step_name: str) -> dict[str, Any]:
    log = run.find_step_run(step_name)[0].get_stdout_log()
    match = re.search(r"^SHOW (.*)$", log, re.MULTILINE)
    assert match, log
    result: dict[str, Any] = json.loads(match.group(1))
    return result


def finished(run: Any) -> None:
    status = run.wait_for_completion(show_output=False, raise_on_error=False)
    if status != "Finished":
        details = [(s.name, s.get_status(), s.get_stderr_log()[-800:]) for s in run.get_steps()]
        raise AssertionError(f"run ended {status}: {details}")


# -- DataReference, DataPath -----------------------------------------------------------------
def test_data_reference_defaults(ws: Workspace) -> None:
    ds = ws.get_default_datastore()
    with_path = DataReference(ds, path_on_datastore="data/x.csv")
    assert re.fullmatch(r"[0-9a-f]{32}", with_path.data_reference_name)
    assert str(with_path) == f"$AZUREML_DATAREFERENCE_{with_path.data_reference_name}"
    assert with_path.mode == "mount" and with_path.path_on_compute is None
    without = DataReference(ds)
    assert without.data_reference_name == "workspaceblobstore"
    assert str(without) == "$AZUREML_DATAREFERENCE_workspaceblobstore"
    named = DataReference(ds, data_reference_name="raw", path_on_datastore="raw")
    assert (named.name, named.datastore_name, named.path_on_datastore) == ("raw", ds.name, "raw")
    with pytest.raises(ValueError, match="'mount' or 'download'"):
        DataReference(ds, mode="stream")


def test_data_reference_modes_and_paths(ws: Workspace) -> None:
    ds = ws.get_default_datastore()
    ref = ds.path("raw", data_reference_name="raw")
    down = ref.as_download(path_on_compute="local_raw", overwrite=True)
    assert (down.mode, down.path_on_compute, down.overwrite) == ("download", "local_raw", True)
    assert down.data_reference_name == "raw" and ref.mode == "mount"  # a copy, not a change
    assert down.as_mount().mode == "mount"
    sub = ref.path("2024", data_reference_name="year")
    assert (sub.path_on_datastore, sub.data_reference_name) == ("raw/2024", "year")


def test_datapath_and_binding(ws: Workspace) -> None:
    ds = ws.get_default_datastore()
    path = DataPath(datastore=ds, path_on_datastore="raw/a.csv")
    assert (path.datastore_name, path.path_on_datastore) == (ds.name, "raw/a.csv")
    ref = path.create_data_reference(
        "a", DataPathComputeBinding(mode="download", path_on_compute="in")
    )
    assert (ref.data_reference_name, ref.mode, ref.path_on_compute) == ("a", "download", "in")
    assert ref.path_on_datastore == "raw/a.csv"
    assert DataPathComputeBinding().mode == "mount"
    with pytest.raises(ValueError, match="'mount' or 'download'"):
        DataPathComputeBinding(mode="upload")


def test_pipeline_data_basics(ws: Workspace) -> None:
    data = PipelineData("processed", datastore=ws.get_default_datastore())
    assert str(data) == "$AZUREML_DATAREFERENCE_processed"
    assert data.get_env_variable_name() == "AZUREML_DATAREFERENCE_processed"
    assert data.output_name == "processed" and data.datastore_name == "workspaceblobstore"
    mount = data.as_mount()
    assert isinstance(mount, InputPortBinding)
    assert (mount.name, mount.bind_mode, mount.bind_object) == ("processed", "mount", data)
    down = data.as_download(input_name="local", path_on_compute="here", overwrite=True)
    assert (down.name, down.bind_mode, down.path_on_compute, down.overwrite) == (
        "local",
        "download",
        "here",
        True,
    )
    renamed = data.as_input("other")
    assert (renamed.name, renamed.bind_mode, str(renamed)) == (
        "other",
        "mount",
        "$AZUREML_DATAREFERENCE_other",
    )
    named = PipelineData("p", pipeline_output_name="final_model")
    assert named.pipeline_output_name == "final_model"
    with pytest.raises(ValueError, match="'mount' or 'upload'"):
        PipelineData("x", output_mode="download")


@pytest.mark.parametrize(
    ("make", "bad"),
    [
        (lambda: PipelineData("bad-name"), "'bad-name'"),
        (lambda: PipelineData("has space"), "'has space'"),
        (lambda: PipelineData("ok", output_name="bad.out"), "'bad.out'"),
    ],
)
def test_bad_pipeline_data_names_are_reported_by_validate(
    ws: Workspace, src: Path, make: Any, bad: str
) -> None:
    data = make()
    step = PythonScriptStep(
        "write.py", name="w", arguments=[data], outputs=[data], source_directory=str(src)
    )
    problems = Pipeline(ws, [step]).validate()
    assert len(problems) == 1, problems
    assert bad in problems[0] and "Step 'w'" in problems[0]
    assert "letters, digits and underscores" in problems[0]


def test_data_in_a_real_run(ws: Workspace, src: Path, tmp_path: Path) -> None:
    """Mount and download DataReferences, PipelineData between steps (mount, download,
    as_input), env vars named by get_env_variable_name, and the output's datastore path."""
    ds = ws.get_default_datastore()
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "r.csv").write_text("1,2")
    ds.upload(str(tmp_path / "raw"), target_path="raw", show_progress=False)
    folder = DataReference(ds, "raw_dir", "raw")
    one_file = DataReference(ds, "raw_file", "raw/r.csv").as_download()
    out = PipelineData("made", datastore=ds)
    PythonScriptStep(  # reached only through `out`: the closure pulls it in
        "write.py",
        name="producer",
        arguments=[out, "payload"],
        outputs=[out],
        source_directory=str(src),
    )
    as_download = out.as_download(input_name="copied")
    as_input = out.as_input("renamed")
    consumer = PythonScriptStep(
        "show.py",
        name="consumer",
        arguments=[folder, one_file, out, as_download, as_input],
        inputs=[folder, one_file, out, as_download, as_input],
        source_directory=str(src),
    )
    run = Experiment(ws, "data").submit(Pipeline(ws, [consumer]))  # closure adds producer
    finished(run)
    seen = shown(run, "consumer")
    argv, env = seen["argv"], seen["env"]
    assert all(Path(a).is_absolute() for a in argv), argv
    assert seen["seen"][argv[0]] == ["r.csv"]  # mounted folder
    assert seen["seen"][argv[1]] == "1,2"  # downloaded file
    for path in argv[2:]:
        assert seen["seen"][path] == ["made.txt"]
    assert env["AZUREML_DATAREFERENCE_raw_dir"] == argv[0]
    assert env[out.get_env_variable_name()] == argv[2]
    assert env["AZUREML_DATAREFERENCE_copied"] == argv[3]
    assert env["AZUREML_DATAREFERENCE_renamed"] == argv[4]
    assert argv[3] != argv[2]  # a download is a copy in the step's folder
    # The output lives at azureml/<producer step run id>/<output_name> on the datastore.
    producer_run = run.find_step_run("producer")[0]
    port = producer_run.get_output_data("made")
    assert isinstance(port, PortDataReference)
    assert port.path_on_datastore == f"azureml/{producer_run.id}/made"
    assert port.datastore_name == "workspaceblobstore" and port.name == "made"
    assert (Path(ds.root) / port.path_on_datastore / "made.txt").read_text() == "payload"


def test_port_data_reference_download_and_reuse_in_a_new_pipeline(
    ws: Workspace, src: Path, tmp_path: Path
) -> None:
    out = PipelineData("result", pipeline_output_name="the_result")
    producer = PythonScriptStep(
        "write.py", name="producer", arguments=[out, "v1"], outputs=[out], source_directory=str(src)
    )
    first = Experiment(ws, "port").submit(Pipeline(ws, [producer]))
    finished(first)
    step_run = first.find_step_run("producer")[0]
    port = step_run.get_output_data("result")
    assert first.get_pipeline_output("the_result").path_on_datastore == port.path_on_datastore

    target = port.download(tmp_path / "dl", show_progress=False)
    assert Path(target) == tmp_path / "dl" / "azureml" / step_run.id / "result"
    assert (Path(target) / "made.txt").read_text() == "v1"

    forms: dict[str, Any] = {
        "direct": port,
        "mounted": port.as_mount(),
        "downloaded": port.as_download(input_name="dl_in"),
        "renamed": port.as_input("renamed_in"),
    }
    steps = [
        PythonScriptStep(
            "show.py",
            name=name,
            arguments=[form],
            inputs=[form],
            source_directory=str(src),
        )
        for name, form in forms.items()
    ]
    second = Experiment(ws, "port").submit(Pipeline(ws, steps))
    finished(second)
    for name in forms:
        seen = shown(second, name)
        (path,) = seen["argv"]
        assert seen["seen"][path] == ["made.txt"], (name, seen)
    assert [s.name for s in second.get_steps() if s.name == "producer"] == []


# -- PipelineParameter -----------------------------------------------------------------------
@pytest.mark.parametrize("default", [1, 0.5, True, "text", DataPath("workspaceblobstore", "x")])
def test_parameter_allowed_defaults(default: Any) -> None:
    assert PipelineParameter("p", default_value=default).default_value is default


@pytest.mark.parametrize("default", [None, [1, 2], {"a": 1}, b"bytes"])
def test_parameter_other_defaults_are_refused(default: Any) -> None:
    with pytest.raises(ValueError, match="int, float, bool, str, DataPath or dataset") as info:
        PipelineParameter("p", default_value=default)
    assert "'p'" in str(info.value)


def param_pipeline(ws: Workspace, src: Path, *params: PipelineParameter) -> Pipeline:
    args: list[Any] = []
    for param in params:
        args += [param, f"--{param.name}={param}", "x" + str(param) + "y"]
    step = PythonScriptStep("show.py", name="show", arguments=args, source_directory=str(src))
    return Pipeline(ws, [step])


def test_parameter_in_fstring_and_str_is_substituted(ws: Workspace, src: Path) -> None:
    lr = PipelineParameter("lr", default_value=0.1)
    epochs = PipelineParameter("epochs", default_value=3)
    pipeline = param_pipeline(ws, src, lr, epochs)
    run = Experiment(ws, "params").submit(pipeline, pipeline_parameters={"lr": 0.5})
    finished(run)
    seen = shown(run, "show")
    assert seen["argv"] == ["0.5", "--lr=0.5", "x0.5y", "3", "--epochs=3", "x3y"]
    assert seen["env"]["AML_PARAMETER_lr"] == "0.5"
    assert seen["env"]["AML_PARAMETER_epochs"] == "3"
    assert run.get_details()["parameters"] == {"lr": 0.5, "epochs": 3}


def test_datapath_parameter_in_arguments_and_inputs(
    ws: Workspace, src: Path, tmp_path: Path
) -> None:
    ds = ws.get_default_datastore()
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        (tmp_path / name / f"{name}.csv").write_text(name)
        ds.upload(str(tmp_path / name), target_path=f"data/{name}", show_progress=False)
    param = PipelineParameter("input_data", default_value=DataPath(ds, "data/one"))
    pair = (param, DataPathComputeBinding(mode="mount"))
    step = PythonScriptStep(
        "show.py", name="show", arguments=[pair], inputs=[pair], source_directory=str(src)
    )
    pipeline = Pipeline(ws, [step])
    assert pipeline.validate() == []
    default_run = Experiment(ws, "datapath").submit(pipeline)
    chosen = Experiment(ws, "datapath").submit(
        pipeline, pipeline_parameters={"input_data": DataPath(ds, "data/two")}
    )
    finished(default_run)
    finished(chosen)
    for run, name in ((default_run, "one"), (chosen, "two")):
        seen = shown(run, "show")
        (path,) = seen["argv"]
        assert seen["seen"][path] == [f"{name}.csv"]
        assert seen["env"]["AZUREML_DATAREFERENCE_input_data"] == path


def runs_in(ws: Workspace, experiment: str) -> int:
    return len(list(Experiment(ws, experiment).get_runs()))


def test_unknown_parameter_lists_the_known_ones_and_creates_no_run(
    any_ws: Workspace, src: Path
) -> None:
    pipeline = param_pipeline(
        any_ws, src, PipelineParameter("alpha", 1), PipelineParameter("beta", "b")
    )
    with pytest.raises(ParameterError) as info:
        Experiment(any_ws, "unknown").submit(pipeline, pipeline_parameters={"alpah": 2})
    message = str(info.value)
    assert "'alpah' does not exist" in message
    assert "alpha, beta" in message and "did you mean 'alpha'" in message
    with pytest.raises(ParameterError):
        pipeline.submit("unknown", pipeline_parameters={"gamma": 1})
    assert runs_in(any_ws, "unknown") == 0
    assert any_ws.backend.list_pipeline_runs() == []


def test_parameter_types_are_checked_at_submit(ws: Workspace, src: Path) -> None:
    count = PipelineParameter("count", 1)
    flag = PipelineParameter("flag", False)
    rate = PipelineParameter("rate", 0.5)
    pipeline = param_pipeline(ws, src, count, flag, rate)
    for bad in ({"count": "abc"}, {"count": 4.5}, {"flag": "maybe"}, {"rate": "fast"}):
        with pytest.raises(ParameterError) as info:
            Experiment(ws, "types").submit(pipeline, pipeline_parameters=bad)
        (name,) = bad
        assert repr(name) in str(info.value) and "expects" in str(info.value)
    with pytest.raises(ParameterError) as info:
        Experiment(ws, "types").submit(pipeline, pipeline_parameters={"count": "x", "rate": "y"})
    assert "'count'" in str(info.value) and "'rate'" in str(info.value)  # all at once
    assert runs_in(ws, "types") == 0

    run = Experiment(ws, "types").submit(
        pipeline, pipeline_parameters={"count": "45", "flag": "true", "rate": "2"}
    )
    again = Experiment(ws, "types").submit(pipeline, pipeline_parameters={"count": 45.0})
    finished(run)
    finished(again)
    assert shown(run, "show")["argv"][::3] == ["45", "True", "2.0"]
    assert shown(again, "show")["argv"][::3] == ["45", "False", "0.5"]


def test_same_parameter_name_with_two_defaults_is_reported(ws: Workspace, src: Path) -> None:
    first = PipelineParameter("lr", 0.1)
    second = PipelineParameter("lr", 0.2)
    a = PythonScriptStep("show.py", name="a", arguments=[first], source_directory=str(src))
    b = PythonScriptStep("show.py", name="b", arguments=[second], source_directory=str(src))
    problems = Pipeline(ws, [a, b]).validate()
    assert len(problems) == 1, problems
    assert "'lr' is defined twice" in problems[0] and "0.1" in problems[0]
    # The same name and default twice is the same parameter, as in SDK v1.
    same = PythonScriptStep(
        "show.py", name="c", arguments=[PipelineParameter("lr", 0.1)], source_directory=str(src)
    )
    assert Pipeline(ws, [a, same]).validate() == []


def test_formatted_parameter_keeps_its_own_default(ws: Workspace, src: Path) -> None:
    """An f-string names a parameter only by name; a later parameter with the same name (in
    another pipeline) must not change the default of the first one."""
    first = PipelineParameter("lr", 0.1)
    a = PythonScriptStep(
        "show.py", name="a", arguments=[f"--lr={first}"], source_directory=str(src)
    )
    second = PipelineParameter("lr", 0.2)
    b = PythonScriptStep(
        "show.py", name="b", arguments=[f"--lr={second}"], source_directory=str(src)
    )
    assert [(p.name, p.default) for p in Pipeline(ws, [a]).graph.parameters] == [("lr", 0.1)]
    assert [(p.name, p.default) for p in Pipeline(ws, [b]).graph.parameters] == [("lr", 0.2)]
    problem = only_problem(Pipeline(ws, [a, b]).validate())
    assert "'lr' is defined twice" in problem and "0.1" in problem and "0.2" in problem


def only_problem(problems: list[str]) -> str:
    assert len(problems) == 1, problems
    return problems[0]
