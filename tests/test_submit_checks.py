"""A submit refuses what its run could only fail at (issue 13, item 8): DataPaths that leave
their datastore or name none, parameter values too long to start a process with, and JSON
bodies nested too deeply to read; each is a 400 (REST) or ParameterError (SDK) naming the
problem and the limit, and no run is created.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from headrace import (
    DataPath,
    DataPathComputeBinding,
    Experiment,
    ParameterError,
    Pipeline,
    PipelineParameter,
    PublishedPipeline,
    PythonScriptStep,
    UserError,
    Workspace,
)
from headrace.limits import ARG_STRLEN, JSON_MAX_DEPTH, arg_max
from headrace.server.limits import json_nesting_over
from tests.servers import LiveServer, bearer, make_token

SHOW = textwrap.dedent(
    """
    import os, sys
    print("argv", [len(a) for a in sys.argv[1:]])
    print("data", sorted(os.listdir(os.environ["AZUREML_DATAREFERENCE_data"])))
    """
)


@pytest.fixture
def published(ws: Workspace, tmp_path: Path) -> PublishedPipeline:
    """A published pipeline with a DataPath parameter `data` (default: folder 'raw', which
    holds one file) and a text parameter `text` passed as an argument; and, on the default
    datastore, a symbolic link `out` to a folder outside it."""
    ds = ws.get_default_datastore()
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "a.csv").write_text("a")
    ds.upload(str(tmp_path / "raw"), target_path="raw", show_progress=False)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "secret.txt").write_text("not datastore content")
    os.symlink(tmp_path / "elsewhere", Path(ds.root) / "out")
    src = tmp_path / "src"
    src.mkdir()
    (src / "show.py").write_text(SHOW)
    data = PipelineParameter("data", default_value=DataPath(ds, "raw"))
    text = PipelineParameter("text", default_value="short")
    pair = (data, DataPathComputeBinding(mode="mount"))
    step = PythonScriptStep(
        "show.py", name="show", arguments=["--text", text], inputs=[pair],
        source_directory=str(src),
    )  # fmt: skip
    return Pipeline(ws, [step]).publish(name="checks")


@pytest.fixture
def served(ws: Workspace) -> Iterator[tuple[LiveServer, str]]:
    root = Path(ws.path or "")
    token = make_token(root, "submitter")
    with LiveServer(root) as live:
        yield live, token


def refused(response: httpx.Response, *words: str) -> str:
    assert response.status_code == 400, response.text
    message: str = response.json()["Error"]["Message"]
    for word in words:
        assert word in message, message
    return message


OUTSIDE = [
    ("../../workspace.json", "contains '..'"),
    ("/etc/passwd", "is absolute"),
    ("out/secret.txt", "leads outside the datastore"),
    ("out", "leads outside the datastore"),
]


@pytest.mark.parametrize(("path", "why"), OUTSIDE, ids=[p for p, _ in OUTSIDE])
def test_rest_data_path_assignments_outside_the_datastore_are_400_and_submit_nothing(
    path: str, why: str, ws: Workspace, published: PublishedPipeline, served: tuple[Any, str]
) -> None:
    live, token = served
    body = {
        "ExperimentName": "checks",
        "DataPathAssignments": {
            "data": {"DataStoreName": "workspaceblobstore", "RelativePath": path}
        },
    }
    answer = httpx.post(live.submit_url(published.id), json=body, headers=bearer(token))
    refused(answer, "DataPath parameter 'data'", why)
    body["DataPathAssignments"] = {"data": {"DataStoreName": "nope", "RelativePath": "raw"}}
    answer = httpx.post(live.submit_url(published.id), json=body, headers=bearer(token))
    refused(answer, "No datastore named 'nope'", "known: workspaceblobstore")
    assert ws.backend.list_pipeline_runs() == []


@pytest.mark.parametrize(("path", "why"), OUTSIDE, ids=[p for p, _ in OUTSIDE])
def test_sdk_data_paths_outside_the_datastore_are_refused_at_submit(
    path: str, why: str, ws: Workspace, published: PublishedPipeline, tmp_path: Path
) -> None:
    ds = ws.get_default_datastore()
    with pytest.raises(ParameterError, match=why):
        published.submit(ws, "checks", pipeline_parameters={"data": DataPath(ds, path)})
    outside = PipelineParameter(f"elsewhere_{len(path)}", default_value=DataPath(ds, path))
    pair = (outside, DataPathComputeBinding())
    step = PythonScriptStep(
        "show.py", arguments=[pair], inputs=[pair], source_directory=str(tmp_path / "src")
    )  # fmt: skip
    with pytest.raises(ParameterError, match=why):
        Experiment(ws, "checks").submit(Pipeline(ws, [step]))
    assert ws.backend.list_pipeline_runs() == []


# -- arguments and environment ---------------------------------------------------------------
# The longest text parameter a step can start with: its environment string
# "AML_PARAMETER_text=<value>" and its NUL fit in MAX_ARG_STRLEN.
LONGEST_TEXT = ARG_STRLEN - len("AML_PARAMETER_text=") - 1


def test_the_longest_parameter_runs_and_one_byte_more_is_refused_naming_the_limit(
    ws: Workspace, published: PublishedPipeline, served: tuple[Any, str]
) -> None:
    run = published.submit(ws, "checks", pipeline_parameters={"text": "x" * LONGEST_TEXT})
    assert run.wait_for_completion(show_output=False) == "Finished"
    out = run.find_step_run("show")[0].get_stdout_log()
    assert f"argv [6, {LONGEST_TEXT}]" in out and "data ['a.csv']" in out

    message = "is 131,053 bytes long; every step gets it as the environment variable"
    with pytest.raises(ParameterError, match=message) as info:
        published.submit(ws, "checks", pipeline_parameters={"text": "x" * (LONGEST_TEXT + 1)})
    assert "MAX_ARG_STRLEN" in str(info.value)
    live, token = served
    body = {"ExperimentName": "checks", "ParameterAssignments": {"text": "y" * 200_000}}
    answer = httpx.post(live.submit_url(published.id), json=body, headers=bearer(token))
    refused(answer, "Pipeline parameter 'text' is 200,000 bytes", f"{ARG_STRLEN:,} bytes")
    assert len(ws.backend.list_pipeline_runs()) == 1


def test_an_argument_made_too_long_by_a_parameter_names_step_and_parameter(
    ws: Workspace, tmp_path: Path
) -> None:
    """Each value fits on its own, but the argument that formats it twice does not."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "s.py").write_text("print('ran')\n")
    half = PipelineParameter("half", default_value="h")
    step = PythonScriptStep(
        "s.py", name="twice", arguments=[f"--both={half}{half}"], source_directory=str(src)
    )
    value = "h" * (ARG_STRLEN // 2 + 10)
    with pytest.raises(
        ParameterError, match=r"Step 'twice': argument 1 would be 131,0\d\d bytes"
    ) as info:
        Experiment(ws, "checks").submit(Pipeline(ws, [step]), pipeline_parameters={"half": value})
    assert "once parameter 'half' is put in" in str(info.value)
    assert ws.backend.list_pipeline_runs() == []


def test_parameters_that_fit_one_by_one_but_not_together_are_refused_with_arg_max(
    ws: Workspace, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "s.py").write_text("print('ran')\n")
    count = arg_max() // 100_000 + 1
    params = [PipelineParameter(f"p{i}", default_value="v") for i in range(count)]
    step = PythonScriptStep("s.py", name="many", arguments=params, source_directory=str(src))
    values = {p.name: "v" * 100_000 for p in params}
    with pytest.raises(ParameterError, match=f"ARG_MAX {arg_max():,}"):
        Experiment(ws, "checks").submit(Pipeline(ws, [step]), pipeline_parameters=values)
    assert ws.backend.list_pipeline_runs() == []


# -- JSON ----------------------------------------------------------------------------------
def test_json_nested_200k_deep_is_400_saying_so(
    published: PublishedPipeline, served: tuple[Any, str]
) -> None:
    live, token = served
    headers = {**bearer(token), "Content-Type": "application/json"}
    for depth in (200_000, 2_000, JSON_MAX_DEPTH + 1):
        body = '{"ExperimentName": "e", "tags": {"a": ' + "[" * depth + "]" * depth + "}}"
        answer = httpx.post(live.submit_url(published.id), content=body, headers=headers)
        refused(answer, f"nested more than {JSON_MAX_DEPTH} levels deep")
    # Within the limit the body is read, and the deep tag refused for what it is.
    depth = JSON_MAX_DEPTH - 2
    body = '{"ExperimentName": "e", "tags": {"a": ' + "[" * depth + "]" * depth + "}}"
    answer = httpx.post(live.submit_url(published.id), content=body, headers=headers)
    refused(answer, "tags.a must be a text, number or true/false value")
    # Brackets inside strings are text, not nesting.
    body = '{"ExperimentName": "e", "tags": {"a": "' + "[{" * 5000 + '"}}'
    answer = httpx.post(live.submit_url(published.id), content=body, headers=headers)
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize(
    ("text", "deep"),
    [
        ("[]", False),
        ("[" * 64 + "]" * 64, False),
        ("[" * 65 + "]" * 65, True),
        ('{"a": [1, {"b": [2, [3]]}], "c": "]]]][[[["}', False),
        ('"' + "[" * 100 + '"', False),
        (r'["\"[[[[[[", {"x": "\\"}]', False),
        ("[" * 100, True),  # not JSON either, but 100 levels are open
        ("]" * 100, False),  # not JSON: left for the parser to report
    ],
)
def test_json_nesting_is_measured_outside_strings(text: str, deep: bool) -> None:
    assert json_nesting_over(text.encode()) is deep


# -- tags ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("tags", "words"),
    [
        ({"k": object()}, "the value of tag 'k' is a object"),
        ({"k": [[[]]]}, "the value of tag 'k' is a list"),
        ({"k": float("nan")}, "give a finite number"),
        ({5: "v"}, "the tag name 5 must be non-empty text"),
        ("x", "tags must be a dict of tag name to value"),
    ],
)
def test_tags_that_cannot_be_stored_are_refused_at_submit(
    tags: Any, words: str, ws: Workspace, tmp_path: Path
) -> None:
    (tmp_path / "s.py").write_text("print('ran')\n")
    step = PythonScriptStep("s.py", source_directory=str(tmp_path))
    with pytest.raises(UserError, match=words):
        Experiment(ws, "checks").submit(Pipeline(ws, [step]), tags=tags)
    assert ws.backend.list_pipeline_runs() == []


DEEP_TAG = textwrap.dedent(
    """
    from headrace.compat.azureml.core import Run
    deep = []
    for _ in range(300):
        deep = [deep]
    run = Run.get_context()
    run.tag("deep", deep)
    run.tag("flat", [1, 2, "three"])
    """
)


def test_a_tag_too_deep_to_answer_again_is_not_stored_as_given(
    ws: Workspace, tmp_path: Path, served: tuple[Any, str]
) -> None:
    """A step's deep tag is kept as a note, so the run can still be read (it answered 500
    forever before); a run's tags set through the SDK refuse it with the limit."""
    (tmp_path / "tag.py").write_text(DEEP_TAG)
    step = PythonScriptStep("tag.py", name="tag", source_directory=str(tmp_path))
    run = Experiment(ws, "tags").submit(Pipeline(ws, [step]))
    assert run.wait_for_completion(show_output=False) == "Finished"
    tags = run.find_step_run("tag")[0].get_tags()
    assert tags["flat"] == [1, 2, "three"]
    assert tags["deep"] == f"(a value nested more than {JSON_MAX_DEPTH} levels deep, not kept)"
    deep: list[Any] = []
    for _ in range(JSON_MAX_DEPTH + 1):
        deep = [deep]
    with pytest.raises(UserError, match=f"nested more than {JSON_MAX_DEPTH} levels deep"):
        run.tag("deep", deep)
    run.tag("structured", {"a": [1, {"b": 2}]})
    assert run.get_tags()["structured"] == {"a": [1, {"b": 2}]}
    live, token = served
    for path in (f"/api/v1/runs/{run.id}", f"/api/v1/pipeline-runs/{run.id}/steps"):
        answer = httpx.get(live.url + path, headers=bearer(token))
        assert answer.status_code == 200, answer.text
