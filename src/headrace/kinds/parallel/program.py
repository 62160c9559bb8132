"""The program of a ParallelRunStep's process: cut the inputs into mini-batches, run them in
worker processes (worker.py), and commit each batch's rows exactly once.

- **Workers.** `process_count_per_node` processes (default: the machine's cores) x
  `node_count`, all on this machine: a local target is one node, so node_count > 1 only
  multiplies the processes here (a line in the summary says so). Each calls `init()` once.
  They come from a pool (pool.py: `Pool`, chosen by `_pool`); this module only keeps the
  accounting of batches, and does not know how a worker runs.
- **A batch** goes to one worker (two are queued per worker, so none waits between
  them). It fails when `run()` raises, returns more rows than items, runs past
  `run_invocation_timeout` (the worker is killed and replaced) or its worker dies; a
  failed batch is tried again (another worker, possibly) until `run_max_try` attempts,
  then its items count as failed. run() returning fewer rows than items counts the
  difference as failed items (SDK v1).
- **Exactly once, in order.** Only this process writes output. A batch's rows are committed
  once, the first time it succeeds, as one record (`<index> <bytes>` and the rows) appended
  with one write to `<working folder>/.parallel/committed`; a timed-out or killed attempt's
  rows are never read. At the end the records are joined in input order into
  `append_row_file_name` (written under a temporary name, then renamed). One file, not one
  per batch: creating a file per mini-batch cost more than the batches themselves.
- **Limits.** `error_threshold` counts failed items, `allowed_failed_count` failed
  mini-batches, `allowed_failed_percent` the percent of failed mini-batches (at the end):
  over any, the step stops and fails naming the items and first errors. -1 ignores.
- **Progress and logs** (the step's `logs/`, moved into its run files): metrics
  `items_done`, `items_failed`, `items_remaining`, `mini_batches_done`,
  `mini_batches_failed`, `mini_batches_remaining` (at most once a second, and at the end);
  `logs/user/worker_<n>.txt` per worker (EntryScript().logger), `logs/failed_items.txt`
  (each failed batch's items and error), `logs/summary.txt`.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from headrace.engine.raynode import ADDRESS_VARIABLE
from headrace.graph.model import STEP_ERROR_PREFIX
from headrace.kinds.parallel.pool import Event, LocalPool, Pool, StepFailure, Worker
from headrace.kinds.parallel.spec import ParallelSpec, parse_size, size_in_bytes

__all__ = ["main"]

_FIRST_ERRORS = 3
_IN_FLIGHT = 2


@dataclass
class Batch:
    index: int
    payload: Any
    items: list[str]  # what the logs name: file paths, or "input rows a-b"
    attempts: int = 0
    errors: list[str] = field(default_factory=list)


def _parameters(spec: ParallelSpec) -> ParallelSpec:
    """The spec with the run's values of settings given as PipelineParameters."""
    changes: dict[str, Any] = {}
    for name in spec.parameters:
        raw = os.environ.get(f"AML_PARAMETER_{name}")
        if raw is None:
            continue
        if name == "mini_batch_size":
            if parse_size(raw) is None:
                raise StepFailure(f"mini_batch_size {raw!r} does not parse; give 10 or '1MB'.")
            changes[name] = raw
        else:
            try:
                value = int(raw)
            except ValueError:
                value = 0
            if value < 1:
                raise StepFailure(f"{name} {raw!r} is not a positive int.")
            changes[name] = value
    return replace(spec, **changes)


def _files(path: str) -> list[str]:
    if os.path.isfile(path):
        return [path]
    found: list[str] = []
    for folder, dirs, names in os.walk(path):
        dirs.sort()
        found.extend(os.path.join(folder, n) for n in sorted(names))
    return found


def _batches(spec: ParallelSpec) -> list[Batch]:
    inputs = json.loads(os.environ.get("HEADRACE_INPUT_DATASETS") or "{}")
    size_text = spec.mini_batch_size
    batches: list[Batch] = []
    if spec.input_kind() == "file":
        count = int(float(size_text)) if size_text else 10
        files = [f for name, _ in spec.inputs for f in _files(inputs[name]["path"])]
        for start in range(0, len(files), count):
            chunk = files[start : start + count]
            batches.append(Batch(len(batches), chunk, chunk))
        return batches
    from headrace.sdk.datasets import dataset_from_definition

    parsed = parse_size(size_text or "1MB")
    assert parsed is not None
    limit = size_in_bytes(*parsed)
    for name, _ in spec.inputs:
        frame = dataset_from_definition(inputs[name]["definition"]).to_pandas_dataframe()
        if len(frame) == 0:
            continue
        if spec.partition_keys:
            batches.extend(_partitions(name, frame, spec.partition_keys, len(batches)))
            continue
        per_row = max(1.0, float(frame.memory_usage(index=False, deep=True).sum()) / len(frame))
        rows = max(1, int(limit // per_row))
        for start in range(0, len(frame), rows):
            chunk = frame.iloc[start : start + rows].reset_index(drop=True)
            label = f"{name} rows {start}-{start + len(chunk) - 1}"
            batches.append(Batch(len(batches), chunk, [label]))
    return batches


def _partitions(name: str, frame: Any, keys: tuple[str, ...], first: int) -> list[Batch]:
    """One mini-batch per distinct value of the key columns, in order of first appearance."""
    missing = [k for k in keys if k not in frame.columns]
    if missing:
        raise StepFailure(
            f"partition_keys {', '.join(missing)} not among input {name!r}'s columns "
            f"({', '.join(map(str, frame.columns))})."
        )
    found: list[Batch] = []
    for key, part in frame.groupby(list(keys), sort=False, dropna=False):
        values = key if isinstance(key, tuple) else (key,)
        label = f"{name} " + ", ".join(f"{k}={v}" for k, v in zip(keys, values, strict=True))
        found.append(Batch(first + len(found), part.reset_index(drop=True), [label]))
    return found


class Coordinator:
    def __init__(self, spec: ParallelSpec, batches: list[Batch], out_dir: str | None) -> None:
        self.spec = spec
        self.batches = batches
        self.pending: deque[Batch] = deque(batches)
        self.total_items = sum(self._size(b) for b in batches)
        self.items_done = 0
        self.items_failed = 0
        self.batches_done = 0
        self.batches_failed = 0
        self.failures: list[Batch] = []
        self.log_dir = Path("logs")
        self.log_dir.mkdir(exist_ok=True)
        self.commit_dir = Path(".parallel")
        shutil.rmtree(self.commit_dir, ignore_errors=True)
        self.commit_dir.mkdir(parents=True)
        self.journal_path = self.commit_dir / "committed"
        self.journal = os.open(self.journal_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self.out_dir = out_dir
        self.workers: list[Worker] = []
        self.numbers = 0
        self.settings = {
            "entry_script": spec.entry_script,
            "arguments": sys.argv[1:],
            "output_dir": out_dir or os.getcwd(),
            "log_dir": str(self.log_dir.resolve()),
            "logging_level": spec.logging_level,
        }
        self.last_metrics = 0.0
        self.run: Any = None
        self.pool: Pool = LocalPool(self.settings)  # main() picks the pool (see _pool)

    @staticmethod
    def _size(batch: Batch) -> int:
        return len(batch.payload)

    def start_worker(self) -> None:
        self.numbers += 1
        self.workers.append(self.pool.start(self.numbers))

    def stop_worker(self, worker: Worker, kill: bool) -> None:
        self.pool.stop(worker, kill)
        self.workers.remove(worker)

    # -- outcomes -----------------------------------------------------------------------
    def commit(self, batch: Batch, rows: list[str]) -> None:
        if self.spec.output_action == "append_row":
            data = "".join(row + "\n" for row in rows).encode()
            # One record, one write: "<index> <bytes>\n" and the rows.
            os.write(self.journal, f"{batch.index} {len(data)}\n".encode() + data)
        failed = self._size(batch) - len(rows)
        self.batches_done += 1
        self.items_done += len(rows)
        if failed:
            self.items_failed += failed
            batch.errors.append(
                f"run() returned {len(rows)} rows for {self._size(batch)} items: "
                f"{failed} counted as failed"
            )
            self.failures.append(batch)
        self.check_limits()

    def attempt_failed(self, batch: Batch, error: str) -> None:
        batch.attempts += 1
        batch.errors.append(error)
        if batch.attempts < self.spec.run_max_try:
            self.pending.appendleft(batch)
            return
        self.batches_failed += 1
        self.items_failed += self._size(batch)
        self.failures.append(batch)
        self.check_limits()

    def check_limits(self, final: bool = False) -> None:
        spec = self.spec
        reasons = []
        if spec.error_threshold != -1 and self.items_failed > spec.error_threshold:
            reasons.append(
                f"{self.items_failed} items failed, more than error_threshold "
                f"{spec.error_threshold}"
            )
        allowed = spec.allowed_failed_count
        if allowed is not None and allowed != -1 and self.batches_failed > allowed:
            reasons.append(
                f"{self.batches_failed} mini-batches failed, more than allowed_failed_count "
                f"{allowed}"
            )
        percent = spec.allowed_failed_percent
        if final and percent is not None and percent != -1 and self.batches:
            share = 100.0 * self.batches_failed / len(self.batches)
            if share > percent:
                reasons.append(
                    f"{share:.1f}% of mini-batches failed, more than allowed_failed_percent "
                    f"{percent}"
                )
        if reasons:
            raise StepFailure("; ".join(reasons) + ". " + self.first_errors())

    def first_errors(self) -> str:
        lines = []
        for batch in self.failures[:_FIRST_ERRORS]:
            items = ", ".join(batch.items[:3]) + (" ..." if len(batch.items) > 3 else "")
            last = batch.errors[-1].strip().splitlines()[-1] if batch.errors else "?"
            lines.append(f"mini-batch {batch.index} ({items}): {last}")
        more = len(self.failures) - _FIRST_ERRORS
        tail = f" (and {more} more)" if more > 0 else ""
        return "First errors: " + "; ".join(lines) + tail + ". All in logs/failed_items.txt."

    # -- the loop -----------------------------------------------------------------------
    def metrics(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last_metrics < 1.0:
            return
        self.last_metrics = now
        if self.run is None:
            from headrace.sdk.context import get_context

            self.run = get_context()
        total = len(self.batches)
        values = {
            "items_done": self.items_done,
            "items_failed": self.items_failed,
            "items_remaining": self.total_items - self.items_done - self.items_failed,
            "mini_batches_done": self.batches_done,
            "mini_batches_failed": self.batches_failed,
            "mini_batches_remaining": total - self.batches_done - self.batches_failed,
        }
        for name, value in values.items():
            self.run.log(name, value)

    def run_all(self, process_count: int) -> None:
        for _ in range(min(process_count, max(1, len(self.batches)))):
            self.start_worker()
        timeout = self.spec.run_invocation_timeout
        while self.pending or any(w.inflight for w in self.workers):
            now = time.monotonic()
            for worker in list(self.workers):
                if worker.inflight and now >= worker.deadline:
                    batch = self.lost(worker)
                    self.stop_worker(worker, kill=True)
                    self.start_worker()
                    self.attempt_failed(
                        batch,
                        f"TimeoutError: run() took longer than run_invocation_timeout "
                        f"{timeout}s (attempt {batch.attempts + 1}); its worker was replaced",
                    )
            for worker in self.workers:
                while self.can_take(worker):
                    batch = self.pending.popleft()
                    if not self.pool.send(worker, batch.index, batch.payload, self._size(batch)):
                        # It died: the pool reports its end, and `receive` replaces it.
                        worker.broken = True
                        self.pending.appendleft(batch)
                        break
                    if not worker.inflight:
                        worker.deadline = time.monotonic() + timeout
                    worker.inflight.append(batch)
            deadlines = [w.deadline for w in self.workers if w.inflight]
            wait_for = max(0.0, min(deadlines) - time.monotonic()) if deadlines else 1.0
            for worker, event in self.pool.events(self.workers, min(wait_for, 1.0)):
                if worker in self.workers:  # not one stopped for an earlier event
                    self.receive(worker, event)
            self.metrics()

    def can_take(self, worker: Worker) -> bool:
        return (
            worker.ready
            and not worker.broken
            and len(worker.inflight) < _IN_FLIGHT
            and bool(self.pending)
        )

    def lost(self, worker: Worker) -> Batch:
        """The batch run() was working on when `worker` was stopped; the ones sent after it
        go back to the queue untried."""
        batch: Batch = worker.inflight.popleft()
        self.pending.extendleft(reversed(worker.inflight))
        worker.inflight.clear()
        return batch

    def receive(self, worker: Worker, event: Event) -> None:
        """One thing a worker said (see pool.py)."""
        kind = event[0]
        if kind == "ready":
            worker.ready = True
            worker.node = event[1]
        elif kind == "fatal":
            raise StepFailure(event[1])
        elif kind == "ended":
            running = self.lost(worker) if worker.inflight else None
            how = event[1]
            self.stop_worker(worker, kill=True)
            if running is None and not worker.ready:
                raise StepFailure(f"worker {worker.number} {how} during init().")
            self.start_worker()
            if running is not None:
                self.attempt_failed(
                    running,
                    f"WorkerDied: worker {worker.number} {how} during run() "
                    f"(attempt {running.attempts + 1})",
                )
        else:
            batch: Batch = worker.inflight.popleft()
            assert batch.index == event[1]
            if worker.inflight:
                worker.deadline = time.monotonic() + self.spec.run_invocation_timeout
            if kind == "done":
                self.commit(batch, event[2])
            else:
                self.attempt_failed(batch, event[2])

    def shutdown(self) -> None:
        for worker in list(self.workers):
            self.stop_worker(worker, kill=bool(worker.inflight) or not worker.ready)
        self.pool.close()

    def assemble(self) -> None:
        if self.spec.output_action != "append_row" or self.out_dir is None:
            return
        os.makedirs(self.out_dir, exist_ok=True)
        os.close(self.journal)
        target = Path(self.out_dir) / self.spec.append_row_file_name
        temporary = target.with_name(f".{target.name}.tmp")
        where: dict[int, tuple[int, int]] = {}
        with open(self.journal_path, "rb") as journal:
            while header := journal.readline():
                index, size = (int(part) for part in header.split())
                where[index] = (journal.tell(), size)
                journal.seek(size, os.SEEK_CUR)
            with open(temporary, "wb") as out:
                for index in sorted(where):
                    offset, size = where[index]
                    journal.seek(offset)
                    out.write(journal.read(size))
        os.replace(temporary, target)

    def write_logs(self, outcome: str, note: str) -> str:
        with open(self.log_dir / "failed_items.txt", "w") as fh:
            for batch in self.failures:
                fh.write(f"mini-batch {batch.index}, {batch.attempts} failed attempts\n")
                for item in batch.items:
                    fh.write(f"  item: {item}\n")
                for error in batch.errors:
                    fh.write("  error: " + error.strip().replace("\n", "\n    ") + "\n")
        summary = (
            f"ParallelRunStep {outcome}: {len(self.batches)} mini-batches "
            f"({self.batches_done} done, {self.batches_failed} failed), {self.total_items} "
            f"items ({self.items_done} done, {self.items_failed} failed).{note}"
        )
        (self.log_dir / "summary.txt").write_text(summary + "\n")
        return summary


def _fail(reason: str) -> None:
    """The step's error message (see STEP_ERROR_PREFIX), one line."""
    sys.stderr.write(STEP_ERROR_PREFIX + " ".join(reason.split()) + "\n")
    sys.stderr.flush()


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _pool(spec: ParallelSpec, settings: dict[str, Any]) -> tuple[Pool, int, str]:
    """The pool of workers, how many workers, and a note for the summary: Ray actors when
    the step runs on Ray (raypool.py), else processes forked here."""
    address = os.environ.get(ADDRESS_VARIABLE)
    if address:
        from headrace.kinds.parallel.raypool import RayPool

        pool = RayPool(spec, settings, address)
        return pool, pool.per_node * pool.node_count, ""
    per_node = spec.process_count_per_node or os.cpu_count() or 1
    process_count = per_node * spec.node_count
    note = ""
    if spec.node_count > 1:
        note = (
            f" node_count {spec.node_count} on a local target: all {process_count} worker "
            "processes ran on this machine."
        )
    return LocalPool(settings), process_count, note


def main(spec: ParallelSpec) -> int:
    started = time.perf_counter()
    try:
        spec = _parameters(spec)
        out_dir = os.environ.get(f"AZUREML_DATAREFERENCE_{spec.output}") if spec.output else None
        batches = _batches(spec)
    except StepFailure as exc:
        _fail(f"ParallelRunStep: {exc}")
        return 1
    coordinator = Coordinator(spec, batches, out_dir)
    try:
        coordinator.pool, process_count, note = _pool(spec, coordinator.settings)
    except StepFailure as exc:
        _fail(f"ParallelRunStep: {exc}")
        return 1
    _say(
        f"ParallelRunStep: {len(batches)} mini-batches, {coordinator.total_items} items, "
        f"{process_count} {coordinator.pool.what}"
    )
    try:
        coordinator.run_all(process_count)
        coordinator.check_limits(final=True)
    except StepFailure as exc:
        coordinator.shutdown()
        coordinator.metrics(force=True)
        summary = coordinator.write_logs("failed", note + coordinator.pool.placement())
        _say(summary)
        _fail(f"ParallelRunStep: {exc}")
        return 1
    coordinator.shutdown()
    coordinator.assemble()
    shutil.rmtree(coordinator.commit_dir, ignore_errors=True)
    coordinator.metrics(force=True)
    seconds = time.perf_counter() - started
    coordinator.run.log("seconds", round(seconds, 3))
    placement = coordinator.pool.placement()
    summary = coordinator.write_logs("finished", f" {seconds:.3f} s.{note}{placement}")
    _say(summary)
    return 0
