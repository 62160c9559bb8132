"""`headrace model list|show|download`: the model registry (`Model.list`, `Model(ws, name,
version)`, `model.download`). A model is named `NAME` (the newest version) or `NAME:VERSION`."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from headrace.cli.common import JsonOption, WorkspaceOption, open_workspace
from headrace.cli.output import console, details_table, format_time, new_table, print_json
from headrace.sdk.model import Model, parse_model_id
from headrace.store.models import model_document

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True, help="List registered models, show and download them.")

ModelArgument = Annotated[
    str, typer.Argument(help="NAME (the newest version) or NAME:VERSION.", metavar="MODEL")
]


def _size(size: int) -> str:
    amount = float(size)
    for unit in ("B", "KB", "MB"):
        if amount < 1000:
            return f"{amount:,.0f} {unit}" if unit == "B" else f"{amount:,.1f} {unit}"
        amount /= 1000
    return f"{amount:,.1f} GB"


def _tags(values: list[str] | None) -> list[Any] | None:
    return [v.split("=", 1) if "=" in v else v for v in values] if values else None


def _names(entry: dict[str, Any], dataset: str) -> bool:
    """Whether a lineage entry is `dataset`: its id, its name, or name:version."""
    name = str(entry.get("name"))
    return dataset in (str(entry.get("id")), name, f"{name}:{entry.get('version')}")


def _get(workspace: str | None, model: str, version: int | None) -> Model:
    ws = open_workspace(workspace)
    name, given = parse_model_id(model)
    return Model(ws, name, version=version if version is not None else given)


@app.command("list")
def list_(
    name: Annotated[str | None, typer.Option(help="Only versions of this model.")] = None,
    tag: Annotated[
        list[str] | None, typer.Option(help="KEY or KEY=VALUE; repeat for all of them.")
    ] = None,
    prop: Annotated[
        list[str] | None,
        typer.Option("--property", help="KEY or KEY=VALUE of a property; repeatable."),
    ] = None,
    run: Annotated[
        str | None, typer.Option(help="Only models registered by this run (its id).")
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option(help="Only models trained on this dataset: NAME, NAME:VERSION or its id."),
    ] = None,
    latest: Annotated[bool, typer.Option("--latest", help="Only the newest of each.")] = False,
    workspace: WorkspaceOption = None,
    json_: JsonOption = False,
) -> None:
    """List registered model versions, by name, newest first."""
    ws = open_workspace(workspace)
    records = ws.backend.list_models(name=name, tags=_tags(tag), properties=_tags(prop), run_id=run)
    if dataset is not None:
        records = [r for r in records if any(_names(d, dataset) for d in r.datasets)]
    if latest:
        records = [r for i, r in enumerate(records) if i == 0 or records[i - 1].name != r.name]
    if json_:
        print_json({"models": [model_document(r) for r in records]})
        return
    table = new_table("NAME", "VERSION", "CREATED", "SIZE", "RUN", "TAGS")
    for r in records:
        tags = ", ".join(f"{k}={v}" for k, v in r.tags.items())
        table.add_row(
            r.name, str(r.version), format_time(r.created_at), _size(r.size), r.run_id or "", tags
        )
    console().print(table)


@app.command("show")
def show(
    model: ModelArgument,
    version: Annotated[int | None, typer.Option(help="This version (default: newest).")] = None,
    workspace: WorkspaceOption = None,
    json_: JsonOption = False,
) -> None:
    """Show a model version: tags, properties, the run and datasets it came from, its files."""
    found = _get(workspace, model, version)
    record = found._record
    versions = sorted(m.version for m in Model.list(found.workspace, name=record.name))
    if json_:
        print_json({**model_document(record), "versions": versions})
        return
    datasets = ", ".join(
        f"{d.get('name')}:{d.get('version')} ({d.get('scenario')})" for d in record.datasets
    )
    rows: list[tuple[str, str | Text]] = [
        ("Model", record.id),
        ("Versions", ", ".join(str(v) for v in versions)),
        ("Created", format_time(record.created_at)),
        ("Description", record.description or ""),
        ("Run", f"{record.run_id} ({record.experiment_name})" if record.run_id else ""),
        ("Datasets", datasets),
        ("Tags", ", ".join(f"{k}={v}" for k, v in record.tags.items())),
        ("Properties", ", ".join(f"{k}={v}" for k, v in record.properties.items())),
        ("Content", f"{record.root}{'/' if record.is_folder else ''}, {_size(record.size)}"),
        ("sha256", record.content_hash),
    ]
    console().print(details_table(rows))
    if record.is_folder:
        table = new_table("FILE", "SIZE")
        for path, size, _sha in record.files:
            table.add_row(str(path), _size(int(size)))
        console().print(table)


@app.command("download")
def download(
    model: ModelArgument,
    target_dir: Annotated[Path, typer.Argument(help="Folder to download into.")] = Path("."),
    version: Annotated[int | None, typer.Option(help="This version (default: newest).")] = None,
    exist_ok: Annotated[
        bool, typer.Option("--exist-ok", help="Replace a file or folder already there.")
    ] = False,
    workspace: WorkspaceOption = None,
    json_: JsonOption = False,
) -> None:
    """Download a model's file or folder into TARGET_DIR (TARGET_DIR/<its name>)."""
    found = _get(workspace, model, version)
    with contextlib.redirect_stdout(sys.stderr) if json_ else contextlib.nullcontext():
        path = Path(found.download(str(target_dir), exist_ok=exist_ok)).absolute()
    if json_:
        print_json({"id": found.id, "path": str(path)})
    else:
        console().print(f"Downloaded {found.id} to {path}")
