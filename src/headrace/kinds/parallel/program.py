"""The program of a ParallelRunStep's process: cut the inputs into mini-batches, run them in
worker processes (worker.py), and commit each batch's rows exactly once.

- **Workers.** `process_count_per_node` processes (default: the machine's cores) x
  `node_count`, all on this machine: a local target is one node, so node_count > 1 only
  multiplies the processes here (a line in the summary says so). Each calls `init()` once.
  They come from a pool (pool.py: `Pool`, chosen by `_pool`); this module only keeps the
  accounting of batches, and does not know how a worker runs.
- **A batch** goes to one worker (two are queued per worker, so none waits between
  them; for short mini-batches of files, about 20 ms of work, up to 64, sent several at
  a time: `depth`; a worker takes at most its share of the last ones), and
  this process then naps between rounds of results rather than wake for each: `nap`).
  It fails when `run()` raises, returns more rows than items, runs past
  `run_invocation_timeout` (the worker is killed and replaced) or its worker dies; a
  failed batch is tried again (another worker, possibly) until `run_max_try` attempts,
  then its items count as failed. run() returning fewer rows than items counts the
  difference as failed items (SDK v1).
- **Batches** are made as workers need them (batches.py: tables are streamed), so memory
  stays flat: the queue holds only the plan's next batch and the ones to try again.
- **Exactly once, in order.** Only this process writes output. A batch's rows are committed
  once, the first time it succeeds, as one record appended to the commit journal
  (commits.py; the records of one round of results with one write); a timed-out or killed
  attempt's rows are never read. At the end the records are joined in input order into
  `append_row_file_name`. One file, not one per batch: creating a file per mini-batch cost
  more than the batches themselves. The journal is kept in the step run's folder, so a
  retried attempt skips what was committed.
- **Limits.** `error_threshold` counts failed items, `allowed_failed_count` failed
  mini-batches, `allowed_failed_percent` the percent of failed mini-batches (at the end):
  over any, the step stops and fails naming the items and first errors. -1 ignores.
- **Progress and logs** (the step's `logs/`, moved into its run files): metrics, a worker
  table and a progress line on stdout (progress.py); `logs/user/worker_<n>.txt` per worker
  (EntryScript().logger), `logs/failed_items.txt` (each failed batch's items and errors,
  written as they fail), `logs/summary.txt`; metrics `seconds`, `peak_rss_mb_coordinator`
  and `peak_rss_mb_workers` at the end.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import Any

from headrace.engine.raynode import ADDRESS_VARIABLE
from headrace.graph.model import STEP_ERROR_PREFIX
from headrace.kinds.parallel.batches import Batch, Plan, PlanError, plan
from headrace.kinds.parallel.commits import CommitJournal, journal_path
from headrace.kinds.parallel.pool import Event, LocalPool, Pool, StepFailure, Worker
from headrace.kinds.parallel.progress import Progress
from headrace.kinds.parallel.spec import ParallelSpec, parse_size

__all__ = ["main"]

_FIRST_ERRORS = 3
_IN_FLIGHT = 2  # mini-batches sent ahead to a worker (more when they are short: `depth`)
_QUEUED_SECONDS = 0.02
_NAP_SECONDS, _NAP_MIN = 0.002, 0.0002


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


class Coordinator:
    def __init__(self, spec: ParallelSpec, plan: Plan, out_dir: str | None) -> None:
        self.spec = spec
        self.plan = plan
        # Batches to try again (a failed attempt, or sent to a worker that died), ahead of
        # the plan's next ones. Bounded: only batches once in flight come back here.
        self.retry: deque[Batch] = deque()
        self.ahead: Batch | None = None
        self.taken = 0  # the plan's batches before this index were taken (or skipped)
        self.progress = Progress(plan.total_items, plan.total_batches, _say)
        self.failures: list[Batch] = []  # the first few failed batches (their errors)
        self.failure_count = 0
        self.log_dir = Path("logs")
        self.log_dir.mkdir(exist_ok=True)
        self.failed_log = open(self.log_dir / "failed_items.txt", "w")
        self.journal = CommitJournal(journal_path(), plan.signature)
        for rows, items in self.journal.committed.values():
            self._count_committed(rows, items)
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
        self.pool: Pool = LocalPool(self.settings)  # main() picks the pool (see _pool)

    def _count_committed(self, rows: int, items: int) -> None:
        progress = self.progress
        progress.batches_done += 1
        progress.items_done += rows
        progress.items_failed += items - rows

    # -- the batches ----------------------------------------------------------------------
    def has_pending(self) -> bool:
        if self.retry or self.ahead is not None:
            return True
        committed = self.journal.committed
        for batch in self.plan.batches:
            if batch.index not in committed:  # committed by an earlier attempt: skipped
                self.ahead = batch
                return True
        return False

    def take(self) -> Batch:
        if self.retry:
            return self.retry.popleft()
        batch, self.ahead = self.ahead, None
        assert batch is not None
        self.taken = batch.index + 1
        return batch

    def give_back(self, batches: list[Batch]) -> None:
        self.retry.extendleft(reversed(batches))

    # -- workers ----------------------------------------------------------------------------
    def start_worker(self) -> None:
        self.numbers += 1
        self.workers.append(self.pool.start(self.numbers))
        self.progress.worker(self.numbers)

    def stop_worker(self, worker: Worker, kill: bool) -> None:
        self.pool.stop(worker, kill)
        self.workers.remove(worker)
        self.progress.heard(worker.number, None)

    # -- outcomes -----------------------------------------------------------------------
    def commit(self, batch: Batch, rows: list[str]) -> None:
        self.journal.commit(batch.index, rows, batch.size)
        self._count_committed(len(rows), batch.size)
        failed = batch.size - len(rows)
        if failed:
            batch.errors.append(
                f"run() returned {len(rows)} rows for {batch.size} items: "
                f"{failed} counted as failed"
            )
            self.record_failure(batch)
        self.check_limits()

    def attempt_failed(self, batch: Batch, error: str) -> None:
        batch.attempts += 1
        batch.errors.append(error)
        if batch.attempts < self.spec.run_max_try:
            self.retry.appendleft(batch)
            return
        self.progress.batches_failed += 1
        self.progress.items_failed += batch.size
        self.record_failure(batch)
        self.check_limits()

    def record_failure(self, batch: Batch) -> None:
        """Into logs/failed_items.txt at once; the first few kept for the error message."""
        batch.payload = None
        fh = self.failed_log
        fh.write(f"mini-batch {batch.index}, {batch.attempts} failed attempts\n")
        for item in batch.items:
            fh.write(f"  item: {item}\n")
        for error in batch.errors:
            fh.write("  error: " + error.strip().replace("\n", "\n    ") + "\n")
        fh.flush()
        self.failure_count += 1
        if len(self.failures) < _FIRST_ERRORS:
            self.failures.append(batch)

    def check_limits(self, final: bool = False) -> None:
        spec = self.spec
        progress = self.progress
        reasons = []
        if spec.error_threshold != -1 and progress.items_failed > spec.error_threshold:
            reasons.append(
                f"{progress.items_failed} items failed, more than error_threshold "
                f"{spec.error_threshold}"
            )
        allowed = spec.allowed_failed_count
        if allowed is not None and allowed != -1 and progress.batches_failed > allowed:
            reasons.append(
                f"{progress.batches_failed} mini-batches failed, more than allowed_failed_count "
                f"{allowed}"
            )
        percent = spec.allowed_failed_percent
        if final and percent is not None and percent != -1 and progress.total_batches:
            share = 100.0 * progress.batches_failed / progress.total_batches
            if share > percent:
                reasons.append(
                    f"{share:.1f}% of mini-batches failed, more than allowed_failed_percent "
                    f"{percent}"
                )
        if reasons:
            raise StepFailure("; ".join(reasons) + ". " + self.first_errors())

    def first_errors(self) -> str:
        lines = []
        for batch in self.failures:
            items = ", ".join(batch.items[:3]) + (" ..." if len(batch.items) > 3 else "")
            last = batch.errors[-1].strip().splitlines()[-1] if batch.errors else "?"
            lines.append(f"mini-batch {batch.index} ({items}): {last}")
        more = self.failure_count - len(self.failures)
        tail = f" (and {more} more)" if more > 0 else ""
        return "First errors: " + "; ".join(lines) + tail + ". All in logs/failed_items.txt."

    # -- the loop -----------------------------------------------------------------------
    def run_all(self, process_count: int) -> None:
        if not self.has_pending():
            return
        remaining = self.plan.total_batches - len(self.journal.committed)
        for _ in range(min(process_count, max(1, remaining))):
            self.start_worker()
        self.progress.publish(force=True)
        timeout = self.spec.run_invocation_timeout
        while self.has_pending() or any(w.inflight for w in self.workers):
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
                self.feed(worker, timeout)
            deadlines = [w.deadline for w in self.workers if w.inflight]
            wait_for = max(0.0, min(deadlines) - time.monotonic()) if deadlines else 1.0
            nap = self.nap()
            if nap:
                time.sleep(nap)
                wait_for = 0.0
            for worker, event in self.pool.events(self.workers, min(wait_for, 1.0)):
                if worker in self.workers:  # not one stopped for an earlier event
                    self.receive(worker, event)
            self.journal.flush()
            self.progress.publish()

    def nap(self) -> float:
        """How long to sleep before reading what the workers said, rather than wake as each
        mini-batch ends: half the work every worker has queued, when all have mini-batches
        shorter than `_NAP_SECONDS` queued (up to that; 0.0: wait for the first word). The
        results of the mini-batches that end meanwhile are read and committed together."""
        if not self.plan.light or not self.workers:
            return 0.0
        ahead = min(
            len(w.inflight) * w.pace if w.ready and not w.broken and w.pace < _NAP_SECONDS else 0.0
            for w in self.workers
        )
        nap = min(_NAP_SECONDS, ahead / 2)
        return nap if nap >= _NAP_MIN else 0.0

    def feed(self, worker: Worker, timeout: float) -> None:
        """Send `worker` the next mini-batches, up to its depth, in one message. Refilled when
        half its queue is done, so several go at once when the queue is deeper than 2."""
        depth = self.depth(worker)
        if not worker.ready or worker.broken or len(worker.inflight) > depth // 2:
            return
        # Near the end, a worker takes at most its share of what is left, so none is left
        # with a long queue while the others have nothing.
        unsent = self.plan.total_batches - self.taken + len(self.retry)
        share = max(1, -(-unsent // len(self.workers)))
        batches: list[Batch] = []
        room = min(depth - len(worker.inflight), share)
        while len(batches) < room and self.has_pending():
            batches.append(self.take())
        if not batches:
            return
        if not self.pool.send(worker, [(b.index, b.payload, b.size) for b in batches]):
            # It died: the pool reports its end, and `receive` replaces it.
            worker.broken = True
            self.give_back(batches)
            return
        if not worker.inflight:
            worker.heard_at = time.monotonic()
            worker.deadline = worker.heard_at + timeout
            self.progress.heard(worker.number, batches[0].index)
        worker.inflight.extend(batches)

    def depth(self, worker: Worker) -> int:
        """How many mini-batches `worker` is given ahead: 2, or, for lists of paths, more
        when its mini-batches are short (about `_QUEUED_SECONDS` of work queued, so it does
        not wait for this process between them), up to what the pool allows."""
        if worker.pace <= 0.0 or not self.plan.light:
            return _IN_FLIGHT
        ahead = _IN_FLIGHT + int(_QUEUED_SECONDS / worker.pace)
        return min(ahead, max(_IN_FLIGHT, self.pool.max_in_flight))

    def lost(self, worker: Worker) -> Batch:
        """The batch run() was working on when `worker` was stopped; the ones sent after it
        go back to the queue untried."""
        batch: Batch = worker.inflight.popleft()
        self.give_back(list(worker.inflight))
        worker.inflight.clear()
        return batch

    def receive(self, worker: Worker, event: Event) -> None:
        """One thing a worker said (see pool.py)."""
        kind = event[0]
        if kind == "ready":
            worker.ready = True
            worker.node = event[1]
            self.progress.worker(worker.number).node = str(event[1])
            self.progress.heard(worker.number, None)
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
            following = worker.inflight[0].index if worker.inflight else None
            now = time.monotonic()
            took, worker.heard_at = now - worker.heard_at, now
            worker.pace = took if worker.pace <= 0.0 else 0.8 * worker.pace + 0.2 * took
            if worker.inflight:
                worker.deadline = now + self.spec.run_invocation_timeout
            if kind == "done":
                self.progress.heard(worker.number, following, "done")
                self.commit(batch, event[2])
            else:
                self.progress.heard(worker.number, following, "failed")
                self.attempt_failed(batch, event[2])

    def shutdown(self) -> None:
        for worker in list(self.workers):
            self.stop_worker(worker, kill=bool(worker.inflight) or not worker.ready)
        self.pool.close()

    def assemble(self) -> None:
        if self.spec.output_action != "append_row" or self.out_dir is None:
            self.journal.close()
            return
        os.makedirs(self.out_dir, exist_ok=True)
        self.journal.assemble(Path(self.out_dir) / self.spec.append_row_file_name)

    def write_summary(self, outcome: str, note: str) -> str:
        self.failed_log.close()
        progress = self.progress
        resumed = self.journal.resumed
        if resumed:
            note += (
                f" {resumed} mini-batches were committed by an earlier attempt and not run again."
            )
        summary = (
            f"ParallelRunStep {outcome}: {progress.total_batches} mini-batches "
            f"({progress.batches_done} done, {progress.batches_failed} failed), "
            f"{progress.total_items} items ({progress.items_done} done, "
            f"{progress.items_failed} failed).{note}"
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


def _peak_rss() -> tuple[float, float]:
    """Peak resident memory (MB) of this process and of its largest ended worker."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return round(own, 1), round(children, 1)


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
        batches = plan(spec)
    except (StepFailure, PlanError) as exc:
        _fail(f"ParallelRunStep: {exc}")
        return 1
    coordinator = Coordinator(spec, batches, out_dir)
    try:
        coordinator.pool, process_count, note = _pool(spec, coordinator.settings)
    except StepFailure as exc:
        coordinator.journal.close()
        _fail(f"ParallelRunStep: {exc}")
        return 1
    resumed = coordinator.journal.resumed
    _say(
        f"ParallelRunStep: {batches.total_batches} mini-batches, {batches.total_items} items, "
        f"{process_count} {coordinator.pool.what}"
        + (
            f"; {resumed} mini-batches committed by an earlier attempt are skipped"
            if resumed
            else ""
        )
    )
    progress = coordinator.progress
    try:
        coordinator.run_all(process_count)
        coordinator.check_limits(final=True)
    except StepFailure as exc:
        coordinator.shutdown()
        coordinator.journal.close()
        progress.publish(force=True)
        summary = coordinator.write_summary("failed", note + coordinator.pool.placement())
        _say(summary)
        _fail(f"ParallelRunStep: {exc}")
        return 1
    coordinator.shutdown()
    coordinator.assemble()
    coordinator.journal.remove()
    shutil.rmtree(".parallel", ignore_errors=True)
    progress.publish(force=True)
    seconds = time.perf_counter() - started
    run = progress._context()
    run.log("seconds", round(seconds, 3))
    own, workers = _peak_rss()
    workers = max(workers, coordinator.pool.peak_rss_mb())  # Ray actors are not children
    run.log("peak_rss_mb_coordinator", own)
    run.log("peak_rss_mb_workers", workers)
    placement = coordinator.pool.placement()
    summary = coordinator.write_summary("finished", f" {seconds:.3f} s.{note}{placement}")
    _say(summary)
    return 0
