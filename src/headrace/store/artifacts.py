"""Run files, logs and snapshot blobs of a workspace.

    artifacts/runs/<run id>/user_logs/stdout.txt, stderr.txt   what the step printed
    artifacts/runs/<run id>/user_logs/std_log.txt               both in order (store/steplogs)
    artifacts/runs/<run id>/outputs/..., logs/...               the script's ./outputs, ./logs
    artifacts/runs/<run id>/<name>                              run.upload_file(name, ...)
    artifacts/snapshots/blobs/<sha[:2]>/<sha>                    content-addressed source files
    artifacts/snapshots/manifests/<snapshot id>.json            {relative path: sha}
    artifacts/snapshots/files/<snapshot id>/...                  its files by name (read-only)
    artifacts/models/<name>/<version>/<file or folder>          registered models (store.models)

`LocalArtifactStore` keeps them in a folder; every name is checked to stay inside its run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
from pathlib import Path
from typing import Any

from headrace.errors import DatastorePathError, NotFoundError, RunNotFoundError
from headrace.store.datastores import clean_relative_path
from headrace.store.layout import write_json_atomic

__all__ = ["STDERR_LOG", "STDOUT_LOG", "LocalArtifactStore"]

STDOUT_LOG = "user_logs/stdout.txt"
STDERR_LOG = "user_logs/stderr.txt"
_RUN_ID = re.compile(r"^[A-Za-z0-9_.-]+$")
_RUN_ID_MAX = 128  # ids are uuids; a longer one cannot exist (and would not fit a file name)
_SHA = re.compile(r"^[0-9a-f]{64}$")


class LocalArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # -- run files -------------------------------------------------------------------------
    def run_dir(self, run_id: str) -> Path:
        if len(run_id) > _RUN_ID_MAX:
            raise RunNotFoundError(
                f"No run with id {run_id[:40]!r}... ({len(run_id):,} characters)."
            )
        if not _RUN_ID.match(run_id) or run_id in (".", ".."):
            raise DatastorePathError(f"{run_id!r} is not a valid run id.")
        return self.root / "runs" / run_id

    def file_path(self, run_id: str, name: str) -> Path:
        """The path of run file `name`, refusing names that leave the run's folder."""
        rel = clean_relative_path(name, what="run file name")
        if not rel:
            raise DatastorePathError("A run file name must not be empty.")
        base = self.run_dir(run_id)
        path = base / rel
        real_base = os.path.realpath(base)
        if not os.path.realpath(path).startswith(real_base + os.sep):
            raise DatastorePathError(f"The run file name {name!r} leads outside the run's files.")
        return path

    def list_files(self, run_id: str) -> list[tuple[str, int]]:
        base = self.run_dir(run_id)
        found: list[tuple[str, int]] = []
        if not base.is_dir():
            return found
        for dirpath, dirnames, filenames in os.walk(base):
            # `.headrace/` holds headrace's own bookkeeping (the run journal), not run files.
            dirnames[:] = sorted(
                d for d in dirnames if not (dirpath == str(base) and d == ".headrace")
            )
            for filename in sorted(filenames):
                full = Path(dirpath) / filename
                found.append((full.relative_to(base).as_posix(), full.stat().st_size))
        return found

    def put_file(self, run_id: str, name: str, source: Path) -> int:
        target = self.file_path(run_id, name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        return target.stat().st_size

    def move_tree(self, run_id: str, source: Path, prefix: str) -> list[tuple[str, int]]:
        """Move every file under `source` into the run's files below `prefix`.

        A rename when possible (same filesystem), so large outputs cost nothing to keep.
        Each destination is checked like any run file name: a step that may write its run
        folder could have put a link there to make this write elsewhere.
        """
        if not source.is_dir():
            return []
        moved: list[tuple[str, int]] = []
        base = self.run_dir(run_id)
        checked: set[Path] = set()
        for dirpath, _dirnames, filenames in os.walk(source):
            for filename in filenames:
                full = Path(dirpath) / filename
                rel = full.relative_to(source).as_posix()
                dest = base / prefix / rel
                if dest.parent not in checked:
                    # Folders are where a link could lead elsewhere (a rename onto a link
                    # replaces the link): checked before and after making them.
                    self.file_path(run_id, f"{prefix}/{rel}")
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    self.file_path(run_id, f"{prefix}/{rel}")
                    checked.add(dest.parent)
                size = full.lstat().st_size  # a link may point at a file moved before it
                try:
                    os.replace(full, dest)  # replaces a link at `dest`, never follows it
                except OSError:
                    self.file_path(run_id, f"{prefix}/{rel}")  # another filesystem: a copy
                    shutil.move(str(full), dest)
                moved.append((f"{prefix}/{rel}", size))
        return moved

    def read_bytes(
        self, run_id: str, name: str, offset: int = 0, limit: int | None = None
    ) -> bytes:
        path = self.file_path(run_id, name)
        try:
            # Not blocking on a fifo a step may have left in its run folder.
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            return b""
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return b""
            fh.seek(offset)
            return fh.read() if limit is None else fh.read(limit)

    def copy_out(self, run_id: str, name: str, destination: Path) -> None:
        source = self.file_path(run_id, name)
        if not source.is_file():
            raise NotFoundError(f"The run {run_id} has no file {name!r}.")
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, destination)

    # -- models ----------------------------------------------------------------------------
    def models_dir(self) -> Path:
        """The model registry's files (`store.models`), made if absent."""
        folder = self.root / "models"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    # -- snapshots -------------------------------------------------------------------------
    def blob_path(self, sha: str) -> Path:
        if not _SHA.match(sha):
            raise DatastorePathError(f"{sha!r} is not a content hash.")
        return self.root / "snapshots" / "blobs" / sha[:2] / sha

    def snapshot_files(self, snapshot_id: str) -> Path:
        """The snapshot's files by their names (made when a step of it fails, so that a
        traceback names files that still exist: `engine.snapshots.keep_snapshot_files`)."""
        if not _SHA.match(snapshot_id):
            raise DatastorePathError(f"{snapshot_id!r} is not a snapshot id.")
        return self.root / "snapshots" / "files" / snapshot_id

    def has_blob(self, sha: str) -> bool:
        return self.blob_path(sha).is_file()

    def put_blob(self, sha: str, source: Path) -> None:
        target = self.blob_path(sha)
        if target.is_file():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f"{sha}.{os.getpid()}.partial")
        shutil.copyfile(source, partial)
        os.replace(partial, target)

    def manifest_path(self, snapshot_id: str) -> Path:
        if not _SHA.match(snapshot_id):
            raise DatastorePathError(f"{snapshot_id!r} is not a snapshot id.")
        return self.root / "snapshots" / "manifests" / f"{snapshot_id}.json"

    def has_manifest(self, snapshot_id: str) -> bool:
        return self.manifest_path(snapshot_id).is_file()

    def write_manifest(self, snapshot_id: str, manifest: dict[str, Any]) -> None:
        path = self.manifest_path(snapshot_id)
        if path.is_file():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, manifest)

    def read_manifest(self, snapshot_id: str) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.manifest_path(snapshot_id).read_text())
        except FileNotFoundError as exc:
            raise NotFoundError(f"No snapshot {snapshot_id} in this workspace.") from exc
        return data
