"""Experiments and the runs list (issue 4): /ui/experiments, /ui/experiments/{name}, /ui/runs.

The runs list reads its filters, sort and page from the address (a plain GET form, so it works
without JavaScript and a filtered list is a link to share). A bad value is a 400 page naming
every bad parameter and the values it takes. The queries are in `store.browse`.
"""

from __future__ import annotations

import difflib
import json
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import Request, Response
from starlette.datastructures import QueryParams

from headrace.server.portal.base import PortalError, ViewerDep, page, render, state
from headrace.server.portal.shapes import run_row
from headrace.store.browse import (
    SORT_KEYS,
    RunColumn,
    RunFilter,
    browse_runs,
    experiment_summaries,
)
from headrace.store.records import Status

__all__: list[str] = []

STATUSES = (
    Status.NOT_STARTED,
    Status.QUEUED,
    Status.RUNNING,
    Status.FINISHED,
    Status.FAILED,
    Status.CANCELED,
)
PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
MAX_PAGE = 100_000
# The query parameters of a runs list, in the order its links write them.
PARAMETERS = (
    "experiment",
    "status",
    "pipeline",
    "tag",
    "from",
    "to",
    "q",
    "cols",
    "sort",
    "order",
    "size",
)
MAX_COLUMNS = 20
MAX_SEARCH = 200
COLUMN_HELP = (
    "use param:NAME (a pipeline parameter) or metric:NAME (a pipeline-level metric's last "
    "value; metric:STEP/NAME for a step's), separated by commas"
)


@page("/experiments")
def experiments(request: Request, _viewer: ViewerDep) -> Response:
    """Every experiment with its run count and its newest run."""
    rows = []
    for summary in experiment_summaries(state(request).store.database):
        url = f"/ui/experiments/{quote(summary.name, safe='')}"
        last = None
        if summary.last_run_id is not None:
            last = {
                "id": summary.last_run_id,
                "url": f"/ui/runs/{summary.last_run_id}",
                "status": summary.last_status,
                "created_at": summary.last_submitted,
            }
        rows.append(
            {
                "name": summary.name,
                "url": url,
                "created_at": summary.created_at,
                "run_count": summary.run_count,
                "last_run": last,
            }
        )
    return render(request, "experiments.html", title="Experiments", data={"experiments": rows})


@page("/experiments/{name}")
def experiment(request: Request, _viewer: ViewerDep, name: str) -> Response:
    """One experiment's runs, with the filters, sorting and pages of the runs list."""
    data = _runs_list(request, name)
    if not data["experiment_known"]:
        raise PortalError(
            404,
            f"There is no experiment {name!r}{_did_you_mean(name, data['experiments'])}; "
            "the experiments are listed at /ui/experiments.",
        )
    data["experiment"] = {"name": name, "url": f"/ui/experiments/{quote(name, safe='')}"}
    return render(request, "experiment.html", title=f"Experiment {name}", data=data)


@page("/runs")
def runs(request: Request, _viewer: ViewerDep) -> Response:
    """All runs: filtered, sorted and one page at a time."""
    data = _runs_list(request, None)
    return render(request, "runs.html", title="Runs", data=data)


def _runs_list(request: Request, experiment: str | None) -> dict[str, Any]:
    """The data of a runs list (the runs page, or an experiment's page when `experiment`)."""
    params = request.query_params
    where, choice, problems = _parse(params, experiment)
    if problems:
        raise PortalError(400, "Bad value in the address: " + " ".join(problems))
    page_number, size = choice["page"], choice["size"]
    columns: list[RunColumn] = choice["columns"]
    found = browse_runs(
        state(request).store.database,
        where,
        sort=choice["sort_key"],
        descending=choice["order"] == "desc",
        offset=(page_number - 1) * size,
        limit=size,
        columns=columns,
    )
    path = request.url.path.removesuffix(".json")
    kept = [(k, v) for k, v in params.multi_items() if k in PARAMETERS and v.strip()]
    if experiment is not None:
        kept = [(k, v) for k, v in kept if k != "experiment"]

    def link(number: int) -> str:
        query = urlencode([*kept, *([("page", str(number))] if number > 1 else [])])
        return f"{path}?{query}" if query else path

    def sorted_by(key: str) -> str:
        """The list sorted by `key`: descending first, the other way when already so."""
        flip = "asc" if key == choice["sort"] and choice["order"] == "desc" else "desc"
        rest = [(k, v) for k, v in kept if k not in ("sort", "order")]
        return f"{path}?{urlencode([*rest, ('sort', key), ('order', flip)])}"

    def without(key: str) -> str:
        """The list without the column `key` (and not sorted by it)."""
        rest = [c.key for c in columns if c.key != key]
        query = [(k, v) for k, v in kept if k not in ("cols", "page")]
        if choice["sort"] == key:
            query = [(k, v) for k, v in query if k not in ("sort", "order")]
        query += [("cols", ",".join(rest))] if rest else []
        return f"{path}?{urlencode(query)}" if query else path

    rows = []
    for run in found.runs:
        row = run_row(run)
        values = found.metrics.get(run.id, {})
        row["columns"] = {
            c.key: _parameter_value(run.parameters, c.name)
            if c.kind == "param"
            else values.get(c.name)
            for c in columns
        }
        rows.append(row)
    parameter_names = sorted({name for run in found.runs for name in run.parameters})
    first = (page_number - 1) * size + 1 if found.runs else 0
    return {
        "runs": rows,
        "columns": [
            {
                "key": c.key,
                "kind": c.kind,
                "name": c.name,
                "sort_url": sorted_by(c.key),
                "remove_url": without(c.key),
            }
            for c in columns
        ],
        "column_choices": _column_choices(columns, parameter_names, found.metric_names),
        "experiment_known": found.experiment_known,
        "experiments": found.experiments,
        "filters": {
            "experiment": where.experiment if experiment is None else None,
            "status": list(where.statuses),
            "pipeline": where.pipeline,
            "tag": params.get("tag", "").strip() or None,
            "from": params.get("from", "").strip() or None,
            "to": params.get("to", "").strip() or None,
            "q": where.text,
            "cols": ",".join(c.key for c in columns) or None,
        },
        "sort": choice["sort"],
        "order": choice["order"],
        "page": page_number,
        "page_size": size,
        "shown": {"first": first, "last": first + len(found.runs) - 1 if found.runs else 0},
        "total": found.total,
        "total_capped": found.total_capped,
        "total_text": f"{found.total:,}+" if found.total_capped else f"{found.total:,}",
        "previous_url": link(page_number - 1) if page_number > 1 else None,
        "next_url": link(page_number + 1) if found.has_next else None,
        "first_url": link(1),
        "sort_urls": {key: sorted_by(key) for key in SORT_KEYS},
        "choices": {
            "status": list(STATUSES),
            "sort": list(SORT_KEYS),
            "order": ["desc", "asc"],
            "size": [25, 50, 100, 200],
        },
    }


def _parse(
    params: QueryParams, experiment: str | None
) -> tuple[RunFilter, dict[str, Any], list[str]]:
    """The filter and the sort/page choice the address asks for, and every problem in it."""
    problems: list[str] = []

    def one(name: str) -> str | None:
        value = params.get(name, "").strip()
        return value or None

    statuses: list[str] = []
    by_lower = {s.lower(): s for s in STATUSES}
    for value in params.getlist("status"):
        for part in filter(None, (p.strip() for p in value.split(","))):
            if part.lower() in by_lower:
                statuses.append(by_lower[part.lower()])
            else:
                problems.append(
                    f"status {part!r} is not a run status{_did_you_mean(part, STATUSES)}; "
                    f"use one or more of {', '.join(STATUSES)}."
                )
    tag_key = tag_value = None
    tag = one("tag")
    if tag is not None:
        key, sep, value = tag.partition("=")
        tag_key, tag_value = key.strip(), (value.strip() if sep else None)
        if not tag_key:
            problems.append(f"tag {tag!r} has no key; use tag=KEY or tag=KEY=VALUE.")
    since = _date(one("from"), "from", problems)
    until = _date(one("to"), "to", problems, end=True)
    columns: list[RunColumn] = []
    for value in params.getlist("cols"):
        for part in filter(None, (p.strip() for p in value.split(","))):
            column = RunColumn.parse(part)
            if column is None:
                problems.append(f"cols {part!r} is not a column; {COLUMN_HELP}.")
            elif column not in columns:
                columns.append(column)
    if len(columns) > MAX_COLUMNS:
        problems.append(f"cols names {len(columns)} columns; a list shows {MAX_COLUMNS} at most.")
    sort = one("sort") or "submitted"
    sort_key: str | RunColumn = sort
    if sort not in SORT_KEYS:
        column = RunColumn.parse(sort)
        if column is None:
            problems.append(
                f"sort {sort!r} is not a column to sort by; use one of {', '.join(SORT_KEYS)}, "
                "or a column: param:NAME or metric:NAME."
            )
        else:
            sort_key = column
            if column not in columns:  # sorted by it: shown too
                columns.append(column)
    text = one("q")
    if text is not None and len(text) > MAX_SEARCH:
        problems.append(f"q is {len(text):,} characters long; search for {MAX_SEARCH} at most.")
    order = one("order") or "desc"
    if order not in ("asc", "desc"):
        problems.append(f"order {order!r} must be asc or desc.")
    size = _number(one("size"), "size", PAGE_SIZE, MAX_PAGE_SIZE, problems)
    page_number = _number(one("page"), "page", 1, MAX_PAGE, problems)
    where = RunFilter(
        experiment=experiment if experiment is not None else one("experiment"),
        statuses=tuple(dict.fromkeys(statuses)),
        pipeline=one("pipeline"),
        tag_key=tag_key or None,
        tag_value=tag_value,
        submitted_from=since,
        submitted_before=until,
        text=text,
    )
    choice = {
        "sort": sort,
        "sort_key": sort_key,
        "columns": columns,
        "order": order,
        "size": size,
        "page": page_number,
    }
    return where, choice, problems


def _date(text: str | None, name: str, problems: list[str], end: bool = False) -> datetime | None:
    """A date (YYYY-MM-DD, UTC; `to` includes the whole day) or an ISO date and time."""
    if text is None:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        pass
    else:
        start = datetime.combine(day, time(), timezone.utc)
        return start + timedelta(days=1) if end else start
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        problems.append(
            f"{name} {text!r} is not a date; use YYYY-MM-DD (UTC) or an ISO date and time "
            "like 2026-11-24T09:30:00Z."
        )
        return None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


def _column_choices(
    columns: list[RunColumn], parameters: list[str], metrics: list[str]
) -> dict[str, list[dict[str, Any]]]:
    """What the Columns control offers: the chosen columns, then the parameters and metrics
    of the runs on this page."""
    chosen = {c.key for c in columns}
    offered: dict[str, list[dict[str, Any]]] = {}
    for kind, names in (("param", parameters), ("metric", metrics)):
        keys = [c.key for c in columns if c.kind == kind]
        keys += [key for key in (f"{kind}:{n}" for n in names) if key not in chosen]
        offered[kind] = [
            {"key": key, "name": key.split(":", 1)[1], "chosen": key in chosen} for key in keys
        ]
    return offered


def _parameter_value(parameters: dict[str, Any], name: str) -> Any:
    """A parameter's value as the list shows it: a number or a string as it is, anything
    else (a DataPath's dict) as JSON (None: the run has no such parameter)."""
    if name not in parameters:
        return None
    value = parameters[name]
    if isinstance(value, (str, int, float)):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def _number(text: str | None, name: str, default: int, most: int, problems: list[str]) -> int:
    if text is None:
        return default
    if text.isdigit() and 1 <= int(text) <= most:
        return int(text)
    problems.append(f"{name} {text!r} must be a whole number from 1 to {most:,}.")
    return default


def _did_you_mean(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
