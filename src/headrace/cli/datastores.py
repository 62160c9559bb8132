"""`headrace datastore list|upload|download`, with the SDK v1 semantics of
`Datastore.upload_files`, `Datastore.upload` and `Datastore.download`."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Annotated

import typer

from headrace.cli.common import JsonOption, WorkspaceOption, open_workspace
from headrace.cli.output import console, new_table, print_json
from headrace.errors import UserError
from headrace.sdk.datastore import Datastore

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True, help="List datastores, upload and download files.")

# The SDK reports each skipped file in this SDK v1 sentence; --json turns them into a list.


@app.command("list")
def list_(workspace: WorkspaceOption = None, json_: JsonOption = False) -> None:
    """List the workspace's datastores."""
    ws = open_workspace(workspace)
    stores = sorted(ws.datastores.values(), key=lambda d: d.name)
    rows = [
        {"name": d.name, "type": d.datastore_type, "is_default": d.is_default, "root": d.root}
        for d in stores
    ]
    if json_:
        print_json({"datastores": rows})
        return
    table = new_table("NAME", "TYPE", "DEFAULT", "ROOT")
    for d in stores:
        table.add_row(d.name, d.datastore_type, "yes" if d.is_default else "", d.root)
    console().print(table)


@app.command("upload")
def upload(
    datastore: Annotated[str, typer.Argument(help="Datastore name.")],
    sources: Annotated[list[Path], typer.Argument(help="Files and folders to upload.")],
    target_path: Annotated[
        str | None, typer.Option(help="Folder on the datastore to upload into.")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace files that already exist.")
    ] = False,
    workspace: WorkspaceOption = None,
    json_: JsonOption = False,
) -> None:
    """Upload files and folders to a datastore.

    Files keep their paths relative to the folder they have in common (one file lands at
    TARGET_PATH/NAME); a folder's contents land under TARGET_PATH (the folder's own name is
    not kept), as Datastore.upload_files and Datastore.upload do.
    """
    ws = open_workspace(workspace)
    store = Datastore(ws, datastore)
    store._overwrite_option = "--overwrite"  # the skip line speaks the CLI's words
    missing = [str(s) for s in sources if not s.exists()]
    if missing:
        raise UserError(f"Nothing uploaded: no such file or folder: {', '.join(missing)}.")
    files = [s for s in sources if s.is_file()]
    folders = [s for s in sources if s.is_dir()]
    pairs = store._file_pairs(files, None, target_path) if files else []
    for folder in folders:
        pairs += store._folder_pairs(folder, target_path)
    with contextlib.redirect_stdout(sys.stderr) if json_ else contextlib.nullcontext():
        # One transfer: one bar (or one line), and one line for the files skipped.
        store._upload(pairs, overwrite, show_progress=True)
    results = store.last_upload_results
    if json_:
        print_json(
            {
                "datastore": store.name,
                "target_path": target_path or "",
                "uploaded": sum(1 for _, done in results if done),
                "skipped": [path for path, done in results if not done],
                "files": store.list_files(target_path or None),
            }
        )


@app.command("download")
def download(
    datastore: Annotated[str, typer.Argument(help="Datastore name.")],
    target_dir: Annotated[Path, typer.Argument(help="Local folder to download into.")],
    prefix: Annotated[
        str | None, typer.Option(help="Only files whose datastore path starts with this.")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace local files that already exist.")
    ] = False,
    workspace: WorkspaceOption = None,
    json_: JsonOption = False,
) -> None:
    """Download files of a datastore to TARGET_DIR/<path on the datastore>."""
    ws = open_workspace(workspace)
    store = Datastore(ws, datastore)
    store._overwrite_option = "--overwrite"  # the skip line speaks the CLI's words
    with contextlib.redirect_stdout(sys.stderr) if json_ else contextlib.nullcontext():
        count = store.download(str(target_dir), prefix=prefix, overwrite=overwrite)
    if json_:
        print_json(
            {
                "datastore": store.name,
                "target_dir": str(target_dir.absolute()),
                "prefix": prefix or "",
                "downloaded": count,
            }
        )
