"""Datastores (browse folders, download files) and compute targets (what runs on them).

Every datastore path goes through the store's checks (`DatastoreFiles.local_path`, built on
`clean_relative_path`): `..`, absolute paths and symbolic links out of the datastore are
refused with a 400 page, and links out are never listed. A folder lists one level, folders
first, `PAGE_SIZE` entries a page. Folder sizes are not computed (that would walk the tree).
An object-store datastore (S3, Azure Blob, GCS) is listed from one recursive listing of the
folder's prefix (its "folders" are key prefixes), and a download goes through a scratch file.

A limitation of `.json` twins on a `{path:path}` route: `/browse/a.json` is the twin of
`/browse/a`, so a folder whose name ends in `.json` cannot be opened as HTML (its files
still download).
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request, Response
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from headrace.errors import ConfigError, DatastorePathError
from headrace.server.portal.base import PortalError, ViewerDep, page, render, router, state
from headrace.server.portal.previews import PreviewSource, preview_page
from headrace.store.compare_views import running_step_runs
from headrace.store.datastores import PARTIAL_SUFFIX, DatastoreFiles, clean_relative_path
from headrace.store.records import ComputeTargetRecord, DatastoreRecord, StepRunRecord

__all__: list[str] = []

PAGE_SIZE = 500
RUNNING_CAP = 500


# -- datastores ----------------------------------------------------------------------------
def _where(request: Request, record: DatastoreRecord) -> str:
    """Where a datastore keeps its files, for display (no query: the record has it)."""
    if record.type == "local" and "path" in record.config:
        return str(state(request).store.local_datastore_root(record.config))
    for key in ("url", "container", "bucket", "account_name"):
        if key in record.config:
            return str(record.config[key])
    return ""


def _datastore_row(request: Request, record: DatastoreRecord) -> dict[str, Any]:
    return {
        "name": record.name,
        "url": f"/ui/datastores/{quote(record.name)}",
        "type": record.type,
        "is_default": record.is_default,
        "where": _where(request, record),
    }


@page("/datastores")
def datastores(request: Request, _viewer: ViewerDep) -> Response:
    """The workspace's datastores."""
    found = state(request).store.meta.list_datastores()
    data = {"datastores": [_datastore_row(request, d) for d in found]}
    return render(request, "datastores.html", title="Datastores", data=data)


def _files(request: Request, name: str) -> DatastoreFiles:
    try:
        files: DatastoreFiles = state(request).store.datastore_files(name)
    except ConfigError as exc:
        raise PortalError(400, str(exc)) from exc
    return files


def _checked(files: DatastoreFiles, path: str) -> tuple[str, Path]:
    """The cleaned path and where it is, or a 400 page for a path that would leave."""
    try:
        rel = clean_relative_path(path)
        return rel, files.local_path(rel)
    except DatastorePathError as exc:
        raise PortalError(
            400, f"{exc} Browse the datastore from /ui/datastores/{files.name}."
        ) from exc


def _clean(files: DatastoreFiles, path: str) -> str:
    """The cleaned path of an object-store datastore, or a 400 page."""
    try:
        return clean_relative_path(path)
    except DatastorePathError as exc:
        raise PortalError(
            400, f"{exc} Browse the datastore from /ui/datastores/{files.name}."
        ) from exc


def _object_entries(files: DatastoreFiles, name: str, rel: str) -> tuple[str, list[dict[str, Any]]]:
    """One level under the prefix `rel` of an object store: ("file"|"folder"|"missing", ...)."""
    listing = files.list_files(rel)
    if len(listing) == 1 and listing[0][0] == rel and rel:
        return "file", [_file_entry(name, rel, listing[0][1])]
    prefix = f"{rel}/" if rel else ""
    folders: dict[str, dict[str, Any]] = {}
    found: list[dict[str, Any]] = []
    for key, size in listing:
        if not key.startswith(prefix) or key.endswith(PARTIAL_SUFFIX):
            continue
        head, _, rest = key[len(prefix) :].partition("/")
        child = prefix + head
        if rest:
            folders.setdefault(
                head,
                {
                    "name": head,
                    "path": child,
                    "kind": "folder",
                    "size": None,
                    "url": f"/ui/datastores/{quote(name)}/browse/{quote(child)}",
                },
            )
        else:
            found.append(_file_entry(name, child, size))
    if not folders and not found:
        return ("folder" if not rel else "missing"), []
    ordered = [folders[k] for k in sorted(folders)] + sorted(found, key=lambda e: e["name"])
    return "folder", ordered


@page("/datastores/{name}")
def datastore(request: Request, _viewer: ViewerDep, name: str, page: int = 1) -> Response:
    """The root folder of a datastore."""
    return _browse(request, name, "", page)


@page("/datastores/{name}/browse/{path:path}")
def browse(request: Request, _viewer: ViewerDep, name: str, path: str, page: int = 1) -> Response:
    """A folder of a datastore: its folders and files, with sizes and download links."""
    return _browse(request, name, path, page)


def _browse(request: Request, name: str, path: str, page: int) -> Response:
    files = _files(request, name)
    if page < 1:
        raise PortalError(400, f"Page {page} does not exist; pages start at 1.")
    if not files.is_local:
        rel = _clean(files, path)
        kind, entries = _object_entries(files, name, rel)
    else:
        rel, folder = _checked(files, path)
        if folder.is_file():
            kind, entries = "file", [_file_entry(name, rel, folder.stat().st_size)]
        elif folder.is_dir():
            kind, entries = "folder", _entries(files, name, rel, folder)
        else:
            kind, entries = "missing", []
    if kind == "missing":
        raise PortalError(
            404,
            f"There is no folder or file {rel!r} on datastore {name!r}; browse it from "
            f"/ui/datastores/{name}.",
        )
    pages = max(1, -(-len(entries) // PAGE_SIZE))
    if page > pages:
        raise PortalError(400, f"Page {page} does not exist; this folder has {pages}.")
    shown = entries[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    record = state(request).store.meta.find_datastore(name)
    data = {
        "datastore": _datastore_row(request, record) if record else {"name": name},
        "path": rel,
        "kind": kind,
        "breadcrumbs": _breadcrumbs(name, rel),
        "entries": shown,
        "total": len(entries),
        "page": page,
        "pages": pages,
        "page_size": PAGE_SIZE,
        "previous_url": _page_url(name, rel, page - 1) if page > 1 else None,
        "next_url": _page_url(name, rel, page + 1) if page < pages else None,
    }
    title = f"Datastore {name}" + (f": {rel}" if rel else "")
    return render(request, "datastore.html", title=title, data=data)


def _entries(files: DatastoreFiles, name: str, rel: str, folder: Path) -> list[dict[str, Any]]:
    """One level of `folder`: folders first, then files, each by name; links out skipped."""
    folders: list[dict[str, Any]] = []
    found: list[dict[str, Any]] = []
    with os.scandir(folder) as listing:
        for entry in listing:
            if entry.name.endswith(PARTIAL_SUFFIX):
                continue
            child = posixpath.join(rel, entry.name) if rel else entry.name
            if entry.is_symlink():
                try:
                    files.local_path(child)
                except DatastorePathError:
                    continue  # a link out of the datastore is not its content
            if entry.is_dir():
                folders.append(
                    {
                        "name": entry.name,
                        "path": child,
                        "kind": "folder",
                        "size": None,
                        "url": f"/ui/datastores/{quote(name)}/browse/{quote(child)}",
                    }
                )
            elif entry.is_file():
                found.append(_file_entry(name, child, entry.stat().st_size))
    folders.sort(key=lambda e: e["name"])
    found.sort(key=lambda e: e["name"])
    return folders + found


def _file_entry(name: str, path: str, size: int) -> dict[str, Any]:
    return {
        "name": posixpath.basename(path),
        "path": path,
        "kind": "file",
        "size": size,
        "url": f"/ui/datastores/{quote(name)}/download/{quote(path)}",
        "preview_url": f"/ui/datastores/{quote(name)}/preview/{quote(path)}",
    }


def _breadcrumbs(name: str, rel: str) -> list[dict[str, str]]:
    crumbs = [{"name": name, "url": f"/ui/datastores/{quote(name)}"}]
    parts = rel.split("/") if rel else []
    for i, part in enumerate(parts):
        where = quote("/".join(parts[: i + 1]))
        crumbs.append({"name": part, "url": f"/ui/datastores/{quote(name)}/browse/{where}"})
    return crumbs


def _page_url(name: str, rel: str, page: int) -> str:
    base = f"/ui/datastores/{quote(name)}"
    if rel:
        base += f"/browse/{quote(rel)}"
    return f"{base}?page={page}"


@router.get("/datastores/{name}/download/{path:path}")
def download(request: Request, _viewer: ViewerDep, name: str, path: str) -> Response:
    """A file of a datastore, streamed as an attachment."""
    files = _files(request, name)
    if not files.is_local:
        rel = _clean(files, path)
        if not files.exists(rel):
            raise PortalError(
                404,
                f"There is no file {rel!r} on datastore {name!r}; browse it from "
                f"/ui/datastores/{name}.",
            )
        scratch = Path(tempfile.mkdtemp(prefix="headrace-portal-"))
        files.download_file(rel, scratch / "file")
        return FileResponse(
            scratch / "file",
            filename=posixpath.basename(rel),
            background=BackgroundTask(shutil.rmtree, scratch, ignore_errors=True),
        )
    rel, target = _checked(files, path)
    if not target.is_file():
        raise PortalError(
            404,
            f"There is no file {rel!r} on datastore {name!r}; browse it from "
            f"/ui/datastores/{name}.",
        )
    return FileResponse(target, filename=posixpath.basename(rel))


@router.get("/datastores/{name}/preview/{path:path}")
def preview(request: Request, _viewer: ViewerDep, name: str, path: str) -> Response:
    """A datastore file shown in the page, read only in part (an object store's by ranged
    reads); paths leaving the datastore: a 400 page, as for downloads."""
    files = _files(request, name)
    if files.is_local:
        rel, target = _checked(files, path)
        size = target.stat().st_size if target.is_file() else None
    else:
        rel = _clean(files, path)
        sizes = dict(files.list_files(rel)) if rel else {}
        size = sizes.get(rel)
    if size is None:
        raise PortalError(
            404,
            f"There is no file {rel!r} on datastore {name!r}; browse it from "
            f"/ui/datastores/{name}.",
        )
    source = PreviewSource(
        name=rel,
        size=size,
        open=lambda: files.open_read(rel),
        download_url=f"/ui/datastores/{quote(name)}/download/{quote(rel)}",
    )
    return preview_page(request, source, _breadcrumbs(name, posixpath.dirname(rel)))


# -- compute targets -----------------------------------------------------------------------
def _step_link(step: StepRunRecord) -> dict[str, Any]:
    return {
        "id": step.id,
        "url": f"/ui/steps/{step.id}",
        "name": step.name,
        "pipeline_run_id": step.pipeline_run_id,
        "run_url": f"/ui/runs/{step.pipeline_run_id}",
        "started_at": step.started_at,
    }


@page("/compute")
def compute(request: Request, _viewer: ViewerDep) -> Response:
    """Compute targets, each with its status and the step runs running on it now (the page
    polls its twin to keep them current)."""
    targets = state(request).store.meta.list_compute_targets()
    running = running_step_runs(state(request).store.database, limit=RUNNING_CAP + 1)
    capped = len(running) > RUNNING_CAP
    by_target: dict[str, list[StepRunRecord]] = {}
    for step in running[:RUNNING_CAP]:
        by_target.setdefault(step.compute_target, []).append(step)
    names = {t.name for t in targets}
    rows = [] if "local" in names else [_target_row(None, "local", by_target)]
    rows += [_target_row(t, t.name, by_target) for t in targets]
    # Steps on a target that was since removed still run: show them too.
    rows += [_target_row(None, n, by_target) for n in sorted(set(by_target) - names - {"local"})]
    data = {"targets": rows, "running_capped": capped, "running_cap": RUNNING_CAP}
    return render(request, "compute.html", title="Compute targets", data=data)


def _target_row(
    target: ComputeTargetRecord | None, name: str, by_target: dict[str, list[StepRunRecord]]
) -> dict[str, Any]:
    steps = by_target.get(name, [])
    max_nodes = target.config.get("max_nodes") if target else None
    if target is None and name != "local":
        status = "Removed"  # its steps still run, but no new ones can start there
    elif not steps:
        status = "Idle"
    elif isinstance(max_nodes, int) and len(steps) >= max_nodes:
        status = "Busy"  # every node taken: further steps wait
    else:
        status = "Running"
    return {
        "name": name,
        "type": target.type if target else ("local" if name == "local" else "unknown"),
        "status": status,
        "max_nodes": max_nodes,
        "created_at": target.created_at if target else None,
        "running": len(steps),
        "running_steps": [_step_link(s) for s in steps],
    }
