"""File access to datastores, with every path checked to stay inside its datastore.

`DatastoreFiles` is the seam; `LocalDatastoreFiles` serves folders on this machine and hands
real paths to steps (zero copy). Object stores (S3, Azure Blob, GCS) are served by
`ObjectDatastoreFiles` in `store/objectstores.py`, behind the same seam.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Protocol

from headrace.errors import (
    DatastorePathError,
    NotFoundError,
)
from headrace.limits import NAME_MAX_BYTES, path_problem

__all__ = [
    "PARTIAL_SUFFIX",
    "DatastoreFiles",
    "LocalDatastoreFiles",
    "clean_relative_path",
    "partial_path",
    "walk_files",
]

PARTIAL_SUFFIX = ".headrace-partial"  # a file being written: not content yet


def clean_relative_path(path: str | os.PathLike[str] | None, *, what: str = "path") -> str:
    """Normalize a datastore-relative path ('' is the root) or raise DatastorePathError.

    Refuses absolute paths, `..` components, backslash tricks, NUL bytes, and names or paths
    longer than `headrace.limits` allows (255 bytes a name, 1,024 a path).
    """
    if path is None:
        return ""
    raw = os.fspath(path)
    if "\x00" in raw:
        raise DatastorePathError(f"The {what} {raw!r} contains a NUL byte.")
    text = raw.replace("\\", "/")
    if text.startswith("/") or (len(text) > 1 and text[1] == ":"):
        raise DatastorePathError(
            f"The {what} {raw!r} is absolute; datastore paths are relative to the datastore "
            "root, for example 'data/train.csv'."
        )
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise DatastorePathError(
            f"The {what} {raw!r} contains '..' and could leave the datastore; use a path "
            "inside the datastore."
        )
    clean = posixpath.join(*parts) if parts else ""
    problem = path_problem(clean, what)
    if problem:
        raise DatastorePathError(problem)
    return clean


def partial_path(target: Path) -> Path:
    """Where a file is written before it is renamed to `target` (hidden, never listed).

    `.<name>.headrace-partial` while that fits in a file name; for a name too long for the
    prefix and suffix (any legal name of 237 bytes or more), a hash of the name stands in
    for it, so every legal name can be written.
    """
    name = f".{target.name}{PARTIAL_SUFFIX}"
    if len(os.fsencode(name)) > NAME_MAX_BYTES:
        digest = hashlib.sha256(os.fsencode(target.name)).hexdigest()[:32]
        name = f".{digest}{PARTIAL_SUFFIX}"
    return target.with_name(name)


def walk_files(folder: Path) -> Iterator[Path]:
    """Every file under `folder` in a stable order: sorted, links not followed into
    folders, and files still being written (`PARTIAL_SUFFIX`) left out."""
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            if not name.endswith(PARTIAL_SUFFIX):
                yield Path(dirpath) / name


class DatastoreFiles(Protocol):
    """What the SDK and the engine need from a datastore's storage."""

    name: str
    is_local: bool

    def local_path(self, path: str) -> Path: ...

    def exists(self, path: str) -> bool: ...

    def upload_file(self, source: Path, path: str, *, overwrite: bool) -> bool: ...

    def list_files(self, prefix: str) -> list[tuple[str, int]]: ...

    def download_file(self, path: str, destination: Path) -> None: ...

    def open_read(self, path: str) -> contextlib.AbstractContextManager[IO[bytes]]:
        """The file `path` opened for reading (binary, seekable; NotFoundError if none)."""
        ...

    def fingerprint(self, path: str) -> str: ...

    def upload_many(
        self,
        pairs: list[tuple[Path, str]],
        *,
        overwrite: bool,
        advance: Callable[[int], None] | None = None,
    ) -> list[bool]: ...

    def download_many(
        self, pairs: list[tuple[str, Path]], *, advance: Callable[[int], None] | None = None
    ) -> None: ...

    def replace_tree(self, source: Path, path: str) -> None: ...

    def remove_tree(self, path: str) -> None: ...

    def describe(self) -> str: ...


class LocalDatastoreFiles:
    """A datastore that is a folder on this machine."""

    is_local = True

    def __init__(self, name: str, root: Path) -> None:
        self.name = name
        self.root = Path(root)
        self._real_root = Path(os.path.realpath(self.root))

    def local_path(self, path: str) -> Path:
        """The real path of `path`, refusing anything that resolves outside the datastore."""
        rel = clean_relative_path(path)
        candidate = self.root / rel if rel else self.root
        if not self._inside(candidate):
            real = os.path.realpath(candidate)
            raise DatastorePathError(
                f"The path {path!r} on datastore {self.name!r} leads outside the datastore "
                f"(through a symbolic link to {real}); refusing to use it."
            )
        return candidate

    def exists(self, path: str) -> bool:
        return self.local_path(path).exists()

    def describe(self) -> str:
        return str(self.root)

    def upload_many(
        self,
        pairs: list[tuple[Path, str]],
        *,
        overwrite: bool,
        advance: Callable[[int], None] | None = None,
    ) -> list[bool]:
        """Copy each file (see `upload_file`); `advance` hears each written file's bytes."""
        done = []
        for src, path in pairs:
            done.append(self.upload_file(src, path, overwrite=overwrite))
            if advance is not None and done[-1]:
                advance(src.stat().st_size)
        return done

    def download_many(
        self, pairs: list[tuple[str, Path]], *, advance: Callable[[int], None] | None = None
    ) -> None:
        for path, destination in pairs:
            self.download_file(path, destination)
            if advance is not None:
                advance(destination.stat().st_size)

    def replace_tree(self, source: Path, path: str) -> None:
        """Move the folder `source` (on this machine) to `path`, replacing what is there."""
        final = self.local_path(path)
        self.remove_tree(path)
        final.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(source), final)

    def remove_tree(self, path: str) -> None:
        """Remove the file or folder at `path` (never the datastore's root)."""
        if not clean_relative_path(path):
            raise DatastorePathError("Refusing to remove the whole datastore.")
        final = self.local_path(path)
        if final.is_dir() and not final.is_symlink():
            shutil.rmtree(final)
        elif final.exists() or final.is_symlink():
            final.unlink()

    def upload_file(self, source: Path, path: str, *, overwrite: bool) -> bool:
        """Copy `source` to `path`; False (and nothing written) when it exists and not overwrite.

        The copy goes to a temporary name first, so a reader never sees half a file.
        """
        target = self.local_path(path)
        if target.exists() and not overwrite:
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        # Re-check after creating parents: a symlinked parent could point outside.
        self.local_path(path)
        partial = partial_path(target)
        try:
            shutil.copyfile(source, partial)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        return True

    def _walk(self, prefix: str) -> Iterator[tuple[str, Path]]:
        base = self.local_path(prefix)
        if base.is_file():
            yield clean_relative_path(prefix), base
            return
        if not base.is_dir():
            return
        for full in walk_files(base):
            if full.is_symlink() and not self._inside(full):
                # A link out of the datastore is not its content: never list or read it.
                continue
            yield full.relative_to(self.root).as_posix(), full

    def _inside(self, path: Path) -> bool:
        real = Path(os.path.realpath(path))
        return real == self._real_root or self._real_root in real.parents

    def list_files(self, prefix: str) -> list[tuple[str, int]]:
        return [(rel, full.stat().st_size) for rel, full in self._walk(prefix)]

    def download_file(self, path: str, destination: Path) -> None:
        source = self.local_path(path)
        if not source.is_file():
            raise NotFoundError(f"No file {path!r} on datastore {self.name!r}.")
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, destination)

    @contextlib.contextmanager
    def open_read(self, path: str) -> Iterator[IO[bytes]]:
        source = self.local_path(path)
        if not source.is_file():
            raise NotFoundError(f"No file {path!r} on datastore {self.name!r}.")
        with open(source, "rb") as fh:
            yield fh

    def fingerprint(self, path: str) -> str:
        """Identity of the data under `path`: every file's relative path, size and mtime.

        Cheap (no reading of contents) and it changes when a file is rewritten, which is
        what reuse needs to notice changed data behind an unchanged path.
        """
        digest = hashlib.sha256()
        count = 0
        for rel, full in self._walk(path):
            st = full.stat()
            digest.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            count += 1
        if count == 0:
            digest.update(b"<missing>" if not self.local_path(path).exists() else b"<empty>")
        return digest.hexdigest()


# -- credentials ---------------------------------------------------------------------------
