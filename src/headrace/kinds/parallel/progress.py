"""A ParallelRunStep's progress: counted by its coordinator, shown everywhere from its metrics.

The coordinator (program.py) already knows every count, so progress costs it nothing but
writing them where a step's metrics go (`Run.get_context().log`, the run journal the agent
records while the step runs):

- scalar metrics `items_done`, `items_failed`, `items_remaining`, `mini_batches_done`,
  `mini_batches_failed`, `mini_batches_remaining`, logged when they changed, at most once a
  second (and at the end);
- a table metric `workers` (columns `worker`, `node`, `batches_done`, `batches_failed`,
  `current_batch`, `last_heartbeat`: the last time, UTC, the worker reported: ready or a
  mini-batch ended), at most every 5 s when it changed (and at the end);
- a progress bar line on the step's stdout, at most every 2 s when it changed (every 10 s
  after the first minute), so `wait_for_completion(show_output=True)`,
  `headrace run logs --follow` and the portal's stdout show it live.

`progress_view(metrics)` turns a step's metrics back into one document for
`headrace step show` and the portal's step page (None for other steps).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["COUNTS", "Progress", "bar", "progress_view"]

COUNTS = (
    "items_done",
    "items_failed",
    "items_remaining",
    "mini_batches_done",
    "mini_batches_failed",
    "mini_batches_remaining",
)
_WORKER_COLUMNS = (
    "worker",
    "node",
    "batches_done",
    "batches_failed",
    "current_batch",
    "last_heartbeat",
)
_METRIC_SECONDS = 1.0
_WORKERS_SECONDS = 5.0
_BAR_WIDTH = 30


def bar(done: int, failed: int, total: int, width: int = _BAR_WIDTH) -> str:
    """`[#####x.....]`: done, failed and remaining parts of `total`."""
    if total <= 0:
        return "[" + "#" * width + "]"
    ok = round(width * done / total)
    bad = min(width - ok, round(width * failed / total))
    return "[" + "#" * ok + "x" * bad + "." * (width - ok - bad) + "]"


@dataclass
class _Worker:
    number: int
    node: str = ""  # where it runs: a host name, or a Ray node id
    done: int = 0
    failed: int = 0
    current: int | None = None
    heartbeat: float = 0.0  # time.time() of its last report (formatted when logged)


def _when(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M:%S")


class Progress:
    """The coordinator's counts, and where it writes them."""

    def __init__(self, total_items: int, total_batches: int, say: Callable[[str], None]) -> None:
        self.total_items = total_items
        self.total_batches = total_batches
        self.items_done = self.items_failed = 0
        self.batches_done = self.batches_failed = 0
        self.workers: dict[int, _Worker] = {}
        self.say = say
        self.run: Any = None
        self.started = time.monotonic()
        self._logged: dict[str, int] = {}
        self._metrics_at = self._workers_at = self._line_at = -1e9
        self._workers_logged: Any = None
        self._line_counts: tuple[int, ...] = ()

    # -- what the coordinator reports -----------------------------------------------------
    def worker(self, number: int) -> _Worker:
        found = self.workers.get(number)
        if found is None:
            found = self.workers[number] = _Worker(number, heartbeat=time.time())
        return found

    def heard(self, number: int, current: int | None, ended: str | None = None) -> None:
        """Worker `number` reported; `ended` is 'done' or 'failed' when a mini-batch ended."""
        worker = self.worker(number)
        worker.heartbeat = time.time()
        worker.current = current
        if ended == "done":
            worker.done += 1
        elif ended == "failed":
            worker.failed += 1

    def counts(self) -> dict[str, int]:
        return {
            "items_done": self.items_done,
            "items_failed": self.items_failed,
            "items_remaining": max(0, self.total_items - self.items_done - self.items_failed),
            "mini_batches_done": self.batches_done,
            "mini_batches_failed": self.batches_failed,
            "mini_batches_remaining": max(
                0, self.total_batches - self.batches_done - self.batches_failed
            ),
        }

    # -- where it goes ----------------------------------------------------------------------
    def publish(self, force: bool = False) -> None:
        """Metrics and the progress line, each when due and changed (all when `force`)."""
        now = time.monotonic()
        if force or now - self._metrics_at >= _METRIC_SECONDS:
            self._metrics_at = now
            self._log_counts()
        if force or now - self._workers_at >= _WORKERS_SECONDS:
            self._workers_at = now
            self._log_workers()
        every = 2.0 if now - self.started < 60 else 10.0
        if force or now - self._line_at >= every:
            counts = tuple(self.counts().values())
            if counts != self._line_counts:
                self._line_at = now
                self._line_counts = counts
                self.say(self.line())

    def _context(self) -> Any:
        if self.run is None:
            from headrace.sdk.context import get_context

            self.run = get_context()
        return self.run

    def _log_counts(self) -> None:
        for name, value in self.counts().items():
            if self._logged.get(name) != value:
                self._context().log(name, value)
                self._logged[name] = value

    def _log_workers(self) -> None:
        rows = [
            (
                w.number,
                w.node,
                w.done,
                w.failed,
                "" if w.current is None else w.current,
                _when(w.heartbeat),
            )
            for w in sorted(self.workers.values(), key=lambda w: w.number)
        ]
        if rows and rows != self._workers_logged:
            self._workers_logged = rows
            table = {c: [row[i] for row in rows] for i, c in enumerate(_WORKER_COLUMNS)}
            self._context().log_table("workers", table)

    def line(self) -> str:
        c = self.counts()
        total = self.total_items
        share = 100.0 * (c["items_done"] + c["items_failed"]) / total if total else 100.0
        busy = sum(1 for w in self.workers.values() if w.current is not None)
        return (
            f"progress {bar(c['items_done'], c['items_failed'], total)} {share:.0f}% | items "
            f"{c['items_done']}/{total} done, {c['items_failed']} failed, "
            f"{c['items_remaining']} remaining | mini-batches {c['mini_batches_done']}/"
            f"{self.total_batches} done, {c['mini_batches_failed']} failed | {busy} workers busy"
        )


def progress_view(metrics: Sequence[Any], parallel: bool = False) -> dict[str, Any] | None:
    """A ParallelRunStep's progress from its metric records (MetricRecord: name, kind, value),
    or None when they are not a ParallelRunStep's. `parallel`: the step is one (its counts
    read as 0 until it logs them)."""
    last: dict[str, Any] = {}
    for record in metrics:
        last[record.name] = record.value
    if not all(name in last for name in COUNTS):
        if not parallel:
            return None
        last = {**{name: 0 for name in COUNTS}, **last}
    try:
        numbers = {name: int(last[name]) for name in COUNTS}
    except (TypeError, ValueError):
        return None
    items = numbers["items_done"] + numbers["items_failed"] + numbers["items_remaining"]
    batches = (
        numbers["mini_batches_done"]
        + numbers["mini_batches_failed"]
        + numbers["mini_batches_remaining"]
    )
    table = last.get("workers")
    workers: list[dict[str, Any]] = []
    if isinstance(table, dict):
        columns = {c: list(table.get(c) or []) for c in _WORKER_COLUMNS}
        for i in range(len(columns["worker"])):
            workers.append(
                {c: values[i] if i < len(values) else "" for c, values in columns.items()}
            )
    finished = numbers["items_done"] + numbers["items_failed"]
    return {
        "items": {
            "done": numbers["items_done"],
            "failed": numbers["items_failed"],
            "remaining": numbers["items_remaining"],
            "total": items,
        },
        "mini_batches": {
            "done": numbers["mini_batches_done"],
            "failed": numbers["mini_batches_failed"],
            "remaining": numbers["mini_batches_remaining"],
            "total": batches,
        },
        "percent": round(100.0 * finished / items, 1) if items else 100.0,
        "percent_done": round(100.0 * numbers["items_done"] / items, 1) if items else 100.0,
        "percent_failed": round(100.0 * numbers["items_failed"] / items, 1) if items else 0.0,
        "bar": bar(numbers["items_done"], numbers["items_failed"], items),
        "workers": workers,
    }
