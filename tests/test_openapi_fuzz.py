"""Schemathesis over the server's own OpenAPI document (issue 3, "Bad input"; issue 13, "Checks
to keep"): every operation, fuzzed with valid and invalid input and an admin token, answers
without a 5xx, with a body that matches the document, and every error in the one SDK v1
error shape with a message a person can act on. There is no list of known bugs: any 5xx
fails.

One pytest item per operation, so a route added to the app (or a path parameter newly
declared in its document) is fuzzed without changing this file. Besides what schemathesis
draws, a third of each operation's cases are stretched the way fuzzing rarely goes: every
path parameter a name longer than a file name may be, or a 5,000-character value, every
string in the body 200 KB. Three more tests cover what needs an exact value: an integer
beyond 64 bits in every integer query parameter (400 naming it), a JSON body nested 200,000
levels deep for every operation with a body (400 saying so), and a URL over the server's
limit (414). The app runs in-process (ASGI) on one workspace holding a published pipeline
and an endpoint, so lookups have something to find; what one operation's calls change, the
next sees. Examples are bounded (MAX_EXAMPLES per operation): the file takes about 30 s.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance

from headrace import Pipeline, PipelineEndpoint, PipelineParameter, Workspace
from headrace.limits import JSON_MAX_DEPTH, NAME_MAX_BYTES, URL_MAX_BYTES
from headrace.server.app import create_app
from headrace.store.workspace_store import WorkspaceStore
from tests import shapes
from tests.conftest import stop_agents
from tests.servers import make_token

MAX_EXAMPLES = 25

HUGE_STRING = "x" * 200_000
TOO_LONG_NAME = "n" * (NAME_MAX_BYTES + 1)
LONG_VALUE = "v" * 5000


def _stretched(case: Any) -> Any:
    """`case` with what fuzzing rarely draws: path parameters longer than a file name may be
    (or 5,000 characters), every string of the body 200 KB."""
    for index, name in enumerate(sorted(case.path_parameters or {})):
        case.path_parameters[name] = TOO_LONG_NAME if index % 2 == 0 else LONG_VALUE

    def stretch(value: Any) -> Any:
        if isinstance(value, str):
            return HUGE_STRING
        if isinstance(value, list):
            return [stretch(v) for v in value]
        if isinstance(value, dict):
            return {k: stretch(v) for k, v in value.items()}
        return value

    if isinstance(case.body, (dict, list, str)):
        case.body = stretch(case.body)
    return case


def _openapi_document() -> dict[str, Any]:
    """The app's OpenAPI document (the same for every workspace but for its title)."""
    with tempfile.TemporaryDirectory() as folder:
        WorkspaceStore.create(Path(folder) / "ws", "fuzz").database.dispose()
        app = create_app(Path(folder) / "ws")
        try:
            return app.openapi()
        finally:
            app.state.headrace.store.database.dispose()


DOCUMENT = _openapi_document()
SCHEMA = schemathesis.openapi.from_dict(DOCUMENT)
LABELS = [result.ok().label for result in SCHEMA.get_all_operations()]


def _is_integer(schema: dict[str, Any]) -> bool:
    options = schema.get("anyOf", [schema])
    return any(option.get("type") == "integer" for option in options)


# (operation label, query parameter) for every integer query parameter of the document.
INTEGER_QUERIES = [
    (f"{method.upper()} {path}", parameter["name"])
    for path, operations in DOCUMENT["paths"].items()
    for method, operation in operations.items()
    for parameter in operation.get("parameters", [])
    if parameter["in"] == "query" and _is_integer(parameter.get("schema", {}))
]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FastAPI, str]]:
    """The server of a workspace with one published pipeline and an endpoint over it, and an
    admin token; shared by the operations (what one fuzzed call changes, the next sees)."""
    root = tmp_path_factory.mktemp("fuzz")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HEADRACE_HOME", str(root / "home"))
        ws = Workspace.create("fuzz", path=root / "ws", show_output=False)
        value = PipelineParameter("value", default_value=1)
        step = shapes.step(root, "echo", extra=["--value", value])
        published = Pipeline(ws, steps=[step]).publish(name="echo")
        PipelineEndpoint.publish(ws, "echo-endpoint", "echoes", published)
        ws.close()
        token = make_token(root / "ws", "admin")
        app = create_app(root / "ws")
        yield app, token
        app.state.headrace.store.database.dispose()
        stop_agents(root / "ws")


def check_error_shape(response: Any) -> None:
    """An error is `{"Error": {"Code", "Message", "Target", "Details"}, "Correlation"}`, with a
    sentence in Message. MLflow's routes add MLflow's `error_code` and `message`, which its
    client reads."""
    if response.status_code < 400:
        return
    body = response.json()
    if "error_code" in body:
        assert isinstance(body.pop("error_code"), str) and body.pop("message"), body
    assert set(body) == {"Error", "Correlation"}, body
    error = body["Error"]
    assert set(error) == {"Code", "Message", "Target", "Details"}, body
    assert isinstance(error["Code"], str) and error["Code"], body
    assert isinstance(error["Details"], list), body
    assert body["Correlation"].get("RequestId"), body
    message = error["Message"]
    assert isinstance(message, str) and len(message) > 10, body
    assert message.rstrip().endswith((".", ")")), body
    assert "Traceback" not in message, body


@pytest.mark.parametrize("label", LABELS, ids=LABELS)
def test_operation_answers_within_its_schema(label: str, served: tuple[FastAPI, str]) -> None:
    app, admin_token = served
    operation = SCHEMA.find_operation_by_label(label)
    assert operation is not None
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
        operation.as_strategy(GenerationMode.POSITIVE).map(_stretched),
    )
    headers = {"Authorization": f"Bearer {admin_token}"}

    @given(case=cases)
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def answers(case: Any) -> None:
        note(case.as_curl_command(headers={"Authorization": "Bearer $TOKEN"}))
        response = case.call(app=app, headers=headers)
        note(f"-> {response.status_code} {response.text[:500]}")
        case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])
        check_error_shape(response)

    answers()


@pytest.mark.parametrize(
    ("label", "name"), INTEGER_QUERIES, ids=[f"{label} ?{name}" for label, name in INTEGER_QUERIES]
)
def test_integer_beyond_64_bits_is_a_client_error(
    label: str, name: str, served: tuple[FastAPI, str]
) -> None:
    """Fuzzing rarely draws integers this large; every integer query parameter gets one."""
    app, admin_token = served
    operation = SCHEMA.find_operation_by_label(label)
    assert operation is not None
    path_parameters = {
        p["name"]: "nope"
        for p in DOCUMENT["paths"][operation.path][operation.method].get("parameters", [])
        if p["in"] == "path"
    }
    case = operation.Case(path_parameters=path_parameters, query={name: 2**63})
    response = case.call(app=app, headers={"Authorization": f"Bearer {admin_token}"})
    assert response.status_code == 400, response.text
    check_error_shape(response)
    assert name in response.json()["Error"]["Message"], response.text


# Every operation that takes a JSON body.
JSON_BODIES = [
    f"{method.upper()} {path}"
    for path, operations in DOCUMENT["paths"].items()
    for method, operation in operations.items()
    if "application/json" in (operation.get("requestBody") or {}).get("content", {})
]


@pytest.mark.parametrize("label", JSON_BODIES, ids=JSON_BODIES)
def test_json_nested_200k_deep_is_a_400_saying_so(label: str, served: tuple[FastAPI, str]) -> None:
    app, admin_token = served
    operation = SCHEMA.find_operation_by_label(label)
    assert operation is not None
    # Every parameter of the path template, declared in the document or not (yet).
    path_parameters = dict.fromkeys(re.findall(r"\{(\w+)\}", operation.path), "nope")
    case = operation.Case(path_parameters=path_parameters)
    headers = {"Authorization": f"Bearer {admin_token}", "Content-Type": "application/json"}
    response = case.call(app=app, headers=headers, data="[" * 200_000 + "]" * 200_000)
    assert response.status_code == 400, response.text
    check_error_shape(response)
    assert f"nested more than {JSON_MAX_DEPTH} levels deep" in response.json()["Error"]["Message"]


def test_an_over_long_url_is_a_414(served: tuple[FastAPI, str]) -> None:
    app, admin_token = served
    operation = SCHEMA.find_operation_by_label("GET /api/v1/runs/{run_id}")
    assert operation is not None
    case = operation.Case(path_parameters={"run_id": "r" * URL_MAX_BYTES})
    response = case.call(app=app, headers={"Authorization": f"Bearer {admin_token}"})
    assert response.status_code == 414, response.text
    check_error_shape(response)
