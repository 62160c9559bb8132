"""`headrace dataset list|show|versions|lineage`: registered datasets, their versions with
their content identity, and which step runs produced and consumed each version."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from headrace.cli.common import JsonOption, WorkspaceOption, open_workspace
from headrace.cli.output import console, format_time, new_table, print_json
from headrace.store.datasets import describe_version
from headrace.store.records import DatasetRecord

__all__ = ["app"]

app = typer.Typer(
    no_args_is_help=True,
    help="Registered datasets: versions, content identity and lineage.",
)

NameArgument = Annotated[str, typer.Argument(help="Dataset name.")]
VersionOption = Annotated[
    int | None, typer.Option("--version", "-v", help="A version number (default: the latest).")
]


@app.command("list")
def list_(workspace: WorkspaceOption = None, json_: JsonOption = False) -> None:
    """List the registered datasets (each its latest version)."""
    ws = open_workspace(workspace)
    records = ws.backend.list_datasets()
    if json_:
        print_json({"datasets": [describe_version(r) for r in records]})
        return
    table = new_table("NAME", "VERSION", "KIND", "FILES", "BYTES", "SOURCES")
    for r in records:
        table.add_row(
            r.name,
            str(r.version),
            r.kind,
            str(r.content.get("file_count", "")),
            str(r.content.get("total_bytes", "")),
            ", ".join(describe_version(r)["sources"]),
        )
    console().print(table)


@app.command("versions")
def versions(
    name: NameArgument, workspace: WorkspaceOption = None, json_: JsonOption = False
) -> None:
    """List every version of a dataset with its content hash."""
    ws = open_workspace(workspace)
    records = ws.backend.list_dataset_versions(name)
    if not records:
        ws.backend.get_dataset(name)  # DatasetNotFoundError, listing the datasets
    if json_:
        print_json({"name": name, "versions": [describe_version(r) for r in records]})
        return
    table = new_table("VERSION", "ID", "CREATED", "FILES", "CONTENT HASH", "PRODUCED BY")
    for r in records:
        table.add_row(
            str(r.version),
            r.id,
            format_time(r.created_at),
            str(r.content.get("file_count", "")),
            str(r.content.get("hash", ""))[:16],
            r.produced_by or "",
        )
    console().print(table)


def _lineage(ws: Any, record: DatasetRecord) -> list[dict[str, Any]]:
    return [
        {
            "role": item.role,
            "step_run_id": item.step_run_id,
            "pipeline_run_id": item.pipeline_run_id,
            "step_name": item.step_name,
            "port": item.port,
            "status": item.status,
            "at": item.created_at.isoformat() if item.created_at else None,
        }
        for item in ws.backend.dataset_lineage(record.id)
    ]


@app.command("show")
def show(
    name: NameArgument,
    version: VersionOption = None,
    workspace: WorkspaceOption = None,
    json_: JsonOption = False,
) -> None:
    """Show a dataset version: what it reads, its content identity and its lineage."""
    ws = open_workspace(workspace)
    record = ws.backend.get_dataset(name, version)
    document = {**describe_version(record), "lineage": _lineage(ws, record)}
    if json_:
        print_json(document)
        return
    out = console()
    out.print(f"[bold]{record.name}[/bold] version {record.version} ({record.kind})  {record.id}")
    if record.description:
        out.print(record.description)
    out.print(f"sources: {', '.join(document['sources'])}")
    if document["format"]:
        out.print(f"format: {document['format']}")
    if document["column_types"]:
        out.print(f"column types: {document['column_types']}")
    if document["transforms"]:
        out.print(f"transforms: {document['transforms']}")
    content = record.content
    out.print(
        f"content: {content.get('file_count')} files, {content.get('total_bytes')} bytes, "
        f"hash {content.get('hash')}"
    )
    _print_lineage(document["lineage"])


def _print_lineage(items: list[dict[str, Any]]) -> None:
    if not items:
        console().print("lineage: no step run has produced or consumed this version yet")
        return
    table = new_table("ROLE", "STEP", "PORT", "STATUS", "STEP RUN", "PIPELINE RUN")
    for item in items:
        table.add_row(
            item["role"],
            item["step_name"] or "",
            item["port"],
            item["status"] or "",
            item["step_run_id"],
            item["pipeline_run_id"],
        )
    console().print(table)


@app.command("lineage")
def lineage(
    name: NameArgument,
    version: VersionOption = None,
    workspace: WorkspaceOption = None,
    json_: JsonOption = False,
) -> None:
    """Which step runs produced and consumed a dataset version."""
    ws = open_workspace(workspace)
    record = ws.backend.get_dataset(name, version)
    items = _lineage(ws, record)
    if json_:
        print_json(
            {"id": record.id, "name": record.name, "version": record.version, "lineage": items}
        )
        return
    _print_lineage(items)
