"""The /api/v1 routes `RemoteBackend` speaks: one route per `Backend` method not served by
`server.routes`, in the wire format of `backend.wire`.

Roles: reader for reads, submitter for submits, uploads, cancels and logging, admin for
registering datastores and compute targets (`server.access`). A step's run token is
accepted only on its own run's metric, file and tag routes. Errors carry the exception's class
name as a detail, so the client raises the same class the local backend would (the shared
pieces are in `server.api_base`; published pipelines and endpoints in
`server.api_publishing`, the model registry in `server.api_models`).

Files travel in chunks no larger than the server's body limit: the client picks an upload id
and sends `?upload=<id>&offset=<n>` chunks, the last with `final=true`; only then is the file
written where it belongs (a datastore path, a run file, a snapshot blob).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.background import BackgroundTask

from headrace.backend.wire import manifest_id, submission_to_wire, to_wire
from headrace.errors import ConflictError, DatastoreNotFoundError, NotFoundError, UserError
from headrace.server import (
    api_datasets,
    api_environments,
    api_models,
    api_notifications,
    api_publishing,
    api_schedules,
)
from headrace.server.access import (
    Admin,
    QueriedRunReader,
    Reader,
    RunReader,
    RunWriter,
    SharedReader,
    Submitter,
)
from headrace.server.api_base import ClassNamedErrors, parse_graph, state
from headrace.store.datastores import clean_relative_path
from headrace.store.records import NOTIFY_PROPERTY, MetricRecord

__all__ = ["router"]

# Offsets and counts beyond this are refused (400) before they reach the database or a seek.
MAX_INT = 2**62
_UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
_SHA = re.compile(r"^[0-9a-f]{64}$")
_DATASTORE_NAME = re.compile(r"^[A-Za-z0-9_]{1,255}$")


router = APIRouter(prefix="/api/v1", tags=["backend"], route_class=ClassNamedErrors)


# -- uploads -------------------------------------------------------------------------------
class Chunk(BaseModel):
    upload: str
    offset: int
    final: bool


def _chunk(
    upload: Annotated[str, Query(description="32 hex digits chosen by the client.")],
    offset: Annotated[int, Query(ge=0, le=MAX_INT)] = 0,
    final: bool = True,
) -> Chunk:
    if not _UPLOAD_ID.match(upload):
        raise UserError(f"upload={upload!r} must be 32 lowercase hex digits (a uuid4().hex).")
    return Chunk(upload=upload, offset=offset, final=final)


ChunkQuery = Annotated[Chunk, Depends(_chunk)]


ABANDONED_UPLOAD_SECONDS = 24 * 3600


def _forget_abandoned(folder: Path) -> None:
    """Remove uploads nobody has added to for a day (a client that died mid-file)."""
    cutoff = time.time() - ABANDONED_UPLOAD_SECONDS
    for partial in folder.iterdir():
        with contextlib.suppress(OSError):
            if partial.stat().st_mtime < cutoff:
                partial.unlink()


async def _receive(request: Request, chunk: Chunk) -> Path | None:
    """Append the body to the upload's partial file; its path once the last chunk is in."""
    folder = Path(state(request).store.root) / "uploads"
    folder.mkdir(exist_ok=True)
    if chunk.offset == 0:
        _forget_abandoned(folder)
    partial = folder / chunk.upload
    size = partial.stat().st_size if partial.exists() else 0
    if size != chunk.offset:
        raise ConflictError(
            f"Upload {chunk.upload} has {size} bytes, but this chunk starts at {chunk.offset}; "
            "send the chunks in order (or start again with a new upload id)."
        )
    with partial.open("ab") as fh:
        async for data in request.stream():
            fh.write(data)
    return partial if chunk.final else None


# -- workspace, datastores, compute ----------------------------------------------------------
@router.get("/workspace")
def workspace_info(request: Request, _token: SharedReader) -> dict[str, Any]:
    """The workspace's name and settings, and the server's body limit (chunk size)."""
    served = state(request)
    info = dict(served.backend.workspace_info())
    info["max_body_bytes"] = served.max_body_bytes
    return info


class DatastoreBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: str = Field(min_length=1)
    config: dict[str, Any] = Field(default_factory=dict)
    overwrite: bool = False


@router.get("/datastores")
def list_datastores(request: Request, _token: Reader) -> list[dict[str, Any]]:
    return [to_wire(d) for d in state(request).backend.list_datastores()]


@router.get("/datastores/{name}")
def get_datastore(request: Request, name: str, _token: Reader) -> dict[str, Any]:
    record = state(request).backend.find_datastore(name)
    if record is None:
        raise DatastoreNotFoundError(f"No datastore named {name!r}.")
    return to_wire(record)


@router.put("/datastores/{name}")
def register_datastore(
    request: Request, name: str, body: DatastoreBody, _token: Admin
) -> dict[str, Any]:
    if not _DATASTORE_NAME.match(name):
        raise UserError(
            f"Datastore name {name!r} is invalid: use 1-255 letters, digits and underscores, "
            "for example 'raw_data'."
        )
    folder = body.config.get("path")
    if body.type != "local" or not isinstance(folder, str) or not folder.strip():
        raise UserError(
            f'A datastore needs type \'local\' and a config {{"path": "<folder on the '
            f'server>"}}; got type {body.type!r} and config keys {sorted(body.config)}.'
        )
    backend = state(request).backend
    record = backend.register_datastore(name, body.type, body.config, overwrite=body.overwrite)
    return to_wire(record)


@router.post("/datastores/{name}/default")
def set_default_datastore(request: Request, name: str, _token: Admin) -> dict[str, Any]:
    state(request).backend.set_default_datastore(name)
    return {"default": name}


@router.get("/datastores/{name}/root")
def datastore_root(request: Request, name: str, _token: Reader) -> dict[str, Any]:
    return {"root": state(request).backend.datastore_root(name)}


@router.get("/datastores/{name}/files")
def list_datastore_files(
    request: Request, name: str, _token: Reader, prefix: str = ""
) -> list[list[Any]]:
    files = state(request).backend.list_datastore_files(name, prefix)
    return [[path, size] for path, size in files]


@router.get("/datastores/{name}/files/{path:path}")
def download_datastore_file(request: Request, name: str, path: str, _token: Reader) -> Response:
    """One file's bytes, streamed."""
    files = state(request).store.datastore_files(name)
    rel = clean_relative_path(path)
    if files.is_local:
        source = files.local_path(rel)
        if not source.is_file():
            raise NotFoundError(f"No file {path!r} on datastore {name!r}.")
        return FileResponse(source)
    scratch = Path(tempfile.mkdtemp(prefix="headrace-download-"))
    files.download_file(rel, scratch / "file")
    return FileResponse(
        scratch / "file", background=BackgroundTask(shutil.rmtree, scratch, ignore_errors=True)
    )


@router.put("/datastores/{name}/files/{path:path}")
async def upload_datastore_file(
    request: Request,
    name: str,
    path: str,
    _token: Submitter,
    chunk: ChunkQuery,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Upload one file in chunks; the last chunk writes it (unless it exists, `overwrite`)."""
    served = state(request)
    rel = clean_relative_path(path, what="target path")
    if not rel:
        raise UserError("A datastore file upload needs a file path after /files/.")
    if chunk.offset == 0:  # refuse a bad target before taking any bytes
        await run_in_threadpool(served.store.datastore_files, name)
    partial = await _receive(request, chunk)
    if partial is None:
        return {"received": True}
    try:
        [(written, uploaded)] = await run_in_threadpool(
            served.backend.upload_files,
            name,
            [(partial, rel)],
            overwrite=overwrite,
            show_progress=False,
        )
    finally:
        partial.unlink(missing_ok=True)
    return {"path": written, "uploaded": uploaded}


class ComputeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: str = Field(min_length=1)
    config: dict[str, Any] = Field(default_factory=dict)


@router.get("/compute-targets")
def list_compute_targets(request: Request, _token: Reader) -> list[dict[str, Any]]:
    return [to_wire(c) for c in state(request).backend.list_compute_targets()]


@router.get("/compute-targets/{name}")
def get_compute_target(request: Request, name: str, _token: Reader) -> dict[str, Any]:
    record = state(request).backend.find_compute_target(name)
    if record is None:
        raise NotFoundError(f"No compute target named {name!r}.")
    return to_wire(record)


@router.put("/compute-targets/{name}")
def create_compute_target(
    request: Request, name: str, body: ComputeBody, _token: Admin
) -> dict[str, Any]:
    return to_wire(state(request).backend.create_compute_target(name, body.type, body.config))


@router.get("/compute-targets/{name}/running-steps")
def running_steps(request: Request, name: str, _token: Reader) -> dict[str, Any]:
    return {"running": state(request).backend.running_steps(name)}


# -- snapshots -------------------------------------------------------------------------------
class BlobQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    shas: list[str]


@router.post("/snapshots/missing-blobs")
def missing_blobs(request: Request, body: BlobQuery, _token: Submitter) -> dict[str, Any]:
    """Which of these content hashes the server lacks (upload only those)."""
    artifacts = state(request).store.artifacts
    return {"missing": [sha for sha in dict.fromkeys(body.shas) if not artifacts.has_blob(sha)]}


@router.put("/snapshots/blobs/{sha}")
async def upload_blob(
    request: Request, sha: str, _token: Submitter, chunk: ChunkQuery
) -> dict[str, Any]:
    """One source file, named by its sha256 (checked before it is kept)."""
    if not _SHA.match(sha):
        raise UserError(f"{sha!r} is not a sha256 content hash (64 lowercase hex digits).")
    partial = await _receive(request, chunk)
    if partial is None:
        return {"received": True}
    try:
        digest = await run_in_threadpool(_sha256, partial)
        if digest != sha:
            raise UserError(f"The uploaded blob hashes to {digest}, not {sha}; send it again.")
        await run_in_threadpool(state(request).store.artifacts.put_blob, sha, partial)
    finally:
        partial.unlink(missing_ok=True)
    return {"sha": sha}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ManifestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    files: dict[str, dict[str, Any]]


@router.post("/snapshots")
def create_snapshot(request: Request, body: ManifestBody, _token: Submitter) -> dict[str, Any]:
    """Record a snapshot manifest whose blobs are all on the server; returns its id."""
    artifacts = state(request).store.artifacts
    missing = sorted(
        rel for rel, entry in body.files.items() if not artifacts.has_blob(str(entry.get("sha")))
    )
    if missing:
        raise UserError(
            f"The snapshot names files whose contents were not uploaded: {', '.join(missing[:5])}"
            "; upload their blobs first (PUT /api/v1/snapshots/blobs/{sha})."
        )
    for rel in body.files:
        clean_relative_path(rel, what="snapshot file name")
    manifest = {"files": body.files}
    snapshot_id = manifest_id(manifest)
    artifacts.write_manifest(snapshot_id, manifest)
    return {"id": snapshot_id}


# -- runs ------------------------------------------------------------------------------------
class SubmitBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    graph: dict[str, Any]
    experiment_name: str = Field(min_length=1, max_length=255)
    parameters: dict[str, Any] | None = None
    tags: dict[str, Any] | None = None
    description: str | None = None
    continue_on_step_failure: bool = False
    regenerate_outputs: bool = False
    run_source: str = Field("SDK", max_length=64)
    # enable_email_notification=True: notifications added with on_request=True tell about it
    enable_notification: bool = False


@router.get("/experiments")
def list_experiments(request: Request, _token: Reader) -> list[dict[str, Any]]:
    return [
        {"experiment": to_wire(e), "runs": count}
        for e, count in state(request).backend.list_experiments()
    ]


@router.post("/pipeline-runs")
def submit(request: Request, body: SubmitBody, _token: Submitter) -> dict[str, Any]:
    """Queue a run of a pipeline graph (its snapshots uploaded first)."""
    submission = state(request).backend.submit(
        parse_graph(body.graph),
        experiment_name=body.experiment_name,
        parameters=body.parameters,
        tags=body.tags,
        description=body.description,
        continue_on_step_failure=body.continue_on_step_failure,
        regenerate_outputs=body.regenerate_outputs,
        run_source=body.run_source,
        properties={NOTIFY_PROPERTY: "true"} if body.enable_notification else None,
    )
    return submission_to_wire(submission)


@router.get("/pipeline-runs")
def list_pipeline_runs(
    request: Request,
    _token: Reader,
    experiment: str | None = None,
    status: Annotated[list[str] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_INT)] = 0,
) -> list[dict[str, Any]]:
    runs = state(request).backend.list_pipeline_runs(
        experiment_name=experiment, statuses=status, limit=limit, offset=offset
    )
    return [to_wire(r) for r in runs]


@router.get("/pipeline-runs/{run_id}")
def get_pipeline_run(request: Request, run_id: str, _token: Reader) -> dict[str, Any]:
    return to_wire(state(request).backend.get_pipeline_run(run_id))


@router.post("/pipeline-runs/{run_id}/cancel")
def cancel_run(request: Request, run_id: str, _token: Submitter) -> dict[str, Any]:
    return to_wire(state(request).backend.cancel_run(run_id))


class RerunBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    parameters: dict[str, Any] | None = None
    from_failed: bool = False
    run_source: str = Field("SDK", max_length=64)


@router.post("/pipeline-runs/{run_id}/rerun")
def rerun(request: Request, run_id: str, body: RerunBody, _token: Submitter) -> dict[str, Any]:
    """Queue a new run of this run's graph: finished steps reused, failed ones run."""
    submission = state(request).backend.rerun(
        run_id,
        parameters=body.parameters,
        from_failed=body.from_failed,
        run_source=body.run_source,
    )
    return submission_to_wire(submission)


@router.get("/pipeline-runs/{run_id}/steps")
def list_step_runs(request: Request, run_id: str, _token: Reader) -> list[dict[str, Any]]:
    backend = state(request).backend
    steps = backend.list_step_runs(run_id)
    if not steps:
        backend.get_pipeline_run(run_id)  # 404 for an unknown run, not an empty list
    return [to_wire(s) for s in steps]


def _known_run(request: Request, run_id: str, answer: Any) -> Any:
    """`answer`, unless it is empty and `run_id` names no step run or pipeline run: then 404
    (lists of an unknown run are not empty lists). Only an empty answer costs the lookup:
    log polling reads these routes several times a second."""
    if not answer:
        backend = state(request).backend
        if backend.find_step_run(run_id) is None:
            backend.get_pipeline_run(run_id)
    return answer


@router.get("/step-runs/{step_run_id}")
def get_step_run(request: Request, step_run_id: str, _token: Reader) -> dict[str, Any]:
    return to_wire(state(request).backend.get_step_run(step_run_id))


@router.get("/run-ids/{prefix}")
def resolve_run_id(request: Request, prefix: str, _token: Reader) -> dict[str, Any]:
    return {"id": state(request).backend.resolve_run_id(prefix)}


@router.get("/graphs/{graph_id}")
def get_graph(request: Request, graph_id: str, _token: Reader) -> dict[str, Any]:
    graph: dict[str, Any] = state(request).backend.get_graph(graph_id).to_dict()
    return graph


@router.get("/runs/{run_id}/events")
def list_events(
    request: Request,
    run_id: str,
    _token: Reader,
    after: Annotated[int, Query(ge=0, le=MAX_INT)] = 0,
) -> list[dict[str, Any]]:
    events = _known_run(request, run_id, state(request).backend.list_events(run_id, after))
    return [to_wire(e) for e in events]


# -- run files, metrics, tags (a step's own token may use these on its run) -----------------
@router.get("/runs/{run_id}/files")
def list_run_files(request: Request, run_id: str, _token: RunReader) -> list[dict[str, Any]]:
    files = _known_run(request, run_id, state(request).backend.list_run_files(run_id))
    return [to_wire(f) for f in files]


@router.get("/runs/{run_id}/files/{name:path}")
def download_run_file(request: Request, run_id: str, name: str, _token: RunReader) -> Response:
    """A run file, streamed (404 if the run has no such file)."""
    path = state(request).store.artifacts.file_path(run_id, name)
    if not path.is_file():
        raise NotFoundError(f"The run {run_id} has no file {name!r}.")
    return FileResponse(path)


@router.get("/runs/{run_id}/content/{name:path}")
def read_run_file(
    request: Request,
    run_id: str,
    name: str,
    _token: RunReader,
    offset: Annotated[int, Query(ge=0, le=MAX_INT)] = 0,
    limit: Annotated[int | None, Query(ge=0, le=MAX_INT)] = None,
) -> Response:
    """Bytes of a run file from `offset` (empty while it does not exist yet): log polling."""
    data = _known_run(
        request, run_id, state(request).backend.read_run_file(run_id, name, offset, limit)
    )
    return Response(bytes(data), media_type="application/octet-stream")


@router.put("/runs/{run_id}/files/{name:path}")
async def upload_run_file(
    request: Request, run_id: str, name: str, _token: RunWriter, chunk: ChunkQuery
) -> dict[str, Any]:
    served = state(request)
    served.store.artifacts.file_path(run_id, name)  # refuse a bad name before taking bytes
    partial = await _receive(request, chunk)
    if partial is None:
        return {"received": True}
    try:
        await run_in_threadpool(served.backend.upload_run_file, run_id, name, partial)
    finally:
        partial.unlink(missing_ok=True)
    return {"name": name}


class MetricBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=255)
    kind: Literal["scalar", "list", "row", "table", "image"]
    value: Any = None
    step: int | None = Field(None, ge=0, le=2**62)
    description: str | None = None


@router.get("/metrics")
def list_metrics(
    request: Request,
    _token: QueriedRunReader,
    run_id: Annotated[list[str] | None, Query(alias="runId")] = None,
) -> list[dict[str, Any]]:
    """Metrics of the given runs (a step's own token: only its run)."""
    return [to_wire(m) for m in state(request).backend.list_metrics(run_id or [])]


@router.post("/runs/{run_id}/metrics")
def log_metrics(
    request: Request, run_id: str, body: list[MetricBody], _token: RunWriter
) -> dict[str, Any]:
    backend = state(request).backend
    if backend.find_step_run(run_id) is None:
        backend.get_pipeline_run(run_id)  # neither a step run nor a pipeline run: 404
    records = [MetricRecord(run_id, m.name, m.kind, m.value, m.step, m.description) for m in body]
    backend.log_metrics(records)
    return {"logged": len(records)}


@router.post("/runs/{run_id}/tags")
def tag_run(
    request: Request, run_id: str, body: dict[str, Any], _token: RunWriter
) -> dict[str, Any]:
    state(request).backend.tag_run(run_id, body)
    return {"tagged": len(body)}


# Listed route by route (not an included router, which FastAPI resolves lazily), so
# `app.routes` holds every route and the auth matrix walks them all.
router.routes.extend(api_publishing.router.routes)
router.routes.extend(api_datasets.router.routes)
router.routes.extend(api_models.router.routes)
router.routes.extend(api_environments.router.routes)
router.routes.extend(api_notifications.router.routes)
router.routes.extend(api_schedules.router.routes)
router.routes.extend(api_schedules.v1_router.routes)
