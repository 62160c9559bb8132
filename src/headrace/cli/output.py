"""How the CLI prints: rich tables for people, one JSON document for programs (`--json`).

Records become plain dicts here (`run_document`, `step_document`) so the JSON keys of every
command stay the same wherever a run or step appears.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from headrace.store.records import (
    RECOVER_FROM,
    RERUN_OF,
    PipelineRunRecord,
    Status,
    StepRunRecord,
)

__all__ = [
    "PlainTable",
    "console",
    "details_table",
    "duration_seconds",
    "format_duration",
    "format_time",
    "iso",
    "new_table",
    "pending_step_document",
    "print_json",
    "run_document",
    "status_text",
    "step_document",
]

_STATUS_STYLE = {
    Status.FINISHED: "green",
    Status.FAILED: "red",
    Status.CANCELED: "yellow",
    Status.RUNNING: "cyan",
    Status.QUEUED: "blue",
    Status.NOT_STARTED: "dim",
}


class PlainTable:
    """What `new_table` gives when stdout is not a terminal: columns padded with spaces, no
    borders, styles or wrapping, written straight out (rich's layout of a 500-step table
    costs seconds; this costs milliseconds)."""

    def __init__(self, *headers: str) -> None:
        self.rows: list[list[str]] = [list(headers)]

    def add_row(self, *cells: str | Text | None) -> None:
        self.rows.append(
            ["" if c is None else c.plain if isinstance(c, Text) else c for c in cells]
        )

    def render(self) -> str:
        widths = [max(len(row[i]) for row in self.rows) for i in range(len(self.rows[0]))]
        lines = []
        for row in self.rows:
            cells = [
                cell.replace("\n", " ").ljust(width)
                for cell, width in zip(row, widths, strict=True)
            ]
            lines.append("  ".join(cells).rstrip())
        return "\n".join(lines) + "\n"


class _Console(Console):
    def print(self, *objects: Any, **options: Any) -> None:
        if len(objects) == 1 and isinstance(objects[0], PlainTable):
            self.file.write(objects[0].render())
            self.file.flush()
            return
        super().print(*objects, **options)


def console() -> Console:
    """A console on the current stdout; piped output is not cut at 80 columns, so ids and
    paths stay whole for grep and copy."""
    return _Console(highlight=False, soft_wrap=False, width=None if sys.stdout.isatty() else 200)


def new_table(*headers: str, **options: Any) -> Any:
    """A table with these column headers (`add_row`, then `console().print` it): ruled for a
    terminal; piped, a `PlainTable` of plain columns for grep, awk and cut."""
    if sys.stdout.isatty():
        return Table(*headers, **options)
    return PlainTable(*headers)


def print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")
    sys.stdout.flush()


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def iso(value: datetime | None) -> str | None:
    return _aware(value).isoformat() if value is not None else None


def duration_seconds(start: datetime | None, end: datetime | None) -> float | None:
    """Seconds from start to end; for something still going, until now."""
    if start is None:
        return None
    stop = _aware(end) if end is not None else datetime.now(timezone.utc)
    return round((stop - _aware(start)).total_seconds(), 3)


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def format_time(value: datetime | None) -> str:
    """A timestamp in the machine's local zone, to the second, with the zone's abbreviation
    ("2026-12-08 02:02:03 CET"; "... UTC" where the zone is UTC): the instant the portal
    shows, in the same form (`--json` gives ISO 8601 with its offset)."""
    if value is None:
        return "-"
    return _aware(value).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def status_text(status: str) -> Text:
    return Text(status, style=_STATUS_STYLE.get(status, ""))


def details_table(rows: list[tuple[str, str | Text]]) -> Table:
    """Two columns, label and value, for the `show` commands."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for label, value in rows:
        table.add_row(label, value if isinstance(value, Text) else Text(value))
    return table


def run_document(record: PipelineRunRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "experiment": record.experiment_name,
        "status": record.status,
        "cancel_requested": record.cancel_requested,
        "created_at": iso(record.created_at),
        "started_at": iso(record.started_at),
        "ended_at": iso(record.ended_at),
        "duration_seconds": duration_seconds(record.started_at, record.ended_at),
        "parameters": record.parameters,
        "tags": record.tags,
        "description": record.description,
        "run_source": record.run_source,
        "continue_on_step_failure": record.continue_on_step_failure,
        "regenerate_outputs": record.regenerate_outputs,
        "error": record.error,
        "rerun_of": record.properties.get(RERUN_OF),
        "resumes": record.properties.get(RECOVER_FROM),
    }


def step_document(record: StepRunRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "pipeline_run_id": record.pipeline_run_id,
        "node_id": record.node_id,
        "name": record.name,
        "status": record.status,
        "attempt": record.attempt,
        "compute_target": record.compute_target,
        "started_at": iso(record.started_at),
        "ended_at": iso(record.ended_at),
        "duration_seconds": duration_seconds(record.started_at, record.ended_at),
        "reused": record.reused_run_id is not None,
        "reused_run_id": record.reused_run_id,
        "run_reason": record.run_reason,
        "exit_code": record.exit_code,
        "error": record.error,
    }


def pending_step_document(
    pipeline_run_id: str, node_id: str, name: str, compute_target: str
) -> dict[str, Any]:
    """A step of a run that has no step run yet, with the keys of `step_document`."""
    return {
        "id": None,
        "pipeline_run_id": pipeline_run_id,
        "node_id": node_id,
        "name": name,
        "status": Status.NOT_STARTED,
        "attempt": 0,
        "compute_target": compute_target,
        "started_at": None,
        "ended_at": None,
        "duration_seconds": None,
        "reused": False,
        "reused_run_id": None,
        "run_reason": {},
        "exit_code": None,
        "error": None,
    }
