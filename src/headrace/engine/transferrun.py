"""The step process of a DataTransferStep: copies a file or folder, streaming and verified.

`DataTransferStep` (headrace.sdk.transfer) makes an ordinary command step running
`python -m headrace.engine.transferrun --source PORT --output PORT [--destination DS:PATH]
...`, so the step runtime, reuse, retries and logs treat it like any other step. Paths come
from `AZUREML_DATAREFERENCE_<PORT>` (set by the runtime), never from the shell.

**Where the bytes go, and why.** The source stays a step input (so its content fingerprint
drives reuse and its producer orders the pipeline), bound in "direct" mode: a local
datastore hands the engine the datastore's own path (no copy), and an object store is not
downloaded by the runtime; the engine gets the data's URI and the datastore's handle
(`HEADRACE_DATASTORE_<PORT>`), opens the datastore itself and streams each object in one
GET. The copy is written into the step's staged output folder (the data behind
`get_output()`), which the runtime commits only when the step succeeds: on a local
datastore by one rename on the same filesystem, on an object store by an upload after the
step. So a transfer from anywhere to a local datastore reads each byte once and writes it
once; a transfer to an object store also passes through the working folder (the runtime
owns the all-or-none commit of outputs, and object stores have no rename).

With a fixed destination (a DataReference or DataPath, SDK v1's usual case) the verified
copy is then published at that path, all or none and never half-written:

- a local datastore gets hard links to the verified files (no second copy), made in a
  staging folder on the same datastore and renamed into place (the old content is moved
  aside first and removed after);
- an object store gets an upload of each verified file, streamed in parts of 8 MB or more
  (memory stays flat) and checked by size and, for a single-part object, by its ETag (the
  MD5). What was under the path is removed first; if any upload fails, what was uploaded is
  removed again, and an aborted upload leaves no partial object.

A local destination datastore is found from where the runtime staged the output (on that
same datastore), without opening the workspace's database; an object store is opened
through the workspace (`HEADRACE_WORKSPACE`) like the runtime does.

**Copying.** Files are copied by a thread pool (`--parallelism`, default 8) in chunks of
`--chunk-mb` (default 4) through one buffer per thread, so memory stays flat whatever the
file sizes. Each file is verified: the source size before and after (an object: its listed
size, and its ETag when that is the MD5 of what was written), the bytes read, the written
size, and (`--verify checksum`, the default) a SHA-1 of what was read compared with
a SHA-1 of the written file read back (SHA-1 runs at about 1.6 GB/s here, MD5 at 0.5 GB/s;
it detects corruption, which is all a copy needs); `--verify size` skips the read-back.
Progress (files, bytes, MB/s) goes to stdout every two seconds and once at the end, with the
process's peak memory (`peak_rss_mb`).

A problem ends the process with exit code 1 and one line on stderr naming the file or path;
a destination leaving its datastore is refused before anything is written.

This module runs as a program in the step's process; headrace itself does not import it.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import posixpath
import re
import resource
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from headrace.errors import HeadraceError
from headrace.store.datastores import (
    DatastoreFiles,
    LocalDatastoreFiles,
    clean_relative_path,
    open_object_datastore,
)

__all__ = [
    "CopyStats",
    "Source",
    "TransferError",
    "copy_file",
    "copy_object",
    "copy_plan",
    "main",
    "open_source",
    "upload_file",
    "verify_copy",
]

MB = 1024 * 1024
REFERENCE_TYPES = ("file", "directory")


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
        raise TransferError(f"Reading {uri} failed: {files.redact(_first_line(exc))}") from exc
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


def _tree_files(folder: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            if name.endswith(".headrace-partial"):
                continue
            full = Path(dirpath) / name
            if full.is_file():
                yield full


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
    if path.is_file():
        return Source(str(path), "file", path.name, ((path, path.name, path.stat().st_size),))
    if not path.is_dir():
        return Source(str(path), None, path.name, ())
    entries = tuple(
        (full, full.relative_to(path).as_posix(), full.stat().st_size) for full in _tree_files(path)
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
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="transfer") as pool:
            for _ in pool.map(one, items):
                pass
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


# -- publishing to a fixed destination --------------------------------------------------------
def _destination_files(datastore: str, output: Path) -> DatastoreFiles:
    """The destination datastore's files. The output is staged on that same datastore; when
    it is local the runtime stages it under `<datastore root>/.headrace/staging/`, which gives
    the root without opening the workspace's database (0.6 s of imports and queries)."""
    parts = output.parts
    for i in range(len(parts) - 1):
        if parts[i : i + 2] == (".headrace", "staging"):
            return LocalDatastoreFiles(datastore, Path(*parts[:i]))
    from headrace.store.workspace_store import WorkspaceStore

    root = os.environ.get("HEADRACE_WORKSPACE")
    if not root:
        raise TransferError(
            "HEADRACE_WORKSPACE is not set: a fixed destination is written by a step that "
            "the headrace agent runs."
        )
    store = WorkspaceStore.open(Path(root))
    try:
        return store.datastore_files(datastore)
    finally:
        store.close()


def destination_type_of(files: DatastoreFiles, path: str) -> str | None:
    """'file' or 'directory' for what is at `path` now, None when nothing is there."""
    if files.is_local:
        found = files.local_path(path)
        if found.is_file():
            return "file"
        return "directory" if found.is_dir() else None
    listing = files.list_files(path)
    if not listing:
        return None
    return "file" if len(listing) == 1 and listing[0][0] == path else "directory"


def _staging_name() -> str:
    run = os.environ.get("HEADRACE_RUN_ID", "manual")
    pipeline_run = os.environ.get("HEADRACE_PIPELINE_RUN_ID", "manual")
    attempt = os.environ.get("HEADRACE_ATTEMPT", "0")
    # Under the pipeline run's staging folder, so an interrupted attempt's leftovers go
    # with it (runtime.discard_run removes that folder).
    return f".headrace/staging/{pipeline_run}/{run}-{attempt}-transfer"


def _link_tree(output: Path, staged: Path) -> None:
    for full in _tree_files(output):
        target = staged / full.relative_to(output)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(full, target)
        except OSError:
            shutil.copy2(full, target)  # another filesystem: a copy, still staged


def publish_local(files: Any, output: Path, path: str, as_file: bool) -> None:
    """Put the verified copy at `path` on a local datastore, by hard links and renames."""
    final: Path = files.local_path(path)
    staging: Path = files.local_path(_staging_name())
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        staged = staging / "new"
        _link_tree(output, staged)
        final.parent.mkdir(parents=True, exist_ok=True)
        files.local_path(path)  # re-check: a parent made just now must not lead outside
        if as_file:
            (only,) = list(_tree_files(staged))
            if final.is_dir():
                raise TransferError(
                    f"The destination {path!r} on datastore {files.name!r} is a folder; "
                    "pass destination_reference_type='directory' or another path."
                )
            os.replace(only, final)
            return
        if final.is_file():
            raise TransferError(
                f"The destination {path!r} on datastore {files.name!r} is a file; pass "
                "destination_reference_type='file' or another path."
            )
        if final.exists():
            os.replace(final, staging / "old")
        staged.mkdir(exist_ok=True)
        os.replace(staged, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _first_line(exc: BaseException) -> str:
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
        raise TransferError(f"Cannot write {url}: {files.redact(_first_line(exc))}") from exc
    try:
        with open(source, "rb", buffering=0) as reader:
            _stream(reader, writer, buffer, _digests(digest), stats)
    except BaseException as exc:
        with contextlib.suppress(Exception):
            writer.discard()
        if isinstance(exc, Exception):
            raise TransferError(
                f"Uploading {url} failed: {files.redact(_first_line(exc))}"
            ) from exc
        raise
    try:
        writer.close()
        info = fs.info(url)
    except Exception as exc:
        raise TransferError(f"Uploading {url} failed: {files.redact(_first_line(exc))}") from exc
    if int(info.get("size") or 0) != size:
        raise TransferError(f"{url} has {info.get('size')} bytes after the upload, {size} sent.")
    etag = _etag(info)
    if digest is not None and etag is not None and etag != digest.hexdigest():
        raise TransferError(f"{url} does not match: MD5 {digest.hexdigest()} sent, ETag {etag}.")
    stats.add(1, 0)


def publish_object(
    files: DatastoreFiles,
    output: Path,
    path: str,
    as_file: bool,
    *,
    parallelism: int,
    chunk_bytes: int,
) -> CopyStats:
    """Upload the verified copy to `path` on an object store, `parallelism` files at a time.

    What was under `path` is removed first; if an upload fails, everything under `path` is
    removed again, so the destination never holds part of the copy."""
    local = list(_tree_files(output))
    if as_file:
        pairs = [(local[0], path)]
    else:
        files.remove_tree(path)
        pairs = [(f, posixpath.join(path, f.relative_to(output).as_posix())) for f in local]
    stats = CopyStats(files_total=len(pairs), bytes_total=sum(p.stat().st_size for p, _ in pairs))

    def one(pair: tuple[Path, str], buffer: memoryview) -> None:
        upload_file(files, pair[0], pair[1], buffer, stats)

    try:
        in_parallel(pairs, one, parallelism=parallelism, chunk_bytes=chunk_bytes, stats=stats)
    except BaseException:
        with contextlib.suppress(Exception):
            files.remove_tree(path)
        raise
    return stats


# -- the program ------------------------------------------------------------------------------
def _env_name(port: str) -> str:
    return "".join(c if c.isalnum() or c == "_" else "_" for c in port)


def _port_path(port: str) -> Path:
    value = os.environ.get(f"AZUREML_DATAREFERENCE_{_env_name(port)}")
    if not value:
        raise TransferError(f"No path for {port!r}: this program runs as a DataTransferStep.")
    return Path(value)


def open_source(port: str) -> Source:
    """The step's source input: a local path, or (bound in "direct" mode on an object store)
    a URI whose datastore the runtime's handle opens here, so nothing was downloaded."""
    location = os.environ.get(f"AZUREML_DATAREFERENCE_{_env_name(port)}")
    if not location:
        raise TransferError(f"No path for {port!r}: this program runs as a DataTransferStep.")
    handle = os.environ.get(f"HEADRACE_DATASTORE_{_env_name(port)}")
    if not handle:
        return local_source(Path(location))
    files = open_object_datastore(handle, Path(os.environ.get("HEADRACE_WORKSPACE") or "."))
    prefix = files.url + "/"
    return object_source(files, location[len(prefix) :] if location.startswith(prefix) else "")


def _destination(args: argparse.Namespace) -> tuple[str, str] | None:
    if args.destination_parameter:
        name = args.destination_parameter
        path = os.environ.get(f"AML_PARAMETER_{name}", "")
        datastore = args.destination_datastore
    elif args.destination:
        datastore, _, path = args.destination.partition(":")
    else:
        return None
    try:
        clean = clean_relative_path(path, what="destination path")
    except HeadraceError as exc:
        raise TransferError(str(exc)) from exc
    if not clean:
        raise TransferError(
            f"The destination is the root of datastore {datastore!r}; give a path inside it, "
            "for example 'copies/data'."
        )
    return datastore, clean


def run(args: argparse.Namespace) -> CopyStats:
    destination = _destination(args)  # refused before anything is written
    source = open_source(args.source)
    output = _port_path(args.output)
    files = _destination_files(destination[0], output) if destination else None
    destination_type = args.destination_type
    if destination_type is None and files is not None and destination is not None:
        destination_type = destination_type_of(files, destination[1])
    if destination_type is None:
        destination_type = args.source_type or source.kind or "directory"
    file_name = posixpath.basename(destination[1]) if destination else source.name
    plan = copy_plan(source, args.source_type, destination_type, file_name)
    where = f"{destination[0]}:{destination[1]}" if destination else "the step's output"
    print(  # noqa: T201
        f"[transfer] {source.label} ({len(plan)} file(s)) -> {where} as a {destination_type}, "
        f"{args.parallelism} at a time, verify={args.verify}",
        flush=True,
    )
    stats = copy_all(
        plan,
        output,
        store=source.store,
        parallelism=args.parallelism,
        chunk_bytes=args.chunk_mb * MB,
        checksum=args.verify == "checksum",
    )
    print(stats.line() + " copied and verified", flush=True)  # noqa: T201
    if destination is not None and files is not None:
        as_file = destination_type == "file"
        started = time.monotonic()
        if files.is_local:
            publish_local(files, output, destination[1], as_file)
        else:
            uploaded = publish_object(
                files,
                output,
                destination[1],
                as_file,
                parallelism=args.parallelism,
                chunk_bytes=args.chunk_mb * MB,
            )
            print(uploaded.line() + " uploaded and verified", flush=True)  # noqa: T201
        print(  # noqa: T201
            f"[transfer] published to {files.describe()}/{destination[1]} in "
            f"{time.monotonic() - started:.1f} s",
            flush=True,
        )
    print(f"[transfer] peak_rss_mb={peak_rss_mb():.1f}", flush=True)  # noqa: T201
    return stats


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m headrace.engine.transferrun")
    parser.add_argument("--source", required=True, help="the source input's port")
    parser.add_argument("--output", required=True, help="the output port the copy goes to")
    parser.add_argument("--destination", help="DATASTORE:PATH, a fixed destination")
    parser.add_argument("--destination-parameter", help="a DataPath parameter's name")
    parser.add_argument("--destination-datastore", help="the datastore of that parameter")
    parser.add_argument("--source-type", choices=REFERENCE_TYPES)
    parser.add_argument("--destination-type", choices=REFERENCE_TYPES)
    parser.add_argument("--parallelism", type=int, default=8)
    parser.add_argument("--chunk-mb", type=int, default=4)
    parser.add_argument("--verify", choices=("checksum", "size"), default="checksum")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        run(args)
    except (TransferError, HeadraceError, OSError) as exc:
        print(f"DataTransferStep failed: {exc}", file=sys.stderr, flush=True)  # noqa: T201
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
