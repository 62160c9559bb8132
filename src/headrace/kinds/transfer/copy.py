"""Copying and verifying files for the transfer engine (headrace.engine.transferrun).

Files are copied by a thread pool (`--parallelism`, default 8) in chunks of
`--chunk-mb` (default 4) through one buffer per thread, so memory stays flat whatever the
file sizes. Each file is verified: the source size before and after (an object: its listed
size, and its ETag when that is the MD5 of what was written), the bytes read, the written
size, and (`--verify checksum`, the default) a SHA-1 of what was read compared with
a SHA-1 of the written file read back (SHA-1 runs at about 1.6 GB/s here, MD5 at 0.5 GB/s;
it detects corruption, which is all a copy needs); `--verify size` skips the read-back.
Progress (files, bytes, MB/s) goes to stdout every two seconds and once at the end, with the
process's peak memory (`peak_rss_mb`).

An object is read with the filesystem's `get_file` (one streamed GET, sequential) and
written with `open(..., "wb")` in parts of 8 MB or more; a failed upload is aborted, so no
partial object appears.

Only the step process (headrace.engine.transferrun) imports this module.
"""

from __future__ import annotations

import contextlib
import hashlib
import posixpath
import re
import resource
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from headrace.store.datastores import walk_files

__all__ = [
    "MB",
    "CopyStats",
    "Source",
    "TransferError",
    "copy_all",
    "copy_file",
    "copy_object",
    "copy_plan",
    "first_line",
    "in_parallel",
    "local_source",
    "object_source",
    "peak_rss_mb",
    "tree_files",
    "upload_file",
    "verify_copy",
]

MB = 1024 * 1024


class TransferError(Exception):
    """A problem with the source, the destination or a copy, said in one line."""


@dataclass
class CopyStats:
    """What has been copied so far (updated by the worker threads)."""

    files_total: int = 0
    bytes_total: int = 0
    files_done: int = 0
    bytes_done: int = 0
    started: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, files: int, data: int) -> None:
        with self.lock:
            self.files_done += files
            self.bytes_done += data

    def line(self) -> str:
        seconds = max(time.monotonic() - self.started, 1e-6)
        rate = self.bytes_done / MB / seconds
        return (
            f"[transfer] {self.files_done}/{self.files_total} files, "
            f"{self.bytes_done / MB:.1f}/{self.bytes_total / MB:.1f} MB, "
            f"{seconds:.1f} s, {rate:.1f} MB/s"
        )


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def checksum_of(path: Path, buffer: memoryview) -> str:
    """The checksum (SHA-1) of a file, read through `buffer`."""
    digest = hashlib.sha1(usedforsecurity=False)
    with open(path, "rb", buffering=0) as handle:
        while True:
            count = handle.readinto(buffer)
            if not count:
                break
            digest.update(buffer[:count])
    return digest.hexdigest()


def _check_written(
    label: str, target: Path, expected: int, copied: int, checksum: str | None, buffer: memoryview
) -> None:
    """Raise TransferError unless `target` holds `expected` bytes, all `copied`, whose
    checksum read back (when `checksum` is given) is the one computed while reading."""
    written = target.stat().st_size
    if copied != expected or written != expected:
        raise TransferError(
            f"Copy of {label} is incomplete: {expected} bytes in the source, {copied} "
            f"read, {written} in {target}."
        )
    if checksum is not None:
        found = checksum_of(target, buffer)
        if found != checksum:
            raise TransferError(
                f"Copy of {label} does not match: SHA-1 {checksum} read, {found} written to "
                f"{target}."
            )


def verify_copy(
    source: Path,
    target: Path,
    *,
    expected_size: int,
    copied: int,
    source_checksum: str | None,
    buffer: memoryview | None = None,
) -> None:
    """Raise TransferError unless `target` is a whole, faithful copy of `source`.

    Checks the source's size now against `expected_size` (taken before copying: a file that
    changed during the copy is caught), the bytes copied, the target's size, and, when
    `source_checksum` is given, the checksum of the target read back.
    """
    now = source.stat().st_size
    if now != expected_size:
        raise TransferError(
            f"{source} changed size while it was copied ({expected_size} -> {now} bytes); "
            "copy it again when nothing writes to it."
        )
    buffer = buffer if buffer is not None else memoryview(bytearray(MB))
    _check_written(str(source), target, expected_size, copied, source_checksum, buffer)


def _stream(
    reader: Any, writer: Any, buffer: memoryview, digests: list[Any], stats: CopyStats | None
) -> int:
    """Copy `reader` to `writer` through `buffer`, feeding every digest; the bytes copied."""
    copied = 0
    while True:
        count = reader.readinto(buffer)
        if not count:
            return copied
        chunk = buffer[:count]
        for digest in digests:
            digest.update(chunk)
        view = chunk
        while view:  # a raw write may take fewer bytes than offered
            written = writer.write(view)
            view = view[written if written is not None else len(view) :]
        copied += count
        if stats is not None:
            stats.add(0, count)


def _digests(*wanted: Any) -> list[Any]:
    return [d for d in wanted if d is not None]


def copy_file(
    source: Path, target: Path, buffer: memoryview, *, checksum: bool, stats: CopyStats
) -> int:
    """Stream `source` to `target` through `buffer`, then verify it; returns the size."""
    expected = source.stat().st_size
    digest = hashlib.sha1(usedforsecurity=False) if checksum else None
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(source, "rb", buffering=0) as reader, open(target, "wb", buffering=0) as writer:
        copied = _stream(reader, writer, buffer, _digests(digest), stats)
    shutil.copymode(source, target)
    verify_copy(
        source,
        target,
        expected_size=expected,
        copied=copied,
        source_checksum=digest.hexdigest() if digest is not None else None,
        buffer=buffer,
    )
    stats.add(1, 0)
    return copied


_MD5_ETAG = re.compile(r"[0-9a-f]{32}")


def _etag(info: dict[str, Any]) -> str | None:
    """The MD5 an object store gives as a single-part object's ETag, else None."""
    etag = str(info.get("ETag") or info.get("etag") or "").strip('"')
    return etag if _MD5_ETAG.fullmatch(etag) else None


def md5_of(path: Path, buffer: memoryview) -> str:
    """The MD5 of a file (what a single-part object's ETag is), read through `buffer`."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb", buffering=0) as reader:
        _stream(reader, _NoWrite(), buffer, [digest], None)
    return digest.hexdigest()


class _NoWrite:
    def write(self, data: memoryview) -> int:
        return len(data)


def _one_stream(uri: str) -> dict[str, Any]:
    """get_file's arguments for one sequential stream: s3fs and adlfs otherwise fetch up to
    10 ranges at once, each held in memory (s3fs: 10 x 50 MB)."""
    return {"max_concurrency": 1} if uri.startswith(("s3://", "az://")) else {}


def copy_object(
    files: Any, path: str, target: Path, buffer: memoryview, *, checksum: bool, stats: CopyStats
) -> int:
    """Download the object at `path` of an object-store datastore to `target` in one
    streamed GET (the filesystem's `get_file`: small reads, nothing held), then verify it:
    its size against the listing, and (with `checksum`) the MD5 of the written file against
    the object's ETag when the store gives the MD5 (a single-part object)."""
    from fsspec.callbacks import Callback

    class Progress(Callback):  # type: ignore[misc]
        def relative_update(self, inc: int = 1) -> None:
            stats.add(0, inc)

    uri = files.uri(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        info = files.fs.info(uri)
        files.fs.get_file(uri, str(target), callback=Progress(), **_one_stream(uri))
    except Exception as exc:
        raise TransferError(f"Reading {uri} failed: {files.redact(first_line(exc))}") from exc
    expected = int(info.get("size") or 0)
    written = target.stat().st_size
    _check_written(uri, target, expected, written, None, buffer)
    etag = _etag(info)
    if checksum and etag is not None:
        found = md5_of(target, buffer)
        if found != etag:
            raise TransferError(
                f"Copy of {uri} does not match: MD5 {found} written, the store's ETag says {etag}."
            )
    stats.add(1, 0)
    return written


def tree_files(folder: Path) -> Iterator[Path]:
    """Every regular file under `folder`, in a stable order (`walk_files`)."""
    return (full for full in walk_files(folder) if full.is_file())


@dataclass(frozen=True)
class Source:
    """What a transfer reads: a file or folder on this machine, or a path on an object store.

    `entries` are (what to read: a Path, or the object's datastore path; its path inside
    the copy; its size)."""

    label: str  # a path or a URI, for messages
    kind: str | None  # 'file', 'directory', or None when nothing is there
    name: str  # the file's or folder's own name
    entries: tuple[tuple[Any, str, int], ...]
    store: Any = None  # the ObjectDatastoreFiles the entries are on; None for local paths


def local_source(path: Path) -> Source:
    """The file or folder at `path` on this machine (a local datastore's own path)."""
    if path.is_file():
        return Source(str(path), "file", path.name, ((path, path.name, path.stat().st_size),))
    if not path.is_dir():
        return Source(str(path), None, path.name, ())
    entries = tuple(
        (full, full.relative_to(path).as_posix(), full.stat().st_size) for full in tree_files(path)
    )
    return Source(str(path), "directory", path.name, entries)


def object_source(files: Any, path: str) -> Source:
    """The objects at `path` (one object, or every object under the prefix), listed once."""
    listing = files.list_files(path)
    label, name = files.uri(path), posixpath.basename(path)
    if len(listing) == 1 and listing[0][0] == path:
        return Source(label, "file", name, ((path, name, listing[0][1]),), files)
    if not listing:
        return Source(label, None, name, (), files)
    cut = len(path) + 1 if path else 0
    entries = tuple((key, key[cut:], size) for key, size in listing)
    return Source(label, "directory", name, entries, files)


def copy_plan(
    source: Source, source_type: str | None, destination_type: str, file_name: str
) -> list[tuple[Any, str, int]]:
    """(what to read, path inside the output folder, size) for every file to copy.

    A file copied as a 'file' lands as `file_name` (the destination's own name); into a
    'directory' it keeps its name. A folder's files keep their paths inside it.
    """
    if source.kind is None:
        raise TransferError(
            f"The source {source.label} does not exist (or is an empty folder); check the "
            "source's path."
        )
    if source_type is not None and source_type != source.kind:
        raise TransferError(
            f"source_reference_type is {source_type!r}, but the source {source.label} is a "
            f"{source.kind}; pass source_reference_type={source.kind!r} or leave it out."
        )
    if source.kind == "file":
        item, _name, size = source.entries[0]
        return [(item, file_name if destination_type == "file" else source.name, size)]
    if destination_type == "file":
        raise TransferError(
            f"The source {source.label} is a directory, but destination_reference_type is "
            "'file'; a directory is copied to a 'directory'."
        )
    return list(source.entries)


def _report(stats: CopyStats, stop: threading.Event, every: float) -> None:
    while not stop.wait(every):
        print(stats.line(), flush=True)  # noqa: T201


def in_parallel(
    items: list[Any],
    work: Callable[[Any, memoryview], object],
    *,
    parallelism: int,
    chunk_bytes: int,
    stats: CopyStats,
    progress_seconds: float = 2.0,
) -> None:
    """Run `work(item, buffer)` for every item, `parallelism` at a time, each thread with
    one buffer of `chunk_bytes`; progress is printed while it runs."""
    buffers = threading.local()

    def one(item: Any) -> object:
        buffer = getattr(buffers, "buffer", None)
        if buffer is None:
            buffer = buffers.buffer = memoryview(bytearray(chunk_bytes))
        return work(item, buffer)

    stop = threading.Event()
    reporter = threading.Thread(target=_report, args=(stats, stop, progress_seconds), daemon=True)
    reporter.start()
    try:
        workers = max(1, min(parallelism, len(items) or 1))
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="transfer")
        try:
            for future in as_completed([pool.submit(one, item) for item in items]):
                future.result()  # the first failure ends the transfer
        finally:
            # On a failure the files not started yet are dropped, not copied for nothing.
            pool.shutdown(wait=True, cancel_futures=True)
    finally:
        stop.set()
        reporter.join()


def copy_all(
    plan: list[tuple[Any, str, int]],
    output: Path,
    *,
    store: Any = None,
    parallelism: int,
    chunk_bytes: int,
    checksum: bool,
) -> CopyStats:
    """Copy every (source, relative path, size) of `plan` into `output`, `parallelism` at a
    time; the sources are local paths, or object paths on `store`."""
    stats = CopyStats(files_total=len(plan), bytes_total=sum(size for _, _, size in plan))

    def one(entry: tuple[Any, str, int], buffer: memoryview) -> int:
        item, rel, _size = entry
        if store is None:
            return copy_file(item, output / rel, buffer, checksum=checksum, stats=stats)
        return copy_object(store, item, output / rel, buffer, checksum=checksum, stats=stats)

    in_parallel(plan, one, parallelism=parallelism, chunk_bytes=chunk_bytes, stats=stats)
    return stats


def first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return " ".join(lines[0].split()) if lines else type(exc).__name__


def upload_file(files: Any, source: Path, path: str, buffer: memoryview, stats: CopyStats) -> None:
    """Stream `source` to the object at `path`, part by part, then check its size (and its
    ETag when the store gives the MD5 of a single-part object). A failed upload is aborted,
    so no partial object appears."""
    size = source.stat().st_size
    # Parts of at least 8 MB, and at most 9,000 of them (S3 allows 10,000).
    block = max(8 * MB, -(-size // 9000))
    url = files.uri(path)
    fs = files.fs
    # A single-part object's ETag is its MD5: worth computing only then.
    digest = hashlib.md5(usedforsecurity=False) if size <= block else None
    try:
        writer = fs.open(url, "wb", block_size=block)
    except Exception as exc:
        raise TransferError(f"Cannot write {url}: {files.redact(first_line(exc))}") from exc
    try:
        with open(source, "rb", buffering=0) as reader:
            _stream(reader, writer, buffer, _digests(digest), stats)
    except BaseException as exc:
        with contextlib.suppress(Exception):
            writer.discard()
        if isinstance(exc, Exception):
            raise TransferError(f"Uploading {url} failed: {files.redact(first_line(exc))}") from exc
        raise
    try:
        writer.close()
        info = fs.info(url)
    except Exception as exc:
        raise TransferError(f"Uploading {url} failed: {files.redact(first_line(exc))}") from exc
    if int(info.get("size") or 0) != size:
        raise TransferError(f"{url} has {info.get('size')} bytes after the upload, {size} sent.")
    etag = _etag(info)
    if digest is not None and etag is not None and etag != digest.hexdigest():
        raise TransferError(f"{url} does not match: MD5 {digest.hexdigest()} sent, ETag {etag}.")
    stats.add(1, 0)
