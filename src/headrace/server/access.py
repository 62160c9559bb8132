"""Who may call a route: the token dependencies every token-checked route of the JSON API and
the SDK v1 submit routes declares (the portal's pages use `portal.base.current_viewer`).

Roles are ordered reader < submitter < admin. A step's run token (role submitter, scoped to
its step run S, `HEADRACE_RUN_TOKEN`) is refused everywhere except:

- `RunReader` / `RunWriter`: routes on `{run_id}` S itself (its files, metrics and tags);
- `ChildSubmitter`: the SDK v1 submit routes with `?parentRunId=S`, so a step can start a
  published pipeline or endpoint as a child of its run (the child is tagged
  `azureml.parentRunId` S);
- `ChildReader` / `ChildCanceler`: `/api/v1/runs/{run_id}` of a run whose parent is S;
- `QueriedRunReader`: `GET /api/v1/metrics?runId=S` (S alone);
- `NamedRunReader` / `NamedRunWriter`: MLflow's tracking routes, whose request names its
  run in the query or the JSON body (`run_id`, or MLflow's older `run_uuid`): S alone;
  `ArtifactLister`: MLflow's artifact listing, `?path=S/...`; `ModelReader` /
  `ModelWriter`: MLflow's logged models of S (`/logged-models/m-S-...`);
- `SharedReader`: reads of what every run of the workspace shares, whatever the run: the
  workspace's name and limits (`GET /api/v1/workspace`: `run.experiment.workspace`, the
  upload chunk size) and the model registry (a scoring step's `Model.get_model_path`
  reads models other runs registered; registering goes through `RunWriter`,
  `POST /api/v1/runs/S/models`), and MLflow's experiment reads.

Each dependency says which runs a step's token may act on; nothing else about a request (an
unrelated `?parentRunId=`, say) widens it. `tests/test_auth_matrix.py` holds the decision of
every route and exercises it.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request

from headrace.store.tokens import TokenRecord

__all__ = [
    "PARENT_TAG",
    "Admin",
    "ArtifactLister",
    "ChildCanceler",
    "ChildReader",
    "ChildSubmitter",
    "ModelReader",
    "ModelWriter",
    "NamedRunReader",
    "NamedRunWriter",
    "QueriedRunReader",
    "Reader",
    "RunReader",
    "RunWriter",
    "SharedReader",
    "Submitter",
]

# The tag that records the run a child was submitted from (SDK v1's name).
PARENT_TAG = "azureml.parentRunId"

# Whether a step's token scoped to run S (the argument) may make this request.
StepRule = Callable[[Request, str], bool]


def _state(request: Request) -> Any:
    return request.app.state.headrace


def _own_run(request: Request, scope: str) -> bool:
    return request.path_params.get("run_id") == scope


def _parent_query(request: Request, scope: str) -> bool:
    return request.query_params.get("parentRunId") == scope


def _only_queried_run(request: Request, scope: str) -> bool:
    return set(request.query_params.getlist("runId")) == {scope}


def _child_run(request: Request, scope: str) -> bool:
    run_id = request.path_params.get("run_id")
    run = _state(request).store.meta.find_pipeline_run(run_id) if run_id else None
    return run is not None and run.tags.get(PARENT_TAG) == scope


def _any_run(request: Request, scope: str) -> bool:
    return True


def _own_model(request: Request, scope: str) -> bool:
    from headrace.sdk.mlflow_models import run_of_model

    return run_of_model(str(request.path_params.get("model_id", ""))) == scope


def _listed_run(request: Request, scope: str) -> bool:
    return request.query_params.get("path", "").strip("/").split("/")[0] == scope


async def _named_runs(request: Request) -> set[str]:
    """The runs an MLflow tracking request names: `run_id` / `run_uuid` in its query and, for
    a POST, in its JSON body (read once: FastAPI reads the same cached body for the route)."""
    names = {v for key in ("run_id", "run_uuid") for v in request.query_params.getlist(key) if v}
    if request.method == "POST":
        try:
            body = await request.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            keys = ("run_id", "run_uuid", "source_run_id")
            names |= {str(body[k]) for k in keys if body.get(k)}
    return names


def allowed_named(role: str) -> Callable[[Request], Coroutine[Any, Any, TokenRecord | None]]:
    """A dependency: the request's token, allowed `role`; a step's run token only when the
    request names its run and no other (see `_named_runs`)."""

    async def check_token(request: Request) -> TokenRecord | None:
        auth = _state(request).auth
        if auth is None:
            return None
        named = await _named_runs(request)
        token: TokenRecord = auth.check(
            request.headers.get("authorization"), role, step=lambda scope: named == {scope}
        )
        return token

    return check_token


def allowed(role: str, step: StepRule | None = None) -> Callable[[Request], TokenRecord | None]:
    """A dependency: the request's token, allowed `role`; a step's run token only where
    `step` says so (None when the server runs without auth)."""

    def check_token(request: Request) -> TokenRecord | None:
        auth = _state(request).auth
        if auth is None:
            return None
        rule = None if step is None else (lambda scope: step(request, scope))
        token: TokenRecord = auth.check(request.headers.get("authorization"), role, step=rule)
        return token

    return check_token


Reader = Annotated[TokenRecord | None, Depends(allowed("reader"))]
Submitter = Annotated[TokenRecord | None, Depends(allowed("submitter"))]
Admin = Annotated[TokenRecord | None, Depends(allowed("admin"))]
RunReader = Annotated[TokenRecord | None, Depends(allowed("reader", _own_run))]
RunWriter = Annotated[TokenRecord | None, Depends(allowed("submitter", _own_run))]
QueriedRunReader = Annotated[TokenRecord | None, Depends(allowed("reader", _only_queried_run))]
ChildSubmitter = Annotated[TokenRecord | None, Depends(allowed("submitter", _parent_query))]
SharedReader = Annotated[TokenRecord | None, Depends(allowed("reader", _any_run))]
ChildReader = Annotated[TokenRecord | None, Depends(allowed("reader", _child_run))]
ChildCanceler = Annotated[TokenRecord | None, Depends(allowed("submitter", _child_run))]
NamedRunReader = Annotated[TokenRecord | None, Depends(allowed_named("reader"))]
NamedRunWriter = Annotated[TokenRecord | None, Depends(allowed_named("submitter"))]
ModelReader = Annotated[TokenRecord | None, Depends(allowed("reader", _own_model))]
ModelWriter = Annotated[TokenRecord | None, Depends(allowed("submitter", _own_model))]
ArtifactLister = Annotated[TokenRecord | None, Depends(allowed("reader", _listed_run))]
