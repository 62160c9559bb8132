"""What runs produced, in the terminal: metrics (`headrace run metrics`, and the metrics part of
`run show` / `step show`) and run files (`headrace step files`, `headrace step download`).

A metric logged several times is a series: tables summarise it as last / min / max / count,
`--json` of `run metrics` carries every value. A reused step shows the metrics and files of the
step run it reused (as the SDK's `StepRun.get_metrics` does).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer

from headrace.cli.common import (
    JsonOption,
    WorkspaceOption,
    get_step_run,
    open_workspace,
    read_backend,
)
from headrace.cli.output import console, new_table, print_json, text
from headrace.errors import UserError
from headrace.store.records import MetricRecord, RunFileRecord, StepRunRecord

__all__ = [
    "files_document",
    "format_size",
    "metric_summaries",
    "metrics_table",
    "print_files",
    "step_download",
    "step_files",
]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _series(records: list[MetricRecord]) -> dict[tuple[str, str], list[MetricRecord]]:
    """Records grouped by (run id, metric name), in the order they were logged."""
    grouped: dict[tuple[str, str], list[MetricRecord]] = {}
    for record in records:
        grouped.setdefault((record.run_id, record.name), []).append(record)
    return grouped


def _summary(items: list[MetricRecord], *, whole: bool) -> dict[str, Any]:
    """kind, count, last, min and max (numbers only) of one metric; `whole`: every value too,
    with the step it was logged at."""
    numbers = [n for n in (_number(i.value) for i in items) if n is not None]
    summary: dict[str, Any] = {
        "kind": items[0].kind,
        "count": len(items),
        "last": items[-1].value,
        "min": min(numbers) if numbers else None,
        "max": max(numbers) if numbers else None,
    }
    if items[0].description:
        summary["description"] = items[0].description
    if whole:
        summary["values"] = [i.value for i in items]
        summary["steps"] = [i.step for i in items]
    return summary


def metric_summaries(records: list[MetricRecord]) -> dict[str, dict[str, dict[str, Any]]]:
    """The metrics among `records`, summarised: {run id: {metric name: summary}}."""
    summaries: dict[str, dict[str, dict[str, Any]]] = {}
    for (owner, name), items in _series(records).items():
        summaries.setdefault(owner, {})[name] = _summary(items, whole=False)
    return summaries


def _value_text(value: Any) -> str:
    number = _number(value)
    if number is not None and not isinstance(value, int):
        return f"{number:.6g}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_value_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        shown = ", ".join(_value_text(v) for v in value[:5])
        return f"[{shown}{', …' if len(value) > 5 else ''}] ({len(value)} values)"
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def metrics_table(rows: list[tuple[str, str, dict[str, Any]]]) -> Any:
    """(step label, metric name, summary) rows as a table."""
    table = new_table("STEP", "METRIC", "LAST", "MIN", "MAX", "COUNT")
    for step, name, summary in rows:
        series = summary["count"] > 1
        table.add_row(
            text(step),
            text(name),
            text(_value_text(summary["last"])),
            _value_text(summary["min"]) if series and summary["min"] is not None else "",
            _value_text(summary["max"]) if series and summary["max"] is not None else "",
            str(summary["count"]),
        )
    return table


def format_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover - the loop always returns


def files_document(files: list[RunFileRecord]) -> list[dict[str, Any]]:
    return [{"name": f.name, "size": f.size} for f in sorted(files, key=lambda f: f.name)]


def print_files(files: list[dict[str, Any]], title: str) -> None:
    out = console()
    out.print(text(title, style="bold"))
    table = new_table("FILE", "SIZE")
    for item in files:
        table.add_row(text(item["name"]), format_size(item["size"]))
    out.print(table)


def run_metrics_document(
    backend: Any, run_id: str, steps: list[StepRunRecord], *, own: bool = True
) -> dict[str, Any]:
    """Every metric of a pipeline run (its own, logged with `run.parent.log`, unless not `own`)
    and of `steps`, each with all its values."""
    owners: dict[str, tuple[str | None, str | None]] = {run_id: (None, None)} if own else {}
    for step in steps:
        owners.setdefault(step.data_run_id, (step.name, step.id))
    records = backend.list_metrics(list(owners))
    metrics = []
    for (owner, name), items in _series(records).items():
        step_name, step_run_id = owners.get(owner, (None, None))
        metrics.append(
            {
                "step": step_name,
                "step_run_id": step_run_id,
                "run_id": owner,
                "name": name,
                **_summary(items, whole=True),
            }
        )
    order = {owner: i for i, owner in enumerate(owners)}
    metrics.sort(key=lambda m: (order.get(m["run_id"], len(order)), m["name"]))
    return {"run_id": run_id, "metrics": metrics}


def print_run_metrics(document: dict[str, Any]) -> None:
    rows = [(m["step"] or "(pipeline)", m["name"], m) for m in document["metrics"]]
    if not rows:
        console().print(
            f"Run {document['run_id']} has no metrics (steps log them with "
            "Run.get_context().log(name, value))."
        )
        return
    console().print(metrics_table(rows))


# -- step files and download ---------------------------------------------------------------
StepRunArgument = Annotated[str, typer.Argument(help="Step run id (a unique prefix is enough).")]


def step_files(
    step_run_id: StepRunArgument, workspace: WorkspaceOption = None, json_: JsonOption = False
) -> None:
    """List a step run's files (logs, uploads, outputs/): name and size."""
    ws = open_workspace(workspace)
    record = get_step_run(ws, step_run_id)
    files = files_document(read_backend(ws).list_run_files(record.data_run_id))
    if json_:
        print_json({"step_run_id": record.id, "run_id": record.data_run_id, "files": files})
        return
    if not files:
        console().print(f"Step run {record.id} ({record.name}) has no files.")
        return
    print_files(files, f"Files of step run {record.id} ({record.name}):")


def step_download(
    step_run_id: StepRunArgument,
    names: Annotated[
        list[str] | None,
        typer.Argument(metavar="FILE", help="Files to download (default: all; see `step files`)."),
    ] = None,
    to: Annotated[
        Path, typer.Option("--to", help="Folder to download into (created if missing).")
    ] = Path("."),
    prefix: Annotated[
        str | None,
        typer.Option(help="Only files whose name starts with this, e.g. outputs/ or user_logs/."),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace files that already exist locally.")
    ] = False,
    workspace: WorkspaceOption = None,
    json_: JsonOption = False,
) -> None:
    """Download a step run's files into a folder, keeping their paths (outputs/model.pkl
    lands at TO/outputs/model.pkl); existing local files are kept unless --overwrite."""
    ws = open_workspace(workspace)
    record = get_step_run(ws, step_run_id)
    available = {f.name: f.size for f in ws.backend.list_run_files(record.data_run_id)}
    wanted = sorted(available)
    if names:
        missing = [n for n in names if n not in available]
        if missing:
            from headrace.graph.validate import did_you_mean

            listing = ", ".join(sorted(available)) or "none"
            raise UserError(
                f"Step run {record.id} ({record.name}) has no file {missing[0]!r}"
                f"{did_you_mean(missing[0], list(available))}; its files: {listing}."
            )
        wanted = list(dict.fromkeys(names))
    if prefix:
        wanted = [n for n in wanted if n.startswith(prefix)]
    target = to.expanduser().absolute()
    downloaded: list[str] = []
    skipped: list[str] = []
    for name in wanted:
        destination = (target / name).resolve()
        if not destination.is_relative_to(target.resolve()):
            raise UserError(f"File name {name!r} leaves the folder {target}; not downloaded.")
        if destination.exists() and not overwrite:
            skipped.append(name)
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        ws.backend.download_run_file(record.data_run_id, name, destination)
        downloaded.append(name)
    if json_:
        print_json(
            {
                "step_run_id": record.id,
                "folder": str(target),
                "downloaded": downloaded,
                "skipped": skipped,
            }
        )
        return
    out = console()
    out.print(f"Downloaded {len(downloaded)} file(s) of step run {record.id} to {target}.")
    if skipped:
        out.print(
            f"{len(skipped)} already there, kept (pass --overwrite to replace them): "
            + ", ".join(skipped)
        )
    if not wanted:
        out.print("No file matched." if (names or prefix) else "The step run has no files.")
