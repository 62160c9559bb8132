"""`headrace step show|files|download`. `step show` is one step run in full: its command after
substitution, why it ran or which run it reused, what its fingerprint is made of, where its
data is, its metrics and files, and how it failed (files and download: `cli.results`)."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Annotated, Any

import typer

from headrace.cli.common import (
    JsonOption,
    WorkspaceOption,
    get_step_run,
    open_workspace,
    read_backend,
)
from headrace.cli.output import (
    console,
    details_table,
    format_duration,
    format_time,
    new_table,
    print_json,
    status_text,
    step_document,
    text,
)
from headrace.cli.results import (
    files_document,
    metric_summaries,
    metrics_table,
    print_files,
    step_download,
    step_files,
)
from headrace.engine.environments import describe_environment
from headrace.graph.model import Graph, StepNode
from headrace.kinds import kind_title, settings_text, step_title
from headrace.kinds.parallel.progress import progress_view
from headrace.sdk.workspace import Workspace
from headrace.store.records import PipelineRunRecord, StepRunRecord
from headrace.store.steplogs import COMBINED_LOG, split_line

if TYPE_CHECKING:
    from rich.text import Text

__all__ = ["app", "show_step", "step_details"]

LOG_TAIL_LINES = 20  # of the combined log, in `step show`
LOG_TAIL_BYTES = 16 * 1024
LOG_STYLES = {"stderr": "red", "headrace": "bold"}

app = typer.Typer(no_args_is_help=True, help="Inspect step runs, their files and metrics.")


@app.command("show")
def show(
    step_run_id: Annotated[str, typer.Argument(help="Step run id (a unique prefix is enough).")],
    workspace: WorkspaceOption = None,
    json_: JsonOption = False,
) -> None:
    """Show a step run: status, command, why it ran or which run it reused, data, error."""
    ws = open_workspace(workspace)
    show_step(ws, get_step_run(ws, step_run_id), json_=json_)


def show_step(ws: Workspace, record: StepRunRecord, *, json_: bool) -> None:
    details = step_details(ws, record)
    if json_:
        print_json(details)
    else:
        _print(details, record)


def step_details(ws: Workspace, record: StepRunRecord) -> dict[str, Any]:
    backend = read_backend(ws)
    run = backend.get_pipeline_run(record.pipeline_run_id)
    graph = backend.get_graph(run.graph_id)
    reason = dict(record.run_reason)
    reused_pipeline = record.properties.get("azureml.reusedpipeline")
    node = _node(graph, record.node_id)
    metrics = backend.list_metrics([record.data_run_id])
    files = backend.list_run_files(record.data_run_id)
    return {
        **step_document(record),
        "experiment": run.experiment_name,
        # What the step is ("SqlStep", "PythonScriptStep", ...) and, for a step of a kind
        # package, its settings: what a user wrote, rather than the process's command.
        "step_type": step_title(node) if node is not None else None,
        "settings": node.settings if node is not None else None,
        "command": [str(c) for c in record.command],
        "reason": {
            "decision": reason.get("decision", "reused" if record.reused_run_id else "run"),
            "summary": reason.get("summary", ""),
            "changes": list(reason.get("changes") or []),
            "compared_with": reason.get("compared_with"),
            "reused_run_id": record.reused_run_id,
            "reused_pipeline_run_id": reused_pipeline,
        },
        # What the step ran in: the submitter's Python, or its environment.
        "python": describe_environment(record.fingerprint_parts.get("environment")),
        "metrics": metric_summaries(metrics).get(record.data_run_id, {}),
        "files": files_document(files),
        # The end of the combined log (stdout and stderr in order, each line with its time
        # and stream): `headrace run logs RUN --step NAME` prints all of it.
        "log_tail": _log_tail(backend, record, {f.name: f.size for f in files}),
        "fingerprint": record.fingerprint,
        "fingerprint_parts": record.fingerprint_parts,
        "inputs": _inputs(ws, record, run, graph),
        # A ParallelRunStep's items and mini-batches done / failed / remaining, and its
        # workers (from its metrics; null for other steps).
        "progress": progress_view(
            metrics, parallel=node is not None and node.step_kind == "parallel"
        ),
        "outputs": [
            {
                "port": port,
                "data": out.get("data_name"),
                "datastore": out.get("datastore"),
                "path": out.get("path"),
                "local_path": _local_path(ws, out.get("datastore"), out.get("path")),
                "pipeline_output_name": out.get("pipeline_output_name"),
            }
            for port, out in record.outputs.items()
        ],
    }


def _log_tail(backend: Any, record: StepRunRecord, sizes: dict[str, int]) -> list[str]:
    size = sizes.get(COMBINED_LOG, 0)
    start = max(0, size - LOG_TAIL_BYTES)
    raw = bytes(backend.read_run_file(record.data_run_id, COMBINED_LOG, start)) if size else b""
    lines = raw.decode(errors="replace").splitlines()
    return lines[-LOG_TAIL_LINES:] if not start else lines[1:][-LOG_TAIL_LINES:]


def _print_log_tail(lines: list[str], record: StepRunRecord) -> None:
    out = console()
    out.print(
        text(
            "Log, stdout and stderr in order (all of it: headrace run logs "
            f"{record.pipeline_run_id} --step {record.name}):",
            style="bold",
        )
    )
    for line in lines:
        _time, stream, _text = split_line(line)
        out.print(text(line, style=LOG_STYLES.get(stream, "")))


def _node(graph: Graph, node_id: str) -> StepNode | None:
    try:
        return graph.node(node_id)
    except KeyError:
        return None


def _default_datastore(ws: Workspace, graph: Graph) -> str | None:
    if graph.default_datastore:
        return graph.default_datastore
    return next((d.name for d in read_backend(ws).list_datastores() if d.is_default), None)


def _local_path(ws: Workspace, datastore: str | None, path: str | None) -> str | None:
    if not datastore or path is None:
        return None
    try:
        root = read_backend(ws).datastore_root(datastore)
    except LookupError:
        return None
    return f"{root.rstrip('/')}/{path}" if path else root


def _inputs(
    ws: Workspace, record: StepRunRecord, run: PipelineRunRecord, graph: Graph
) -> list[dict[str, Any]]:
    """Where each input of the step was read from: a datastore path, a DataPath parameter's
    value, or the output of the step run that produced it (the one it reused, if reused)."""
    try:
        node = graph.node(record.node_id)
    except KeyError:
        return []
    identities = record.fingerprint_parts.get("inputs", {})
    siblings = {s.node_id: s for s in read_backend(ws).list_step_runs(record.pipeline_run_id)}
    default = _default_datastore(ws, graph)
    inputs = []
    for binding in node.inputs:
        data = graph.data_node(binding.data)
        producer = None
        datastore: str | None
        path: str | None
        if data.kind == "pipeline_data":
            produced = siblings.get(data.producer or "")
            producer = produced.name if produced else None
            out = produced.outputs.get(data.output_name or data.name) if produced else None
            datastore = out.get("datastore") if out else None
            path = out.get("path") if out else None
        elif data.kind == "datapath_parameter":
            value = run.parameters.get(data.parameter or "") or {}
            datastore = value.get("datastore") or default
            path = value.get("path") or ""
        else:
            datastore = data.datastore or default
            path = data.path_on_datastore or ""
        inputs.append(
            {
                "port": binding.port,
                "data": data.name,
                "kind": data.kind,
                "mode": binding.mode,
                "producer": producer,
                "datastore": datastore,
                "path": path,
                "local_path": _local_path(ws, datastore, path),
                "identity": identities.get(binding.port),
            }
        )
    return inputs


def _fingerprint_rows(parts: dict[str, Any]) -> list[tuple[str, str]]:
    """A short account of what the step's fingerprint is made of."""
    if not parts:
        return []
    step = parts.get("step") or {}
    what = step.get("script_name") or step.get("command") or ""
    environment = parts.get("environment") or {}
    if step.get("step_kind"):
        # A step of a kind package: its settings are in the step's details above.
        what = f"{kind_title(str(step['step_kind']))} (its settings)"
        rows = [("step", what)]
    else:
        rows = [("step", f"{step.get('kind', '')} {what}".strip())]
    rows += [
        ("arguments", " ".join(str(a) for a in parts.get("arguments") or []) or "-"),
        (
            "parameters",
            ", ".join(f"{k}={v!r}" for k, v in (parts.get("parameters") or {}).items()) or "-",
        ),
        ("source snapshot", str(parts.get("source") or "-")[:16]),
        ("environment", describe_environment(environment)),
    ]
    for port, identity in (parts.get("inputs") or {}).items():
        rows.append((f"input {port}", str(identity)))
    return rows


def _print(details: dict[str, Any], record: StepRunRecord) -> None:
    reason = details["reason"]
    rows: list[tuple[str, str | Text]] = [
        ("Step run", record.id),
        ("Step", record.name),
        ("Pipeline run", f"{record.pipeline_run_id} (experiment {details['experiment']})"),
        ("Status", status_text(record.status)),
        ("Attempt", str(record.attempt + 1)),
        ("Compute target", record.compute_target),
        ("Started", format_time(record.started_at)),
        ("Duration", format_duration(details["duration_seconds"])),
    ]
    if record.exit_code is not None:
        rows.append(("Exit code", str(record.exit_code)))
    if record.reused_run_id:
        source = f"step run {record.reused_run_id}"
        if reason["reused_pipeline_run_id"]:
            source += f" of pipeline run {reason['reused_pipeline_run_id']}"
        rows.append(("Reused", text(f"yes: the outputs of {source}", style="green")))
        rows.append(("Why", reason["summary"]))
    else:
        rows.append(("Why it ran", reason["summary"] or "-"))
        if reason["compared_with"]:
            rows.append(("Compared with", f"step run {reason['compared_with']}"))
    if details["step_type"]:
        rows.append(("Step type", details["step_type"]))
    if details["settings"] is not None:
        # A step of a kind package: its settings say what it does; its command is always
        # `python -m headrace.kinds` (in --json).
        for key, value in settings_text(details["settings"]):
            rows.append((f"  {key}", value))
    elif details["command"]:
        rows.append(("Command", shlex.join(details["command"])))
    if record.fingerprint_parts:
        rows.append(("Python", details["python"]))
    if record.fingerprint:
        rows.append(("Fingerprint", record.fingerprint[:16]))
    out = console()
    out.print(details_table(rows))
    if len(reason["changes"]) > 1:
        out.print(text("What changed:", style="bold"))
        for change in reason["changes"]:
            out.print(text(f"  - {change}"))
    if details["progress"]:
        _print_progress(details["progress"])
    fingerprint = _fingerprint_rows(record.fingerprint_parts)
    if fingerprint:
        out.print(text("Fingerprint parts:", style="bold"))
        out.print(details_table([(f"  {k}", v) for k, v in fingerprint]))
    if details["inputs"] or details["outputs"]:
        table = new_table("", "PORT", "DATA", "DATASTORE", "PATH", "FROM", title=None)
        for item in details["inputs"]:
            source = f"step {item['producer']}" if item["producer"] else item["kind"]
            table.add_row(
                "in",
                item["port"],
                item["data"],
                item["datastore"] or "-",
                item["path"] or "",
                source,
            )
        for item in details["outputs"]:
            table.add_row(
                "out", item["port"], item["data"] or "", item["datastore"] or "-", item["path"], ""
            )
        out.print(table)
    if details["metrics"]:
        out.print(text("Metrics:", style="bold"))
        out.print(metrics_table([(record.name, k, m) for k, m in details["metrics"].items()]))
    if details["files"]:
        print_files(details["files"], "Files (headrace step download to fetch them):")
    if details["log_tail"]:
        _print_log_tail(details["log_tail"], record)
    error = record.error
    if error:
        out.print(text(f"Error: {error.get('message', '')}", style="red"))
        tail = str(error.get("stderr_tail") or "").rstrip()
        if tail:
            out.print(text("Last lines of stderr:", style="bold"))
            out.print(text(tail))


app.command("files")(step_files)
app.command("download")(step_download)


def _print_progress(progress: dict[str, Any]) -> None:
    items, batches = progress["items"], progress["mini_batches"]
    out = console()
    out.print(
        text(
            f"Progress {progress['bar']} {progress['percent']:.0f}%: items "
            f"{items['done']}/{items['total']} done, {items['failed']} failed, "
            f"{items['remaining']} remaining; mini-batches {batches['done']}/"
            f"{batches['total']} done, {batches['failed']} failed, "
            f"{batches['remaining']} remaining",
            style="bold",
        )
    )
    if progress["workers"]:
        from rich.table import Table

        table = Table("WORKER", "NODE", "BATCHES DONE", "FAILED", "CURRENT BATCH", "LAST HEARTBEAT")
        for worker in progress["workers"]:
            table.add_row(
                str(worker["worker"]),
                str(worker["node"]),
                str(worker["batches_done"]),
                str(worker["batches_failed"]),
                str(worker["current_batch"]) if worker["current_batch"] != "" else "-",
                str(worker["last_heartbeat"]),
            )
        out.print(table)
