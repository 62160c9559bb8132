"""Comparing pipeline runs side by side: parameters, final metrics, metric series overlaid.

`/ui/compare?runs=A,B[,...]` (or `?run=A&run=B`). With fewer than two runs it is a picker
(recent runs with checkboxes, a GET form that comes back here). A pipeline run's metrics
live on its step runs (on the reused step run when a step was reused), so each metric is
named `step / metric`; one logged on the pipeline run itself keeps its plain name.
The page costs one read transaction of three queries however many runs it compares: the
runs, all their step runs, all their metrics.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Query, Request, Response

from headrace.server.portal.base import PortalError, ViewerDep, page, render, state
from headrace.server.portal.shapes import run_row
from headrace.store.compare_views import StepName, comparison
from headrace.store.records import MetricRecord, PipelineRunRecord

__all__: list[str] = []

MAX_RUNS = 10
PICKER_RUNS = 50
FINAL_TEXT = 80  # characters of a row metric shown in the table
SERIES_POINTS = 2000  # points per run and chart; a longer series is thinned evenly


@page("/compare")
def compare(
    request: Request,
    _viewer: ViewerDep,
    runs: Annotated[list[str] | None, Query()] = None,
    run: Annotated[list[str] | None, Query()] = None,
) -> Response:
    """Runs side by side, or the picker while fewer than two are chosen. The runs come as
    `?runs=A,B` (a link), `?runs=A&runs=B` (the runs list's checkboxes) or `?run=A&run=B`
    (the picker's)."""
    run_ids = _run_ids(",".join([*(runs or []), *(run or [])]))
    if len(run_ids) < 2:
        return _picker(request, run_ids)
    found, steps, metrics = comparison(state(request).store.database, run_ids)
    missing = [run_id for run_id in run_ids if run_id not in found]
    if missing:
        raise PortalError(
            404,
            f"No pipeline run with id {', '.join(repr(m) for m in missing)} in this workspace; "
            "pick the runs to compare at /ui/compare.",
        )
    chosen = [found[run_id] for run_id in run_ids]
    data = {
        "picker": None,
        "runs": [_labelled(run) for run in chosen],
        "parameters": _side_by_side([run.parameters for run in chosen]),
        **_metric_tables(chosen, steps, metrics),
    }
    return render(request, "compare.html", title="Compare runs", data=data)


def _run_ids(text: str) -> list[str]:
    """The run ids of `?runs=` (comma separated, repeats dropped), at most MAX_RUNS."""
    ids = list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if len(ids) > MAX_RUNS:
        raise PortalError(
            400,
            f"{len(ids)} runs are too many to compare on one page; pick at most {MAX_RUNS}.",
        )
    return ids


def _picker(request: Request, chosen: list[str]) -> Response:
    recent = state(request).backend.list_pipeline_runs(limit=PICKER_RUNS)
    data = {
        "picker": {"chosen": chosen, "runs": [run_row(run) for run in recent]},
        "runs": [],
        "parameters": [],
        "metrics": [],
        "series": [],
    }
    return render(request, "compare.html", title="Compare runs", data=data)


def _labelled(run: PipelineRunRecord) -> dict[str, Any]:
    return {**run_row(run), "label": f"{run.id[:8]} ({run.experiment_name})"}


def _content_id(step: StepName) -> str:
    """Where a step run's metrics are: the step run it reused, else itself."""
    return step.reused_run_id or step.id


def _side_by_side(per_run: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of `name, values (one per run, None where absent), differs`, sorted by name."""
    names = sorted({name for values in per_run for name in values})
    rows = []
    for name in names:
        values = [values.get(name) for values in per_run]
        rows.append({"name": name, "values": values, "differs": _differ(values)})
    return rows


def _differ(values: list[Any]) -> bool:
    first = values[0]
    return any(value != first or type(value) is not type(first) for value in values[1:])


def _metric_tables(
    runs: list[PipelineRunRecord], steps: list[StepName], metrics: list[MetricRecord]
) -> dict[str, Any]:
    """The final-metrics table and the series charts of `runs`."""
    step_of: dict[str, list[StepName]] = {}
    for step in steps:
        step_of.setdefault(_content_id(step), []).append(step)
    # (run index, "step / metric") -> the records logged, oldest first (the query's order)
    logged: dict[tuple[int, str], list[MetricRecord]] = {}
    index = {run.id: i for i, run in enumerate(runs)}
    for metric in metrics:
        if metric.run_id in index:  # logged on the pipeline run itself: no step name
            logged.setdefault((index[metric.run_id], metric.name), []).append(metric)
        for step in step_of.get(metric.run_id, []):
            key = (index[step.pipeline_run_id], f"{step.name} / {metric.name}")
            logged.setdefault(key, []).append(metric)

    finals: list[dict[str, Any]] = [{} for _ in runs]
    series_names: set[str] = set()
    for (i, name), records in logged.items():
        finals[i][name] = _final(records[-1])
        numeric = records[-1].kind in ("scalar", "list")
        if numeric and (len(records) > 1 or records[-1].kind == "list"):
            series_names.add(name)

    charts = []
    for name in sorted(series_names):
        lines = []
        for i, run in enumerate(runs):
            x, y = _points(logged.get((i, name), []))
            label = f"{run.id[:8]} ({run.experiment_name})"
            lines.append({"run_id": run.id, "label": label, "x": x, "y": y})
        if any(value is not None for line in lines for value in line["y"]):
            charts.append({"name": name, "runs": lines})  # text-only series: no chart
    return {"metrics": _side_by_side(finals), "series": charts}


def _final(record: MetricRecord) -> Any:
    """The value a metric ended with: the last one logged (the last item of a list)."""
    if record.kind == "list" and isinstance(record.value, list):
        return record.value[-1] if record.value else None
    if record.kind in ("table", "image"):
        return f"({record.kind}: on the step's page)"
    if isinstance(record.value, (dict, list)):  # a row: its text, shortened
        text = json.dumps(record.value, sort_keys=True, default=str)
        return text if len(text) <= FINAL_TEXT else text[: FINAL_TEXT - 1] + "…"
    return record.value


def _points(records: list[MetricRecord]) -> tuple[list[float], list[float | None]]:
    """The series of one run: x (the logged step, else the index) and y (numbers only)."""
    values: list[tuple[float, Any]] = []
    if len(records) == 1 and records[0].kind == "list" and isinstance(records[0].value, list):
        values = [(float(i), v) for i, v in enumerate(records[0].value)]
    else:
        values = [
            (float(r.step if r.step is not None else i), r.value) for i, r in enumerate(records)
        ]
    numbers = [(x, _number(y)) for x, y in values]
    if len(numbers) > SERIES_POINTS:
        stride = len(numbers) / SERIES_POINTS
        numbers = [numbers[int(i * stride)] for i in range(SERIES_POINTS)] + [numbers[-1]]
    return [x for x, _ in numbers], [y for _, y in numbers]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)
