"""How a step attempt ended, turned into what the metadata store records.

`StepEnd` is what the agent saw; `failure_record` builds a failed attempt's error (message
naming the cause, exit code, stderr tail, traceback); `journal_records` turns what a script
logged into metric rows and tag updates.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from headrace.graph.model import STEP_ERROR_PREFIX, StepNode
from headrace.limits import JSON_MAX_DEPTH, json_depth_over
from headrace.store.journal import JournalEntry
from headrace.store.records import MetricRecord, StepRunRecord

__all__ = [
    "StepEnd",
    "extract_traceback",
    "failure_record",
    "journal_records",
    "previous_attempt",
    "stderr_tail",
]


@dataclass(frozen=True)
class StepEnd:
    """How an attempt ended, as the agent saw it."""

    exit_code: int | None
    stopped_for: str | None = None  # "timeout" | "cancel" | "failfast" | "lost" | "node_lost"
    timeout_seconds: float | None = None
    error_message: str | None = None
    journal: tuple[JournalEntry, ...] = ()
    ended_at: datetime | None = None  # when the process was seen to end


def stderr_tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def extract_traceback(text: str) -> str | None:
    marker = "Traceback (most recent call last):"
    at = text.rfind(marker)
    return text[at:].rstrip() if at >= 0 else None


def journal_records(
    entries: tuple[JournalEntry, ...] | list[JournalEntry], run_id: str, parent_id: str
) -> tuple[list[MetricRecord], dict[str, dict[str, Any]]]:
    """Metric rows and tag updates (per run id) from journal entries of one step."""
    metrics: list[MetricRecord] = []
    tags: dict[str, dict[str, Any]] = {}
    for entry in entries:
        target = parent_id if entry.target == "parent" else run_id
        if entry.kind == "tag":
            value = entry.value
            if json_depth_over(value):  # stored, it could never be answered again
                value = f"(a value nested more than {JSON_MAX_DEPTH} levels deep, not kept)"
            tags.setdefault(target, {})[entry.name] = value
        else:
            metrics.append(
                MetricRecord(
                    target, entry.name, entry.kind, entry.value, entry.step, entry.description
                )
            )
    return metrics, tags


def _reported_error(stderr_text: str) -> str | None:
    """The reason a step's program gave for failing (its last STEP_ERROR_PREFIX line)."""
    for line in reversed(stderr_text.splitlines()[-200:]):
        if line.startswith(STEP_ERROR_PREFIX):
            return line[len(STEP_ERROR_PREFIX) :].strip() or None
    return None


def failure_record(node: StepNode, end: StepEnd, stderr_text: str) -> dict[str, Any]:
    """The error a failed attempt records: message, exit code, stderr tail, traceback."""
    what = f"script {node.script_name}" if node.kind == "python_script" else "command"
    if end.error_message:
        message = end.error_message
    elif end.stopped_for == "timeout":
        message = (
            f"Step {node.name!r} timed out after {end.timeout_seconds:g} s "
            f"(timeout_seconds={end.timeout_seconds:g}) and was stopped"
        )
    elif end.stopped_for == "lost":
        message = f"Step {node.name!r} was interrupted: its process was lost"
    elif end.exit_code is not None and end.exit_code < 0:
        try:
            name = signal.Signals(-end.exit_code).name
        except ValueError:
            name = f"signal {-end.exit_code}"
        message = f"Step {node.name!r} failed: its {what} was killed by {name}"
    elif (reported := _reported_error(stderr_text)) is not None:
        message = f"Step {node.name!r} failed: {reported}"
    else:
        message = f"Step {node.name!r} failed: its {what} exited with code {end.exit_code}"
    error: dict[str, Any] = {
        "message": message,
        "exit_code": end.exit_code,
        "stderr_tail": stderr_tail(stderr_text),
    }
    traceback = extract_traceback(stderr_text)
    if traceback:
        error["traceback"] = traceback
    return error


def previous_attempt(record: StepRunRecord) -> str:
    """How the attempt before `record`'s current one ended, for its logs' heading:
    "attempt 1 failed: exit code 1" ("" for a first attempt)."""
    if record.attempt == 0:
        return ""
    error = record.error or {}
    code = error.get("exit_code")
    message = str(error.get("message") or "")
    if not error:
        how = "did not finish"
    elif "timed out" in message:
        how = "timed out"
    elif isinstance(code, int) and code < 0:
        try:
            how = f"failed: killed by {signal.Signals(-code).name}"
        except ValueError:
            how = f"failed: killed by signal {-code}"
    elif code is not None:
        how = f"failed: exit code {code}"
    else:
        how = f"failed: {message.split(': ', 1)[-1]}" if message else "failed"
    return f"attempt {record.attempt} {how}"
