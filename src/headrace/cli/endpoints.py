"""`headrace endpoint ...`: pipeline endpoints, stable names over versions of published
pipelines.

An endpoint is named on the command line by its name or its id (a unique prefix will do);
its pipelines by published pipeline id or name, as for `headrace pipeline`.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.text import Text

from headrace.cli.common import JsonOption, WorkspaceOption, open_workspace
from headrace.cli.output import (
    console,
    details_table,
    format_time,
    iso,
    new_table,
    print_json,
    status_text,
)
from headrace.cli.pipelines import (
    ParamOption,
    WaitOption,
    curl_line,
    find_published,
    parameter_values,
    report_run,
    submitted,
)
from headrace.errors import NotFoundError, UserError
from headrace.graph.validate import did_you_mean
from headrace.sdk.published import PipelineEndpoint
from headrace.sdk.workspace import Workspace

__all__ = ["app", "find_endpoint"]

app = typer.Typer(
    no_args_is_help=True,
    help="Pipeline endpoints: one name over versions of published pipelines.",
)

EndpointArgument = Annotated[
    str, typer.Argument(metavar="NAME|ID", help="Endpoint name, or id (a unique prefix).")
]
PipelineOption = Annotated[
    str,
    typer.Option(
        "--pipeline",
        metavar="ID|NAME",
        help="Published pipeline id (a unique prefix is enough) or its name.",
    ),
]


def find_endpoint(ws: Workspace, spec: str) -> PipelineEndpoint:
    """The endpoint named `spec`, else the one whose id is or starts with it."""
    spec = spec.strip()
    backend = ws.backend
    for key in ("name", "id"):
        try:
            return PipelineEndpoint(ws, backend.get_pipeline_endpoint(**{key: spec}))
        except NotFoundError:
            pass
    every = backend.list_pipeline_endpoints(False)
    prefixed = [e for e in every if e.id.startswith(spec)] if spec else []
    if len(prefixed) == 1:
        return PipelineEndpoint(ws, prefixed[0])
    if prefixed:
        listing = ", ".join(f"{e.name} ({e.id})" for e in prefixed)
        raise UserError(
            f"{len(prefixed)} pipeline endpoints have an id starting with {spec!r}: {listing}; "
            "give their name or more of the id."
        )
    names = [e.name for e in every]
    raise NotFoundError(
        f"No pipeline endpoint named {spec!r} (nor with that id){did_you_mean(spec, names)}; "
        "`headrace endpoint list --all` lists them."
    )


def endpoint_document(endpoint: PipelineEndpoint) -> dict[str, Any]:
    return {
        "id": endpoint.id,
        "name": endpoint.name,
        "description": endpoint.description,
        "status": endpoint.status,
        "default_version": endpoint.default_version,
        "versions": [
            {
                "version": v.version,
                "pipeline_id": v.pipeline_id,
                "default": v.version == endpoint.default_version,
            }
            for v in endpoint.list_versions()
        ],
        "created_at": iso(endpoint._record.created_at),
        "endpoint": endpoint.endpoint,
    }


def _print_done(endpoint: PipelineEndpoint, json_: bool, message: str) -> None:
    if json_:
        print_json(endpoint_document(endpoint))
    else:
        typer.echo(message)


@app.command("publish")
def publish(
    name: Annotated[str, typer.Argument(help="The endpoint's name.")],
    pipeline: PipelineOption,
    description: Annotated[str | None, typer.Option(help="Description.")] = None,
    workspace: WorkspaceOption = None,
    json_: JsonOption = False,
) -> None:
    """Create an endpoint whose version 0 (the default) is a published pipeline."""
    ws = open_workspace(workspace)
    published = find_published(ws, pipeline)
    endpoint = PipelineEndpoint.publish(ws, name, description, published)
    _print_done(
        endpoint,
        json_,
        f"Published endpoint {endpoint.name!r} ({endpoint.id}); version 0 is pipeline "
        f"{published.id}.\nEndpoint: {endpoint.endpoint}",
    )


@app.command("list")
def list_(
    all_: Annotated[
        bool, typer.Option("--all", "-a", help="Include disabled and archived endpoints.")
    ] = False,
    workspace: WorkspaceOption = None,
    json_: JsonOption = False,
) -> None:
    """List pipeline endpoints by name (Active ones unless --all)."""
    ws = open_workspace(workspace)
    endpoints = PipelineEndpoint.list(ws, active_only=not all_)
    if json_:
        print_json({"endpoints": [endpoint_document(e) for e in endpoints]})
        return
    if not endpoints:
        hint = "" if all_ else " (--all includes disabled ones)"
        console().print(
            f"No pipeline endpoints{hint}; create one with "
            "`headrace endpoint publish NAME --pipeline ID`."
        )
        return
    table = new_table("NAME", "ID", "STATUS", "DEFAULT", "VERSIONS", "DESCRIPTION")
    for e in endpoints:
        table.add_row(
            Text(e.name),
            e.id,
            status_text(e.status),
            e.default_version,
            str(len(e.list_versions())),
            Text(e.description or ""),
        )
    console().print(table)


@app.command("show")
def show(
    endpoint: EndpointArgument, workspace: WorkspaceOption = None, json_: JsonOption = False
) -> None:
    """Show an endpoint: its versions, which is the default, and how to submit it."""
    ws = open_workspace(workspace)
    found = find_endpoint(ws, endpoint)
    document = endpoint_document(found)
    default = found.get_pipeline()
    document["curl"] = curl_line(found.endpoint, default.get_graph())
    if json_:
        print_json(document)
        return
    rows: list[tuple[str, str | Text]] = [
        ("Name", found.name),
        ("Id", found.id),
        ("Status", status_text(found.status)),
        ("Default version", found.default_version),
        ("Created", format_time(found._record.created_at)),
        ("Endpoint", found.endpoint),
    ]
    if found.description:
        rows.insert(1, ("Description", found.description))
    out = console()
    out.print(details_table(rows))
    backend = ws.backend
    table = new_table("VERSION", "DEFAULT", "PIPELINE ID", "PIPELINE", "STATUS")
    for v in found.list_versions():
        record = backend.get_published_pipeline(v.pipeline_id)
        table.add_row(
            v.version,
            "yes" if v.version == found.default_version else "",
            v.pipeline_id,
            Text(record.name + (f" {record.version}" if record.version else "")),
            status_text(record.status),
        )
    out.print(table)
    out.print(Text("Submit the default version over REST:", style="bold"))
    out.print(Text(document["curl"]), soft_wrap=True)


@app.command("add")
def add(
    endpoint: EndpointArgument,
    pipeline: PipelineOption,
    default: Annotated[
        bool, typer.Option("--default", help="Make the new version the default.")
    ] = False,
    workspace: WorkspaceOption = None,
    json_: JsonOption = False,
) -> None:
    """Add a published pipeline to an endpoint as its next version."""
    ws = open_workspace(workspace)
    found = find_endpoint(ws, endpoint)
    published = find_published(ws, pipeline)
    before = {v.version for v in found.list_versions()}
    if default:
        found.add_default(published)
    else:
        found.add(published)
    versions = found.list_versions()
    added = [v.version for v in versions if v.version not in before]
    version = (
        added[0] if added else next(v.version for v in versions if v.pipeline_id == published.id)
    )
    _print_done(
        found,
        json_,
        f"Endpoint {found.name!r}: version {version} is pipeline {published.id}; the default "
        f"version is {found.default_version}.",
    )


@app.command("set-default")
def set_default(
    endpoint: EndpointArgument,
    version: Annotated[str, typer.Argument(help="The version to make the default.")],
    workspace: WorkspaceOption = None,
    json_: JsonOption = False,
) -> None:
    """Make one of the endpoint's versions the default."""
    ws = open_workspace(workspace)
    found = find_endpoint(ws, endpoint)
    found.set_default_version(version)
    _print_done(found, json_, f"Endpoint {found.name!r}: the default version is now {version}.")


@app.command("rename")
def rename(
    endpoint: EndpointArgument,
    new_name: Annotated[str, typer.Argument(metavar="NEW", help="The new name.")],
    workspace: WorkspaceOption = None,
    json_: JsonOption = False,
) -> None:
    """Rename an endpoint."""
    ws = open_workspace(workspace)
    found = find_endpoint(ws, endpoint)
    old = found.name
    found.set_name(new_name)
    _print_done(found, json_, f"Renamed endpoint {old!r} to {found.name!r}.")


def _change_status(spec: str, workspace: str | None, json_: bool, action: str) -> None:
    ws = open_workspace(workspace)
    found = find_endpoint(ws, spec)
    old = found.name
    if action == "enable":
        found.enable()
    elif action == "disable":
        found.disable()
    else:
        found.archive()
    message = f"Endpoint {old!r} is now {found.status}."
    if action == "archive":
        message = (
            f"Archived endpoint {old!r}: it is Disabled and renamed {found.name!r}, so the name "
            f"is free; `headrace endpoint reactivate {found.id}` brings it back."
        )
    _print_done(found, json_, message)


@app.command("disable")
def disable(
    endpoint: EndpointArgument, workspace: WorkspaceOption = None, json_: JsonOption = False
) -> None:
    """Disable an endpoint: submits are refused until it is enabled."""
    _change_status(endpoint, workspace, json_, "disable")


@app.command("enable")
def enable(
    endpoint: EndpointArgument, workspace: WorkspaceOption = None, json_: JsonOption = False
) -> None:
    """Enable a disabled endpoint."""
    _change_status(endpoint, workspace, json_, "enable")


@app.command("archive")
def archive(
    endpoint: EndpointArgument, workspace: WorkspaceOption = None, json_: JsonOption = False
) -> None:
    """Disable an endpoint and free its name (it is renamed with a unique suffix)."""
    _change_status(endpoint, workspace, json_, "archive")


@app.command("reactivate")
def reactivate(
    endpoint: EndpointArgument,
    name: Annotated[
        str | None, typer.Option("--name", help="Name to take again (default: its name now).")
    ] = None,
    workspace: WorkspaceOption = None,
    json_: JsonOption = False,
) -> None:
    """Enable an archived or disabled endpoint again (under --name if given)."""
    ws = open_workspace(workspace)
    found = find_endpoint(ws, endpoint)
    found.reactivate(name or found.name)
    _print_done(found, json_, f"Endpoint {found.name!r} is {found.status} again.")


@app.command("submit")
def submit(
    endpoint: EndpointArgument,
    experiment: Annotated[
        str, typer.Option("--experiment", "-e", help="Experiment to submit the run to.")
    ],
    version: Annotated[
        str | None, typer.Option("--version", help="Version to run (default: the default).")
    ] = None,
    param: ParamOption = None,
    wait: WaitOption = False,
    workspace: WorkspaceOption = None,
    json_: JsonOption = False,
) -> None:
    """Submit a run of an endpoint's default version (or --version)."""
    ws = open_workspace(workspace)
    found = find_endpoint(ws, endpoint)
    values = parameter_values(found.get_pipeline(version).get_graph(), param or [])
    with submitted(json_, f"headrace endpoint enable {found.name}"):
        run = found.submit(experiment, pipeline_parameters=values, pipeline_version=version)
    report_run(ws, run, wait=wait, json_=json_)
