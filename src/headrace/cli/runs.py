"""`headrace run submit|list|show|metrics|logs|wait|cancel|rerun`.

`run list`, `run show` and `run metrics` run from a fresh shell on every look at a run, so
this module imports only what they need; the others import their helpers (pipeline loading,
log following, the step view) when they run."""

from __future__ import annotations

import contextlib
import sys
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from headrace.cli.common import (
    JsonOption,
    WorkspaceOption,
    find_run,
    get_pipeline_run,
    open_workspace,
    read_backend,
    remember_workspace,
)
from headrace.cli.output import (
    console,
    details_table,
    duration_seconds,
    format_duration,
    format_time,
    new_table,
    pending_step_document,
    print_json,
    run_document,
    status_text,
    step_document,
    text,
)
from headrace.cli.results import (
    files_document,
    metric_summaries,
    metrics_table,
    print_files,
    print_run_metrics,
    run_metrics_document,
)
from headrace.errors import UserError
from headrace.store.records import IGNORED_PARAMETERS, PipelineRunRecord, Status, StepRunRecord

if TYPE_CHECKING:
    from rich.text import Text

__all__ = ["app"]

_ENDED = frozenset({Status.FINISHED, Status.FAILED, Status.CANCELED})

app = typer.Typer(no_args_is_help=True, help="Submit pipeline runs, watch and inspect them.")

RunIdArgument = Annotated[str, typer.Argument(help="Run id (a unique prefix is enough).")]
_STATUSES = [
    Status.NOT_STARTED,
    Status.RUNNING,
    Status.FINISHED,
    Status.FAILED,
    Status.CANCELED,
]


@app.command("submit")
def submit(
    file: Annotated[
        str,
        typer.Argument(
            metavar="FILE.py[:OBJECT]",
            help="Python file defining the pipeline; OBJECT names a Pipeline or a function "
            "returning one, of no arguments or of the workspace (def build_pipeline(ws)); "
            "default: the file's one Pipeline.",
        ),
    ],
    experiment: Annotated[
        str, typer.Option("--experiment", "-e", help="Experiment to submit the run to.")
    ],
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="Pipeline parameter NAME=VALUE (repeatable)."),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow the step logs until the run ends.")
    ] = False,
    workspace: WorkspaceOption = None,
    json_: JsonOption = False,
) -> None:
    """Submit the pipeline defined in a Python file and print the run id."""
    from headrace.cli.follow import exit_for, follow_run
    from headrace.cli.loading import datapath_params, loaded_pipeline, parse_params
    from headrace.sdk.experiment import Experiment

    params = parse_params(param or [])
    if workspace:
        # Sets HEADRACE_WORKSPACE, so the file's Workspace.from_config() finds this workspace.
        open_workspace(workspace)
    # With --json, stdout holds only the JSON document: what the file and submit print goes
    # to stderr.
    quiet = contextlib.redirect_stdout(sys.stderr) if json_ else contextlib.nullcontext()
    with quiet, loaded_pipeline(file, lambda: open_workspace(workspace)) as pipeline:
        ws = remember_workspace(pipeline._workspace)  # the workspace it was built with
        values = datapath_params(pipeline, params)
        run = Experiment(ws, experiment).submit(pipeline, pipeline_parameters=values or None)
    backend = ws.backend
    if not wait:
        if json_:
            print_json(run_document(backend.get_pipeline_run(run.id)))
        return
    record = follow_run(backend, run.id, stream_logs=not json_, timeout_seconds=None)
    exit_for(record, json_=json_, backend=backend)


@app.command("list")
def list_(
    experiment: Annotated[
        str | None, typer.Option("--experiment", "-e", help="Only runs of this experiment.")
    ] = None,
    status: Annotated[
        str | None,
        typer.Option(help=f"Only runs with this status ({', '.join(_STATUSES)})."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many runs, newest first.")] = 20,
    workspace: WorkspaceOption = None,
    json_: JsonOption = False,
) -> None:
    """List pipeline runs, newest first."""
    statuses = [_status(status)] if status else None
    ws = open_workspace(workspace)
    records = read_backend(ws).list_pipeline_runs(
        experiment_name=experiment, statuses=statuses, limit=limit
    )
    if json_:
        print_json({"runs": [run_document(r) for r in records]})
        return
    if not records:
        console().print("No runs." if not (experiment or status) else "No matching runs.")
        return
    table = new_table("RUN ID", "EXPERIMENT", "STATUS", "SUBMITTED", "DURATION", "DESCRIPTION")
    for r in records:
        table.add_row(
            r.id,
            r.experiment_name,
            status_text(r.status),
            format_time(r.created_at),
            format_duration(duration_seconds(r.started_at, r.ended_at)),
            text(r.description or ""),
        )
    console().print(table)


def _status(text: str) -> str:
    from headrace.graph.validate import did_you_mean

    by_lower = {s.lower(): s for s in _STATUSES}
    found = by_lower.get(text.strip().lower().replace("_", ""))
    if found is None:
        raise UserError(
            f"Unknown status {text!r}{did_you_mean(text, _STATUSES)}; use one of: "
            f"{', '.join(_STATUSES)}."
        )
    return found


@app.command("show")
def show(
    run_id: RunIdArgument, workspace: WorkspaceOption = None, json_: JsonOption = False
) -> None:
    """Show a run and its steps: status, duration, reused or not, why each step ran, metrics."""
    ws = open_workspace(workspace)
    found = find_run(ws, run_id)
    if isinstance(found, StepRunRecord):
        from headrace.cli.steps import show_step

        show_step(ws, found, json_=json_)
        return
    backend = read_backend(ws)
    runs: list[StepRunRecord] = backend.list_step_runs(found.id)
    summaries = metric_summaries(backend.list_metrics([found.id, *{s.data_run_id for s in runs}]))
    steps = _steps_in_order(backend, found, runs, summaries)
    document = {
        **run_document(found),
        "metrics": summaries.get(found.id, {}),
        "files": files_document(backend.list_run_files(found.id)),
        "steps": steps,
    }
    if json_:
        print_json(document)
        return
    _print_run(found, document)


@app.command("metrics")
def metrics(
    run_id: RunIdArgument, workspace: WorkspaceOption = None, json_: JsonOption = False
) -> None:
    """Metrics of a run and its steps; a series shows its last, min, max and count (--json:
    every value). A step run id shows that step's metrics."""
    ws = open_workspace(workspace)
    found = find_run(ws, run_id)
    backend = read_backend(ws)
    if isinstance(found, StepRunRecord):
        document = run_metrics_document(backend, found.pipeline_run_id, [found], own=False)
    else:
        document = run_metrics_document(backend, found.id, backend.list_step_runs(found.id))
    if json_:
        print_json(document)
    else:
        print_run_metrics(document)


def _steps_in_order(
    backend: Any,
    record: PipelineRunRecord,
    runs: list[StepRunRecord],
    metrics: dict[str, dict[str, dict[str, Any]]],
) -> list[dict[str, Any]]:
    """Every step of the run in graph order with its metrics; a step that has not started yet
    appears with status NotStarted, no id, and the steps it waits for."""
    from headrace.graph.validate import topological_order

    graph = backend.get_graph(record.graph_id)
    order = {node_id: i for i, node_id in enumerate(topological_order(graph))}
    names = {n.id: n.name for n in graph.nodes}
    ranked: list[tuple[int, float, dict[str, Any]]] = [
        (
            order.get(s.node_id, len(order)),
            s.created_at.timestamp(),
            {**step_document(s), "metrics": metrics.get(s.data_run_id, {})},
        )
        for s in runs
    ]
    started = {s.node_id for s in runs}
    for node in graph.nodes:
        if node.id not in started:
            waiting = [names[p] for p in graph.predecessors(node.id)]
            document = pending_step_document(record.id, node.id, node.name, node.compute_target)
            ranked.append((order[node.id], 0.0, {**document, "waiting_for": waiting}))
    ranked.sort(key=lambda item: item[:2])
    return [{"waiting_for": [], "metrics": {}, **document} for _, _, document in ranked]


def _print_run(record: PipelineRunRecord, document: dict[str, Any]) -> None:
    steps: list[dict[str, Any]] = document["steps"]
    rows: list[tuple[str, str | Text]] = [
        ("Run", record.id),
        ("Experiment", record.experiment_name),
        (
            "Status",
            status_text(record.status + (" (cancel requested)" if _canceling(record) else "")),
        ),
        ("Submitted", format_time(record.created_at)),
        ("Duration", format_duration(duration_seconds(record.started_at, record.ended_at))),
    ]
    if record.parameters:
        rows.append(("Parameters", ", ".join(f"{k}={v!r}" for k, v in record.parameters.items())))
    if record.tags:
        rows.append(("Tags", ", ".join(f"{k}={v}" for k, v in record.tags.items())))
    ignored = record.properties.get(IGNORED_PARAMETERS)
    if ignored:
        rows.append(("Ignored parameters", text(f"{ignored} (not declared by the pipeline)")))
    if document["rerun_of"]:
        how = " (resumed from its failed steps)" if document["resumes"] else ""
        rows.append(("Rerun of", f"{document['rerun_of']}{how}"))
    if record.description:
        rows.append(("Description", record.description))
    if record.error:
        rows.append(("Error", text(str(record.error.get("message", "")), style="red")))
    out = console()
    out.print(details_table(rows))
    table = new_table("STEP", "STATUS", "DURATION", "REUSED", "STEP RUN ID", "WHY IT RAN")
    for step in steps:
        reused = "yes" if step["reused"] else ("no" if step["id"] else "")
        why = (step.get("run_reason") or {}).get("summary", "")
        if not step["id"] and step["waiting_for"]:
            why = f"waits for {', '.join(step['waiting_for'])}"
        table.add_row(
            text(step["name"]),
            status_text(step["status"]),
            format_duration(step["duration_seconds"]),
            reused,
            step["id"] or "-",
            text(why),
        )
    out.print(table)
    metric_rows = [("(pipeline)", name, m) for name, m in document["metrics"].items()]
    for step in steps:
        metric_rows += [(step["name"], name, m) for name, m in step["metrics"].items()]
    if metric_rows:
        out.print(text("Metrics:", style="bold"))
        out.print(metrics_table(metric_rows))
    if document["files"]:
        print_files(document["files"], "Files of the pipeline run:")
    if record.error and record.error.get("stderr_tail"):
        out.print(text(f"Last lines of stderr of step {record.error.get('step')!r}:", style="bold"))
        out.print(text(str(record.error["stderr_tail"]).rstrip()))


def _canceling(record: PipelineRunRecord) -> bool:
    return record.cancel_requested and record.status not in _ENDED


@app.command("logs")
def logs(
    run_id: RunIdArgument,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep streaming until the run ends.")
    ] = False,
    step: Annotated[str | None, typer.Option(help="Only the logs of this step.")] = None,
    stream: Annotated[
        LogStream | None,
        typer.Option(help="Only this stream, as the step wrote it (default: both, in order)."),
    ] = None,
    workspace: WorkspaceOption = None,
    json_: JsonOption = False,
) -> None:
    """Print a run's step logs, each line prefixed with its step: stdout and stderr in the
    order they were written, each line with its time (UTC) and stream (user_logs/std_log.txt),
    or one stream with --stream."""
    from headrace.cli.follow import StepFilter, follow_run
    from headrace.graph.validate import did_you_mean, topological_order
    from headrace.sdk.streaming import LogFollower

    ws = open_workspace(workspace)
    backend = ws.backend
    found = find_run(ws, run_id)
    if isinstance(found, StepRunRecord):
        step = step or found.name
    record = get_pipeline_run(ws, found.id)
    if step is not None:
        graph = backend.get_graph(record.graph_id)
        names = [graph.node(n).name for n in topological_order(graph)]
        if step not in names:
            raise UserError(
                f"Run {record.id} has no step {step!r}{did_you_mean(step, names)}; its steps: "
                f"{', '.join(names)}."
            )
    if json_:
        if follow:
            record = follow_run(backend, record.id, stream_logs=False, timeout_seconds=None)
        steps = [s for s in backend.list_step_runs(record.id) if step is None or s.name == step]
        print_json(
            {
                "run_id": record.id,
                "status": record.status,
                "steps": [_logs(backend, s) for s in steps],
            }
        )
        return
    chosen = stream.value if stream is not None else None
    if follow:
        follow_run(
            backend,
            record.id,
            stream_logs=True,
            timeout_seconds=None,
            step_name=step,
            stream=chosen,
            stamped=True,
        )
        return
    view = StepFilter(backend, step) if step else backend
    follower = LogFollower(view, record.id, out=sys.stdout, stream=chosen, stamped=True)
    follower.poll_steps(final=True)


class LogStream(str, Enum):
    stdout = "stdout"
    stderr = "stderr"


def _logs(backend: Any, step: StepRunRecord) -> dict[str, Any]:
    def read(name: str) -> str:
        return bytes(backend.read_run_file(step.id, f"user_logs/{name}.txt")).decode(
            errors="replace"
        )

    return {
        "id": step.id,
        "name": step.name,
        "status": step.status,
        "reused_run_id": step.reused_run_id,
        "log": read("std_log"),
        "stdout": read("stdout"),
        "stderr": read("stderr"),
    }


@app.command("wait")
def wait(
    run_id: RunIdArgument,
    timeout: Annotated[
        float | None, typer.Option(min=0, help="Give up after this many seconds.")
    ] = None,
    workspace: WorkspaceOption = None,
    json_: JsonOption = False,
) -> None:
    """Wait for a run to end; the exit code is 0 only if it Finished."""
    from headrace.cli.follow import exit_for, follow_run

    ws = open_workspace(workspace)
    record = get_pipeline_run(ws, run_id)
    record = follow_run(ws.backend, record.id, stream_logs=False, timeout_seconds=timeout)
    exit_for(record, json_=json_, backend=ws.backend)


@app.command("cancel")
def cancel(
    run_id: RunIdArgument, workspace: WorkspaceOption = None, json_: JsonOption = False
) -> None:
    """Cancel a run: a queued run ends at once, running steps are stopped."""
    ws = open_workspace(workspace)
    before = get_pipeline_run(ws, run_id)
    record = ws.backend.cancel_run(before.id)
    if json_:
        print_json(run_document(record))
        return
    if before.status in _ENDED:
        console().print(f"Run {record.id} already ended ({record.status}); nothing to cancel.")
    elif record.status == Status.CANCELED:
        console().print(f"Run {record.id} was canceled.")
    else:
        console().print(
            f"Cancel requested for run {record.id}; its running steps are being stopped "
            f"(headrace run wait {record.id[:8]} waits until it has ended)."
        )


@app.command("rerun")
def rerun(
    run_id: RunIdArgument,
    from_failed: Annotated[
        bool,
        typer.Option(
            "--from-failed",
            help="Resume the run: steps that finished in it are taken as they are (even with "
            "allow_reuse=False); the failed, canceled and never-started ones run.",
        ),
    ] = False,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="Change a pipeline parameter: NAME=VALUE (repeatable)."),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow the step logs until the new run ends.")
    ] = False,
    workspace: WorkspaceOption = None,
    json_: JsonOption = False,
) -> None:
    """Submit a new run of a run's pipeline (same graph, source snapshots, parameters unless
    --param); unchanged steps are reused as usual. Prints the new run id."""
    from headrace.cli.follow import exit_for, follow_run
    from headrace.cli.loading import parse_params, typed_params

    ws = open_workspace(workspace)
    backend = ws.backend
    original = get_pipeline_run(ws, run_id)
    kinds = {p.name: p.type for p in backend.get_graph(original.graph_id).parameters}
    values = typed_params(kinds, parse_params(param or []))
    submission = backend.rerun(original.id, parameters=values or None, from_failed=from_failed)
    new_id = submission.run.id
    if not json_:
        how = " from its failed steps" if from_failed else ""
        console().print(f"Submitted run {new_id}, a rerun of {original.id}{how}.")
    if not wait:
        if json_:
            print_json(run_document(backend.get_pipeline_run(new_id)))
        else:
            console().print(f"Watch it with: headrace run show {new_id[:8]}")
        return
    record = follow_run(backend, new_id, stream_logs=not json_, timeout_seconds=None)
    exit_for(record, json_=json_, backend=backend)
