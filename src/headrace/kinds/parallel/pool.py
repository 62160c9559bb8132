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
import fcntl
import math
import multiprocessing
import os
import select
import socket
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from headrace.kinds.parallel.frames import Frames, frame, write_all
from headrace.kinds.parallel.worker import serve

__all__ = ["Event", "LocalPool", "Pool", "StepFailure", "Worker"]

Event = tuple[Any, ...]
# A worker's pipe of mini-batches holds this much (Linux's default is 64 KB), so sending a
# worker the batches it is given ahead never waits for it to read: 64 lists of paths.
_PIPE = 1 << 20


class StepFailure(Exception):
    """The step stops: the message goes to stderr, the exit code is 1."""


@dataclass
class Worker:
    number: int
    handle: Any  # the pool's: (process, pipe) or a Ray actor
    node: str = ""  # where it runs, for the logs: a host name, or a Ray node id
    ready: bool = False
    # Sent, in order; the first is the one run() is working on. Two or more are kept in
    # flight so a worker never waits for the coordinator between batches.
    inflight: deque[Any] = field(default_factory=deque)
    deadline: float = 0.0
    heard_at: float = 0.0  # time.monotonic() of its last mini-batch's end (or first send)
    pace: float = 0.0  # its seconds per mini-batch, a moving average (0.0: none ended yet)
    broken: bool = False  # a send failed: it died, and is replaced once its end is seen


class Pool(Protocol):
    """Where the workers run. `what` names them in the step's output ("worker processes")."""

    what: str
    max_in_flight: int  # at most this many mini-batches sent ahead to one worker

    def start(self, number: int) -> Worker:
        """A new worker; it reports ("ready", node) once init() has run."""
        ...

    def send(self, worker: Worker, batches: list[tuple[int, Any, int]]) -> bool:
        """Queue mini-batches (index, payload, items) on `worker`, in order; False when it
        is gone (its end is reported)."""
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
    """Forked worker processes on this machine, two plain pipes each (frames.py): one for
    mini-batches, one for what the worker says. The coordinator waits on one `poll` object
    that holds every worker's pipe and process sentinel."""

    what = "worker processes"
    max_in_flight = 64

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings
        self.context = multiprocessing.get_context("fork")
        self.node = socket.gethostname()
        self.poller = select.poll()
        self.by_fd: dict[int, tuple[Worker, bool]] = {}  # fd -> (worker, is its sentinel)
        self.own_fds: set[int] = set()  # this process's pipe ends (a new worker closes them)

    def start(self, number: int) -> Worker:
        tasks_read, tasks_write = os.pipe()
        said_read, said_write = os.pipe()
        with contextlib.suppress(OSError):  # room for the batches sent ahead (see `_PIPE`)
            fcntl.fcntl(tasks_write, fcntl.F_SETPIPE_SZ, _PIPE)
        others = sorted(self.own_fds)  # the other workers' pipes, closed in the new one
        process = self.context.Process(
            target=serve,
            args=(tasks_read, said_write, number, self.settings, [*others, tasks_write, said_read]),
            daemon=True,
        )
        process.start()
        os.close(tasks_read)
        os.close(said_write)
        os.set_blocking(said_read, False)
        self.own_fds.update((tasks_write, said_read))
        worker = Worker(number, _Local(process, tasks_write, Frames(said_read)))
        self.by_fd[said_read] = (worker, False)
        self.by_fd[process.sentinel] = (worker, True)
        self.poller.register(said_read, select.POLLIN)
        self.poller.register(process.sentinel, select.POLLIN)
        return worker

    def send(self, worker: Worker, batches: list[tuple[int, Any, int]]) -> bool:
        try:  # in one `write`
            write_all(worker.handle.tasks, b"".join(frame(batch) for batch in batches))
        except OSError:  # it died: its sentinel says so, and `events` reports its end
            return False
        return True

    def events(self, workers: list[Worker], timeout: float) -> list[tuple[Worker, Event]]:
        found: list[tuple[Worker, Event]] = []
        ready = self.poller.poll(max(0, math.ceil(timeout * 1000)))
        for fd, _ in sorted(ready, key=lambda pair: self.by_fd[pair[0]][1]):
            worker, sentinel = self.by_fd[fd]
            local: _Local = worker.handle
            if local.ended:
                continue
            said = local.said
            if not sentinel:
                said.fill()
            else:  # it ended: what it said before, then its end
                while said.fill():
                    pass
                local.ended = True
            for message in said.take():
                found.append((worker, ("ready", self.node) if message[0] == "ready" else message))
            if sentinel:
                local.process.join(timeout=10)
                how = f"exited with code {local.process.exitcode}"
                found.append((worker, ("ended", how)))
        return found

    def stop(self, worker: Worker, kill: bool) -> None:
        local: _Local = worker.handle
        process = local.process
        if not kill and process.is_alive():
            with contextlib.suppress(OSError):
                write_all(local.tasks, frame(None))
                process.join(timeout=10)
        if process.is_alive():
            process.kill()
        process.join(timeout=10)
        for fd in (local.said.fd, process.sentinel):
            if self.by_fd.pop(fd, None) is not None:
                self.poller.unregister(fd)
        for fd in (local.tasks, local.said.fd):
            self.own_fds.discard(fd)
            os.close(fd)
        with contextlib.suppress(ValueError):  # still running (it ignored SIGKILL 10 s)
            process.close()

    def close(self) -> None:
        pass

    def placement(self) -> str:
        return ""

    def peak_rss_mb(self) -> float:
        return 0.0


@dataclass
class _Local:
    """A LocalPool worker's handle."""

    process: Any  # multiprocessing.Process
    tasks: int  # the write end of its mini-batches' pipe
    said: Frames  # the read end of what it says
    ended: bool = False  # its end was reported
