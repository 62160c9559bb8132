"""Snapshots of a step's source_directory: content-addressed, deduplicated, ignore-aware.

At submit the source folder is walked (honouring `.headraceignore`, then `.amlignore` or else
`.gitignore`, plus version-control and cache folders), each file is hashed and stored once as
a blob, and a manifest {relative path: sha} names the snapshot. The snapshot id is the hash of
the manifest, so it is the content hash that reuse fingerprints use. Hashes are cached by
(size, mtime) so resubmitting an unchanged folder reads no file contents.

A step's working folder is materialized from the manifest: the script sees the files as
they were at submit, whatever happened to the folder since.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from headrace.config import snapshot_max_bytes, snapshot_max_files
from headrace.errors import UserError
from headrace.store.artifacts import LocalArtifactStore
from headrace.store.layout import write_json_atomic

__all__ = ["SnapshotInfo", "SnapshotSizeWarning", "create_snapshot", "materialize_snapshot"]

ALWAYS_IGNORED = [
    ".git/",
    ".hg/",
    ".svn/",
    "__pycache__/",
    "*.pyc",
    ".ipynb_checkpoints/",
    ".azureml/",
    ".headrace/",
    ".mypy_cache/",
    ".pytest_cache/",
    ".ruff_cache/",
]


class SnapshotSizeWarning(UserWarning):
    """A source folder is large; list what the step does not need in .amlignore."""


@dataclass(frozen=True)
class SnapshotInfo:
    id: str
    files: int
    size: int


class _AlwaysIgnored:
    """ALWAYS_IGNORED alone, matched as pathspec's GitIgnoreSpec matches it (a folder named
    as one of its folder patterns, anything named *.pyc, at any depth) without importing
    pathspec: about 10 ms of a `python pipeline.py` whose sources have no ignore file.
    tests/test_workspace.py checks both agree."""

    FOLDERS = frozenset(p.rstrip("/") for p in ALWAYS_IGNORED if p.endswith("/"))
    SUFFIXES = tuple(p[1:] for p in ALWAYS_IGNORED if p.startswith("*"))

    def match_file(self, path: str) -> bool:
        folder = path.endswith("/")
        name = path.rstrip("/").rsplit("/", 1)[-1]
        return name.endswith(self.SUFFIXES) or (folder and name in self.FOLDERS)


def _ignore_spec(source: Path) -> Any:
    lines = list(ALWAYS_IGNORED)
    for name in (".headraceignore",):
        path = source / name
        if path.is_file():
            lines += path.read_text(encoding="utf-8", errors="replace").splitlines()
    # SDK v1: .amlignore wins over .gitignore when both exist.
    for name in (".amlignore", ".gitignore"):
        path = source / name
        if path.is_file():
            lines += path.read_text(encoding="utf-8", errors="replace").splitlines()
            break
    if len(lines) == len(ALWAYS_IGNORED):
        return _AlwaysIgnored()
    import pathspec

    return pathspec.GitIgnoreSpec.from_lines(lines)


def _walk(source: Path) -> list[tuple[str, Path, os.stat_result]]:
    spec = _ignore_spec(source)
    found: list[tuple[str, Path, os.stat_result]] = []
    for dirpath, dirnames, filenames in os.walk(source):
        rel_dir = Path(dirpath).relative_to(source).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        kept = []
        for d in sorted(dirnames):
            full = Path(dirpath) / d
            # A virtual environment is never part of a step's source.
            if spec.match_file(rel_dir + d + "/") or (full / "pyvenv.cfg").is_file():
                continue
            kept.append(d)
        dirnames[:] = kept
        for filename in sorted(filenames):
            rel = rel_dir + filename
            if spec.match_file(rel):
                continue
            full = Path(dirpath) / filename
            try:
                st = full.stat()
            except FileNotFoundError:
                continue  # a dangling symlink
            if stat.S_ISREG(st.st_mode):
                found.append((rel, full, st))
    return found


_cache_lock = threading.Lock()


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def create_snapshot(artifacts: LocalArtifactStore, source_directory: str | Path) -> SnapshotInfo:
    """Snapshot `source_directory` into the artifact store and return its id."""
    source = Path(source_directory)
    if not source.is_dir():
        raise UserError(
            f"The source_directory {str(source)!r} does not exist or is not a folder; pass the "
            "folder that holds the step's script."
        )
    source = source.resolve()
    cache_path = (
        artifacts.root
        / "snapshots"
        / "statcache"
        / f"{hashlib.sha256(str(source).encode()).hexdigest()[:32]}.json"
    )
    with _cache_lock:
        try:
            cache: dict[str, list[Any]] = json.loads(cache_path.read_text())
        except (FileNotFoundError, ValueError):
            cache = {}
    files: dict[str, dict[str, Any]] = {}
    total = 0
    new_cache: dict[str, list[Any]] = {}
    changed = False
    for rel, full, st in _walk(source):
        hit = cache.get(rel)
        if hit is not None and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
            sha = str(hit[2])
        else:
            sha = _hash_file(full)
            changed = True
        if not artifacts.has_blob(sha):
            artifacts.put_blob(sha, full)
        executable = bool(st.st_mode & stat.S_IXUSR)
        files[rel] = {"sha": sha, "size": st.st_size, "x": executable}
        new_cache[rel] = [st.st_size, st.st_mtime_ns, sha]
        total += st.st_size
    if changed or len(new_cache) != len(cache):
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        with _cache_lock:
            write_json_atomic(cache_path, new_cache)
    if total > snapshot_max_bytes() or len(files) > snapshot_max_files():
        warnings.warn(
            f"The source_directory {str(source)!r} holds {len(files)} files, "
            f"{total / 1e6:.1f} MB; every step using it snapshots all of it. List data, "
            "virtual environments and outputs in an .amlignore file there.",
            SnapshotSizeWarning,
            stacklevel=3,
        )
    manifest = {"files": files}
    snapshot_id = hashlib.sha256(
        json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    artifacts.write_manifest(snapshot_id, manifest)
    return SnapshotInfo(id=snapshot_id, files=len(files), size=total)


_manifest_cache: dict[str, dict[str, Any]] = {}


def read_manifest(artifacts: LocalArtifactStore, snapshot_id: str) -> dict[str, Any]:
    manifest = _manifest_cache.get(snapshot_id)
    if manifest is None:
        manifest = artifacts.read_manifest(snapshot_id)
        if len(_manifest_cache) > 256:
            _manifest_cache.clear()
        _manifest_cache[snapshot_id] = manifest
    return manifest


def materialize_snapshot(
    artifacts: LocalArtifactStore, snapshot_id: str, destination: Path
) -> None:
    """Copy the snapshot's files into `destination` (which is created)."""
    manifest = read_manifest(artifacts, snapshot_id)
    destination.mkdir(parents=True, exist_ok=True)
    made: set[Path] = {destination}
    for rel, entry in manifest["files"].items():
        target = destination / rel
        parent = target.parent
        if parent not in made:
            parent.mkdir(parents=True, exist_ok=True)
            made.add(parent)
        shutil.copyfile(artifacts.blob_path(entry["sha"]), target)
        if entry.get("x"):
            target.chmod(0o755)


def keep_snapshot_files(artifacts: LocalArtifactStore, snapshot_id: str) -> Path:
    """The snapshot's files by name, read-only, in `artifacts/snapshots/files/<id>/`:
    made once, when a step of the snapshot fails, so that the files its traceback names
    (engine/steplog.py) exist after its working folder is gone."""
    folder = artifacts.snapshot_files(snapshot_id)
    if folder.is_dir():
        return folder
    import uuid

    making = folder.with_name(f".{snapshot_id}.{uuid.uuid4().hex[:8]}")
    try:
        materialize_snapshot(artifacts, snapshot_id, making)
        for rel in read_manifest(artifacts, snapshot_id)["files"]:
            path = making / rel
            path.chmod(path.stat().st_mode & 0o555)  # to read, not to edit by mistake
        os.rename(making, folder)
    except OSError:
        shutil.rmtree(making, ignore_errors=True)  # made meanwhile by another agent
    return folder


def changed_files(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Human-readable differences between two manifests: added, removed, modified files."""
    old_files, new_files = old.get("files", {}), new.get("files", {})
    lines: list[str] = []
    for rel in sorted(set(old_files) | set(new_files)):
        if rel not in old_files:
            lines.append(f"{rel} added")
        elif rel not in new_files:
            lines.append(f"{rel} removed")
        elif old_files[rel]["sha"] != new_files[rel]["sha"]:
            lines.append(f"{rel} modified")
    return lines
