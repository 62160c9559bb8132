"""Waiting for a run from the CLI, optionally streaming its step logs, and the exit code that
says how it ended (0 only for Finished)."""

from __future__ import annotations

import sys
from typing import Any

import typer

from headrace.cli.output import print_json, run_document, step_document
from headrace.sdk.streaming import LogFollower
from headrace.store.records import TERMINAL_STATUSES, PipelineRunRecord, Status, StepRunRecord

__all__ = ["StepFilter", "exit_for", "follow_run"]


class StepFilter:
    """A backend view that shows only the step runs of one step name (for `--step`).

    Everything else is answered by the real backend.
    """

    def __init__(self, backend: Any, step_name: str) -> None:
        self._backend = backend
        self._step_name = step_name
        if hasattr(backend, "watch_run"):  # a warm agent's waits, filtered the same way
            self.watch_run = self._watch_run

    def _watch_run(
        self, run_id: str, token: str | None, timeout: float, *, steps: bool = True
    ) -> tuple[PipelineRunRecord, list[StepRunRecord], str | None]:
        record, listed, token = self._backend.watch_run(run_id, token, timeout, steps=steps)
        return record, [s for s in listed if s.name == self._step_name], token

    def list_step_runs(self, pipeline_run_id: str) -> list[StepRunRecord]:
        runs: list[StepRunRecord] = self._backend.list_step_runs(pipeline_run_id)
        return [s for s in runs if s.name == self._step_name]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)


def follow_run(
    backend: Any,
    run_id: str,
    *,
    stream_logs: bool,
    timeout_seconds: float | None,
    step_name: str | None = None,
    stream: str | None = None,
    stamped: bool = False,
) -> PipelineRunRecord:
    """Wait for the run to end (or the timeout), streaming step logs to stdout when asked.

    Ctrl-C stops following, not the run: it says so and exits 130.
    """
    view = StepFilter(backend, step_name) if step_name else backend
    follower = LogFollower(
        view, run_id, out=sys.stdout if stream_logs else None, stream=stream, stamped=stamped
    )
    try:
        record = follower.follow(timeout_seconds if timeout_seconds is not None else float("inf"))
    except KeyboardInterrupt:
        typer.echo(
            f"\nStopped following; run {run_id} goes on. Stop it with: "
            f"headrace run cancel {run_id}",
            err=True,
        )
        raise typer.Exit(130) from None
    if stream_logs and record.status in TERMINAL_STATUSES and step_name is None:
        follower.print_summary(record)
    return record


def exit_for(record: PipelineRunRecord, *, json_: bool, backend: Any) -> None:
    """Print the outcome (JSON or one line) and exit non-zero unless the run Finished."""
    if json_:
        steps = [step_document(s) for s in backend.list_step_runs(record.id)]
        print_json({**run_document(record), "steps": steps})
    elif record.status == Status.FINISHED:
        typer.echo(f"Run {record.id} Finished.")
    if record.status == Status.FINISHED:
        return
    if record.status not in TERMINAL_STATUSES:
        message = f"run {record.id} is still {record.status}; the wait timed out"
    else:
        message = f"run {record.id} ended {record.status}"
        error = record.error or {}
        if error.get("message"):
            message += f": {error['message']}"
        if error.get("step_run_id"):
            message += f" (see: headrace step show {error['step_run_id']})"
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)
