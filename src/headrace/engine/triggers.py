"""Datastore triggers: what changed under a watched path, found by listing only.

`list_signatures` lists the files under `path_on_datastore` of any datastore (a local
folder with `os.scandir`; S3, Azure Blob and GCS through fsspec) with a signature per
file: size and modification time for a folder, the ETag for an object store. Nothing is
downloaded. `plan_poll` compares a listing with what the trigger saw before: a new or
changed file becomes *pending*, and fires at the next poll that sees the same signature
again (a file still being written changes between polls, so it waits until it is
complete); files in the first listing are only taken stock of, as SDK v1 fired for
changes after a schedule was created.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field

from headrace.store.datastores import PARTIAL_SUFFIX, DatastoreFiles, clean_relative_path

__all__ = ["PollPlan", "list_signatures", "plan_poll"]


def _scan(folder: str, rel: str, recursive: bool) -> Iterator[tuple[str, str]]:
    try:
        entries = os.scandir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return
    with entries:
        for entry in entries:
            name = entry.name
            if name.startswith(".") or name.endswith(PARTIAL_SUFFIX):
                continue  # hidden files, and files headrace is still writing
            path = f"{rel}/{name}" if rel else name
            try:
                if entry.is_dir(follow_symlinks=False):
                    if recursive:
                        yield from _scan(entry.path, path, recursive)
                    continue
                if not entry.is_file(follow_symlinks=False):
                    continue
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed while listing
            yield path, f"{st.st_size}:{st.st_mtime_ns}"


def list_signatures(files: DatastoreFiles, prefix: str, recursive: bool) -> dict[str, str]:
    """Datastore path -> signature of every file under `prefix` (sub-folders only when
    `recursive`). Errors of an unreachable store come through as the datastore layer's
    ConfigError / NotFoundError (a missing folder lists as empty)."""
    rel = clean_relative_path(prefix or "", what="path_on_datastore")
    if files.is_local:
        folder = files.local_path(rel)
        if not folder.exists():
            # A root that went away (an unmounted disk) is an error; a missing sub-folder
            # is a folder nobody wrote to yet.
            root = files.local_path("")
            if not root.is_dir():
                raise FileNotFoundError(f"the datastore's folder {root} does not exist")
            return {}
        return dict(_scan(str(folder), rel, recursive))
    object_files = files  # ObjectDatastoreFiles
    tags: dict[str, str] = object_files.object_tags(rel)  # type: ignore[attr-defined]
    if recursive:
        return tags
    start = len(rel) + 1 if rel else 0
    return {p: t for p, t in tags.items() if "/" not in p[start:]}


@dataclass
class PollPlan:
    """What one poll does: files to fire for now, and the stock to record afterwards."""

    fire: dict[str, str] = field(default_factory=dict)  # path -> signature, stable now
    record: dict[str, tuple[str, bool]] = field(default_factory=dict)  # path -> (sig, pending)
    deleted: list[str] = field(default_factory=list)
    changed: int = 0


def plan_poll(listing: dict[str, str], seen: dict[str, tuple[str, bool]], first: bool) -> PollPlan:
    """Compare `listing` with what was `seen` (path -> (signature, pending))."""
    plan = PollPlan()
    if first:
        plan.record = {p: (sig, False) for p, sig in listing.items()}
        return plan
    for path, sig in listing.items():
        before = seen.get(path)
        if before is None or before[0] != sig:
            plan.record[path] = (sig, True)  # new or changed: wait one poll for it to settle
            plan.changed += 1
        elif before[1]:
            plan.fire[path] = sig  # pending and unchanged since: complete
    plan.deleted = [p for p in seen if p not in listing]
    return plan
