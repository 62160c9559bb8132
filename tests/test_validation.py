"""Pipeline structure and validation: every problem reported at once, each naming the step
and the fix; submit refuses an invalid pipeline and creates no run. Also the closure over
producers and run_after, nested lists, StepSequence, and bad arguments to Pipeline/submit."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from headrace import (
    DataPath,
    DataPathComputeBinding,
    Experiment,
    Pipeline,
    PipelineData,
    PipelineParameter,
    PipelineValidationError,
    PythonScriptStep,
    StepSequence,
    UserError,
    Workspace,
)
from tests import shapes


@pytest.fixture
def src(tmp_path: Path) -> Path:
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "train.py").write_text("print('train')\n")
    (folder / "score.py").write_text("print('score')\n")
    return folder


@pytest.fixture
def make(src: Path) -> Any:
    def make_step(name: str, **kwargs: Any) -> PythonScriptStep:
        kwargs.setdefault("source_directory", str(src))
        return PythonScriptStep(kwargs.pop("script", "train.py"), name=name, **kwargs)

    return make_step


def only(problems: list[str]) -> str:
    assert len(problems) == 1, problems
    return problems[0]


def no_runs(ws: Workspace) -> bool:
    return ws.backend.list_pipeline_runs() == []


# -- one problem at a time -------------------------------------------------------------------
def test_valid_pipeline_validates_and_prints_ready(
    ws: Workspace, make: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    out = PipelineData("out")
    a = make("a", arguments=["--out", out], outputs=[out])
    b = make("b", arguments=["--in", out], inputs=[out])
    assert Pipeline(ws, [a, b]).validate() == []
    printed = capsys.readouterr().out
    assert re.search(r"^Step a is ready to be created \[[0-9a-f]{8}\]$", printed, re.M)
    assert re.search(r"^Step b is ready to be created \[[0-9a-f]{8}\]$", printed, re.M)


def test_cycle_through_run_after(ws: Workspace, make: Any) -> None:
    a, b, c = make("a"), make("b"), make("c")
    b.run_after(a)
    c.run_after(b)
    a.run_after(c)
    problem = only(Pipeline(ws, [c]).validate())
    assert "cycle" in problem and "'a'" in problem and "'b'" in problem and "'c'" in problem
    assert "remove one of the data or run_after edges" in problem


def test_cycle_through_data(ws: Workspace, make: Any) -> None:
    x, y = PipelineData("x"), PipelineData("y")
    a = make("a", arguments=[y, x], inputs=[y], outputs=[x])
    b = make("b", arguments=[x, y], inputs=[x], outputs=[y])
    assert "cycle" in only(Pipeline(ws, [a, b]).validate())


def test_input_whose_producer_is_left_out(ws: Workspace, make: Any) -> None:
    data = PipelineData("d")
    make("prod", arguments=[data], outputs=[data])
    cons = make("cons", arguments=[data], inputs=[data])
    problem = only(Pipeline(ws, [cons], resolve_closure=False).validate())
    assert problem.startswith("Step 'cons':") and "'d'" in problem
    assert "not produced by any step" in problem and "add the producing step" in problem
    # With the closure (the default) the producer is pulled in and all is well.
    assert Pipeline(ws, [cons]).validate() == []


def test_input_nobody_produces(ws: Workspace, make: Any) -> None:
    orphan = PipelineData("orphan")
    cons = make("cons", arguments=[orphan], inputs=[orphan])
    problem = only(Pipeline(ws, [cons]).validate())
    assert "Step 'cons'" in problem and "'orphan'" in problem and "not produced" in problem


def test_same_pipeline_data_output_of_two_steps(ws: Workspace, make: Any) -> None:
    data = PipelineData("shared")
    first = make("first", arguments=[data], outputs=[data])
    second = make("second", arguments=[data], outputs=[data])
    problem = only(Pipeline(ws, [first, second]).validate())
    assert "Step 'second'" in problem and "already an output of step 'first'" in problem
    assert "create a second PipelineData" in problem


@pytest.mark.parametrize("kind", ["pipeline_data", "data_reference", "datapath_parameter"])
def test_data_in_arguments_but_not_in_inputs(ws: Workspace, make: Any, kind: str) -> None:
    data: Any = {
        "pipeline_data": lambda: PipelineData("loose"),
        "data_reference": lambda: ws.get_default_datastore().path("raw", "loose"),
        "datapath_parameter": lambda: (
            PipelineParameter("loose", DataPath(ws.get_default_datastore(), "raw")),
            DataPathComputeBinding(),
        ),
    }[kind]()
    step = make("s", arguments=["--data", data])
    problem = only(Pipeline(ws, [step]).validate())
    assert problem.startswith("Step 's': Input loose")
    assert "appears in arguments list but is not in the input list" in problem
    assert "inputs=[...]" in problem


def test_placeholder_text_for_unknown_data(ws: Workspace, make: Any) -> None:
    data = PipelineData("known")
    step = make("s", arguments=["--x=$AZUREML_DATAREFERENCE_knwon", data], inputs=[data])
    make("p", arguments=[data], outputs=[data])
    problem = only(Pipeline(ws, [step]).validate())
    assert "'knwon'" in problem and "did you mean 'known'" in problem


def test_script_missing_from_source_directory(ws: Workspace, make: Any, src: Path) -> None:
    problem = only(Pipeline(ws, [make("s", script="trian.py")]).validate())
    assert "Step 's'" in problem and "'trian.py'" in problem and str(src) in problem
    assert "did you mean 'train.py'" in problem


def test_source_directory_missing(ws: Workspace, make: Any, tmp_path: Path) -> None:
    step = make("s", source_directory=str(tmp_path / "nowhere"))
    problem = only(Pipeline(ws, [step]).validate())
    assert "Step 's'" in problem and "nowhere" in problem and "does not exist" in problem


def test_default_source_directory_of_the_pipeline(ws: Workspace, src: Path) -> None:
    step = PythonScriptStep("score.py", name="s")
    assert Pipeline(ws, [step], default_source_directory=str(src)).validate() == []
    # Without it the current folder is used, which has no score.py.
    assert "'score.py' is not in source_directory" in only(Pipeline(ws, [step]).validate())


def test_unknown_compute_target(ws: Workspace, make: Any) -> None:
    problem = only(Pipeline(ws, [make("s", compute_target="lcoal")]).validate())
    assert "Step 's'" in problem and "'lcoal' does not exist" in problem
    assert "did you mean 'local'" in problem and "ComputeTarget.create" in problem


@pytest.mark.parametrize(
    "port",
    [
        lambda d: d.as_input("bad-port"),
        lambda d: d.as_download(input_name="bad port"),
    ],
)
def test_bad_port_names(ws: Workspace, make: Any, port: Any) -> None:
    data = PipelineData("d")
    make("prod", arguments=[data], outputs=[data])
    binding = port(data)
    step = make("s", arguments=[binding], inputs=[binding])
    problem = only(Pipeline(ws, [step]).validate())
    assert "Step 's'" in problem and repr(binding.name) in problem
    assert "letters, digits and underscores" in problem


def test_same_port_name_twice(ws: Workspace, make: Any) -> None:
    one, two = PipelineData("one"), PipelineData("two")
    make("p1", arguments=[one], outputs=[one])
    make("p2", arguments=[two], outputs=[two])
    step = make("s", inputs=[one.as_input("same"), two.as_input("same")])
    problem = only(Pipeline(ws, [step]).validate())
    assert "'same' is used twice" in problem and "as_input" in problem


def test_duplicate_parameter_definitions(ws: Workspace, make: Any) -> None:
    a = make("a", arguments=[PipelineParameter("rate", 1)])
    b = make("b", arguments=[f"--rate={PipelineParameter('rate', 2)}"])
    problem = only(Pipeline(ws, [a, b]).validate())
    assert "'rate' is defined twice" in problem and "same PipelineParameter object" in problem


def test_negative_max_retries_and_timeout(ws: Workspace, make: Any) -> None:
    problems = Pipeline(ws, [make("s", max_retries=-1, timeout_seconds=0)]).validate()
    assert len(problems) == 2, problems
    assert "max_retries must be 0 or more, not -1" in problems[0]
    assert "timeout_seconds must be positive" in problems[1]


def test_pipeline_without_steps(ws: Workspace) -> None:
    assert "no steps" in only(Pipeline(ws, []).validate())


# -- everything at once, and submit ----------------------------------------------------------
def broken_pipeline(ws: Workspace, make: Any, tmp_path: Path) -> Pipeline:
    a, b = make("a"), make("b")
    a.run_after(b)
    b.run_after(a)
    loose = PipelineData("loose")
    return Pipeline(
        ws,
        [
            a,
            b,
            make("no_script", script="missing.py"),
            make("bad_compute", compute_target="gpu-cluster"),
            make("loose_arg", arguments=[loose]),
            make("retries", max_retries=-2),
            make("no_folder", source_directory=str(tmp_path / "absent")),
            make("p1", arguments=[PipelineParameter("k", 1)]),
            make("p2", arguments=[PipelineParameter("k", "one")]),
        ],
    )


def test_every_problem_is_reported_together(ws: Workspace, make: Any, tmp_path: Path) -> None:
    problems = broken_pipeline(ws, make, tmp_path).validate()
    expected = [
        "cycle",
        "Step 'no_script': script 'missing.py'",
        "Step 'bad_compute': compute target 'gpu-cluster'",
        "Step 'loose_arg': Input loose appears in arguments list",
        "Step 'retries': max_retries",
        "Step 'no_folder': source_directory",
        "Parameter 'k' is defined twice",
    ]
    for fragment in expected:
        assert sum(fragment in p for p in problems) == 1, (fragment, problems)
    assert len(problems) == len(expected), problems


def test_submit_refuses_with_one_error_and_creates_no_run(
    ws: Workspace, make: Any, tmp_path: Path
) -> None:
    pipeline = broken_pipeline(ws, make, tmp_path)
    problems = pipeline.validate()
    with pytest.raises(PipelineValidationError) as info:
        Experiment(ws, "broken").submit(pipeline)
    assert info.value.problems == problems
    message = str(info.value)
    assert message.startswith(f"The pipeline has {len(problems)} problems; nothing was submitted")
    assert all(p in message for p in problems)
    with pytest.raises(PipelineValidationError):
        pipeline.submit("broken")
    assert isinstance(info.value, UserError)
    assert no_runs(ws)
    assert list(Experiment(ws, "broken").get_runs()) == []


# -- structure: closure, nesting, sequences --------------------------------------------------
def names(pipeline: Pipeline) -> list[str]:
    return sorted(n.name for n in pipeline.graph.nodes)


def test_closure_pulls_in_producers_and_run_after(ws: Workspace, make: Any) -> None:
    d1, d2 = PipelineData("d1"), PipelineData("d2")
    first = make("first", arguments=[d1], outputs=[d1])
    make("second", arguments=[d1, d2], inputs=[d1], outputs=[d2])
    setup = make("setup")
    last = make("last", arguments=[d2], inputs=[d2])
    first.run_after(setup)
    pipeline = Pipeline(ws, steps=[last])
    assert names(pipeline) == ["first", "last", "second", "setup"]
    graph = pipeline.graph
    by_name = {n.name: n for n in graph.nodes}
    assert set(graph.predecessors(by_name["first"].id)) == {by_name["setup"].id}
    assert set(graph.predecessors(by_name["last"].id)) == {by_name["second"].id}
    assert names(Pipeline(ws, steps=[last], resolve_closure=False)) == ["last"]
    # A PipelineData stands for its producer.
    assert names(Pipeline(ws, steps=d2)) == ["first", "second", "setup"]


def test_nested_list_equals_flat_list(ws: Workspace, make: Any) -> None:
    a, b, c = make("a"), make("b"), make("c")
    nested, flat = Pipeline(ws, [[a, b, c]]).graph, Pipeline(ws, [a, b, c]).graph
    assert nested == flat
    assert all(not n.run_after for n in nested.nodes)
    # The same step listed twice is one node.
    assert names(Pipeline(ws, [a, [a, b]])) == ["a", "b"]


def test_step_sequence_orders_steps(ws: Workspace, tmp_path: Path) -> None:
    a = shapes.step(tmp_path, "a", sleep=0.3)
    b = shapes.step(tmp_path, "b", sleep=0.3)
    c = shapes.step(tmp_path, "c")
    d = shapes.step(tmp_path, "d")
    d.run_after(c)
    pipeline = Pipeline(ws, steps=[StepSequence(steps=[[a, b], c]), d])
    graph = pipeline.graph
    ids = {n.name: n.id for n in graph.nodes}
    assert set(graph.predecessors(ids["c"])) == {ids["a"], ids["b"]}
    run = Experiment(ws, "sequence").submit(pipeline)
    assert run.wait_for_completion(show_output=False) == "Finished"
    spans = {}
    for name in "abcd":
        log = run.find_step_run(name)[0].get_stdout_log()
        m = re.search(r"start=([\d.]+) end=([\d.]+)", log)
        assert m, log
        spans[name] = (float(m.group(1)), float(m.group(2)))
    assert max(spans["a"][1], spans["b"][1]) <= spans["c"][0] <= spans["c"][1] <= spans["d"][0]


def test_pipeline_refuses_objects_that_are_not_steps(ws: Workspace, make: Any) -> None:
    with pytest.raises(NotImplementedError, match="Can not add object of type object"):
        Pipeline(ws, steps=[object()])
    with pytest.raises(NotImplementedError, match="of type str"):
        Pipeline(ws, steps=[make("a"), ["train.py"]])
    with pytest.raises(ValueError, match="no step lists it in outputs"):
        Pipeline(ws, steps=[PipelineData("nobody_makes_me")])


def test_unknown_pipeline_kwargs(ws: Workspace, make: Any) -> None:
    with pytest.raises(ValueError, match=r"unexpected keyword argument.*continue_on_failure"):
        Pipeline(ws, [make("a")], continue_on_failure=True)
    Pipeline(ws, [make("a")], enable_email_notification=False)  # the one SDK v1 accepted


def test_unknown_submit_kwargs_raise(ws: Workspace, make: Any) -> None:
    # SDK v1 silently ignored these; headrace refuses them so a typo cannot go unnoticed.
    pipeline = Pipeline(ws, [make("a")])
    with pytest.raises(UserError) as info:
        Experiment(ws, "kw").submit(pipeline, regenerate_output=True)
    assert "regenerate_output" in str(info.value)
    assert "did you mean 'regenerate_outputs'" in str(info.value)
    with pytest.raises(UserError, match="regenerate_output"):
        pipeline.submit("kw", regenerate_output=True)
    with pytest.raises(UserError, match="cannot submit a str"):
        Experiment(ws, "kw").submit("pipeline.py")
    assert no_runs(ws)
