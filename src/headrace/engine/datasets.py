"""Datasets where the workspace lives: registering versions with their content identity,
identifying a dataset input for reuse, and giving a step its dataset inputs.

- `register` resolves a definition's files, records every file's path, size and checksum
  (SHA-256 of the bytes; an object store's ETag; a URL's ETag or Last-Modified) and adds a
  version (store/dataset_queries.py decides whether one is needed).
- `input_identity` is what the reuse fingerprint sees of a dataset input: its definition
  without name or version, and a fingerprint of the data behind each source (size and
  mtime of every file, or ETags), so reuse follows the data, not only the definition.
- `materialize` gives a step its input: the folder or file itself when a dataset is one
  plain path on this machine (no copy), else a folder of symbolic links to the matched
  files (mount) or of copies (download).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from headrace.errors import DatasetPathError
from headrace.store.datasets import (
    DatasetAccess,
    DatasetFile,
    check_definition,
    content_identity,
    copy_folder,
    definition_hash,
    direct_path,
    file_checksum,
    file_transforms,
    glob_base,
    link_folder,
    local_files,
    match_files,
    source_label,
    url_tag,
)
from headrace.store.datastores import PARTIAL_SUFFIX
from headrace.store.records import DatasetRecord
from headrace.store.workspace_store import WorkspaceStore

__all__ = [
    "WorkspaceAccess",
    "input_identity",
    "materialize",
    "register",
    "resolve_files",
    "step_definition",
]


class WorkspaceAccess:
    """DatasetAccess over a workspace's own datastores (the engine's side)."""

    def __init__(self, ws: WorkspaceStore) -> None:
        self.ws = ws

    def list_files(self, datastore: str, prefix: str) -> list[tuple[str, int]]:
        return self.ws.datastore_files(datastore).list_files(prefix)

    def local_root(self, datastore: str) -> Path | None:
        files = self.ws.datastore_files(datastore)
        return files.local_path("") if files.is_local else None

    def download(self, datastore: str, pairs: list[tuple[str, Path]]) -> None:
        self.ws.datastore_files(datastore).download_many(pairs)


def resolve_files(access: DatasetAccess, definition: dict[str, Any]) -> list[DatasetFile]:
    """The files of a definition after its file transforms (FileDataset take/skip/split)."""
    files = match_files(definition, access.list_files)
    if definition["kind"] == "file":
        files = file_transforms(files, definition.get("transforms") or [])
    return files


def _entries(
    ws: WorkspaceStore, definition: dict[str, Any], files: list[DatasetFile]
) -> list[tuple[str, int, str]]:
    """(path, size, checksum or ETag) of each file, the path qualified by its source."""
    entries = []
    tags: dict[tuple[str, str], dict[str, str]] = {}
    for f in files:
        source = definition["sources"][f.source]
        label = f"{f.source}:{f.relative}"
        if "url" in source:
            size, tag = url_tag(f.location)
            entries.append((label, size, tag))
        elif "local" in source:
            entries.append((label, f.size, file_checksum(Path(f.location))))
        else:
            store = ws.datastore_files(source["datastore"])
            if store.is_local:
                entries.append((label, f.size, file_checksum(store.local_path(f.location))))
            else:
                base, _glob = glob_base(source["path"])
                key = (source["datastore"], base)
                if key not in tags:
                    tags[key] = store.object_tags(base)  # type: ignore[attr-defined]
                entries.append((label, f.size, tags[key].get(f.location, "")))
    return entries


def register(
    ws: WorkspaceStore,
    definition: dict[str, Any],
    *,
    name: str,
    description: str | None,
    tags: dict[str, Any],
    create_new_version: bool,
    produced_by: str | None = None,
    pipeline_run_id: str | None = None,
) -> DatasetRecord:
    """Register `definition` as dataset `name`, recording its files' content identity."""
    definition = check_definition(definition)
    plain = {k: v for k, v in definition.items() if k not in ("registration",)}
    files = resolve_files(WorkspaceAccess(ws), plain)
    content = content_identity(_entries(ws, plain, files))
    listing = content.pop("files")
    return ws.meta.add_dataset_version(
        name=name,
        kind=plain["kind"],
        definition=plain,
        definition_hash=definition_hash(plain),
        content=content,
        files=listing,
        description=description,
        tags=tags,
        create_new_version=create_new_version,
        produced_by=produced_by,
        pipeline_run_id=pipeline_run_id,
    )


def _stat_walk(folder: Path, prefix: str) -> list[tuple[str, int, str]]:
    """(datastore path, size, mtime) of every file under `folder` (one scandir walk)."""
    found: list[tuple[str, int, str]] = []
    stack = [(folder, prefix)]
    while stack:
        current, rel = stack.pop()
        try:
            entries = list(os.scandir(current))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            path = f"{rel}/{entry.name}" if rel else entry.name
            if entry.is_dir(follow_symlinks=False):
                stack.append((Path(entry.path), path))
            elif not entry.name.endswith(PARTIAL_SUFFIX):
                st = entry.stat()
                found.append((path, st.st_size, str(st.st_mtime_ns)))
    return found


def _tagged_listing(ws: WorkspaceStore, datastore: str, base: str) -> list[tuple[str, int, str]]:
    """(datastore path, size, mtime or ETag) of every file under `base` on a datastore."""
    files = ws.datastore_files(datastore)
    if files.is_local:
        top = files.local_path(base)
        if top.is_file():
            st = top.stat()
            return [(base, st.st_size, str(st.st_mtime_ns))]
        return _stat_walk(top, base)
    tags = files.object_tags(base)  # type: ignore[attr-defined]
    return [(p, size, tags.get(p, "")) for p, size in files.list_files(base)]


def input_identity(ws: WorkspaceStore, definition: dict[str, Any]) -> str:
    """What a step's reuse fingerprint sees of a dataset input (see the module docstring):
    `dataset:#<hash>` where the hash covers how the data is read (format, column
    types, transforms) and every matched file's path (as the step sees it), size and
    mtime or ETag, but not the dataset's name, version or patterns."""
    check_definition(definition)
    how = {k: definition.get(k) for k in ("kind", "format", "column_types", "transforms")}
    digest = hashlib.sha256(json.dumps(how, sort_keys=True).encode())
    listings: dict[tuple[str, str], list[tuple[str, int, str]]] = {}
    tags: dict[str, str] = {}

    def lister(datastore: str, base: str) -> list[tuple[str, int]]:
        listing = listings.setdefault((datastore, base), _tagged_listing(ws, datastore, base))
        tags.update({f"{datastore}\0{p}": t for p, _s, t in listing})
        return [(p, size) for p, size, _t in listing]

    files = match_files(definition, lister)
    if definition["kind"] == "file":
        files = file_transforms(files, definition.get("transforms") or [])
    for f in files:
        source = definition["sources"][f.source]
        if "datastore" in source:
            tag = tags.get(f"{source['datastore']}\0{f.location}", "")
        elif "local" in source:
            st = os.stat(f.location)
            tag = f"{st.st_size}:{st.st_mtime_ns}"
        else:
            tag = "|".join(map(str, url_tag(f.location)))
        digest.update(f"{f.relative}\0{f.size}\0{tag}\n".encode())
    return f"dataset:#{digest.hexdigest()}"


def step_definition(definition: dict[str, Any], path: str) -> dict[str, Any]:
    """The definition a step reads a dataset input with: its files at `path` (the step's
    copy or links), the same format and column types, and a table's row transforms (a
    FileDataset's file transforms are already applied to what is at `path`)."""
    transforms = definition.get("transforms") if definition.get("kind") == "tabular" else []
    return {
        **definition,
        "sources": [{"local": path}],
        "transforms": transforms or [],
        "registration": None,
    }


def materialize(
    ws: WorkspaceStore,
    definition: dict[str, Any],
    folder: Path,
    mode: str,
) -> tuple[str, list[Path]]:
    """Put a dataset input where its step reads it; returns that path and the folders
    holding the files the step reads (an isolated step is granted read access to them)."""
    check_definition(definition)  # a graph may come over REST: no path leaves its datastore
    access = WorkspaceAccess(ws)
    for source in definition["sources"]:
        if "datastore" in source and access.local_root(source["datastore"]) is not None:
            # The datastore's own check: a symbolic link out of it is refused too.
            ws.datastore_files(source["datastore"]).local_path(glob_base(source["path"])[0])
    direct = direct_path(definition, access) if mode != "download" else None
    if direct is not None:
        if not direct.exists():
            raise DatasetPathError(
                f"Dataset input: {source_label(definition['sources'][0])} no longer exists."
            )
        return str(direct), [direct]
    files = resolve_files(access, definition)
    pairs = local_files(definition, files, access, folder.with_name(folder.name + ".cache"))
    if mode == "download":
        copy_folder(pairs, folder)
    else:
        link_folder(pairs, folder)
    roots = sorted({str(r) for f in files if (r := _source_root(access, definition, f))})
    single = len(files) == 1 and len(definition["sources"]) == 1
    if single and glob_base(_pattern(definition["sources"][0]))[1] is None:
        return str(folder / pairs[0][0]), [Path(r) for r in roots]
    return str(folder), [Path(r) for r in roots]


def _pattern(source: dict[str, Any]) -> str:
    return str(source.get("path") or source.get("local") or source.get("url") or "")


def _source_root(access: DatasetAccess, definition: dict[str, Any], f: DatasetFile) -> Path | None:
    """The folder a mounted file's link points into (None: downloaded into the step's
    own folder)."""
    source = definition["sources"][f.source]
    if "datastore" in source:
        root = access.local_root(source["datastore"])
        base, _glob = glob_base(source["path"])
        if root is not None:
            return root / base if base else root
    return None  # paths on this machine are granted nothing (see runtime._dataset_input)
