"""`WorkFolders`: step working folders, recycled between attempts of the same snapshot.

Each attempt runs in a fresh copy of its step's source snapshot. On many disks creating a
folder and a file costs a few hundred microseconds each, which for short steps is a large
share of headrace's own cost per step, while renaming a folder costs almost nothing. So
when an attempt ends, its folder is kept if the script left it exactly as it was made: the
same files (same inode, size, mode and change time: any write, chmod or replacement changes
the change time) and no other entries. The next attempt of the same snapshot in the same
pipeline run gets it by a rename. Anything else is removed, later, by the agent's remover.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from pathlib import Path

from headrace.store.artifacts import LocalArtifactStore

__all__ = ["FileStamps", "WorkFolders"]

FileStamps = dict[str, tuple[int, int, int, int]]  # relative path -> (ino, size, mode, ctime)


def _stamp(path: str) -> tuple[int, int, int, int]:
    st = os.lstat(path)
    return (st.st_ino, st.st_size, st.st_mode, st.st_ctime_ns)


def _untouched(folder: Path, stamps: FileStamps) -> bool:
    """Whether `folder` holds exactly the files `stamps` describes, each unchanged."""
    expected_dirs = {os.path.dirname(rel) for rel in stamps}
    expected_dirs |= {os.path.dirname(d) for d in list(expected_dirs) if d}
    seen = 0
    root = str(folder)
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        rel_dir = "" if rel_dir == "." else rel_dir
        for name in dirnames:
            if os.path.join(rel_dir, name) not in expected_dirs:
                return False
        for name in filenames:
            rel = os.path.join(rel_dir, name)
            stamp = stamps.get(rel)
            if stamp is None or _stamp(os.path.join(dirpath, name)) != stamp:
                return False
            seen += 1
    return seen == len(stamps)


class WorkFolders:
    """`owner` (uid, gid): a step user's; each fresh copy becomes theirs before its files
    are stamped (a chown changes the change time)."""

    def __init__(
        self, remove: Callable[[Path], None], owner: tuple[int, int] | None = None
    ) -> None:
        self._remove = remove
        self._owner = owner
        self._free: dict[tuple[str, str], list[tuple[Path, FileStamps]]] = {}
        self._names = itertools.count()

    def make(
        self, artifacts: LocalArtifactStore, run_id: str, snapshot_id: str, destination: Path
    ) -> FileStamps:
        """Put a fresh copy of the snapshot at `destination` (which must not exist)."""
        free = self._free.get((run_id, snapshot_id))
        if free:
            folder, stamps = free.pop()
            try:
                os.rename(folder, destination)
                return stamps
            except OSError:
                self._remove(folder)
        from headrace.engine.snapshots import materialize_snapshot

        materialize_snapshot(artifacts, snapshot_id, destination)
        if self._owner is not None:
            _chown_tree(destination, self._owner)
        return {rel: _stamp(str(destination / rel)) for rel in _files(artifacts, snapshot_id)}

    def release(
        self, run_id: str, snapshot_id: str | None, folder: Path, stamps: FileStamps
    ) -> None:
        """An attempt is done with `folder`: keep it for the next one, or remove it."""
        if snapshot_id and stamps and _untouched(folder, stamps):
            spare = folder.with_name(f".free-{next(self._names)}")
            try:
                os.rename(folder, spare)
            except OSError:
                self._remove(folder)
                return
            self._free.setdefault((run_id, snapshot_id), []).append((spare, stamps))
            return
        self._remove(folder)

    def remove(self, path: Path) -> None:
        self._remove(path)

    def forget_run(self, run_id: str) -> None:
        """The run's folder is being removed as a whole: drop what is kept for it."""
        for key in [k for k in self._free if k[0] == run_id]:
            del self._free[key]


def _chown_tree(folder: Path, owner: tuple[int, int]) -> None:
    os.chown(folder, *owner)
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), *owner, follow_symlinks=False)


def _files(artifacts: LocalArtifactStore, snapshot_id: str) -> list[str]:
    from headrace.engine.snapshots import read_manifest

    return list(read_manifest(artifacts, snapshot_id)["files"])
