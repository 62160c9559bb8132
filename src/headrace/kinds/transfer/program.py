"""The step process of a DataTransferStep: copies a file or folder, streaming and verified.

`DataTransferStep` (sdk.py) makes a step of the `transfer` kind whose settings are a
`TransferSpec` (spec.py); `python -m headrace.kinds` rebuilds it and calls `main(spec)`
here, so the step runtime, reuse, retries and logs treat it like any other step. Paths come
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

**Copying** (copy.py): a thread pool, one buffer per thread, every file
verified by size and checksum; progress and the peak memory go to stdout.

A problem ends the process with exit code 1 and one line on stderr naming the file or path;
a destination leaving its datastore is refused before anything is written.

This module runs in the step's process; headrace itself does not import it. A step recorded
before DataTransferStep became a kind package runs `python -m headrace.engine.transferrun
--source PORT --output PORT [--destination DS:PATH] ...`: that module parses its argv into a
`TransferSpec` (`spec_from_argv`) and calls `main` here.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import posixpath
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from headrace.errors import HeadraceError
from headrace.kinds.transfer.copy import (
    MB,
    CopyStats,
    Source,
    TransferError,
    copy_all,
    copy_plan,
    in_parallel,
    local_source,
    object_source,
    peak_rss_mb,
    tree_files,
    upload_file,
)
from headrace.kinds.transfer.spec import REFERENCE_TYPES, VERIFY_MODES, TransferSpec
from headrace.store.datastores import DatastoreFiles, LocalDatastoreFiles, clean_relative_path
from headrace.store.objectstores import open_object_datastore

__all__ = [
    "legacy_main",
    "main",
    "open_source",
    "publish_local",
    "publish_object",
    "run",
    "spec_from_argv",
]


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
    try:
        store = WorkspaceStore.open(Path(root))
    except (OSError, HeadraceError) as exc:
        raise TransferError(
            f"Cannot open the workspace to write to datastore {datastore!r} ({exc}). A step "
            "confined on a server reaches neither the workspace nor datastore credentials "
            "(docs/security.md): copy to a local datastore, or run such transfers where "
            "steps are not confined (--step-isolation off)."
        ) from None
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
    # with it (engine/commit.discard_run removes that folder).
    return f".headrace/staging/{pipeline_run}/{run}-{attempt}-transfer"


def _link_tree(output: Path, staged: Path) -> None:
    for full in tree_files(output):
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
    # An isolated step may empty its staging folder but not remove it (engine/isolation.py).
    staging.mkdir(parents=True, exist_ok=True)
    try:
        staged = staging / "new"
        _link_tree(output, staged)
        final.parent.mkdir(parents=True, exist_ok=True)
        files.local_path(path)  # re-check: a parent made just now must not lead outside
        if as_file:
            (only,) = list(tree_files(staged))
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
    local = list(tree_files(output))
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


def _destination(spec: TransferSpec) -> tuple[str, str] | None:
    datastore = spec.destination_datastore
    if datastore is None:
        return None
    if spec.destination_parameter:
        path = os.environ.get(f"AML_PARAMETER_{_env_name(spec.destination_parameter)}", "")
    else:
        path = spec.destination_path or ""
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


def run(spec: TransferSpec) -> CopyStats:
    destination = _destination(spec)  # refused before anything is written
    source = open_source(spec.source)
    output = _port_path(spec.output)
    files = _destination_files(destination[0], output) if destination else None
    destination_type = spec.destination_type
    if destination_type is None and files is not None and destination is not None:
        destination_type = destination_type_of(files, destination[1])
    if destination_type is None:
        destination_type = spec.source_type or source.kind or "directory"
    file_name = posixpath.basename(destination[1]) if destination else source.name
    plan = copy_plan(source, spec.source_type, destination_type, file_name)
    where = f"{destination[0]}:{destination[1]}" if destination else "the step's output"
    print(  # noqa: T201
        f"[transfer] {source.label} ({len(plan)} file(s)) -> {where} as a {destination_type}, "
        f"{spec.parallelism} at a time, verify={spec.verify}",
        flush=True,
    )
    stats = copy_all(
        plan,
        output,
        store=source.store,
        parallelism=spec.parallelism,
        chunk_bytes=spec.chunk_mb * MB,
        checksum=spec.verify == "checksum",
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
                parallelism=spec.parallelism,
                chunk_bytes=spec.chunk_mb * MB,
            )
            print(uploaded.line() + " uploaded and verified", flush=True)  # noqa: T201
        print(  # noqa: T201
            f"[transfer] published to {files.describe()}/{destination[1]} in "
            f"{time.monotonic() - started:.1f} s",
            flush=True,
        )
    print(f"[transfer] peak_rss_mb={peak_rss_mb():.1f}", flush=True)  # noqa: T201
    return stats


def spec_from_argv(argv: list[str]) -> TransferSpec:
    """The spec of a step recorded in the argv form of before (`python -m
    headrace.engine.transferrun --source PORT --output PORT [--destination DS:PATH |
    --destination-parameter NAME --destination-datastore DS] ...`)."""
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
    parser.add_argument("--verify", choices=VERIFY_MODES, default="checksum")
    args = parser.parse_args(argv)
    datastore, path, parameter = None, None, None
    if args.destination_parameter:
        datastore, parameter = args.destination_datastore, args.destination_parameter
    elif args.destination:
        datastore, _, path = args.destination.partition(":")
    return TransferSpec(
        source=args.source,
        output=args.output,
        destination_datastore=datastore,
        destination_path=path,
        destination_parameter=parameter,
        source_type=args.source_type,
        destination_type=args.destination_type,
        parallelism=args.parallelism,
        chunk_mb=args.chunk_mb,
        verify=args.verify,
    )


def legacy_main(argv: list[str] | None = None) -> int:
    """`python -m headrace.engine.transferrun ...`: a step stored in the argv form of before."""
    try:
        spec = spec_from_argv(sys.argv[1:] if argv is None else argv)
    except ValueError as exc:
        print(f"DataTransferStep failed: {exc}", file=sys.stderr, flush=True)  # noqa: T201
        return 1
    return main(spec)


def main(spec: TransferSpec) -> int:
    """Copy, verify and publish in this step's process; 0, or 1 with one line on stderr."""
    try:
        run(spec)
    except (TransferError, HeadraceError, OSError) as exc:
        print(f"DataTransferStep failed: {exc}", file=sys.stderr, flush=True)  # noqa: T201
        return 1
    return 0
