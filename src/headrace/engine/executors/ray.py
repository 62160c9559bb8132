"""`RayExecutor`: runs each step attempt as a Ray task on whatever node Ray picks.

The agent connects to one Ray cluster per process: a running cluster's `address`, or a
Ray head it starts for itself (on 127.0.0.1, with no dashboard; it stops with the agent).
Each attempt is a generator task (`engine.raynode.run_on_node`) asking for the step's
`resources` (one CPU when it names none). The task gets everything it needs in a bundle
(no shared filesystem is assumed), streams stdout, stderr and the run journal back while it
runs, and returns the step's outputs and files when it ends; `RayProcess` writes them where
local compute would have, so `finalize`, reuse and the UI do not know the difference.

A step that asks for more than any live node has fails at once, naming both. A node that
dies mid-step ends the attempt as lost (`RayProcess.lost`): the agent records why, and the
step gets one more attempt than its `max_retries` (Ray schedules it on a live node).
Cancel is `ray.cancel` (the task stops the step's process group).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headrace.engine.raynode import NodeBundle, NodeDone, NodeFetch, pack, unpack
from headrace.graph.resources import describe_resources
from headrace.store.journal import JOURNAL_NAME
from headrace.store.steplogs import combined_lines

if TYPE_CHECKING:
    from headrace.engine.runtime import PreparedStep

__all__ = ["RayExecutor", "RayProcess", "RayUnavailable", "check_address", "ray_environment"]

log = logging.getLogger(__name__)
NODE_CACHE_SECONDS = 5.0
QUEUE_FACTOR = 2
_lock = threading.Lock()
_connected: dict[str, Any] = {}  # "address" -> what this process is connected to


class RayUnavailable(RuntimeError):
    """The Ray cluster cannot be used: not installed, not reachable, or another one is."""


def ray_environment(local_head: bool) -> None:
    """Ray's settings for headrace: no usage statistics (unless the environment says
    otherwise), and for a head headrace starts, everything on 127.0.0.1 (always) and a
    token that is never written to a file."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if local_head:
        # Not a default: on Linux this is what keeps Ray's node address (and every port its
        # GCS, raylet and workers open) on 127.0.0.1; with it unset or 1, a head binds all
        # interfaces and advertises the machine's address, whatever _node_ip_address says.
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        if "RAY_AUTH_MODE" not in os.environ:
            os.environ["RAY_AUTH_MODE"] = "token"
            os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(16))


def check_address(address: str, timeout: float = 3.0) -> None:
    """Raise RayUnavailable unless something answers at a Ray address `host:port`."""
    if address in ("auto", "local") or address.startswith("ray://"):
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise RayUnavailable(
            f"Ray address {address!r} is not host:port; give the head's GCS address, for "
            "example '127.0.0.1:6379' (what `ray start --head` prints)."
        )
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise RayUnavailable(
            f"No Ray cluster answers at {address} ({exc.strerror or exc}). Start one with "
            f"`ray start --head --port={port}`, or attach the target to the address "
            "`ray start` printed."
        ) from None


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RayUnavailable(
            "Ray is not installed in headrace's environment; install it with "
            "`pip install 'headrace[ray]'`."
        ) from None
    return ray


def connect_seconds(local_head: bool) -> float:
    """How long the agent waits for Ray: a head it starts may take a while on a busy
    machine; an address that does not answer as Ray should fail in seconds."""
    default = 120.0 if local_head else 15.0
    return float(os.environ.get("HEADRACE_RAY_CONNECT_SECONDS") or default)


def connect(address: str | None, num_cpus: int | None) -> Any:
    """This process's connection to Ray, made once; `address` None starts a local head.

    `ray.init` runs in a thread of its own that lives as long as the process: something at
    the address that is not Ray makes it retry for minutes, and the agent must not hang
    with it (it waits `connect_seconds`, then the target is unavailable). The thread stays
    alive because Ray ties the processes of a head it starts to the starting thread.
    """
    key = address or "local"
    with _lock:
        if _connected and _connected["address"] != key:
            raise RayUnavailable(
                f"This agent already uses the Ray cluster {_connected['address']!r}; one "
                f"agent drives one Ray cluster, so {key!r} cannot be used at the same time."
            )
        if not _connected:
            ray_environment(local_head=address is None)
            if address is not None:
                check_address(address)
            ray = _import_ray()
            done = threading.Event()
            _connected.update(address=key, ray=ray, done=done, error=None, waited=False)
            threading.Thread(
                target=_init, args=(ray, address, num_cpus, done), daemon=True, name="ray-init"
            ).start()
        state = dict(_connected)
    timeout = 0.0 if state["waited"] else connect_seconds(address is None)
    _connected["waited"] = True
    if not state["done"].wait(timeout):
        raise RayUnavailable(
            f"Ray at {key} did not answer within {connect_seconds(address is None):g} s; is "
            "it the address of a Ray head (its GCS port, what `ray start --head` printed)?"
        )
    if _connected.get("error"):
        error = _connected["error"]
        with _lock:
            _connected.clear()  # a later attempt connects afresh
        raise RayUnavailable(f"Cannot connect to Ray at {key}: {error}")
    return state["ray"]


def _init(ray: Any, address: str | None, num_cpus: int | None, done: threading.Event) -> None:
    options: dict[str, Any] = {
        "namespace": "headrace",
        "log_to_driver": False,
        "configure_logging": False,
    }
    if address is None:
        # "local" starts a head of our own: with no address, Ray would join whichever cluster
        # was started last on this machine (RAY_ADDRESS, /tmp/ray/ray_current_cluster).
        options.update(
            address="local",
            num_cpus=num_cpus or os.cpu_count() or 1,
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
        )
    else:
        options["address"] = address
    started = time.monotonic()
    try:
        ray.init(**options)
        log.info("connected to Ray (%s) in %.1f s", address or "local", time.monotonic() - started)
    except Exception as exc:
        _connected["error"] = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
    done.set()
    threading.Event().wait()  # keep the thread, and with it a local head, alive


class RayProcess:
    """A step attempt running as a Ray generator task, seen as a process by the agent."""

    pid: int | None = None
    started: float | None = None

    def __init__(self, ray: Any, generator: Any, prepared: PreparedStep) -> None:
        self._ray = ray
        self._generator = generator
        self._prepared = prepared
        self._code: int | None = None
        self._ended = threading.Event()
        self.lost: str | None = None
        self.not_started: str | None = None
        self._read_fd, self._write_fd = os.pipe()
        self._thread = threading.Thread(target=self._follow, daemon=True, name="ray-step")
        self._thread.start()

    # -- the task's stream -----------------------------------------------------------------
    def _follow(self) -> None:
        prepared = self._prepared
        targets = {
            "stdout": prepared.stdout_path,
            "stderr": prepared.stderr_path,
            "journal": _run_dir(prepared) / JOURNAL_NAME,
            "combined": prepared.combined_path,
        }
        targets["journal"].parent.mkdir(parents=True, exist_ok=True)
        partial: dict[str, bytes] = {}
        code = 1
        try:
            for ref in self._generator:
                item = self._ray.get(ref)
                if not isinstance(item, NodeDone):
                    _append(targets, item, partial, end=False)
                    continue
                _append(targets, item.logs, partial, end=True)
                for agent_path, data in item.trees.items():
                    unpack(data, Path(agent_path))
                code = item.exit_code
                self.not_started = item.not_started
        except BaseException as exc:
            code = self._failed(exc)
        finally:
            self._code = code
            self._ended.set()  # before the wake: the agent reaps the moment it wakes
            with contextlib.suppress(OSError):
                os.write(self._write_fd, b"x")

    def _failed(self, exc: BaseException) -> int:
        exceptions = self._ray.exceptions
        cause = getattr(exc, "cause", None) or exc
        if isinstance(cause, (exceptions.TaskCancelledError, KeyboardInterrupt)):
            return -15
        lost_types = (
            exceptions.NodeDiedError,
            exceptions.WorkerCrashedError,
            exceptions.ObjectLostError,
            exceptions.OwnerDiedError,
        )
        first_line = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        if isinstance(cause, lost_types):
            self.lost = f"the Ray node running it was lost ({first_line})"
        message = f"\nheadrace: the Ray task of this step failed: {first_line}\n"
        with self._prepared.stderr_path.open("a") as fh:
            fh.write(message)
        return -9 if self.lost else 1

    # -- StepProcess -----------------------------------------------------------------------
    def poll(self) -> int | None:
        return self._code if self._ended.is_set() else None

    def wait_handle(self) -> int | None:
        return self._read_fd

    def terminate(self) -> None:
        with contextlib.suppress(Exception):
            self._ray.cancel(self._generator)

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self._ray.cancel(self._generator, force=True)

    def close(self) -> None:
        for fd in (self._read_fd, self._write_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._read_fd = self._write_fd = -1


class RayExecutor:
    """Steps of one compute target as Ray tasks; at most `capacity` at once (the
    cluster's CPUs unless the target sets `max_concurrent_steps`). Object-store inputs
    are downloaded by the node that runs the step, when it can open the datastore."""

    fetches_inputs = True

    def __init__(
        self, name: str, address: str | None, num_cpus: int | None, max_steps: int | None
    ) -> None:
        self.name = name
        self.address = address
        self._ray = connect(address, num_cpus)
        self._remote = self._ray.remote(_run_on_node())
        self._max_steps = max_steps
        self._nodes: list[dict[str, float]] = []
        self._nodes_at = 0.0

    def _live_nodes(self) -> list[dict[str, float]]:
        if time.monotonic() - self._nodes_at > NODE_CACHE_SECONDS:
            self._nodes = [n["Resources"] for n in self._ray.nodes() if n.get("Alive")]
            self._nodes_at = time.monotonic()
        return self._nodes

    @property
    def capacity(self) -> int:
        if self._max_steps:
            return self._max_steps
        # Twice the cluster's CPUs: Ray always has the next step queued on each node, so a
        # node never waits for the agent's round trip (reap, record, prepare, submit).
        return max(1, QUEUE_FACTOR * int(sum(n.get("CPU", 0) for n in self._live_nodes())))

    def _fit(self, name: str, request: dict[str, float]) -> None:
        nodes = self._live_nodes()
        if any(all(node.get(k, 0) >= v for k, v in request.items() if v) for node in nodes):
            return
        largest = ", ".join(
            f"[{describe_resources({k: v for k, v in n.items() if k in request})}]" for n in nodes
        )
        raise RuntimeError(
            f"step {name!r} asks for {describe_resources(request)}, more than any node of Ray "
            f"target {self.name!r} has (its {len(nodes)} live nodes have {largest or 'nothing'}"
            "); lower the step's resources or add a larger node"
        )

    def start(self, prepared: PreparedStep) -> RayProcess:
        request = dict(prepared.task.node.resources or {})
        request.setdefault("CPU", 1.0)
        self._fit(prepared.task.node.name, request)
        options: dict[str, Any] = {
            "num_cpus": request.pop("CPU"),
            "max_retries": 0,  # headrace retries, and records each attempt
            "name": f"headrace:{prepared.task.node.name}",
        }
        if "GPU" in request:
            options["num_gpus"] = request.pop("GPU")
        if "memory" in request:
            options["memory"] = int(request.pop("memory"))
        if request:
            options["resources"] = request
        prepared.stdout_path.parent.mkdir(parents=True, exist_ok=True)
        paths = (prepared.stdout_path, prepared.stderr_path, prepared.combined_path)
        for path, text in zip(paths, prepared.log_header(), strict=True):
            if text:
                with path.open("ab") as fh:
                    fh.write(text)
        generator = self._remote.options(**options).remote(bundle(prepared))
        return RayProcess(self._ray, generator, prepared)


def _append(
    targets: dict[str, Path], chunk: dict[str, bytes], partial: dict[str, bytes], end: bool
) -> None:
    """Add what the node's stdout, stderr and journal gained to the agent's files.

    The combined log of a Ray step is made here, from the chunks as they arrive (about
    every POLL_SECONDS): lines of one chunk keep their order within their stream, but
    stdout and stderr of one chunk are not interleaved as they happened (a local step's
    logger does that, engine/steplog.py)."""
    combined = b""
    for name, data in chunk.items():
        if data:
            with targets[name].open("ab") as fh:
                fh.write(data)
        if name in ("stdout", "stderr"):
            text = partial.pop(name, b"") + (data or b"")
            if not end and not text.endswith(b"\n"):
                text, _, rest = text.rpartition(b"\n")
                if rest:
                    partial[name] = rest
            if text:
                combined += combined_lines(name, text.decode(errors="replace"))
    if combined:
        with targets["combined"].open("ab") as fh:
            fh.write(combined)


def _run_on_node() -> Any:
    from headrace.engine.raynode import run_on_node

    return run_on_node


def _run_dir(prepared: PreparedStep) -> Path:
    """The attempt's run folder (its logs are `user_logs/` in it)."""
    return prepared.stdout_path.parent.parent


def bundle(prepared: PreparedStep) -> NodeBundle:
    """What a node needs to run this attempt, in the agent's paths."""
    cwd = str(prepared.cwd)
    run_dir = str(_run_dir(prepared))
    pipeline_run_dir = prepared.env.get("HEADRACE_PIPELINE_RUN_DIR", run_dir)
    trees = {cwd: pack(prepared.cwd)}
    files = []
    for path in prepared.input_paths.values():
        if path in trees or Path(path).is_relative_to(prepared.cwd) or not Path(path).exists():
            continue  # shipped with the working folder, or read in place (an object-store URI)
        trees[path] = pack(Path(path))
        if Path(path).is_file():
            files.append(path)
    fetches = [
        NodeFetch(f.port, f.handle, f.uri, str(f.folder), [(p, str(d)) for p, d in f.pairs])
        for f in prepared.fetches
    ]
    staged = [str(p) for p in prepared.staged_outputs.values()]
    env = {k: v for k, v in prepared.env.items() if k != "PATH" and os.environ.get(k) != v}
    return NodeBundle(
        argv=list(prepared.argv),
        env=env,
        python=prepared.python,  # the node starts its own Python in its place
        cwd=cwd,
        run_dir=run_dir,
        pipeline_run_dir=pipeline_run_dir,
        trees=trees,
        files=files,
        empty=[p for p in staged if not Path(p).is_relative_to(prepared.cwd)],
        returned=[
            *staged,
            str(prepared.cwd / "outputs"),
            str(prepared.cwd / "logs"),
            run_dir,
            pipeline_run_dir,
        ],
        fetches=fetches,
    )
