"""The dicts portal pages are made of (and their JSON twins show), shared by the views."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from headrace.store.records import PipelineRunRecord, StepRunRecord

__all__ = ["run_row", "seconds_between", "step_row"]


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    """Seconds from `start` to `end` (to now while running); None before it started."""
    if start is None:
        return None
    return round(((end or datetime.now(timezone.utc)) - start).total_seconds(), 3)


def run_row(run: PipelineRunRecord) -> dict[str, Any]:
    """A pipeline run as a row of a list."""
    return {
        "id": run.id,
        "url": f"/ui/runs/{run.id}",
        "experiment": run.experiment_name,
        "experiment_url": f"/ui/experiments/{quote(run.experiment_name, safe='')}",
        "status": run.status,
        "description": run.description,
        "run_source": run.run_source,
        "tags": run.tags,
        "parameters": run.parameters,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "ended_at": run.ended_at,
        "duration_seconds": seconds_between(run.started_at, run.ended_at),
    }


def step_row(step: StepRunRecord) -> dict[str, Any]:
    """A step run as a row of a list (or a node of a run's graph)."""
    return {
        "id": step.id,
        "url": f"/ui/steps/{step.id}",
        "node_id": step.node_id,
        "name": step.name,
        "status": step.status,
        "attempt": step.attempt,
        "compute_target": step.compute_target,
        "reused_run_id": step.reused_run_id,
        "created_at": step.created_at,
        "started_at": step.started_at,
        "ended_at": step.ended_at,
        "duration_seconds": seconds_between(step.started_at, step.ended_at),
    }
