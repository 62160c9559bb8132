"""`RunDetails(run).show()` (SDK v1 `azureml.widgets`): a run's live status where the code runs.

- In Jupyter (an IPython kernel): a table of the run's steps that updates itself every second
  until the run ends, and `show()` returns at once, as SDK v1's widget did. It is an
  ipywidgets `HTML` widget when ipywidgets is installed (`pip install 'headrace[widgets]'`);
  without it, the same table in an updating output (IPython's display handles).
- Anywhere else (a script, a terminal): the table drawn live with rich, and `show()` returns
  when the run has ended (SDK v1 printed nothing useful outside a notebook).

The table has one row per step (from the pipeline's graph, so steps that have not started
are listed too): status, whether it was reused, duration, and why it ran. A StepRun shows
its own row. ipywidgets and IPython are imported only when a notebook asks for them.
"""

from __future__ import annotations

import html
import importlib
import sys
import threading
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from headrace.errors import UserError
from headrace.store.records import TERMINAL_STATUSES

if TYPE_CHECKING:
    from headrace.sdk.runs import PipelineRun, StepRun

__all__ = ["RunDetails", "StepRow", "step_rows"]

POLL_SECONDS = 1.0

StepRow = dict[str, str]


def _duration(started: datetime | None, ended: datetime | None) -> str:
    if started is None:
        return ""
    if started.tzinfo is None:
        started = started.replace(tzinfo=timezone.utc)
    end = ended or datetime.now(timezone.utc)
    if end.tzinfo is None:
        end = end.replace(tzinfo=timezone.utc)
    seconds = max(0.0, (end - started).total_seconds())
    return f"{seconds:.1f} s" if seconds < 60 else f"{int(seconds // 60)} min {int(seconds % 60)} s"


def step_rows(run: PipelineRun | StepRun) -> tuple[str, list[StepRow]]:
    """The run's status and one row per step (in the graph's order)."""
    from headrace.sdk.runs import PipelineRun

    if not isinstance(run, PipelineRun):
        record = run._record
        return record.status, [_row(record.name, record)]
    status = run.get_status()
    records = {r.node_id: r for r in run._backend.list_step_runs(run.id)}
    rows = []
    for node in run.get_graph().nodes:
        rows.append(_row(node.name, records.get(node.id)))
    return status, rows


def _row(name: str, record: Any) -> StepRow:
    if record is None:
        return {"step": name, "status": "NotStarted", "reused": "", "duration": "", "why": ""}
    return {
        "step": name,
        "status": record.status,
        "reused": "yes" if record.reused_run_id else "no",
        "duration": _duration(record.started_at, record.ended_at),
        "why": str((record.run_reason or {}).get("summary", "")),
    }


class RunDetails:
    """SDK v1's run widget over a PipelineRun or StepRun (`azureml.widgets.RunDetails`)."""

    def __init__(self, run_instance: Any) -> None:
        from headrace.sdk.runs import PipelineRun, StepRun

        if not isinstance(run_instance, (PipelineRun, StepRun)):
            raise UserError(
                f"RunDetails shows a PipelineRun or a StepRun, not {type(run_instance).__name__}"
                "; pass the run that Experiment.submit returned."
            )
        self.run_instance = run_instance
        self.widget: Any = None  # the ipywidgets widget, once shown in Jupyter
        self._thread: threading.Thread | None = None

    def get_widget_data(self, widget_settings: dict[str, Any] | None = None) -> dict[str, Any]:
        """What the widget shows, as data (SDK v1 has this method too)."""
        status, rows = step_rows(self.run_instance)
        return {"run_id": self.run_instance.id, "status": status, "steps": rows}

    def show(self) -> None:
        """In Jupyter: display the live table and return. Elsewhere: draw it live in the
        terminal until the run ends."""
        if _in_notebook():
            self._show_in_notebook()
        else:
            self._show_in_terminal()

    # -- Jupyter ---------------------------------------------------------------------------
    def _show_in_notebook(self) -> None:
        from IPython import display as ipython_display

        # IPython and ipywidgets have no type information; they are used as Any.
        display: Any = ipython_display.display
        HTML: Any = ipython_display.HTML
        try:
            ipywidgets: Any = importlib.import_module("ipywidgets")
        except ImportError:
            handle = display(HTML(self._html()), display_id=True)

            def update(text: str) -> None:
                handle.update(HTML(text))
        else:
            widget = self.widget = ipywidgets.HTML(value=self._html())
            display(widget)

            def update(text: str) -> None:
                widget.value = text

        self._thread = threading.Thread(target=self._follow, args=(update,), daemon=True)
        self._thread.start()

    def wait(self, timeout: float | None = None) -> None:
        """In Jupyter: wait until the shown table has its final state (or `timeout`)."""
        if self._thread is not None:
            self._thread.join(timeout)

    def _follow(self, update: Any) -> None:
        while True:
            data = self.get_widget_data()
            update(self._html(data))
            if data["status"] in TERMINAL_STATUSES:
                return
            time.sleep(POLL_SECONDS)

    def _html(self, data: dict[str, Any] | None = None) -> str:
        data = data or self.get_widget_data()
        head = "".join(f"<th>{h}</th>" for h in ("Step", "Status", "Reused", "Duration", "Why"))
        body = "".join(
            "<tr>"
            + "".join(
                f"<td>{html.escape(row[key])}</td>"
                for key in ("step", "status", "reused", "duration", "why")
            )
            + "</tr>"
            for row in data["steps"]
        )
        title = f"Run {html.escape(data['run_id'])}: {html.escape(data['status'])}"
        return f"<div><b>{title}</b><table><tr>{head}</tr>{body}</table></div>"

    # -- terminal --------------------------------------------------------------------------
    def _show_in_terminal(self) -> None:
        from rich.console import Console
        from rich.live import Live

        console = Console(file=sys.stdout)
        data = self.get_widget_data()
        with Live(_table(data), console=console, refresh_per_second=4) as live:
            while data["status"] not in TERMINAL_STATUSES:
                time.sleep(POLL_SECONDS)
                data = self.get_widget_data()
                live.update(_table(data))


def _table(data: dict[str, Any]) -> Any:
    from rich.table import Table

    table = Table(title=f"Run {data['run_id']}: {data['status']}", title_justify="left")
    for header in ("STEP", "STATUS", "REUSED", "DURATION", "WHY IT RAN"):
        table.add_column(header)
    for row in data["steps"]:
        table.add_row(row["step"], row["status"], row["reused"], row["duration"], row["why"])
    return table


def _in_notebook() -> bool:
    """Whether this code runs in a Jupyter kernel (IPython is never imported to find out)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"
