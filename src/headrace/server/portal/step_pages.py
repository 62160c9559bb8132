"""A step run's page: what ran and why, its data, logs (tailing live), metrics and files.

A reused step shows what the run it reused printed, logged and wrote (as the SDK's StepRun
does): logs, metrics and files are read from `data_run_id`. The records come in one read
transaction (`store.run_views`): the step run with its pipeline run, the graph (unless cached
here), the run's step runs (to place inputs made by other steps) and the metrics (their
pane, and what it polls while the step runs, are in `metrics`). Run files are read through
the artifact store, whose own checks refuse names that leave the run's folder.

`graph_of` (parsed graphs by id, shared with the run page) lives here too.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request, Response
from fastapi.responses import FileResponse, JSONResponse

from headrace.engine.environments import describe_environment
from headrace.engine.graphs import cached_graphs, graph_from_store
from headrace.graph.model import Graph, StepNode
from headrace.kinds import settings_text, step_title
from headrace.kinds.parallel.progress import progress_view
from headrace.server.portal.base import PortalError, ViewerDep, page, render, router, state
from headrace.server.portal.metrics import metric_groups
from headrace.server.portal.previews import PreviewSource, preview_page
from headrace.server.portal.shapes import seconds_between
from headrace.store.artifacts import STDERR_LOG, STDOUT_LOG
from headrace.store.records import (
    TERMINAL_STATUSES,
    MetricRecord,
    PipelineRunRecord,
    StepRunRecord,
)
from headrace.store.run_views import read_step_view
from headrace.store.steplogs import COMBINED_LOG, split_line

__all__ = ["LOG_TAIL_BYTES", "graph_of", "known_graphs"]

LOG_TAIL_BYTES = 64 * 1024  # shown at first load
LOG_CHUNK_BYTES = 256 * 1024  # most a poll of the log route returns
OUTPUT_FILES_SHOWN = 50
# "log": the combined log (stdout and stderr in order, store/steplogs.py), shown first.
LOGS = {"log": COMBINED_LOG, "stdout": STDOUT_LOG, "stderr": STDERR_LOG}
LOG_TITLES = {"log": "stdout and stderr, in order", "stdout": "stdout", "stderr": "stderr"}


def known_graphs() -> Mapping[str, Graph]:
    """The graphs this process holds (engine/graphs.py): the pages pass their ids to the
    store, which then skips reading those graphs."""
    return cached_graphs()


def graph_of(request: Request, graph_id: str, raw: dict[str, Any] | None) -> Graph:
    """The graph `graph_id`: held, else parsed from `raw` (what the store read)."""
    graph = cached_graphs().get(graph_id)
    if graph is not None:
        return graph
    if raw is None:  # dropped from the cache since the store was asked: read it again
        found: Graph = state(request).backend.get_graph(graph_id)
        return found
    return graph_from_store(graph_id, raw)


def _no_step(step_run_id: str) -> PortalError:
    return PortalError(
        404,
        f"There is no step run {step_run_id!r} in this workspace; open its pipeline run "
        "from /ui/runs and follow the step's link.",
    )


def find_step(request: Request, step_run_id: str) -> StepRunRecord:
    record: StepRunRecord | None = state(request).backend.find_step_run(step_run_id)
    if record is None:
        raise _no_step(step_run_id)
    return record


def _browse_url(datastore: str | None, path: str | None) -> str | None:
    if not datastore:
        return None
    return f"/ui/datastores/{datastore}/browse/{(path or '').strip('/')}"


def _inputs(
    node: StepNode,
    graph: Graph,
    run: PipelineRunRecord,
    siblings: dict[str, StepRunRecord],
) -> list[dict[str, Any]]:
    """Where each input of `node` was read from (as the engine's planning places it)."""
    default = graph.default_datastore
    found = []
    for binding in node.inputs:
        data = graph.data_node(binding.data)
        producer_url = None
        if data.kind == "pipeline_data":
            produced = siblings.get(data.producer or "")
            recorded = (produced.outputs if produced else {}).get(data.output_name or data.name)
            recorded = recorded or {}
            datastore = recorded.get("datastore") or data.datastore or default
            path = recorded.get("path")
            producer_url = f"/ui/steps/{produced.id}" if produced else None
        elif data.kind == "datapath_parameter":
            value = run.parameters.get(data.parameter or "")
            if not isinstance(value, dict):
                try:
                    value = graph.parameter(data.parameter or "").default
                except KeyError:
                    value = None
            value = value if isinstance(value, dict) else {}
            datastore = value.get("datastore") or default
            path = value.get("path")
        else:
            datastore = data.datastore or default
            path = data.path_on_datastore
        found.append(
            {
                "port": binding.port,
                "name": data.name,
                "kind": data.kind,
                "mode": binding.mode,
                "datastore": datastore,
                "path": path,
                "browse_url": _browse_url(datastore, path) if path is not None else None,
                "producer_url": producer_url,
            }
        )
    return found


def _outputs(request: Request, step: StepRunRecord) -> list[dict[str, Any]]:
    """Each output with its datastore path and its files (the first few), for download."""
    backend = state(request).backend
    found = []
    for port, out in step.outputs.items():
        datastore, path = out.get("datastore"), out.get("path") or ""
        files: list[dict[str, Any]] = []
        more = 0
        if datastore and step.status in TERMINAL_STATUSES:
            try:
                listed = backend.list_datastore_files(datastore, path)
            except Exception:  # a datastore gone or unreachable: show the path anyway
                listed = []
            more = max(0, len(listed) - OUTPUT_FILES_SHOWN)
            files = [
                {
                    "path": name,
                    "label": name[len(path) :].lstrip("/") or name,
                    "size": size,
                    "url": f"/ui/datastores/{datastore}/download/{name}",
                    "preview_url": f"/ui/datastores/{datastore}/preview/{quote(name)}",
                }
                for name, size in listed[:OUTPUT_FILES_SHOWN]
            ]
        found.append(
            {
                "port": port,
                "name": out.get("data_name", port),
                "pipeline_output_name": out.get("pipeline_output_name"),
                "datastore": datastore,
                "path": path,
                "browse_url": _browse_url(datastore, path),
                "files": files,
                "more_files": more,
            }
        )
    return found


def _environment(node: StepNode | None, step: StepRunRecord) -> dict[str, Any]:
    # What the step ran in: its submitter's Python, or its environment.
    python = describe_environment(step.fingerprint_parts.get("environment"))
    if node is None:
        return {
            "variables": {},
            "spec": None,
            "properties": step.properties,
            "python": python,
            "settings": None,
        }
    return {
        "python": python,
        "kind": node.kind,
        # What the step is ("SqlStep", "PythonScriptStep"...) and a kind package's settings.
        "type": step_title(node),
        "settings": settings_text(node.settings) if node.settings is not None else None,
        "script_name": node.script_name,
        "source_directory": node.source_directory,
        "arguments": list(node.arguments),
        "variables": dict(node.environment_variables),
        "spec": node.environment,
        "allow_reuse": node.allow_reuse,
        "max_retries": node.max_retries,
        "timeout_seconds": node.timeout_seconds,
        "properties": step.properties,
    }


def _log_tail(request: Request, run_id: str, name: str, size: int) -> dict[str, Any]:
    """The last LOG_TAIL_BYTES of a log, starting at a line; `offset`: where polling goes on."""
    start = max(0, size - LOG_TAIL_BYTES)
    raw = bytes(state(request).backend.read_run_file(run_id, name, start, size - start))
    if start and b"\n" in raw:
        cut = raw.index(b"\n") + 1
        raw, start = raw[cut:], start + cut
    text = raw.decode(errors="replace")
    lines = None
    if name == COMBINED_LOG:  # each line with its stream, for its colour
        lines = [
            dict(zip(("time", "stream", "text"), split_line(x), strict=True))
            for x in text.splitlines()
        ]
    return {"text": text, "lines": lines, "offset": start + len(raw), "truncated": start > 0}


def _parallel(
    node: StepNode | None, metrics: list[MetricRecord], sizes: dict[str, int], base: str
) -> dict[str, Any] | None:
    """A ParallelRunStep's progress (a bar, the workers) and its logs in one place: the
    summary, the failed items with their errors, one log per worker (None for other steps)."""
    progress = progress_view(metrics, parallel=node is not None and node.step_kind == "parallel")
    if progress is None:
        return None
    logs = [
        {"label": label, "name": name, "url": base + name, "size": sizes[name]}
        for label, name in (
            ("summary", "logs/summary.txt"),
            ("failed items", "logs/failed_items.txt"),
        )
        if name in sizes
    ]
    workers = sorted(
        (n for n in sizes if n.startswith("logs/user/worker_")),
        key=lambda n: (len(n), n),
    )
    for name in workers:
        label = name.rsplit("/", 1)[-1].removesuffix(".txt").replace("_", " ")
        logs.append({"label": label, "name": name, "url": base + name, "size": sizes[name]})
    return {**progress, "logs": logs}


def _step_facts(step: StepRunRecord) -> dict[str, Any]:
    return {
        "id": step.id,
        "name": step.name,
        "node_id": step.node_id,
        "status": step.status,
        "reused": step.reused_run_id is not None,
        "reused_run_id": step.reused_run_id,
        "reused_url": f"/ui/steps/{step.reused_run_id}" if step.reused_run_id else None,
        "attempt": step.attempt,
        "compute_target": step.compute_target,
        "created_at": step.created_at,
        "started_at": step.started_at,
        "ended_at": step.ended_at,
        "duration_seconds": seconds_between(step.started_at, step.ended_at),
        "exit_code": step.exit_code,
        "command": step.command,
        "command_line": shlex.join(str(part) for part in step.command),
        "run_reason": step.run_reason,
        "fingerprint": step.fingerprint,
        "error": step.error,
        "tags": step.tags,
        "active": step.status not in TERMINAL_STATUSES,
    }


@page("/steps/{step_run_id}")
def step_page(request: Request, _viewer: ViewerDep, step_run_id: str) -> Response:
    """A step run: facts, why it ran, data, logs, metrics, files."""
    backend = state(request).backend
    view = read_step_view(state(request).store.meta, step_run_id, known_graphs())
    if view is None:
        raise _no_step(step_run_id)
    step, run = view.step, view.run
    graph = graph_of(request, run.graph_id, view.graph)
    try:
        node: StepNode | None = graph.node(step.node_id)
    except KeyError:
        node = None
    siblings = {s.node_id: s for s in view.step_runs}
    content_id = step.data_run_id
    files = backend.list_run_files(content_id)
    sizes = {f.name: f.size for f in files}
    base = f"/ui/steps/{step.id}/files/"
    data = {
        "step": _step_facts(step),
        "run": {
            "id": run.id,
            "url": f"/ui/runs/{run.id}",
            "experiment": run.experiment_name,
            "experiment_url": f"/ui/experiments/{run.experiment_name}",
            "status": run.status,
        },
        "environment": _environment(node, step),
        "inputs": _inputs(node, graph, run, siblings) if node else [],
        "outputs": _outputs(request, step),
        "logs": {
            key: {
                **_log_tail(request, content_id, name, sizes.get(name, 0)),
                "url": base + name,
                "title": LOG_TITLES[key],
            }
            for key, name in LOGS.items()
        },
        "metrics": metric_groups(view.metrics, base),
        "metrics_cursor": view.metrics_cursor,
        "parallel": _parallel(node, view.metrics, sizes, base),
        "files": [
            {
                "name": f.name,
                "size": f.size,
                "url": base + f.name,
                "preview_url": f"/ui/steps/{step.id}/preview/{quote(f.name)}",
            }
            for f in files
        ],
    }
    return render(request, "step.html", title=f"Step {step.name}", data=data)


@router.get("/steps/{step_run_id}/log/{stream}")
def step_log(
    request: Request, _viewer: ViewerDep, step_run_id: str, stream: str, offset: int = 0
) -> Response:
    """New text of a step's stdout or stderr from byte `offset` (what the page polls)."""
    if stream not in LOGS:
        raise PortalError(
            404, f"A step has logs 'log' (both, in order), 'stdout' and 'stderr', not {stream!r}."
        )
    if offset < 0:
        raise PortalError(400, f"offset must be 0 or more, not {offset}.")
    step = find_step(request, step_run_id)
    raw = bytes(
        state(request).backend.read_run_file(
            step.data_run_id, LOGS[stream], offset, LOG_CHUNK_BYTES
        )
    )
    if len(raw) == LOG_CHUNK_BYTES and b"\n" in raw:
        raw = raw[: raw.rindex(b"\n") + 1]  # whole lines (and whole characters) only
    return JSONResponse(
        {
            "text": raw.decode(errors="replace"),
            "offset": offset + len(raw),
            "status": step.status,
            "active": step.status not in TERMINAL_STATUSES,
            # The first line of the combined pane: why the step ran (known once the agent
            # has worked it out, which it does while the step runs).
            "why": str(step.run_reason.get("summary") or ""),
        }
    )


@router.get("/steps/{step_run_id}/files/{name:path}")
def step_file(request: Request, _viewer: ViewerDep, step_run_id: str, name: str) -> Response:
    """Download one of a step's run files (names leaving the run's folder: a 400 page)."""
    _step, path = _run_file(request, step_run_id, name)
    return FileResponse(path, filename=path.name)


def _run_file(request: Request, step_run_id: str, name: str) -> tuple[StepRunRecord, Path]:
    """The step run and where its run file `name` is (a 400 page for names leaving the run's
    folder, a 404 page for no such file)."""
    step = find_step(request, step_run_id)
    path: Path = state(request).store.artifacts.file_path(step.data_run_id, name)
    if not path.is_file():
        raise PortalError(
            404,
            f"The step run {step.id} has no file {name!r}; its files are listed on "
            f"/ui/steps/{step.id}.",
        )
    return step, path


@router.get("/steps/{step_run_id}/preview/{name:path}")
def step_file_preview(
    request: Request, _viewer: ViewerDep, step_run_id: str, name: str
) -> Response:
    """A step's run file shown in the page (text, JSON, a table, an image, Markdown), read
    only in part; names leaving the run's folder: a 400 page, as for downloads."""
    step, path = _run_file(request, step_run_id, name)
    source = PreviewSource(
        name=name,
        size=path.stat().st_size,
        open=lambda: open(path, "rb"),
        download_url=f"/ui/steps/{step.id}/files/{quote(name)}",
    )
    crumbs = [
        {
            "name": f"Pipeline run {step.pipeline_run_id[:8]}",
            "url": f"/ui/runs/{step.pipeline_run_id}",
        },
        {"name": f"Step {step.name}", "url": f"/ui/steps/{step.id}"},
    ]
    return preview_page(request, source, crumbs)
