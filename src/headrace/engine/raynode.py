"""The part of a Ray step that runs on the Ray node: `run_on_node`, a Ray generator task.

Nothing is assumed shared between the agent and the node. The agent sends a `NodeBundle`:
the attempt's working folder (snapshot and downloaded inputs) and every input it reads by
path, each as a tar archive, with the command and the environment variables headrace sets,
written in the agent's paths. Here each of those paths gets a folder in a fresh temporary
folder, the agent's paths in the command and variables are rewritten to them, and the step
runs as a child process group with the same runtime contract as on local compute
(`Run.get_context()` writes the run journal in the node's copy of the run folder).

While the step runs the task yields what its stdout, stderr and journal gained, about four
times a second, so the agent shows logs and metrics live. When it ends the task yields the
exit code, the logs' last part (a short step sends one object in all) and, as tar
archives, what the agent keeps: the staged outputs, `./outputs`,
`./logs`, and files the script added to its run folders. The temporary folder is removed.

Cancel (Ray raises KeyboardInterrupt in the task) stops the step's process group. A worker
that dies without cleaning up (force-cancelled, or its raylet crashed) leaves its folder
locked by nobody: the next step on that node stops what it left running and removes it.

Inputs on an object store whose credentials come from the environment (or that needs none)
are not in the bundle: the agent lists them, and the node downloads them from the store
before the step starts (`NodeFetch`; the datastore's variables must be set on the node).
The rest travels through Ray's object store, in memory on both sides: fine for code and
modest data, not for many gigabytes (docs/user-guide.md says so).
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from headrace.engine.processes import kill_group, process_start_time
from headrace.store.artifacts import STDERR_LOG, STDOUT_LOG
from headrace.store.journal import JOURNAL_NAME

__all__ = [
    "ADDRESS_VARIABLE",
    "NODE_IP_VARIABLE",
    "NodeBundle",
    "NodeDone",
    "NodeFetch",
    "hold",
    "pack",
    "run_on_node",
    "unlocked_folders",
    "unpack",
]

STREAMED = (STDOUT_LOG, STDERR_LOG, JOURNAL_NAME)  # sent while the step runs
POLL_SECONDS = 0.25
PREFIX = "headrace-step-"
PROCESS_FILE = ".process"
# What the step's process is told of its cluster (a ParallelRunStep starts its workers there).
ADDRESS_VARIABLE = "HEADRACE_RAY_ADDRESS"
NODE_IP_VARIABLE = "HEADRACE_RAY_NODE_IP"


@dataclass
class NodeFetch:
    """An object-store input this node downloads itself (see `steptask.Fetch`), in the
    agent's paths: the datastore's handle (credential references only), the input's URI,
    its folder, and (datastore path, destination) pairs."""

    port: str
    handle: str
    uri: str
    folder: str
    pairs: list[tuple[str, str]]


@dataclass
class NodeBundle:
    """One attempt of a step, as the agent sends it to a node."""

    argv: list[str]
    env: dict[str, str]  # the variables headrace sets (not the agent's whole environment)
    python: str  # the agent's interpreter, replaced by the node's in argv
    cwd: str
    run_dir: str
    pipeline_run_dir: str
    trees: dict[str, bytes] = field(default_factory=dict)  # agent path -> tar of it
    files: list[str] = field(default_factory=list)  # the trees that are one file, not a folder
    empty: list[str] = field(default_factory=list)  # agent paths that start as empty folders
    returned: list[str] = field(default_factory=list)  # agent paths whose content comes back
    fetches: list[NodeFetch] = field(default_factory=list)  # inputs downloaded here


@dataclass
class NodeDone:
    """How the attempt ended on the node, and the trees that come back (agent path -> tar)."""

    exit_code: int
    trees: dict[str, bytes]
    node: str
    not_started: str | None = None  # why the script never ran (an input failed to download)
    logs: dict[str, bytes] = field(default_factory=dict)  # what the streamed files gained last


def pack(path: Path, exclude: tuple[str, ...] = ()) -> bytes:
    """A tar of a folder's content (or of one file), in memory."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        if path.is_file():
            tar.add(path, arcname=path.name)
        elif path.is_dir():
            for item in sorted(path.rglob("*")):
                rel = item.relative_to(path).as_posix()
                if rel in exclude or (item.is_dir() and not item.is_symlink()):
                    continue
                # A dataset input's files are links to where they are on the agent's
                # machine, which the node cannot follow: it gets their content.
                linked_file = item.is_symlink() and item.is_file()
                tar.add(item.resolve() if linked_file else item, arcname=rel, recursive=False)
    return buffer.getvalue()


def unpack(data: bytes, folder: Path) -> None:
    """Put a `pack` archive's content into `folder` (made if missing)."""
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        tar.extractall(folder, filter=_links_kept)  # noqa: S202 (filtered, see _links_kept)


def _links_kept(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
    """tarfile's "data" filter, but a symbolic link to an absolute path is kept as it is: a
    globbed dataset input is a folder of links into the datastore, read in place on the
    node (docs/architecture.md). Nothing is still written outside `folder`."""
    if member.issym() and os.path.isabs(member.linkname):
        return tarfile.tar_filter(member, dest)
    return tarfile.data_filter(member, dest)


class _PathMap:
    """The agent's paths and where each lives on this node; rewrites texts that name them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.places: dict[str, str] = {}

    def add(self, agent_path: str, node_path: Path) -> None:
        self.places[agent_path.rstrip("/")] = str(node_path)

    def next_folder(self) -> Path:
        """A new folder of this node's for the next agent path to be added."""
        return self.root / f"p{len(self.places)}"

    def rewrite(self, text: str) -> str:
        for agent_path in sorted(self.places, key=len, reverse=True):
            if agent_path in text:
                text = text.replace(agent_path, self.places[agent_path])
        return text


class _Tail:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def read(self) -> bytes:
        try:
            with self.path.open("rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except FileNotFoundError:
            return b""
        self.offset += len(data)
        return data


def _cluster() -> dict[str, str]:
    """The cluster's GCS address and this node's IP, for a step that starts Ray work."""
    try:
        import ray

        util: Any = ray.util
        return {
            ADDRESS_VARIABLE: ray.get_runtime_context().gcs_address,
            NODE_IP_VARIABLE: util.get_node_ip_address(),
        }
    except Exception:
        return {}


def _node_label() -> str:
    try:
        import ray

        node_id = ray.get_runtime_context().get_node_id()
    except Exception:
        node_id = "?"
    return f"{socket.gethostname()} (Ray node {node_id[:12]})"


def run_on_node(bundle: NodeBundle) -> Iterator[Any]:
    """Run one attempt here; yields log chunks (dicts) and finally a `NodeDone`."""
    _sweep()
    root = Path(tempfile.mkdtemp(prefix=PREFIX))
    held = hold(root)
    process: subprocess.Popen[bytes] | None = None
    try:
        places = _PathMap(root)
        for agent_path, data in bundle.trees.items():
            folder = places.next_folder()
            unpack(data, folder)
            # A single file is packed under its own name, a folder by its content.
            is_file = agent_path in bundle.files
            places.add(agent_path, folder / Path(agent_path).name if is_file else folder)
        for agent_path in [bundle.cwd, bundle.run_dir, bundle.pipeline_run_dir, *bundle.empty]:
            if agent_path.rstrip("/") not in places.places:
                folder = places.next_folder()
                folder.mkdir(parents=True)
                places.add(agent_path, folder)
        cwd = Path(places.rewrite(bundle.cwd))
        run_dir = Path(places.rewrite(bundle.run_dir))
        (run_dir / STDOUT_LOG).parent.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable if a == bundle.python else places.rewrite(a) for a in bundle.argv]
        env = dict(os.environ)
        env.update({k: places.rewrite(v) for k, v in bundle.env.items()})
        env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
        env.setdefault("HEADRACE_ENVS_DIR", str(_envs_cache()))
        env.update(_cluster())
        label = _node_label()
        stdout_path, stderr_path = run_dir / STREAMED[0], run_dir / STREAMED[1]
        tails = {
            "stdout": _Tail(stdout_path),
            "stderr": _Tail(stderr_path),
            "journal": _Tail(run_dir / STREAMED[2]),
        }
        with stdout_path.open("ab") as out, stderr_path.open("ab") as err:
            out.write(f"headrace: running on {label}\n".encode())
            out.flush()
            failure = _fetch_inputs(bundle.fetches, places, root, out, err)
            if failure is not None:
                err.flush()
                logs = {name: tail.read() for name, tail in tails.items()}
                yield NodeDone(1, trees={}, node=label, not_started=failure, logs=logs)
                return
            process = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
                close_fds=True,
            )
        # Who to stop if this worker dies without cleaning up (see `_sweep`).
        (root / PROCESS_FILE).write_text(f"{process.pid} {process_start_time(process.pid)}")
        ended = _ended_handle(process.pid)
        while True:
            # Wakes the moment the step exits (Popen.wait(timeout) would poll, up to 50 ms late).
            select.select([ended] if ended is not None else [], [], [], POLL_SECONDS)
            code = process.poll()
            if code is not None:
                break  # the rest of the logs goes with the result: one object, not two
            chunk = {name: tail.read() for name, tail in tails.items()}
            if any(chunk.values()):
                yield chunk
        if ended is not None:
            os.close(ended)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # what the script left behind goes too
        trees = {}
        for agent_path in bundle.returned:
            local = Path(places.rewrite(agent_path))
            exclude = STREAMED if agent_path == bundle.run_dir else ()
            if local.exists():
                trees[agent_path] = pack(local, exclude)
        logs = {name: tail.read() for name, tail in tails.items()}
        yield NodeDone(exit_code=code, trees=trees, node=label, logs=logs)
    except BaseException:
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        raise
    finally:
        shutil.rmtree(root, ignore_errors=True)
        os.close(held)


def _fetch_inputs(
    fetches: list[NodeFetch], places: _PathMap, root: Path, out: Any, err: Any
) -> str | None:
    """Download the inputs this node fetches itself; on a failure, say which and why in
    the step's stderr and return that (the step does not start), else None."""
    from headrace.store.objectstores import open_object_datastore

    for fetch in fetches:
        started = time.monotonic()
        try:
            # No secrets file is read: only datastores whose credentials come from the
            # environment (or that need none) are fetched by nodes.
            files = open_object_datastore(fetch.handle, root)
            pairs = [(path, Path(places.rewrite(dest))) for path, dest in fetch.pairs]
            files.download_many(pairs)
            Path(places.rewrite(fetch.folder)).mkdir(parents=True, exist_ok=True)
        except Exception as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            failure = f"input {fetch.port!r} ({fetch.uri}) could not be downloaded on its node"
            err.write(f"headrace: {failure}: {reason}\n".encode())
            return f"{failure}: {reason}"
        size = sum(dest.stat().st_size for _path, dest in pairs)
        out.write(
            f"headrace: downloaded input {fetch.port!r} on this node: {len(pairs)} file(s), "
            f"{size / 1e6:.1f} MB from {fetch.uri} in {time.monotonic() - started:.1f} s\n".encode()
        )
        out.flush()
    return None


def _ended_handle(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def hold(root: Path) -> int:
    """Lock `root` for as long as this worker lives (the kernel drops the lock when it dies)."""
    fd = os.open(root / ".lock", os.O_CREAT | os.O_RDWR, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def unlocked_folders(prefix: str, marker: str | None = None) -> Iterator[Path]:
    """The folders `<temp dir>/<prefix>*` whose lock (`hold`) nobody holds: their worker
    died without cleaning up. A folder younger than a minute is left alone unless it has
    `marker` (a file written once it is locked): a new one may not be locked yet."""
    young = time.time() - 60
    for folder in Path(tempfile.gettempdir()).glob(f"{prefix}*"):
        try:
            if folder.stat().st_mtime > young and not (marker and (folder / marker).exists()):
                continue
            fd = os.open(folder / ".lock", os.O_RDWR)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # its worker still runs
        finally:
            os.close(fd)
        yield folder


def _sweep() -> None:
    """Clean up after workers on this node that died mid-step (force-cancelled, killed, or
    their raylet crashed): stop the step's process group if it still runs, and remove the
    folder."""
    for folder in unlocked_folders(PREFIX, PROCESS_FILE):
        _stop_orphan(folder / PROCESS_FILE)
        shutil.rmtree(folder, ignore_errors=True)


def _stop_orphan(record: Path) -> None:
    try:
        pid_text, started = record.read_text().split()
        pid = int(pid_text)
    except (OSError, ValueError):
        return
    if str(process_start_time(pid)) == started:  # the same process, not a reused pid
        kill_group(pid, signal.SIGKILL)


def _envs_cache() -> Path:
    """Where this node keeps the step environments it builds (one per spec, like a
    workspace's `envs/`), so every step of every run on this node shares them."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "headrace" / "envs"
