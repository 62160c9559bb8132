"""`headrace workspace create|show`."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from headrace.cli.common import JsonOption, WorkspaceOption, open_workspace
from headrace.cli.output import console, details_table, format_time, print_json
from headrace.sdk.workspace import Workspace
from headrace.store.records import Status

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True, help="Create and inspect workspaces.")


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Workspace name (letters, digits, '-', '_').")],
    path: Annotated[
        Path | None,
        typer.Option(help="Folder for the workspace (default: $HEADRACE_HOME/workspaces/NAME)."),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(help="SQLAlchemy URL of a PostgreSQL database (default: SQLite inside)."),
    ] = None,
    exist_ok: Annotated[
        bool, typer.Option("--exist-ok", help="Open the workspace if it already exists.")
    ] = False,
    write_config: Annotated[
        bool,
        typer.Option(
            "--write-config/--no-write-config",
            help="Write .azureml/config.json here, so later commands and "
            "Workspace.from_config() in this folder use the workspace.",
        ),
    ] = True,
    json_: JsonOption = False,
) -> None:
    """Create a workspace (a folder holding runs, datastores and compute targets)."""
    workspace = Workspace.create(
        name, path=path, database_url=database_url, exist_ok=exist_ok, show_output=False
    )
    config = workspace.write_config() if write_config else None
    if json_:
        print_json({**_document(workspace), "config_file": config})
        return
    out = console()
    out.print(f"Workspace {workspace.name!r} is ready at {workspace.path}", markup=False)
    if config:
        out.print(f"Wrote {config}: commands run in this folder use this workspace.", markup=False)


@app.command("show")
def show(workspace: WorkspaceOption = None, json_: JsonOption = False) -> None:
    """Show a workspace: where it is, its datastores, compute targets and experiments."""
    ws = open_workspace(workspace)
    document = _document(ws)
    if json_:
        print_json(document)
        return
    rows: list[tuple[str, Any]] = [
        ("Name", document["name"]),
        ("Path", document["path"] or "-"),
        ("Database", document["database"] or "-"),
        ("Created", _local_time(document["created_at"])),
    ]
    for key in ("subscription_id", "resource_group", "location"):
        if document.get(key):
            rows.append((key.replace("_", " ").capitalize(), str(document[key])))
    rows += [
        ("Default datastore", document["default_datastore"] or "-"),
        ("Datastores", ", ".join(d["name"] for d in document["datastores"])),
        ("Compute targets", ", ".join(_target_label(c) for c in document["compute_targets"])),
        (
            "Experiments",
            ", ".join(f"{e['name']} ({e['runs']} runs)" for e in document["experiments"])
            or "none yet",
        ),
        ("Unfinished runs", str(document["unfinished_runs"])),
    ]
    console().print(details_table(rows))


def _local_time(text: str | None) -> str:
    try:
        return format_time(datetime.fromisoformat(text)) if text else "-"
    except ValueError:
        return text or "-"


def _target_label(target: dict[str, Any]) -> str:
    nodes = target["config"].get("max_nodes")
    return f"{target['name']} (max {nodes} at once)" if nodes else target["name"]


def _document(ws: Workspace) -> dict[str, Any]:
    backend = ws.backend
    info = backend.workspace_info()
    datastores = backend.list_datastores()
    unfinished = backend.list_pipeline_runs(
        statuses=[Status.NOT_STARTED, Status.RUNNING], limit=1000
    )
    return {
        "name": info.get("name", ws.name),
        "path": str(ws.path) if ws.path is not None else backend.location,
        "database": info.get("database"),
        "created_at": info.get("created_at"),
        "subscription_id": info.get("subscription_id"),
        "resource_group": info.get("resource_group"),
        "location": info.get("location"),
        "default_datastore": next((d.name for d in datastores if d.is_default), None),
        "datastores": [
            {"name": d.name, "type": d.type, "is_default": d.is_default} for d in datastores
        ],
        "compute_targets": [
            {"name": t.name, "type": t.type, "config": t.config}
            for t in backend.list_compute_targets()
        ],
        "experiments": [{"name": e.name, "runs": count} for e, count in backend.list_experiments()],
        "unfinished_runs": len(unfinished),
    }
