"""Wrong arguments to the public SDK give a HeadraceError naming the argument (issue 13,
item 7), never a raw AttributeError, TypeError or database error: the cases the issue
found, then a property test that throws junk at every argument of the main constructors
and at submit, and requires either success or a HeadraceError.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from headrace import (
    CommandStep,
    DataPath,
    DataPathComputeBinding,
    DataReference,
    DataTransferStep,
    Experiment,
    HeadraceError,
    NotAStepError,
    Pipeline,
    PipelineData,
    PipelineParameter,
    PythonScriptStep,
    SqlStep,
    UserError,
    Workspace,
)
from headrace.compat.azureml.exceptions import UserErrorException


@pytest.fixture
def source(tmp_path: Path) -> Path:
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "s.py").write_text("print('ran')\n")
    return folder


def step(source: Path, **kwargs: Any) -> PythonScriptStep:
    return PythonScriptStep("s.py", name="s", source_directory=str(source), **kwargs)


# -- what the issue found ------------------------------------------------------------------
def test_pipeline_without_a_workspace_says_what_it_needs(source: Path) -> None:
    with pytest.raises(UserErrorException, match=r"Pipeline's workspace .* must be a Workspace"):
        Pipeline(None, [step(source)])  # type: ignore[arg-type]
    with pytest.raises(UserError, match="Experiment's workspace must be a Workspace"):
        Experiment(None, "e")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"max_retries": "3"}, "max_retries must be an int from 0 to 100, not '3' (str)"),
        ({"timeout_seconds": "abc"}, "timeout_seconds must be a positive number of seconds"),
        ({"allow_reuse": "no"}, "allow_reuse must be True or False, not 'no'"),
        ({"arguments": 5}, "arguments must be a list (or None), not 5 (int)"),
        ({"inputs": "data"}, "inputs must be a list (or None)"),
        ({"params": [1]}, "params must be a dict of name to value"),
        ({"resources": "x"}, "resources must be a dict like {'cpu': 2}"),
        ({"version": 5}, "version must be non-empty text or None"),
        ({"compute_target": 5}, "compute_target must be a compute target, its name, or None"),
    ],
)
def test_a_step_argument_of_the_wrong_type_is_named(
    kwargs: dict[str, Any], words: str, source: Path
) -> None:
    with pytest.raises(UserError) as info:
        step(source, **kwargs)
    assert words in str(info.value)
    assert "Step 's'" in str(info.value) or "compute_target" in str(info.value)


@pytest.mark.parametrize(
    "timeout",
    [math.nan, math.inf, -math.inf, 0, -1, 10**400],
    ids=["nan", "inf", "-inf", "0", "-1", "10**400"],
)
def test_timeouts_that_are_not_a_finite_positive_number_are_problems(
    timeout: float, ws: Workspace, source: Path
) -> None:
    problems = Pipeline(ws, [step(source, timeout_seconds=timeout)]).validate()
    assert (
        len(problems) == 1 and "timeout_seconds must be positive, a finite number" in (problems[0])
    )


@pytest.mark.parametrize(
    ("tags", "words"),
    [
        ({"k": object()}, "the value of tag 'k' is a object"),
        ("x", "tags must be a dict of tag name to value"),
    ],
)
def test_tags_are_checked_before_anything_reaches_the_database(
    tags: Any, words: str, ws: Workspace, source: Path
) -> None:
    with pytest.raises(UserError, match=words) as info:
        Experiment(ws, "e").submit(Pipeline(ws, [step(source)]), tags=tags)
    assert "SQL" not in str(info.value)
    assert ws.backend.list_pipeline_runs() == []


def test_submit_options_must_be_what_they_say(ws: Workspace, source: Path) -> None:
    pipeline = Pipeline(ws, [step(source)])
    with pytest.raises(UserError, match="continue_on_step_failure must be True or False"):
        pipeline.submit("e", continue_on_step_failure="x")
    with pytest.raises(UserError, match="regenerate_outputs must be True or False"):
        pipeline.submit("e", regenerate_outputs=1)
    with pytest.raises(UserError, match="description must be non-empty text or None"):
        Experiment(ws, "e").submit(pipeline, description=object())
    assert ws.backend.list_pipeline_runs() == []


def test_float_parameters_must_be_finite(ws: Workspace, source: Path) -> None:
    with pytest.raises(UserError, match="the default value nan is not a finite number"):
        PipelineParameter("rate", default_value=math.nan)
    rate = PipelineParameter("rate", default_value=0.5)
    pipeline = Pipeline(ws, [step(source, arguments=[rate])])
    for value in (math.inf, "nan", 1e400, 10**400):
        with pytest.raises(UserError, match="expects a finite float"):
            pipeline.submit("e", pipeline_parameters={"rate": value})
    assert ws.backend.list_pipeline_runs() == []


def test_not_a_step_is_still_the_sdk_v1_not_implemented_error(ws: Workspace) -> None:
    for junk in (5, None, "step"):
        with pytest.raises(NotImplementedError, match="Can not add object of type") as info:
            Pipeline(ws, junk)
        assert isinstance(info.value, NotAStepError) and isinstance(info.value, UserError)


def test_sql_and_transfer_steps_raise_user_errors(ws: Workspace, source: Path) -> None:
    with pytest.raises(UserError, match="SqlStep needs script_name"):
        SqlStep(script_name="", name="q", source_directory=str(source))
    with pytest.raises(UserError, match="DataTransferStep needs a name"):
        DataTransferStep(name="")


def test_no_sdk_module_raises_a_bare_value_or_type_error() -> None:
    """Every error the SDK raises on purpose is a HeadraceError (UserError is a ValueError,
    so `except ValueError` in SDK v1 code still works)."""
    sdk = Path(__file__).parent.parent / "src" / "headrace" / "sdk"
    bare = [
        f"{path.name}:{number}"
        for path in sorted(sdk.glob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "raise ValueError(" in line or "raise TypeError(" in line
    ]
    assert bare == []


# -- property: junk at every argument -------------------------------------------------------
JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.text(min_size=300, max_size=400),
    st.binary(max_size=8),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    st.builds(object),
    st.just({"k": object()}),
    st.just([[[[[]]]]]),
    st.sets(st.integers(), max_size=2),
)

STEP_ARGUMENTS = [
    "script_name", "name", "arguments", "compute_target", "inputs", "outputs", "params",
    "source_directory", "allow_reuse", "version", "max_retries", "timeout_seconds", "resources",
]  # fmt: skip


def _build(source: Path, target: str, argument: str, value: Any) -> Any:
    """The object `target` made with `argument` set to `value` (the rest valid)."""
    if target == "PythonScriptStep":
        kwargs: dict[str, Any] = {"script_name": "s.py", "name": "s", "source_directory": source}
        kwargs[argument] = value
        return PythonScriptStep(**kwargs)
    if target == "CommandStep":
        return CommandStep(command=value, name="c", source_directory=str(source))
    if target == "PipelineData":
        return PipelineData(**{"name": "d", argument: value})
    if target == "DataReference":
        return DataReference(**{"datastore": "workspaceblobstore", argument: value})
    if target == "DataPath":
        return DataPath(**{"datastore": "workspaceblobstore", argument: value})
    if target == "DataPathComputeBinding":
        return DataPathComputeBinding(**{argument: value})
    return PipelineParameter(**{"name": "p", "default_value": 1, argument: value})


TARGETS = st.one_of(
    st.tuples(st.just("PythonScriptStep"), st.sampled_from(STEP_ARGUMENTS)),
    st.tuples(st.just("CommandStep"), st.just("command")),
    st.tuples(
        st.just("PipelineData"),
        st.sampled_from(["name", "datastore", "output_name", "output_mode"]),
    ),
    st.tuples(
        st.just("DataReference"),
        st.sampled_from(
            ["data_reference_name", "path_on_datastore", "mode", "path_on_compute", "overwrite"]
        ),
    ),
    st.tuples(st.just("DataPath"), st.sampled_from(["path_on_datastore", "name"])),
    st.tuples(
        st.just("DataPathComputeBinding"),
        st.sampled_from(["mode", "path_on_compute", "overwrite"]),
    ),
    st.tuples(st.just("PipelineParameter"), st.sampled_from(["name", "default_value"])),
)


def _use(ws: Workspace, source: Path, built: Any) -> None:
    """Put a built object into a pipeline and validate it (no run is submitted)."""
    if isinstance(built, (PythonScriptStep, CommandStep)):
        pipeline = Pipeline(ws, [built])
    elif isinstance(built, PipelineData):
        producer = PythonScriptStep(
            "s.py", arguments=[built], outputs=[built], source_directory=str(source)
        )
        pipeline = Pipeline(ws, [producer])
    elif isinstance(built, (DataReference, PipelineParameter)):
        pipeline = Pipeline(ws, [step(source, arguments=[built], inputs=[])])
    else:
        return
    pipeline.validate()
    pipeline.graph.to_json()


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(target=TARGETS, value=JUNK)
def test_junk_arguments_give_a_headrace_error_or_work(
    ws: Workspace, source: Path, target: tuple[str, str], value: Any
) -> None:
    kind, argument = target
    try:
        built = _build(source, kind, argument, value)
        _use(ws, source, built)
    except HeadraceError:
        pass


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))  # fmt: skip
@given(
    option=st.sampled_from(
        [
            "experiment_name",
            "pipeline_parameters",
            "continue_on_step_failure",
            "regenerate_outputs",
            "tags",
            "description",
            "parent_run_id",
        ]
    ),
    value=JUNK,
)
def test_junk_submit_arguments_give_a_headrace_error_or_a_run(
    ws: Workspace, source: Path, option: str, value: Any
) -> None:
    pipeline = Pipeline(ws, [step(source)])
    kwargs: dict[str, Any] = {"experiment_name": "e", option: value}
    try:
        run = pipeline.submit(**kwargs)
    except HeadraceError:
        return
    assert run.id
