"""The pool of workers a ParallelRunStep's coordinator (program.py) hands mini-batches to.

The coordinator keeps the accounting (which batch is where, deadlines, retries, commits);
a pool only starts workers, sends them batches, reports what they said, and stops them.
Two pools: `LocalPool`, forked processes on this machine talking over pipes (worker.py's
`serve`), and `raypool.RayPool`, Ray actors spread over the nodes of a Ray cluster (used
when the step runs on Ray, see raypool.py).

What a pool reports for a worker (`events`), in the order the worker said it:
`("ready", node)` after `init()`, `("fatal", message)` when the entry script cannot start,
`("done", index, rows)` and `("error", index, traceback)` per mini-batch, and
`("ended", how)` once the worker is gone (`how` completes "worker 3 ...": "exited with
code -9", or "died (its Ray node was lost)").
"""

from __future__ import annotations

import contextlib
import multiprocessing
import socket
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from typing import Any, Protocol

from headrace.kinds.parallel.worker import serve

__all__ = ["Event", "LocalPool", "Pool", "StepFailure", "Worker"]

Event = tuple[Any, ...]


class StepFailure(Exception):
    """The step stops: the message goes to stderr, the exit code is 1."""


@dataclass
class Worker:
    number: int
    handle: Any  # the pool's: (process, pipe) or a Ray actor
    node: str = ""  # where it runs, for the logs: a host name, or a Ray node id
    ready: bool = False
    # Sent, in order; the first is the one run() is working on. Two are kept in flight so a
    # worker never waits for the coordinator between batches.
    inflight: deque[Any] = field(default_factory=deque)
    deadline: float = 0.0
    broken: bool = False  # a send failed: it died, and is replaced once its end is seen


class Pool(Protocol):
    """Where the workers run. `what` names them in the step's output ("worker processes")."""

    what: str

    def start(self, number: int) -> Worker:
        """A new worker; it reports ("ready", node) once init() has run."""
        ...

    def send(self, worker: Worker, index: int, payload: Any, size: int) -> bool:
        """Queue a mini-batch on `worker`; False when it is gone (its end is reported)."""
        ...

    def events(self, workers: list[Worker], timeout: float) -> list[tuple[Worker, Event]]:
        """What `workers` said, waiting up to `timeout` seconds for the first word."""
        ...

    def stop(self, worker: Worker, kill: bool) -> None:
        """Stop a worker: at once (`kill`), or after it has finished (it is idle)."""
        ...

    def close(self) -> None:
        """Release what the pool holds; every worker has been stopped."""
        ...

    def placement(self) -> str:
        """Where the workers ran, for the summary ("" when that says nothing)."""
        ...

    def peak_rss_mb(self) -> float:
        """The largest peak memory of a worker stopped at the end that is not a child
        process here (0.0: ask getrusage)."""
        ...


class LocalPool:
    """Forked worker processes on this machine, one pipe each."""

    what = "worker processes"

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings
        self.context = multiprocessing.get_context("fork")
        self.node = socket.gethostname()

    def start(self, number: int) -> Worker:
        parent, child = self.context.Pipe()
        process = self.context.Process(
            target=serve, args=(child, number, self.settings), daemon=True
        )
        process.start()
        child.close()
        return Worker(number, (process, parent))

    def send(self, worker: Worker, index: int, payload: Any, size: int) -> bool:
        try:
            worker.handle[1].send((index, payload, size))
        except OSError:  # it died: its sentinel says so, and `events` reports its end
            return False
        return True

    def events(self, workers: list[Worker], timeout: float) -> list[tuple[Worker, Event]]:
        by_handle: dict[Any, Worker] = {}
        for worker in workers:
            process, conn = worker.handle
            by_handle[conn] = worker
            by_handle[process.sentinel] = worker
        found: list[tuple[Worker, Event]] = []
        seen: set[int] = set()
        for handle in wait(list(by_handle), timeout=timeout):
            worker = by_handle[handle]
            if worker.number in seen:
                continue
            seen.add(worker.number)
            process, conn = worker.handle
            try:
                while conn.poll():
                    message = conn.recv()
                    if message[0] == "ready":
                        message = ("ready", self.node)
                    found.append((worker, message))
            except (EOFError, OSError):
                pass
            if not process.is_alive():
                found.append((worker, ("ended", f"exited with code {process.exitcode}")))
        return found

    def stop(self, worker: Worker, kill: bool) -> None:
        process, conn = worker.handle
        if not kill and process.is_alive():
            with contextlib.suppress(OSError):
                conn.send(None)
                process.join(timeout=10)
        if process.is_alive():
            process.kill()
        process.join(timeout=10)
        conn.close()

    def close(self) -> None:
        pass

    def placement(self) -> str:
        return ""

    def peak_rss_mb(self) -> float:
        return 0.0
