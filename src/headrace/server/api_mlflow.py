"""MLflow's tracking REST API (`/api/2.0/mlflow/...`) and its artifact proxy
(`/api/2.0/mlflow-artifacts/artifacts/...`), the subset the `mlflow` client uses for runs,
parameters, metrics, tags and artifacts, so `mlflow.set_tracking_uri(ws.get_mlflow_tracking_uri())`
works against `headrace server` (with `MLFLOW_TRACKING_TOKEN` set to a headrace token).

The requests are answered by `sdk.mlflow_tracking.MlflowTracking` over the server's backend;
a run's artifacts are its run files (`mlflow-artifacts:/<run id>`). Errors carry MLflow's
`error_code` and `message`, which its client reads, besides the server's one error shape.
Who may call each route: `server.access` (a step's run token: requests naming its own run,
and experiment reads).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse
from fastapi.routing import APIRoute

from headrace.errors import HeadraceError, NotFoundError, UserError
from headrace.sdk.mlflow_tracking import MlflowTracking
from headrace.server.access import (
    ArtifactLister,
    ModelReader,
    ModelWriter,
    NamedRunReader,
    NamedRunWriter,
    Reader,
    RunReader,
    RunWriter,
    SharedReader,
    Submitter,
)
from headrace.server.api_base import log, state
from headrace.server.errors import ApiError, error_body, status_of
from headrace.store.datastores import clean_relative_path

__all__ = ["router"]

# HTTP status -> the error code MLflow's client shows (databricks_pb2.ErrorCode names).
_MLFLOW_CODE = {
    400: "INVALID_PARAMETER_VALUE",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "RESOURCE_DOES_NOT_EXIST",
    409: "RESOURCE_ALREADY_EXISTS",
}


def _error(status: int, code: str, message: str) -> JSONResponse:
    body = error_body(code, message)
    body.update(error_code=_MLFLOW_CODE.get(status, "INTERNAL_ERROR"), message=message)
    return JSONResponse(body, status_code=status)


class MlflowErrors(APIRoute):
    """Errors of these routes in MLflow's shape (`error_code`, `message`) and ours."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except ApiError as exc:
                return _error(exc.status, exc.code, exc.message)
            except HeadraceError as exc:
                status, code = status_of(exc)
                if status >= 500:
                    log.error("request failed: %s", exc, exc_info=exc)
                return _error(status, code, str(exc))

        return route


router = APIRouter(tags=["mlflow"], route_class=MlflowErrors)
TRACKING = "/api/2.0/mlflow"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"


def _tracking(request: Request) -> MlflowTracking:
    return MlflowTracking(state(request).backend, artifact_uri=lambda r: f"mlflow-artifacts:/{r}")


async def _answer(request: Request, endpoint: str) -> dict[str, Any]:
    if request.method == "GET":
        body: Any = dict(request.query_params)
    else:
        try:
            body = await request.json()
        except ValueError:
            raise UserError(f"MLflow request {endpoint} needs a JSON object body.") from None
    if not isinstance(body, dict):
        raise UserError(f"MLflow request {endpoint} needs a JSON object body.")
    tracking = _tracking(request)
    answer: dict[str, Any] = await run_in_threadpool(
        tracking.handle, endpoint, body, request.method
    )
    return answer


# -- experiments ---------------------------------------------------------------------------
@router.get(TRACKING + "/experiments/get-by-name")
async def get_experiment_by_name(request: Request, _token: SharedReader) -> dict[str, Any]:
    return await _answer(request, "experiments/get-by-name")


@router.get(TRACKING + "/experiments/get")
async def get_experiment(request: Request, _token: SharedReader) -> dict[str, Any]:
    return await _answer(request, "experiments/get")


@router.post(TRACKING + "/experiments/search")
async def search_experiments(request: Request, _token: SharedReader) -> dict[str, Any]:
    return await _answer(request, "experiments/search")


@router.post(TRACKING + "/experiments/create")
async def create_experiment(request: Request, _token: Submitter) -> dict[str, Any]:
    return await _answer(request, "experiments/create")


# -- runs ----------------------------------------------------------------------------------
@router.get(TRACKING + "/runs/get")
async def get_run(request: Request, _token: NamedRunReader) -> dict[str, Any]:
    return await _answer(request, "runs/get")


@router.get(TRACKING + "/metrics/get-history")
async def get_metric_history(request: Request, _token: NamedRunReader) -> dict[str, Any]:
    return await _answer(request, "metrics/get-history")


@router.post(TRACKING + "/runs/search")
async def search_runs(request: Request, _token: Reader) -> dict[str, Any]:
    return await _answer(request, "runs/search")


@router.post(TRACKING + "/logged-models/search")
async def search_logged_models(request: Request, _token: SharedReader) -> dict[str, Any]:
    return await _answer(request, "logged-models/search")


@router.post(TRACKING + "/runs/create")
async def create_run(request: Request, _token: Submitter) -> dict[str, Any]:
    return await _answer(request, "runs/create")


@router.post(TRACKING + "/runs/update")
async def update_run(request: Request, _token: NamedRunWriter) -> dict[str, Any]:
    return await _answer(request, "runs/update")


@router.post(TRACKING + "/runs/log-metric")
async def log_metric(request: Request, _token: NamedRunWriter) -> dict[str, Any]:
    return await _answer(request, "runs/log-metric")


@router.post(TRACKING + "/runs/log-parameter")
async def log_parameter(request: Request, _token: NamedRunWriter) -> dict[str, Any]:
    return await _answer(request, "runs/log-parameter")


@router.post(TRACKING + "/runs/set-tag")
async def set_tag(request: Request, _token: NamedRunWriter) -> dict[str, Any]:
    return await _answer(request, "runs/set-tag")


@router.post(TRACKING + "/runs/log-batch")
async def log_batch(request: Request, _token: NamedRunWriter) -> dict[str, Any]:
    return await _answer(request, "runs/log-batch")


@router.post(TRACKING + "/runs/log-inputs")
async def log_inputs(request: Request, _token: NamedRunWriter) -> dict[str, Any]:
    return await _answer(request, "runs/log-inputs")


@router.post(TRACKING + "/runs/outputs")
async def log_outputs(request: Request, _token: NamedRunWriter) -> dict[str, Any]:
    return await _answer(request, "runs/outputs")


@router.post(TRACKING + "/runs/log-model")
async def log_model(request: Request, _token: NamedRunWriter) -> dict[str, Any]:
    return await _answer(request, "runs/log-model")


# -- logged models (MLflow 3): kept with the run that logged them --------------------------
@router.post(TRACKING + "/logged-models")
async def create_logged_model(request: Request, _token: NamedRunWriter) -> dict[str, Any]:
    return await _answer(request, "logged-models")


@router.get(TRACKING + "/logged-models/{model_id}")
async def get_logged_model(request: Request, model_id: str, _token: ModelReader) -> dict[str, Any]:
    return await _answer(request, f"logged-models/{model_id}")


@router.patch(TRACKING + "/logged-models/{model_id}")
async def finalize_logged_model(
    request: Request, model_id: str, _token: ModelWriter
) -> dict[str, Any]:
    return await _answer(request, f"logged-models/{model_id}")


@router.post(TRACKING + "/logged-models/{model_id}/params")
async def log_logged_model_params(
    request: Request, model_id: str, _token: ModelWriter
) -> dict[str, Any]:
    return await _answer(request, f"logged-models/{model_id}/params")


@router.patch(TRACKING + "/logged-models/{model_id}/tags")
async def set_logged_model_tags(
    request: Request, model_id: str, _token: ModelWriter
) -> dict[str, Any]:
    return await _answer(request, f"logged-models/{model_id}/tags")


# -- artifacts: a run's files ----------------------------------------------------------------
def _run_files(request: Request, run_id: str) -> list[tuple[str, int]]:
    backend = state(request).backend
    files = [(f.name, f.size) for f in backend.list_run_files(run_id)]
    if not files and backend.find_step_run(run_id) is None:
        backend.get_pipeline_run(run_id)  # RunNotFoundError names it
    return files


@router.get(ARTIFACTS)
def list_artifacts(request: Request, _token: ArtifactLister, path: str = "") -> dict[str, Any]:
    """The entries of one folder of a run's artifacts (`?path=<run id>/<folder>`)."""
    run_id, _, folder = path.strip("/").partition("/")
    if not run_id:
        raise UserError("List artifacts with ?path=<run id>[/<folder>].")
    folder = clean_relative_path(folder, what="artifact folder") if folder else ""
    prefix = folder + "/" if folder else ""
    entries: dict[str, dict[str, Any]] = {}
    for name, size in _run_files(request, run_id):
        if not name.startswith(prefix):
            continue
        first, below, _rest = name[len(prefix) :].partition("/")
        if below:
            entries.setdefault(first, {"path": first, "is_dir": True})
        else:
            entries[first] = {"path": first, "is_dir": False, "file_size": size}
    return {"files": sorted(entries.values(), key=lambda e: str(e["path"]))}


@router.get(ARTIFACTS + "/{run_id}/{path:path}")
def download_artifact(request: Request, run_id: str, path: str, _token: RunReader) -> Response:
    found = state(request).store.artifacts.file_path(run_id, path)
    if not found.is_file():
        raise NotFoundError(f"Run {run_id} has no artifact {path!r}.")
    return FileResponse(found)


@router.put(ARTIFACTS + "/{run_id}/{path:path}")
async def upload_artifact(
    request: Request, run_id: str, path: str, _token: RunWriter
) -> dict[str, Any]:
    """One artifact file (MLflow sends each file in one PUT, within the body limit)."""
    served = state(request)
    served.store.artifacts.file_path(run_id, path)  # refuse a bad name before taking bytes
    if clean_relative_path(path, what="artifact path").split("/")[0] == ".headrace":
        raise UserError("Artifact paths under .headrace/ are headrace's own; choose another.")
    await run_in_threadpool(_run_files, request, run_id)
    uploads = Path(served.store.root) / "uploads"
    uploads.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=uploads) as scratch:
        staged = Path(scratch) / "artifact"
        with staged.open("wb") as fh:
            async for data in request.stream():
                fh.write(data)
        await run_in_threadpool(served.backend.upload_run_file, run_id, path, staged)
    return {}
