"""The last metric values the runs list shows and sorts by (`run_metric_finals`): kept as
metrics are written (pipeline-level and step metrics, the last value winning, a reused step
taking the values of the run it reused), and rebuilt alike from stored metrics by the
migration that adds the table, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select

from headrace import Workspace
from headrace.store.metric_finals import FINALS, backfill_finals
from headrace.store.records import MetricRecord
from tests.portal.test_runs_pages import log_metrics, seed


def finals(ws: Workspace) -> list[tuple[Any, ...]]:
    meta = ws.backend.meta  # type: ignore[attr-defined]
    with meta.db.read_conn() as conn:
        rows = conn.execute(select(FINALS).order_by(FINALS.c.pipeline_run_id, FINALS.c.name))
        return [tuple(row) for row in rows]


def test_last_values_are_kept_as_metrics_are_written_and_rebuilt_alike(
    any_ws: Workspace,
) -> None:
    runs = seed(any_ws, 4)
    steps = log_metrics(any_ws, [runs[1], runs[2], runs[0]])
    meta = any_ws.backend.meta  # type: ignore[attr-defined]
    meta.add_metrics(
        [
            MetricRecord(runs[2], "note", "scalar", "looks good"),
            MetricRecord(runs[2], "flag", "scalar", True),
            MetricRecord(steps[runs[2]], "loss", "scalar", 3),
        ]
    )
    kept = finals(any_ws)
    expected = {
        (runs[0], "train/accuracy", 0.9, "0.9"),  # reused from runs[1]'s train step
        (runs[1], "best", 0.5, "0.5"),
        (runs[1], "train/accuracy", 0.9, "0.9"),  # logged 0.1, then 0.9: the last one
        (runs[2], "best", 0.51, "0.51"),
        (runs[2], "flag", None, "True"),
        (runs[2], "note", None, "looks good"),
        (runs[2], "train/accuracy", 0.89, "0.89"),
        (runs[2], "train/loss", 3.0, "3"),
    }
    assert set(kept) == expected  # a table metric (confusion) has no last value here

    with meta.db.write_conn() as conn:
        conn.execute(delete(FINALS))
        backfill_finals(conn, chunk=3)
    assert finals(any_ws) == kept
