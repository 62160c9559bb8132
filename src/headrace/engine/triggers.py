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

import hashlib
import os
from dataclasses import dataclass, field

from headrace.store.datastores import PARTIAL_SUFFIX, DatastoreFiles, clean_relative_path

__all__ = ["PollPlan", "list_signatures", "listing_digest", "plan_poll"]


def _scan(folder: str, rel: str, recursive: bool, out: dict[str, str]) -> None:
    """Add `path -> "size:mtime_ns"` of the files in `folder` to `out` (a tight loop: a
    trigger may watch 100,000 files)."""
    prefix = f"{rel}/" if rel else ""
    try:
        entries = os.scandir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return
    folders = []
    with entries:
        for entry in entries:
            name = entry.name
            if name[0] == "." or name.endswith(PARTIAL_SUFFIX):
                continue  # hidden files, and files headrace is still writing
            try:
                if entry.is_dir(follow_symlinks=False):
                    if recursive:
                        folders.append((entry.path, prefix + name))
                    continue
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed while listing
            if entry.is_file(follow_symlinks=False):
                out[prefix + name] = f"{st.st_size}:{st.st_mtime_ns}"
    for path, sub in folders:
        _scan(path, sub, recursive, out)


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
        found: dict[str, str] = {}
        _scan(str(folder), rel, recursive, found)
        return found
    object_files = files  # ObjectDatastoreFiles
    # Streamed a page at a time (S3): only the (path, tag) pairs are kept, never each
    # object's details.
    tags = object_files.iter_object_tags(rel)  # type: ignore[attr-defined]
    if recursive:
        return dict(tags)
    start = len(rel) + 1 if rel else 0
    return {p: t for p, t in tags if "/" not in p[start:]}


def listing_digest(listing: dict[str, str]) -> str:
    """A hash of a listing in its order. The same listing listed in another order hashes
    differently, which only costs that poll a full comparison; different listings never
    hash the same."""
    digest = hashlib.sha256()
    for path, sig in listing.items():
        digest.update(f"{path}\t{sig}\n".encode())
    return digest.hexdigest()


@dataclass
class PollPlan:
    """What one poll does: files to fire now, and what to remember for the next poll."""

    fire: dict[str, str] = field(default_factory=dict)  # path -> signature, stable now
    remember: dict[str, tuple[str, bool]] = field(default_factory=dict)  # path -> (sig, pending)
    changed: int = 0


def plan_poll(listing: dict[str, str], seen: dict[str, tuple[str, bool]] | None) -> PollPlan:
    """Compare `listing` with what was `seen` (path -> (signature, pending)); `seen` None:
    the first poll, which only takes stock. Files fired now are remembered as not pending
    (so a fire that fails is not retried poll after poll); deleted files are forgotten.
    `seen` is consumed (emptied of every listed path)."""
    plan = PollPlan()
    if seen is None:
        plan.remember = {p: (sig, False) for p, sig in listing.items()}
        return plan
    remember = plan.remember
    for path, sig in listing.items():
        before = seen.pop(path, None)  # compared: freed as the comparison goes
        if before is None or before[0] != sig:
            remember[path] = (sig, True)  # new or changed: wait one poll for it to settle
            plan.changed += 1
        else:
            if before[1]:
                plan.fire[path] = sig  # pending and unchanged since: complete
            remember[path] = (sig, False)
    return plan
