"""How the CLI prints: rich tables for people, one JSON document for programs (`--json`).

Records become plain dicts here (`run_document`, `step_document`) so the JSON keys of every
command stay the same wherever a run or step appears.

Piped (stdout not a terminal), tables are plain columns and the text that goes in them is
plain (`text()` gives a `PlainText`); `console()` writes those itself and hands anything else
to rich, which is then imported (importing rich costs a fresh `headrace run list | grep`
more than reading the runs).
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from headrace.store.records import (
    RECOVER_FROM,
    RERUN_OF,
    PipelineRunRecord,
    Status,
    StepRunRecord,
)

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

__all__ = [
    "PlainTable",
    "PlainText",
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
    "text",
]

_STATUS_STYLE = {
    Status.FINISHED: "green",
    Status.FAILED: "red",
    Status.CANCELED: "yellow",
    Status.RUNNING: "cyan",
    Status.QUEUED: "blue",
    Status.NOT_STARTED: "dim",
}


class PlainText(str):
    """Text for a piped table or line: printed as it is (no markup, no emoji codes)."""

    __slots__ = ()

    @property
    def plain(self) -> str:
        return str(self)


def _piped() -> bool:
    return not sys.stdout.isatty()


# The control characters rich's Text drops (rich.control.STRIP_CONTROL_CODES).
_DROPPED = dict.fromkeys((7, 8, 11, 12, 13))


def text(value: str, style: str = "") -> Any:
    """A table cell or line printed as it is: rich's Text on a terminal, else PlainText
    (without the control characters rich would drop)."""
    if _piped():
        return PlainText(value.translate(_DROPPED))
    from rich.text import Text

    return Text(value, style=style)


class PlainTable:
    """What `new_table` gives when stdout is not a terminal: columns padded with spaces, no
    borders, styles or wrapping, written straight out (rich's layout of a 500-step table
    costs seconds; this costs milliseconds). `header=False`: rows only (`details_table`)."""

    def __init__(self, *headers: str, header: bool = True, columns: int = 0) -> None:
        self.rows: list[list[str]] = [list(headers)] if header else []
        self.header = header
        self.columns = len(headers) if header else columns

    def add_row(self, *cells: Any) -> None:
        self.rows.append([_plain(c) for c in cells])

    def render(self) -> str:
        if not self.rows:
            return ""
        if self.header:
            rows = [[cell.replace("\n", " ") for cell in row] for row in self.rows]
        else:  # a details grid: a value of several lines keeps them, under its column
            rows = self.rows
        widths = [
            max(len(line) for row in rows for line in row[i].split("\n"))
            for i in range(self.columns)
        ]
        indent = " " * (sum(widths[:-1]) + 2 * (self.columns - 1))
        lines = []
        for row in rows:
            *first, last = row
            head, *more = last.split("\n")
            cells = [cell.ljust(width) for cell, width in zip([*first, head], widths, strict=True)]
            lines.append("  ".join(cells).rstrip())
            lines += [(indent + line).rstrip() for line in more]
        return "\n".join(lines) + "\n"


def _plain(cell: Any) -> str:
    if cell is None:
        return ""
    if isinstance(cell, str):
        return str(cell)
    return str(cell.plain)  # rich's Text


_WIDTH = 200  # piped output is not cut at 80 columns, so ids and paths stay whole


def _writes_as_is(value: Any) -> bool:
    """Whether rich would print `value` (piped, no styles) exactly as its characters: text
    that needs no wrapping and, unless PlainText, holds no markup or emoji codes."""
    if not isinstance(value, str) or "\t" in value:  # rich expands tabs
        return False
    if not isinstance(value, PlainText) and (
        "[" in value or ":" in value or value != value.translate(_DROPPED)
    ):
        return False
    return all(len(line) <= _WIDTH for line in value.split("\n"))


class _PlainConsole:
    """The console when stdout is piped: plain tables and plain text written directly,
    anything else printed by rich."""

    def __init__(self) -> None:
        self.file = sys.stdout
        self._rich: Any = None

    def print(self, *objects: Any, **options: Any) -> None:
        if len(objects) == 1 and isinstance(objects[0], PlainTable):
            self.file.write(objects[0].render())
        elif len(objects) == 1 and not options and _writes_as_is(objects[0]):
            self.file.write(f"{objects[0]}\n")
        else:
            if self._rich is None:
                self._rich = _rich_console()
            self._rich.print(*objects, **options)
            return
        self.file.flush()


def _rich_console() -> Any:
    from rich.console import Console

    class _Console(Console):
        def print(self, *objects: Any, **options: Any) -> None:
            if len(objects) == 1 and isinstance(objects[0], PlainTable):
                self.file.write(objects[0].render())
                self.file.flush()
                return
            super().print(*objects, **options)

    return _Console(highlight=False, soft_wrap=False, width=None if sys.stdout.isatty() else _WIDTH)


def console() -> Console:
    """A console on the current stdout; piped output is not cut at 80 columns, so ids and
    paths stay whole for grep and copy."""
    if _piped():
        return _PlainConsole()  # type: ignore[return-value]  # prints what the CLI prints
    return _rich_console()  # type: ignore[no-any-return]


def new_table(*headers: str, **options: Any) -> Any:
    """A table with these column headers (`add_row`, then `console().print` it): ruled for a
    terminal; piped, a `PlainTable` of plain columns for grep, awk and cut."""
    if _piped():
        return PlainTable(*headers)
    from rich.table import Table

    return Table(*headers, **options)


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
    return text(status, style=_STATUS_STYLE.get(status, ""))  # type: ignore[no-any-return]


def details_table(rows: list[tuple[str, str | Text]]) -> Any:
    """Two columns, label and value, for the `show` commands (piped: a plain grid)."""
    if _piped():
        grid = PlainTable(header=False, columns=2)
        for label, value in rows:
            grid.add_row(label, value)
        return grid
    from rich.table import Table
    from rich.text import Text

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
