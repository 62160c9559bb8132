"""The step process of a DataTransferStep: copies a file or folder, streaming and verified.

`DataTransferStep` (headrace.sdk.transfer) makes an ordinary command step running
`python -m headrace.engine.transferrun --source PORT --output PORT [--destination DS:PATH]
...`, so the step runtime, reuse, retries and logs treat it like any other step. Paths come
from `AZUREML_DATAREFERENCE_<PORT>` (set by the runtime), never from the shell.

**Where the bytes go, and why.** The source is a step input: a local datastore hands the
engine the datastore's own path (mount: no copy), an object store's data is downloaded into
the working folder by the runtime first. The copy is written into the step's staged output
folder (the data behind `get_output()`), which the runtime commits only when the step
succeeds: on a local datastore by one rename on the same filesystem, on an object store by
an upload. Reading the source datastore directly (to skip the runtime's download) was
considered and left out: the source must stay a step input so that its content
fingerprint drives reuse and its producer orders the pipeline, and the runtime downloads
every object-store input before the process starts. So a local -> local transfer reads and
writes each byte once; an object-store source or destination costs one extra pass through
the working folder.

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
file sizes. Each file is verified: the source size before and after, the bytes read, the
written size, and (`--verify checksum`, the default) a SHA-1 of what was read compared with
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
from headrace.store.datastores import DatastoreFiles, LocalDatastoreFiles, clean_relative_path

__all__ = [
    "CopyStats",
    "TransferError",
    "copy_file",
    "copy_plan",
    "main",
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
    written = target.stat().st_size
    if copied != expected_size or written != expected_size:
        raise TransferError(
            f"Copy of {source} is incomplete: {expected_size} bytes in the source, {copied} "
            f"read, {written} in {target}."
        )
    if source_checksum is not None:
        found = checksum_of(target, buffer or memoryview(bytearray(MB)))
        if found != source_checksum:
            raise TransferError(
                f"Copy of {source} does not match: SHA-1 {source_checksum} read, {found} "
                f"written to {target}."
            )


def copy_file(
    source: Path, target: Path, buffer: memoryview, *, checksum: bool, stats: CopyStats
) -> int:
    """Stream `source` to `target` through `buffer`, then verify it; returns the size."""
    expected = source.stat().st_size
    digest = hashlib.sha1(usedforsecurity=False) if checksum else None
    target.parent.mkdir(parents=True, exist_ok=True)
    copied = 0
    with open(source, "rb", buffering=0) as reader, open(target, "wb", buffering=0) as writer:
        while True:
            count = reader.readinto(buffer)
            if not count:
                break
            chunk = buffer[:count]
            if digest is not None:
                digest.update(chunk)
            view = chunk
            while view:  # a raw write may take fewer bytes than offered
                written = writer.write(view)
                view = view[written or 0 :]
            copied += count
            stats.add(0, count)
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


def _tree_files(folder: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            if name.endswith(".headrace-partial"):
                continue
            full = Path(dirpath) / name
            if full.is_file():
                yield full


def copy_plan(
    source: Path, source_type: str | None, destination_type: str, file_name: str
) -> list[tuple[Path, str]]:
    """(source file, path inside the output folder) for every file to copy.

    A file copied as a 'file' lands as `file_name` (the destination's own name); into a
    'directory' it keeps its name. A folder's files keep their paths inside it.
    """
    if not source.exists():
        raise TransferError(f"The source {source} does not exist; check the source's path.")
    actual = "file" if source.is_file() else "directory"
    if source_type is not None and source_type != actual:
        raise TransferError(
            f"source_reference_type is {source_type!r}, but the source {source} is a {actual}; "
            f"pass source_reference_type={actual!r} or leave it out."
        )
    if actual == "file":
        name = file_name if destination_type == "file" else source.name
        return [(source, name)]
    if destination_type == "file":
        raise TransferError(
            f"The source {source} is a directory, but destination_reference_type is 'file'; "
            "a directory is copied to a 'directory'."
        )
    return [(full, full.relative_to(source).as_posix()) for full in _tree_files(source)]


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
    pairs: list[tuple[Path, str]],
    output: Path,
    *,
    parallelism: int,
    chunk_bytes: int,
    checksum: bool,
) -> CopyStats:
    """Copy every (source, relative path) pair into `output`, `parallelism` at a time."""
    stats = CopyStats(files_total=len(pairs), bytes_total=sum(p.stat().st_size for p, _ in pairs))

    def one(pair: tuple[Path, str], buffer: memoryview) -> int:
        source, rel = pair
        return copy_file(source, output / rel, buffer, checksum=checksum, stats=stats)

    in_parallel(pairs, one, parallelism=parallelism, chunk_bytes=chunk_bytes, stats=stats)
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


def upload_file(
    files: DatastoreFiles, source: Path, path: str, buffer: memoryview, stats: CopyStats
) -> None:
    """Stream `source` to the object at `path`, part by part, then check its size (and its
    ETag when the store gives the MD5 of a single-part object). A failed upload is aborted,
    so no partial object appears."""
    size = source.stat().st_size
    # Parts of at least 8 MB, and at most 9,000 of them (S3 allows 10,000).
    block = max(8 * MB, -(-size // 9000))
    url = f"{files.describe()}/{path}"
    fs = files.fs  # type: ignore[attr-defined]
    # A single-part object's ETag is its MD5: worth computing only then.
    digest = hashlib.md5(usedforsecurity=False) if size <= block else None
    try:
        writer = fs.open(url, "wb", block_size=block)
    except Exception as exc:
        raise TransferError(f"Cannot write {url}: {_first_line(exc)}") from exc
    try:
        with open(source, "rb", buffering=0) as reader:
            while True:
                count = reader.readinto(buffer)
                if not count:
                    break
                if digest is not None:
                    digest.update(buffer[:count])
                writer.write(buffer[:count])
                stats.add(0, count)
    except BaseException as exc:
        with contextlib.suppress(Exception):
            writer.discard()
        if isinstance(exc, Exception):
            raise TransferError(f"Uploading {url} failed: {_first_line(exc)}") from exc
        raise
    try:
        writer.close()
        info = fs.info(url)
    except Exception as exc:
        raise TransferError(f"Uploading {url} failed: {_first_line(exc)}") from exc
    if int(info.get("size") or 0) != size:
        raise TransferError(f"{url} has {info.get('size')} bytes after the upload, {size} sent.")
    etag = str(info.get("ETag") or info.get("etag") or "").strip('"')
    if digest is not None and re.fullmatch(r"[0-9a-f]{32}", etag) and etag != digest.hexdigest():
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
def _port_path(port: str) -> Path:
    name = "".join(c if c.isalnum() or c == "_" else "_" for c in port)
    value = os.environ.get(f"AZUREML_DATAREFERENCE_{name}")
    if not value:
        raise TransferError(f"No path for {port!r}: this program runs as a DataTransferStep.")
    return Path(value)


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
    source = _port_path(args.source)
    output = _port_path(args.output)
    files = _destination_files(destination[0], output) if destination else None
    destination_type = args.destination_type
    if destination_type is None and files is not None and destination is not None:
        destination_type = destination_type_of(files, destination[1])
    if destination_type is None:
        destination_type = args.source_type or ("file" if source.is_file() else "directory")
    file_name = posixpath.basename(destination[1]) if destination else source.name
    pairs = copy_plan(source, args.source_type, destination_type, file_name)
    where = f"{destination[0]}:{destination[1]}" if destination else "the step's output"
    print(  # noqa: T201
        f"[transfer] {source} ({len(pairs)} file(s)) -> {where} as a {destination_type}, "
        f"{args.parallelism} at a time, verify={args.verify}",
        flush=True,
    )
    stats = copy_all(
        pairs,
        output,
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
