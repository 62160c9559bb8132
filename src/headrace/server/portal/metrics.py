"""Metrics on the portal: how a run's metrics are grouped for showing (`metric_groups`), the
pane that shows them (`templates/_metrics.html`: a table of values, a chart per series,
tables, lists, images), on the step page and, for the metrics logged on the pipeline run
itself (`run.parent.log(...)` in a step, `PipelineRun.log`), on the run page.

While the run goes on, the page's script (static/metrics.js) polls
`/ui/steps/{id}/metrics?after=N` or `/ui/runs/{id}/metrics?after=N`, N being the id of the
newest metric it has: the answer is the run's status and the newest id, and, only when
there is something newer, the groups and the pane rendered again (one template, so the live
pane reads as the first). A poll with nothing new costs three small queries.

`/ui/runs/{id}/files/{name}` serves the pipeline run's own files (its logged images).
"""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response
from fastapi.responses import FileResponse, JSONResponse

from headrace.server.portal.base import PortalError, ViewerDep, router, state, templates
from headrace.store.records import TERMINAL_STATUSES, MetricRecord
from headrace.store.run_views import read_metrics_after

__all__ = ["metric_groups", "metrics_pane"]

POLL_HINT = "after must be the id of the newest metric the page has (0 for none)"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def metric_groups(records: list[MetricRecord], image_url: str) -> dict[str, Any]:
    """Metrics by how they are shown: scalars (a table), series (charts: a name logged several
    times, or a numeric list), tables (log_table / log_row) and images (`image_url` + file)."""
    by_name: dict[str, list[MetricRecord]] = {}
    for record in records:
        by_name.setdefault(record.name, []).append(record)
    scalars, series, tables, images, lists = [], [], [], [], []
    for name, items in by_name.items():
        kind = items[0].kind
        if kind == "scalar" and len(items) == 1:
            scalars.append({"name": name, "value": items[0].value, "logged": 1})
        elif kind == "scalar":
            values = [i.value for i in items]
            steps = [i.step if i.step is not None else n for n, i in enumerate(items)]
            if all(_is_number(v) for v in values):
                series.append({"name": name, "x": steps, "y": values})
            scalars.append({"name": name, "value": values[-1], "logged": len(values)})
        elif kind == "list":
            value = list(items[-1].value or [])
            if value and all(_is_number(v) for v in value):
                series.append({"name": name, "x": list(range(len(value))), "y": value})
            else:
                lists.append({"name": name, "value": value})
        elif kind in ("table", "row"):
            columns: dict[str, list[Any]] = {}
            if kind == "table":
                columns = {str(k): list(v) for k, v in (items[-1].value or {}).items()}
            else:
                for item in items:
                    for column, value in (item.value or {}).items():
                        columns.setdefault(str(column), []).append(value)
            height = max((len(v) for v in columns.values()), default=0)
            rows = [
                [col[r] if r < len(col) else None for col in columns.values()]
                for r in range(height)
            ]
            tables.append({"name": name, "columns": list(columns), "rows": rows})
        elif kind == "image":
            for item in items:
                if isinstance(item.value, str) and item.value:
                    images.append({"name": name, "file": item.value, "url": image_url + item.value})
    return {
        "scalars": scalars,
        "series": series,
        "tables": tables,
        "images": images,
        "lists": lists,
    }


def metrics_pane(groups: dict[str, Any], url: str, cursor: int, active: bool) -> dict[str, Any]:
    """What a page's metrics pane is drawn from: the groups, where it polls, from which id."""
    return {"groups": groups, "url": url, "cursor": cursor, "active": active}


def _answer(request: Request, run_id: str, after: int, *, step: bool) -> Response:
    """The poll's answer for the step run (`step`) or pipeline run `run_id`."""
    if after < 0:
        raise PortalError(400, f"{POLL_HINT}, not {after}.")
    view = read_metrics_after(state(request).store.meta, run_id, after, step=step)
    if view is None:
        what = "step run" if step else "pipeline run"
        raise PortalError(
            404, f"There is no {what} {run_id!r} in this workspace; find runs on /ui/runs."
        )
    image_url = f"/ui/{'steps' if step else 'runs'}/{run_id}/files/"
    groups = None if view.metrics is None else metric_groups(view.metrics, image_url)
    html = None
    if groups is not None:
        html = templates.get_template("_metrics.html").render(m=groups)
    return JSONResponse(
        {
            "status": view.status,
            "active": view.status not in TERMINAL_STATUSES,
            "cursor": view.cursor,
            "metrics": groups,
            "html": html,
        }
    )


@router.get("/steps/{step_run_id}/metrics")
def step_metrics(
    request: Request, _viewer: ViewerDep, step_run_id: str, after: int = 0
) -> Response:
    """A step's metrics if any is newer than id `after` (what its page polls)."""
    return _answer(request, step_run_id, after, step=True)


@router.get("/runs/{run_id}/metrics")
def run_metrics(request: Request, _viewer: ViewerDep, run_id: str, after: int = 0) -> Response:
    """A pipeline run's own metrics if any is newer than id `after` (what its page polls)."""
    return _answer(request, run_id, after, step=False)


@router.get("/runs/{run_id}/files/{name:path}")
def run_file(request: Request, _viewer: ViewerDep, run_id: str, name: str) -> Response:
    """Download one of a pipeline run's own files (a name leaving its folder: a 400 page)."""
    path = state(request).store.artifacts.file_path(run_id, name)
    if not path.is_file():
        raise PortalError(
            404,
            f"The pipeline run {run_id} has no file {name!r}; its page /ui/runs/{run_id} "
            "shows its metrics and their images.",
        )
    return FileResponse(path, filename=path.name)
