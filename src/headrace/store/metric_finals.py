"""The last value of every scalar metric of each pipeline run (`run_metric_finals`), kept where
metrics are written, so that the portal's runs list can show metric columns and sort 100,000
runs by one with an index instead of reading every run's metrics.

A pipeline-level metric (logged on the pipeline run, `run.parent.log`) is named as logged; a
step's is `step name/metric name`. A reused step logged nothing itself: when it is recorded,
the last values of the step run it reused are copied under its pipeline run. Writes here run
inside the caller's transaction (one statement to place the runs, one upsert). Nothing above
the store imports this.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import Any, cast

from sqlalchemy import Table, func, select
from sqlalchemy.engine import Connection

from headrace.store.orm import MetricRow, RunMetricFinalRow, StepRunRow
from headrace.store.records import MetricRecord

__all__ = ["FINALS", "copy_reused_finals", "final_cells", "record_metric_finals", "upsert_finals"]

FINALS = cast(Table, RunMetricFinalRow.__table__)
_METRICS = cast(Table, MetricRow.__table__)
_STEPS = cast(Table, StepRunRow.__table__)
TEXT_MAX = 255


def final_cells(value: Any) -> tuple[float | None, str]:
    """(the number sorting uses, or None; the text shown) of a metric value."""
    if isinstance(value, bool) or value is None:
        return None, str(value)
    if isinstance(value, (int, float)):
        number = float(value)
        return (number if math.isfinite(number) else None), str(value)[:TEXT_MAX]
    if isinstance(value, str):
        return None, value[:TEXT_MAX]
    return None, json.dumps(value, default=str)[:TEXT_MAX]


def upsert_finals(conn: Connection, rows: Iterable[tuple[str, str, Any]]) -> None:
    """Set (pipeline run id, name, value) rows, replacing what those names held."""
    values = {}
    for run_id, name, value in rows:
        number, text = final_cells(value)
        values[(run_id, name)] = {
            "pipeline_run_id": run_id,
            "name": name,
            "number": number,
            "text": text,
        }
    if not values:
        return
    statement: Any
    if conn.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        statement = sqlite_insert(FINALS)
    else:
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        statement = pg_insert(FINALS)
    statement = statement.on_conflict_do_update(
        index_elements=[FINALS.c.pipeline_run_id, FINALS.c.name],
        set_={"number": statement.excluded.number, "text": statement.excluded.text},
    )
    conn.execute(statement, list(values.values()))


def record_metric_finals(conn: Connection, metrics: Sequence[MetricRecord]) -> None:
    """Metrics just written: their scalar values become their runs' last values (the batch
    is in logging order, so its last value of a name wins)."""
    scalars = [m for m in metrics if m.kind == "scalar"]
    if not scalars:
        return
    run_ids = sorted({m.run_id for m in scalars})
    steps = {
        row.id: (row.pipeline_run_id, row.name)
        for row in conn.execute(
            select(_STEPS.c.id, _STEPS.c.pipeline_run_id, _STEPS.c.name).where(
                _STEPS.c.id.in_(run_ids)
            )
        )
    }
    rows = []
    for metric in scalars:
        owner = steps.get(metric.run_id)
        if owner is None:  # logged on the pipeline run itself
            rows.append((metric.run_id, metric.name, metric.value))
        else:
            rows.append((owner[0], f"{owner[1]}/{metric.name}", metric.value))
    upsert_finals(conn, rows)


def copy_reused_finals(
    conn: Connection, pipeline_run_id: str, step_name: str, original_id: str
) -> None:
    """A reused step's last values: those the step run it reused logged."""
    last = (
        select(func.max(_METRICS.c.id))
        .where(_METRICS.c.run_id == original_id, _METRICS.c.kind == "scalar")
        .group_by(_METRICS.c.name)
    )
    found = conn.execute(
        select(_METRICS.c.name, _METRICS.c.value).where(_METRICS.c.id.in_(last))
    ).all()
    upsert_finals(conn, [(pipeline_run_id, f"{step_name}/{r.name}", r.value) for r in found])


def backfill_finals(conn: Connection, chunk: int = 5_000) -> None:
    """Fill the table from the metrics already stored (the migration that adds it)."""
    steps: dict[str, tuple[str, str]] = {}
    reusers: dict[str, list[tuple[str, str]]] = {}
    for row in conn.execute(
        select(_STEPS.c.id, _STEPS.c.pipeline_run_id, _STEPS.c.name, _STEPS.c.reused_run_id)
    ):
        steps[row.id] = (row.pipeline_run_id, row.name)
        if row.reused_run_id:
            reusers.setdefault(row.reused_run_id, []).append((row.pipeline_run_id, row.name))
    last = (
        select(func.max(_METRICS.c.id).label("id"))
        .where(_METRICS.c.kind == "scalar")
        .group_by(_METRICS.c.run_id, _METRICS.c.name)
        .subquery()
    )
    query = select(_METRICS.c.run_id, _METRICS.c.name, _METRICS.c.value).join(
        last, last.c.id == _METRICS.c.id
    )
    rows: list[tuple[str, str, Any]] = []
    for metric in conn.execute(query).all():
        owner = steps.get(metric.run_id)
        if owner is None:
            rows.append((metric.run_id, metric.name, metric.value))
        else:
            rows.append((owner[0], f"{owner[1]}/{metric.name}", metric.value))
        for run_id, step_name in reusers.get(metric.run_id, ()):
            rows.append((run_id, f"{step_name}/{metric.name}", metric.value))
        if len(rows) >= chunk:
            upsert_finals(conn, rows)
            rows = []
    upsert_finals(conn, rows)
