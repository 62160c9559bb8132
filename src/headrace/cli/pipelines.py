"""`headrace pipeline publish|list|show|disable|enable|submit`: published pipelines.

A published pipeline is named on the command line by its id (a unique prefix will do) or by
its name when only one published pipeline has it. Submitting converts `--param` text to each
parameter's type the way the REST submit route does (the engine converts both).
"""

from __future__ import annotations

import contextlib
import json
import shlex
import sys
from collections.abc import Iterator
from typing import Annotated, Any

import typer
from rich.text import Text

from headrace.cli.common import JsonOption, WorkspaceOption, open_workspace, remember_workspace
from headrace.cli.follow import exit_for, follow_run
from headrace.cli.loading import loaded_pipeline, parse_params
from headrace.cli.output import (
    console,
    details_table,
    format_time,
    iso,
    new_table,
    print_json,
    run_document,
    status_text,
)
from headrace.errors import NotFoundError, PipelineDisabledError, UserError
from headrace.graph.model import Graph, ParameterDef
from headrace.graph.validate import did_you_mean, topological_order
from headrace.kinds import settings_text, step_title
from headrace.sdk.data import DataPath
from headrace.sdk.published import PublishedPipeline
from headrace.sdk.runs import PipelineRun
from headrace.sdk.workspace import Workspace

__all__ = [
    "ParamOption",
    "WaitOption",
    "app",
    "find_published",
    "parameter_values",
    "published_document",
    "submitted",
]

app = typer.Typer(
    no_args_is_help=True,
    help="Publish pipelines, list and inspect them, enable or disable them, submit them.",
)

PipelineArgument = Annotated[
    str,
    typer.Argument(
        metavar="ID|NAME",
        help="Published pipeline id (a unique prefix is enough) or its name.",
    ),
]
ParamOption = Annotated[
    list[str] | None,
    typer.Option(
        "--param",
        "-p",
        help="Pipeline parameter NAME=VALUE, converted to the parameter's type (repeatable); "
        "a DataPath parameter takes DATASTORE:PATH.",
    ),
]
WaitOption = Annotated[
    bool, typer.Option("--wait", help="Follow the step logs until the run ends.")
]
ExperimentOption = Annotated[
    str, typer.Option("--experiment", "-e", help="Experiment to submit the run to.")
]


# -- finding -----------------------------------------------------------------------------------
def _candidates(records: list[Any]) -> str:
    return "; ".join(
        f"{r.id} (version {r.version or '-'}, {r.status}, published {format_time(r.created_at)})"
        for r in records
    )


def find_published(ws: Workspace, spec: str) -> PublishedPipeline:
    """The published pipeline whose id is, or starts with, `spec`, or the one named `spec`."""
    spec = spec.strip()
    backend = ws.backend
    try:
        return PublishedPipeline(ws, backend.get_published_pipeline(spec))
    except NotFoundError:
        pass
    every = backend.list_published_pipelines(False)
    named = [r for r in every if r.name == spec]
    if len(named) == 1:
        return PublishedPipeline(ws, named[0])
    if named:
        raise UserError(
            f"{len(named)} published pipelines are named {spec!r}: {_candidates(named)}; "
            "pass the id of the one you mean."
        )
    prefixed = [r for r in every if r.id.startswith(spec)] if spec else []
    if len(prefixed) == 1:
        return PublishedPipeline(ws, prefixed[0])
    if prefixed:
        raise UserError(
            f"{len(prefixed)} published pipelines have an id starting with {spec!r}: "
            f"{_candidates(prefixed)}; give more of the id."
        )
    names = sorted({r.name for r in every})
    raise NotFoundError(
        f"No published pipeline with id or name {spec!r}{did_you_mean(spec, names)}; "
        "`headrace pipeline list --all` lists them."
    )


# -- documents ---------------------------------------------------------------------------------
def _parameter_document(parameter: ParameterDef) -> dict[str, Any]:
    return {"name": parameter.name, "type": parameter.type, "default": parameter.default}


def published_document(pipeline: PublishedPipeline) -> dict[str, Any]:
    return {
        "id": pipeline.id,
        "name": pipeline.name,
        "description": pipeline.description,
        "version": pipeline.version,
        "status": pipeline.status,
        "continue_on_step_failure": pipeline.continue_on_step_failure,
        "source_run_id": pipeline.source_run_id,
        "created_at": iso(pipeline.created_at),
        "graph_id": pipeline.graph_id,
        "endpoint": pipeline.endpoint,
    }


def _example_body(graph: Graph) -> dict[str, Any]:
    body: dict[str, Any] = {"ExperimentName": "my-experiment"}
    values = {p.name: p.default for p in graph.parameters if p.type != "datapath"}
    paths = {
        p.name: {
            "DataStoreName": (p.default or {}).get("datastore", "workspaceblobstore"),
            "RelativePath": (p.default or {}).get("path", ""),
        }
        for p in graph.parameters
        if p.type == "datapath"
    }
    if values:
        body["ParameterAssignments"] = values
    if paths:
        body["DataPathAssignments"] = paths
    return body


def curl_line(url: str, graph: Graph) -> str:
    """A ready-to-copy REST submit of the pipeline at `url` with its default values."""
    body = json.dumps(_example_body(graph))
    return (
        f'curl -X POST {shlex.quote(url)} -H "Authorization: Bearer $HEADRACE_TOKEN" '
        f"-H 'Content-Type: application/json' -d {shlex.quote(body)}"
    )


def _show_document(pipeline: PublishedPipeline) -> dict[str, Any]:
    graph = pipeline.get_graph()
    order = topological_order(graph)
    return {
        **published_document(pipeline),
        "parameters": [_parameter_document(p) for p in graph.parameters],
        "steps": [
            {
                "name": graph.node(n).name,
                "type": step_title(graph.node(n)),
                "settings": graph.node(n).settings,
                "compute_target": graph.node(n).compute_target,
                "waits_for": [graph.node(p).name for p in graph.predecessors(n)],
            }
            for n in order
        ],
        "curl": curl_line(pipeline.endpoint, graph),
    }


# -- submitting --------------------------------------------------------------------------------
def parameter_values(graph: Graph, assignments: list[str]) -> dict[str, Any] | None:
    """`--param` texts as submit values: DATASTORE:PATH becomes a DataPath for a DataPath
    parameter; other values stay text, which the engine converts (and checks) as it does
    for the REST route's ParameterAssignments."""
    params = parse_params(assignments)
    kinds = {p.name: p.type for p in graph.parameters}
    values: dict[str, Any] = {}
    for name, value in params.items():
        if kinds.get(name) != "datapath":
            values[name] = value
            continue
        datastore, sep, path = value.partition(":")
        if not sep or not datastore:
            raise UserError(
                f"--param {name} is a DataPath parameter; give DATASTORE:PATH, for example "
                f"--param {name}=workspaceblobstore:data/train.csv."
            )
        values[name] = DataPath(datastore, path)
    return values or None


@contextlib.contextmanager
def submitted(json_: bool, enable_hint: str) -> Iterator[None]:
    """Around a submit: with --json what submit prints goes to stderr; a disabled pipeline or
    endpoint is refused with the CLI command that enables it."""
    quiet = contextlib.redirect_stdout(sys.stderr) if json_ else contextlib.nullcontext()
    try:
        with quiet:
            yield
    except PipelineDisabledError as exc:
        message = str(exc).split("; enable it with")[0]
        raise PipelineDisabledError(f"{message}; enable it with `{enable_hint}`.") from exc


def report_run(ws: Workspace, run: PipelineRun, *, wait: bool, json_: bool) -> None:
    backend = ws.backend
    if not wait:
        if json_:
            print_json(run_document(backend.get_pipeline_run(run.id)))
        return
    record = follow_run(backend, run.id, stream_logs=not json_, timeout_seconds=None)
    exit_for(record, json_=json_, backend=backend)


# -- commands ----------------------------------------------------------------------------------
@app.command("publish")
def publish(
    file: Annotated[
        str,
        typer.Argument(
            metavar="FILE.py[:OBJECT]",
            help="Python file defining the pipeline (as for `headrace run submit`).",
        ),
    ],
    name: Annotated[str, typer.Option("--name", "-n", help="Name of the published pipeline.")],
    description: Annotated[str | None, typer.Option(help="Description.")] = None,
    version: Annotated[str | None, typer.Option(help="Version text, e.g. 1.2.")] = None,
    continue_on_step_failure: Annotated[
        bool,
        typer.Option(
            "--continue-on-step-failure", help="Runs go on with other steps when one fails."
        ),
    ] = False,
    workspace: WorkspaceOption = None,
    json_: JsonOption = False,
) -> None:
    """Publish the pipeline defined in a Python file; print its id and REST endpoint."""
    if workspace:
        open_workspace(workspace)  # sets HEADRACE_WORKSPACE for the file's from_config()
    quiet = contextlib.redirect_stdout(sys.stderr) if json_ else contextlib.nullcontext()
    with quiet, loaded_pipeline(file, lambda: open_workspace(workspace)) as pipeline:
        remember_workspace(pipeline._workspace)
        published = pipeline.publish(
            name=name,
            description=description,
            version=version,
            continue_on_step_failure=continue_on_step_failure,
        )
    if json_:
        print_json(published_document(published))
        return
    typer.echo(f"Published pipeline {published.name!r}: {published.id}")
    typer.echo(f"Endpoint: {published.endpoint}")
    typer.echo(f"Submit it with: headrace pipeline submit {published.id[:8]} --experiment EXP")


@app.command("list")
def list_(
    all_: Annotated[bool, typer.Option("--all", "-a", help="Include disabled pipelines.")] = False,
    workspace: WorkspaceOption = None,
    json_: JsonOption = False,
) -> None:
    """List published pipelines, newest first (Active ones unless --all)."""
    ws = open_workspace(workspace)
    pipelines = PublishedPipeline.list(ws, active_only=not all_)
    if json_:
        print_json({"pipelines": [published_document(p) for p in pipelines]})
        return
    if not pipelines:
        hint = "" if all_ else " (--all includes disabled ones)"
        console().print(
            f"No published pipelines{hint}; publish one with "
            "`headrace pipeline publish FILE.py --name NAME`."
        )
        return
    table = new_table("ID", "NAME", "VERSION", "STATUS", "PUBLISHED", "DESCRIPTION")
    for p in pipelines:
        table.add_row(
            p.id,
            Text(p.name),
            Text(p.version or ""),
            status_text(p.status),
            format_time(p.created_at),
            Text(p.description or ""),
        )
    console().print(table)


@app.command("show")
def show(
    pipeline: PipelineArgument, workspace: WorkspaceOption = None, json_: JsonOption = False
) -> None:
    """Show a published pipeline: parameters, steps, status, endpoint and a curl line."""
    ws = open_workspace(workspace)
    published = find_published(ws, pipeline)
    document = _show_document(published)
    if json_:
        print_json(document)
        return
    rows: list[tuple[str, str | Text]] = [
        ("Id", document["id"]),
        ("Name", document["name"]),
        ("Version", document["version"] or "-"),
        ("Status", status_text(document["status"])),
        ("Published", format_time(published.created_at)),
        ("Continue on step failure", "yes" if document["continue_on_step_failure"] else "no"),
        ("Endpoint", document["endpoint"]),
    ]
    if document["description"]:
        rows.insert(2, ("Description", document["description"]))
    if document["source_run_id"]:
        rows.append(("Published from run", document["source_run_id"]))
    out = console()
    out.print(details_table(rows))
    if document["parameters"]:
        params = new_table("PARAMETER", "TYPE", "DEFAULT")
        for p in document["parameters"]:
            params.add_row(Text(p["name"]), p["type"], Text(repr(p["default"])))
        out.print(params)
    else:
        out.print("Parameters: none")
    steps = new_table("STEP", "TYPE", "SETTINGS", "COMPUTE TARGET", "WAITS FOR")
    for s in document["steps"]:
        settings = ", ".join(f"{k}={v}" for k, v in settings_text(s["settings"]))
        steps.add_row(
            Text(s["name"]),
            s["type"],
            Text(settings or "-"),
            s["compute_target"],
            Text(", ".join(s["waits_for"])),
        )
    out.print(steps)
    out.print(Text("Submit over REST:", style="bold"))
    out.print(Text(document["curl"]), soft_wrap=True)


def _set_status(spec: str, workspace: str | None, json_: bool, *, enable: bool) -> None:
    ws = open_workspace(workspace)
    pipeline = find_published(ws, spec)
    before = pipeline.status
    if enable:
        pipeline.enable()
    else:
        pipeline.disable()
    if json_:
        print_json(published_document(pipeline))
        return
    if before == pipeline.status:
        typer.echo(f"Published pipeline {pipeline.name!r} ({pipeline.id}) is already {before}.")
    else:
        typer.echo(
            f"Published pipeline {pipeline.name!r} ({pipeline.id}) is now {pipeline.status}."
        )


@app.command("disable")
def disable(
    pipeline: PipelineArgument, workspace: WorkspaceOption = None, json_: JsonOption = False
) -> None:
    """Disable a published pipeline: submits are refused until it is enabled."""
    _set_status(pipeline, workspace, json_, enable=False)


@app.command("enable")
def enable(
    pipeline: PipelineArgument, workspace: WorkspaceOption = None, json_: JsonOption = False
) -> None:
    """Enable a disabled published pipeline."""
    _set_status(pipeline, workspace, json_, enable=True)


@app.command("submit")
def submit(
    pipeline: PipelineArgument,
    experiment: ExperimentOption,
    param: ParamOption = None,
    wait: WaitOption = False,
    workspace: WorkspaceOption = None,
    json_: JsonOption = False,
) -> None:
    """Submit a run of a published pipeline and print the run id."""
    ws = open_workspace(workspace)
    published = find_published(ws, pipeline)
    values = parameter_values(published.get_graph(), param or [])
    with submitted(json_, f"headrace pipeline enable {published.id}"):
        run = published.submit(ws, experiment, pipeline_parameters=values)
    report_run(ws, run, wait=wait, json_=json_)
