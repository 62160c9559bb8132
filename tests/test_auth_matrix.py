"""The auth matrix: every route of the app (API, SDK v1 submit routes, portal pages, from
`app.routes`) has an explicit decision here, and each is exercised with every kind of caller.

A new route without a decision in `DECISIONS` fails `test_every_route_has_an_auth_decision`,
so nobody adds a route without saying who may call it. The callers: no token, a malformed,
an unknown, a revoked and an expired token, a token of another workspace, each role, a portal
session cookie, and a step's run token of the run the request names and of another run. Every
request carries `?parentRunId=` and `?runId=` naming the step run, so a step's token that
slipped through on those (issue 13) would show here.

In-process (httpx's ASGI transport: no lifespan, no socket), so the ~1,300 requests take
seconds; tests/test_browser_guards.py drives a real uvicorn for what needs one.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.routing import Mount

from headrace import Experiment, PipelineEndpoint, Workspace
from headrace.cli.main import app as cli_app
from headrace.sdk.published import SUBMIT_PREFIX
from headrace.server.app import create_app
from headrace.server.auth import issue_token
from headrace.store.tokens import workspace_prefix
from headrace.store.workspace_store import WorkspaceStore
from tests import shapes
from tests.servers import RUNNER, asgi_client, make_token, run_async

ROLES = ("reader", "submitter", "admin")
RANK = {role: rank for rank, role in enumerate(ROLES)}


@dataclass(frozen=True)
class Rule:
    """Who may call a route. `role` None: anyone (public). `step`: what a step's run token
    (scoped to its step run S) may do here, None: nothing. `portal`: a portal page, which
    takes a session cookie as well as a bearer token and sends browsers to sign in."""

    role: str | None
    step: str | None = None
    portal: bool = False


PUBLIC = Rule(None)
READER, SUBMITTER, ADMIN = Rule("reader"), Rule("submitter"), Rule("admin")
# A step's token: its own run's {run_id}, ?runId= its run only, submitting with
# ?parentRunId= its run, reading or cancelling a run it submitted so.
OWN_READ, OWN_WRITE = Rule("reader", step="own"), Rule("submitter", step="own")
QUERIED_READ = Rule("reader", step="queried")
CHILD_SUBMIT = Rule("submitter", step="child-submit")
CHILD_READ, CHILD_CANCEL = Rule("reader", step="child"), Rule("submitter", step="child")
# MLflow's tracking routes: the request names the step's run (query, JSON body, ?path=).
NAMED_READ, NAMED_WRITE = Rule("reader", step="named"), Rule("submitter", step="named")
# What every run shares (the workspace's name and limits, the model registry): any step.
SHARED_READ = Rule("reader", step="any")
PAGE, PAGE_SUBMIT = Rule("reader", portal=True), Rule("submitter", portal=True)
PAGE_PUBLIC = Rule(None, portal=True)

SDK = SUBMIT_PREFIX + "/PipelineRuns"
V1 = "/api/v1"
MLFLOW = "/api/2.0/mlflow"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"

# Every route of the app, by (method, path template). Portal pages registered with `page()`
# have a JSON twin at the same path plus ".json", with the same rule (see `rule_of`).
DECISIONS: dict[tuple[str, str], Rule] = {
    # -- public
    ("GET", "/health"): PUBLIC,
    ("GET", "/"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    # -- SDK v1 submit routes
    ("POST", SDK + "/PipelineSubmit/{pipeline_id}"): CHILD_SUBMIT,
    ("POST", SDK + "/PipelineEndpointSubmit/Id/{endpoint_id}"): CHILD_SUBMIT,
    ("POST", SDK + "/PipelineEndpointSubmit/Id/{endpoint_id}/{version}"): CHILD_SUBMIT,
    ("POST", SDK + "/PipelineEndpointSubmit/Name"): CHILD_SUBMIT,
    # -- JSON API (server.routes)
    ("GET", V1 + "/published-pipelines"): READER,
    ("GET", V1 + "/published-pipelines/{pipeline_id}"): READER,
    ("GET", V1 + "/pipeline-endpoints"): READER,
    ("GET", V1 + "/runs/{run_id}"): CHILD_READ,
    ("POST", V1 + "/runs/{run_id}/cancel"): CHILD_CANCEL,
    # -- backend routes (server.api, server.api_publishing)
    ("GET", V1 + "/workspace"): SHARED_READ,
    ("GET", V1 + "/datastores"): READER,
    ("GET", V1 + "/datastores/{name}"): READER,
    ("PUT", V1 + "/datastores/{name}"): ADMIN,
    ("POST", V1 + "/datastores/{name}/default"): ADMIN,
    ("GET", V1 + "/datastores/{name}/root"): READER,
    ("GET", V1 + "/datastores/{name}/files"): READER,
    ("GET", V1 + "/datastores/{name}/files/{path:path}"): READER,
    ("PUT", V1 + "/datastores/{name}/files/{path:path}"): SUBMITTER,
    ("GET", V1 + "/compute-targets"): READER,
    ("GET", V1 + "/datasets"): READER,
    ("POST", V1 + "/datasets"): SUBMITTER,
    ("GET", V1 + "/datasets/{name}/versions"): READER,
    ("GET", V1 + "/datasets/{name}/versions/{version}"): READER,
    ("GET", V1 + "/dataset-versions/{dataset_id}"): READER,
    ("GET", V1 + "/dataset-versions/{dataset_id}/lineage"): READER,
    ("GET", V1 + "/compute-targets/{name}"): READER,
    ("PUT", V1 + "/compute-targets/{name}"): ADMIN,
    ("GET", V1 + "/compute-targets/{name}/running-steps"): READER,
    ("POST", V1 + "/snapshots/missing-blobs"): SUBMITTER,
    ("PUT", V1 + "/snapshots/blobs/{sha}"): SUBMITTER,
    ("POST", V1 + "/snapshots"): SUBMITTER,
    ("GET", V1 + "/experiments"): READER,
    ("POST", V1 + "/pipeline-runs"): SUBMITTER,
    ("GET", V1 + "/pipeline-runs"): READER,
    ("GET", V1 + "/pipeline-runs/{run_id}"): READER,
    ("POST", V1 + "/pipeline-runs/{run_id}/cancel"): SUBMITTER,
    ("POST", V1 + "/pipeline-runs/{run_id}/rerun"): SUBMITTER,
    ("GET", V1 + "/pipeline-runs/{run_id}/steps"): READER,
    ("GET", V1 + "/step-runs/{step_run_id}"): READER,
    ("GET", V1 + "/run-ids/{prefix}"): READER,
    ("GET", V1 + "/graphs/{graph_id}"): READER,
    ("GET", V1 + "/runs/{run_id}/events"): READER,
    ("GET", V1 + "/runs/{run_id}/files"): OWN_READ,
    ("GET", V1 + "/runs/{run_id}/files/{name:path}"): OWN_READ,
    ("GET", V1 + "/runs/{run_id}/content/{name:path}"): OWN_READ,
    ("PUT", V1 + "/runs/{run_id}/files/{name:path}"): OWN_WRITE,
    ("GET", V1 + "/metrics"): QUERIED_READ,
    ("POST", V1 + "/runs/{run_id}/metrics"): OWN_WRITE,
    ("POST", V1 + "/runs/{run_id}/tags"): OWN_WRITE,
    ("POST", V1 + "/published-pipelines"): SUBMITTER,
    ("PATCH", V1 + "/published-pipelines/{pipeline_id}"): SUBMITTER,
    ("POST", V1 + "/published-pipelines/{pipeline_id}/runs"): SUBMITTER,
    ("POST", V1 + "/pipeline-endpoints"): SUBMITTER,
    ("GET", V1 + "/pipeline-endpoints/by-name/{name}"): READER,
    ("GET", V1 + "/pipeline-endpoints/{endpoint_id}"): READER,
    ("POST", V1 + "/pipeline-endpoints/{endpoint_id}/versions"): SUBMITTER,
    ("POST", V1 + "/pipeline-endpoints/{endpoint_id}/default"): SUBMITTER,
    ("PATCH", V1 + "/pipeline-endpoints/{endpoint_id}"): SUBMITTER,
    # -- schedules (server.api_schedules): reading for readers, changing for submitters; a
    # step's token neither (a step does not schedule more work behind the workspace's back)
    ("GET", V1 + "/schedules"): READER,
    ("POST", V1 + "/schedules"): SUBMITTER,
    ("GET", V1 + "/schedules/{schedule_id}"): READER,
    ("PATCH", V1 + "/schedules/{schedule_id}"): SUBMITTER,
    ("GET", V1 + "/schedules/{schedule_id}/runs"): READER,
    ("GET", SUBMIT_PREFIX + "/Schedules"): READER,
    ("GET", SUBMIT_PREFIX + "/Schedules/{schedule_id}"): READER,
    # -- the model registry (server.api_models)
    ("GET", V1 + "/models"): SHARED_READ,
    ("POST", V1 + "/models"): SUBMITTER,
    ("POST", V1 + "/runs/{run_id}/models"): OWN_WRITE,
    ("GET", V1 + "/models/{name}"): SHARED_READ,
    ("GET", V1 + "/models/{name}/versions/{version}"): SHARED_READ,
    ("PATCH", V1 + "/models/{name}/versions/{version}"): SUBMITTER,
    ("DELETE", V1 + "/models/{name}/versions/{version}"): SUBMITTER,
    ("GET", V1 + "/models/{name}/versions/{version}/location"): SHARED_READ,
    ("GET", V1 + "/models/{name}/versions/{version}/files/{path:path}"): SHARED_READ,
    # -- registered environments (server.api_environments)
    ("GET", V1 + "/environments"): READER,
    ("GET", V1 + "/environments/{name}"): READER,
    ("POST", V1 + "/environments/{name}"): SUBMITTER,
    # -- notifications and run triggers (server.api_notifications): secrets and outgoing
    # requests to URLs of the caller's choosing are an admin's; triggers a submitter's
    ("GET", V1 + "/notifications"): READER,
    ("POST", V1 + "/notifications"): ADMIN,
    ("GET", V1 + "/notifications/{name}"): READER,
    ("DELETE", V1 + "/notifications/{name}"): ADMIN,
    ("POST", V1 + "/notifications/{name}/test"): ADMIN,
    ("GET", V1 + "/notification-deliveries"): READER,
    ("GET", V1 + "/run-triggers"): READER,
    ("POST", V1 + "/run-triggers"): SUBMITTER,
    ("GET", V1 + "/run-triggers/{name}"): READER,
    ("DELETE", V1 + "/run-triggers/{name}"): SUBMITTER,
    ("PATCH", V1 + "/run-triggers/{name}"): SUBMITTER,
    ("GET", V1 + "/run-trigger-firings"): READER,
    # -- MLflow's tracking API and artifact proxy (server.api_mlflow)
    ("GET", MLFLOW + "/experiments/get-by-name"): SHARED_READ,
    ("GET", MLFLOW + "/experiments/get"): SHARED_READ,
    ("POST", MLFLOW + "/experiments/search"): SHARED_READ,
    ("POST", MLFLOW + "/experiments/create"): SUBMITTER,
    ("GET", MLFLOW + "/runs/get"): NAMED_READ,
    ("GET", MLFLOW + "/metrics/get-history"): NAMED_READ,
    ("POST", MLFLOW + "/runs/search"): READER,
    ("POST", MLFLOW + "/logged-models/search"): SHARED_READ,
    ("POST", MLFLOW + "/runs/create"): SUBMITTER,
    ("POST", MLFLOW + "/runs/update"): NAMED_WRITE,
    ("POST", MLFLOW + "/runs/log-metric"): NAMED_WRITE,
    ("POST", MLFLOW + "/runs/log-parameter"): NAMED_WRITE,
    ("POST", MLFLOW + "/runs/set-tag"): NAMED_WRITE,
    ("POST", MLFLOW + "/runs/log-batch"): NAMED_WRITE,
    ("POST", MLFLOW + "/runs/log-inputs"): NAMED_WRITE,
    ("POST", MLFLOW + "/runs/outputs"): NAMED_WRITE,
    ("POST", MLFLOW + "/runs/log-model"): NAMED_WRITE,
    ("POST", MLFLOW + "/logged-models"): NAMED_WRITE,  # {"source_run_id": ...}
    ("GET", MLFLOW + "/logged-models/{model_id}"): OWN_READ,  # m-<run id>-<hex>
    ("PATCH", MLFLOW + "/logged-models/{model_id}"): OWN_WRITE,
    ("POST", MLFLOW + "/logged-models/{model_id}/params"): OWN_WRITE,
    ("PATCH", MLFLOW + "/logged-models/{model_id}/tags"): OWN_WRITE,
    ("GET", ARTIFACTS): NAMED_READ,  # ?path=<run id>/...
    ("GET", ARTIFACTS + "/{run_id}/{path:path}"): OWN_READ,
    ("PUT", ARTIFACTS + "/{run_id}/{path:path}"): OWN_WRITE,
    # -- the portal
    ("GET", "/ui/static"): PAGE_PUBLIC,  # the portal's scripts and styles
    ("GET", "/ui/login"): PAGE_PUBLIC,
    ("POST", "/ui/login"): PAGE_PUBLIC,
    ("GET", "/ui/"): PAGE_PUBLIC,  # a redirect to /ui
    ("POST", "/ui/logout"): PAGE,
    ("GET", "/ui"): PAGE,
    ("GET", "/ui/runs"): PAGE,
    ("GET", "/ui/runs/{run_id}"): PAGE,
    ("POST", "/ui/runs/{run_id}/cancel"): PAGE_SUBMIT,
    ("POST", "/ui/runs/{run_id}/rerun"): PAGE_SUBMIT,
    ("GET", "/ui/experiments"): PAGE,
    ("GET", "/ui/experiments/{name}"): PAGE,
    ("GET", "/ui/steps/{step_run_id}"): PAGE,
    ("GET", "/ui/steps/{step_run_id}/log/{stream}"): PAGE,
    ("GET", "/ui/steps/{step_run_id}/files/{name:path}"): PAGE,
    ("GET", "/ui/steps/{step_run_id}/metrics"): PAGE,  # what the live metrics pane polls
    ("GET", "/ui/runs/{run_id}/metrics"): PAGE,
    ("GET", "/ui/runs/{run_id}/files/{name:path}"): PAGE,  # a pipeline run's own files
    ("GET", "/ui/steps/{step_run_id}/preview/{name:path}"): PAGE,  # a run file in the page
    ("GET", "/ui/compare"): PAGE,
    ("GET", "/ui/pipelines"): PAGE,
    ("GET", "/ui/schedules"): PAGE,
    ("GET", "/ui/schedules/{schedule_id}"): PAGE,
    ("POST", "/ui/schedules/{schedule_id}/status"): PAGE_SUBMIT,
    ("GET", "/ui/pipelines/{pipeline_id}"): PAGE,
    ("POST", "/ui/pipelines/{pipeline_id}/submit"): PAGE_SUBMIT,
    ("GET", "/ui/endpoints"): PAGE,
    ("GET", "/ui/endpoints/{name}"): PAGE,
    ("POST", "/ui/endpoints/{name}/submit"): PAGE_SUBMIT,
    ("GET", "/ui/models"): PAGE,
    ("GET", "/ui/notifications"): PAGE,
    ("GET", "/ui/models/{name}"): PAGE,
    ("GET", "/ui/compute"): PAGE,
    ("GET", "/ui/datastores"): PAGE,
    ("GET", "/ui/datastores/{name}"): PAGE,
    ("GET", "/ui/datasets"): PAGE,
    ("GET", "/ui/datasets/{name}"): PAGE,
    ("GET", "/ui/datastores/{name}/browse/{path:path}"): PAGE,
    ("GET", "/ui/datastores/{name}/download/{path:path}"): PAGE,
    ("GET", "/ui/datastores/{name}/preview/{path:path}"): PAGE,  # a file in the page
    ("GET", "/ui/{rest:path}"): PAGE,  # unknown pages: a 404 page, for signed-in viewers
}


def app_routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of every route the app serves, HEAD left out (it follows GET)."""
    found = []
    for route in app.routes:
        if isinstance(route, Mount):
            found.append(("GET", route.path))
            continue
        for method in sorted(getattr(route, "methods", None) or ()):
            if method != "HEAD":
                found.append((method, getattr(route, "path", "")))
    return found


def rule_of(method: str, path: str) -> Rule | None:
    rule = DECISIONS.get((method, path))
    if rule is None and path.endswith(".json"):  # a page's JSON twin
        twin_of = DECISIONS.get((method, path.removesuffix(".json")))
        if twin_of is not None and twin_of.portal:
            return twin_of
    return rule


async def one_request(app: FastAPI, method: str, url: str, **options: Any) -> httpx.Response:
    async with asgi_client(app) as http:
        return await http.request(method, url, **options)


# -- the workspace the matrix runs on ------------------------------------------------------
@dataclass
class World:
    app: FastAPI
    run: str  # a finished pipeline run
    step: str  # one of its step runs (S)
    other_step: str  # another step run
    child: str  # a run submitted by S's token with ?parentRunId=S
    pipeline: str  # a published pipeline
    endpoint: str
    secrets: dict[str, str]  # caller kind -> bearer secret


@pytest.fixture
def world(ws: Workspace) -> Iterator[World]:
    root = Path(str(ws.path))
    run = Experiment(ws, "matrix").submit(shapes.linear(ws, root, n=2))
    assert run.wait_for_completion(show_output=False) == "Finished"
    step, other_step = (s.id for s in run.get_steps())
    published = run.publish_pipeline(name="matrix", description="d", version="1")
    endpoint = PipelineEndpoint.publish(ws, "matrix-endpoint", "d", published)

    tokens = {role: make_token(root, role) for role in ROLES}
    for role in ("revoked", "expired"):
        tokens[role] = make_token(root, "admin", role)
    assert RUNNER.invoke(cli_app, ["token", "revoke", "revoked", "-w", str(root)]).exit_code == 0
    store = WorkspaceStore.open(root)
    try:
        tokens["expired"], _ = issue_token(
            store.meta,
            name="really-expired",
            role="admin",
            expires_at=datetime.now(timezone.utc) - timedelta(seconds=1),
        )
        for kind, scope in (("step", step), ("other step", other_step)):
            tokens[kind], _ = issue_token(
                store.meta, name=kind, role="submitter", scope_run_id=scope
            )
        prefix = workspace_prefix(store.meta.workspace_info())
    finally:
        store.close()
    tokens["unknown"] = f"hr_{prefix}_{secrets.token_urlsafe(32)}"
    tokens["malformed"] = "not-a-token"
    tokens["other workspace"] = f"hr_000000000000_{secrets.token_urlsafe(32)}"

    app = create_app(root)
    child = run_async(
        lambda: one_request(
            app,
            "POST",
            SDK.format(subscription="s", resource_group="rg", workspace="test-ws")
            + f"/PipelineSubmit/{published.id}",
            params={"parentRunId": step},
            headers={"Authorization": f"Bearer {tokens['step']}"},
            json={"ExperimentName": "child"},
        )
    )
    assert child.status_code == 200, child.text
    yield World(
        app, str(run.id), step, other_step, child.json()["Id"], published.id, endpoint.id, tokens
    )


def concrete(world: World, method: str, path: str, rule: Rule) -> str:
    """The template with real ids where the decision depends on them, else placeholders."""
    run = {"own": world.step, "named": world.step, "child": world.child}.get(
        rule.step or "", world.run
    )
    values = {
        "subscription": "s",
        "resource_group": "rg",
        "workspace": "test-ws",
        "pipeline_id": world.pipeline,
        "endpoint_id": world.endpoint,
        "version": "0",
        "run_id": run,
        "step_run_id": world.step,
        "graph_id": "0" * 64,
        "sha": "0" * 64,
        "prefix": world.run[:8],
        "stream": "stdout",
        "name": "x",
        "path": "x.txt",
        "rest": "nowhere",
        "dataset_id": "0" * 36,
        "model_id": f"m-{run}-0000abcd",  # an MLflow logged model of the run
        "schedule_id": "0" * 36,
    }
    text = re.sub(r"\{(\w+)(:path)?\}", lambda m: values[m.group(1)], path)
    if path == "/ui/static":
        text += "/app.css"
    return text


# -- what a caller should get ----------------------------------------------------------------
ALLOWED, LOGIN, R401, R403 = "allowed", "sign-in", "401", "403"


def expected(rule: Rule, caller: str, url: str) -> str:
    if rule.role is None:
        return ALLOWED
    if caller == "nobody":  # browsers are sent to sign in, JSON twins get a 401
        return (
            LOGIN if rule.portal and not url.split("?", maxsplit=1)[0].endswith(".json") else R401
        )
    if caller == "admin session" and url == "/ui.json":
        return R401  # outside the cookie's Path=/ui: a browser does not send it there
    if caller in ("malformed", "unknown", "revoked", "expired"):
        return R401
    if caller == "other workspace":
        return R403
    if caller == "admin session":
        return ALLOWED if rule.portal else R401  # a cookie never authenticates the API
    if caller == "step":
        return ALLOWED if rule.step is not None else R403
    if caller == "other step":
        return ALLOWED if rule.step == "any" else R403
    return ALLOWED if RANK[caller] >= RANK[rule.role] else R403


def outcome(response: Any) -> str:
    if response.status_code in (401, 403):
        return str(response.status_code)
    if response.status_code == 303 and response.headers["location"].startswith("/ui/login?"):
        return LOGIN  # sent to sign in (signing out also ends at /ui/login, without a query)
    return ALLOWED


CALLERS = (
    "nobody",
    "malformed",
    "unknown",
    "revoked",
    "expired",
    "other workspace",
    *ROLES,
    "admin session",
    "step",
    "other step",
)


@dataclass
class Caller:
    """One kind of caller: its client (with a session cookie for "admin session") and the
    CSRF field its forms carry."""

    kind: str
    http: httpx.AsyncClient
    csrf: str = ""


async def caller_for(world: World, kind: str) -> Caller:
    caller = Caller(kind, asgi_client(world.app))
    if kind == "admin session":
        signed = await caller.http.post("/ui/login", data={"token": world.secrets["admin"]})
        assert signed.status_code == 303, signed.text
        page = await caller.http.get("/ui")
        match = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
        assert match is not None
        caller.csrf = match.group(1)
    return caller


async def call(caller: Caller, world: World, method: str, url: str) -> httpx.Response:
    headers = {}
    if caller.kind in world.secrets:
        headers["Authorization"] = f"Bearer {world.secrets[caller.kind]}"
    # A step's run id in the query (and JSON body) of every request: it must widen nothing.
    params = {
        "parentRunId": world.step,
        "runId": world.step,
        "run_id": world.step,  # MLflow's tracking routes
        "path": world.step,  # MLflow's artifact listing
        "name": "x",
        "upload": "0" * 32,
    }
    options: dict[str, Any] = {"params": params, "headers": headers}
    if method == "GET":
        pass
    elif url.startswith("/ui"):
        options["data"] = {"csrf": caller.csrf, "token": world.secrets["admin"]}
    elif "/files/" in url or "/blobs/" in url:
        options["content"] = b"x"
    else:
        options["json"] = {"run_id": world.step, "source_run_id": world.step}
    return await caller.http.request(method, url, **options)


# -- the tests -----------------------------------------------------------------------------
def test_every_route_has_an_auth_decision(ws: Workspace) -> None:
    app = create_app(Path(str(ws.path)))
    routes = app_routes(app)
    assert len(routes) >= 90  # the API, the SDK v1 routes and the portal (pages and twins)
    undecided = [f"{m} {p}" for m, p in routes if rule_of(m, p) is None]
    assert not undecided, (
        "routes without an auth decision: add each to DECISIONS in tests/test_auth_matrix.py "
        f"(public, a role, or what a step's run token may do): {undecided}"
    )
    stale = sorted(set(DECISIONS) - set(routes))
    assert not stale, f"decisions for routes the app no longer has: {stale}"


async def run_matrix(world: World) -> tuple[list[str], int]:
    wrong: list[str] = []
    checked = 0
    for kind in CALLERS:
        caller = await caller_for(world, kind)
        for method, path in app_routes(world.app):
            rule = rule_of(method, path)
            assert rule is not None, (method, path)
            url = concrete(world, method, path, rule)
            if method == "POST" and path in ("/ui/login", "/ui/logout"):
                # Signing in or out changes the client's session: use one of its own.
                once = await caller_for(world, kind)
                response = await call(once, world, method, url)
                await once.http.aclose()
            else:
                response = await call(caller, world, method, url)
            got, want = outcome(response), expected(rule, kind, url)
            checked += 1
            if got != want:
                wrong.append(
                    f"{kind}: {method} {url} -> {response.status_code} ({got}), expected "
                    f"{want}: {response.text[:200]}"
                )
        await caller.http.aclose()
    return wrong, checked


def test_every_route_answers_every_caller_by_its_decision(world: World) -> None:
    wrong, checked = run_async(lambda: run_matrix(world))
    assert not wrong, "\n".join(wrong)
    assert checked >= 90 * len(CALLERS)


def test_a_step_token_submits_a_child_and_reads_only_what_it_started(world: World) -> None:
    step = {"Authorization": f"Bearer {world.secrets['step']}"}
    submit = (
        SDK.format(subscription="s", resource_group="rg", workspace="test-ws")
        + f"/PipelineSubmit/{world.pipeline}"
    )

    async def scenario() -> None:
        async with asgi_client(world.app) as http:
            child = await http.get(f"{V1}/runs/{world.child}", headers=step)
            assert child.status_code == 200, child.text
            assert child.json()["tags"]["azureml.parentRunId"] == world.step
            for url in (f"{V1}/runs/{world.run}", f"{V1}/published-pipelines"):
                refused = await http.get(url, params={"parentRunId": world.step}, headers=step)
                assert refused.status_code == 403, refused.text
                assert f"limited to run {world.step}" in refused.json()["Error"]["Message"]
            # The parent recorded is the one in the query, whatever the body's tags say.
            forged = await http.post(
                submit,
                params={"parentRunId": world.step},
                headers=step,
                json={"ExperimentName": "c", "tags": {"azureml.parentRunId": world.other_step}},
            )
            assert forged.status_code == 200, forged.text
            assert forged.json()["tags"]["azureml.parentRunId"] == world.step
            unknown = await http.post(
                submit,
                params={"parentRunId": "no-such-run"},
                headers={"Authorization": f"Bearer {world.secrets['submitter']}"},
                json={"ExperimentName": "child"},
            )
            assert unknown.status_code == 404 and "no-such-run" in unknown.text

    run_async(scenario)


def test_a_token_free_app_answers_loopback_names_only(world: World, ws: Workspace) -> None:
    app = create_app(Path(str(ws.path)), auth=False)

    async def scenario() -> None:
        local, forged = asgi_client(app), asgi_client(app, "http://evil.example")
        for method, path in app_routes(app):
            rule = rule_of(method, path)
            assert rule is not None, (method, path)
            url = concrete(world, method, path, rule)
            if method == "GET":
                assert outcome(await local.get(url)) == ALLOWED, (method, url)
            refused = await forged.request(method, url)
            assert refused.status_code == 403, (method, url, refused.text)
            assert "answers only requests addressed to 127.0.0.1" in refused.text
        await local.aclose()
        await forged.aclose()

    run_async(scenario)
