"""The agent: claims queued runs from the metadata store and drives them to the end.

One loop, one thread. Each pass it claims runs (queued ones, and running ones whose agent
died), reaps ended processes, asks every run's orchestrator for steps to start within each
compute target's free slots, starts them through the executors, records what happened in
one transaction, enforces timeouts, honours cancel requests, ingests what running scripts
log, heartbeats, and waits until a process ends (pidfd) or a short poll interval passes.
With nothing to do for `idle_seconds` it exits.

Each pass's records are written in one commit before its processes start: the ending of
the step whose slot is refilled and every start of the pass. A step process therefore never
runs without its attempt recorded as Running; its pid is recorded a moment later (most short
steps end first), so crash recovery finds an unrecorded one by the HEADRACE_RUN_ID in its
environment. An agent that claims a run whose agent died adopts the attempts whose
processes still run or ended on their own, and reruns only those whose process never
finished (`_recover`, engine/reaper.py).

Stopping: a first SIGTERM or SIGINT drains the agent. It claims nothing more and starts no
new step, lets running steps finish for up to `grace_seconds`, then kills what still runs
and gives its runs back (status Running, no agent), so any other agent resumes them with the
killed attempts requeued as their next attempt, exactly as after a crash. A second signal
ends the grace period at once. With `grace_seconds=0` (the detached agent's default) the
first signal stops at once.

`python -m headrace.engine.agent --workspace PATH` runs one detached for a workspace folder
(see `launcher.ensure_agent`); `--slot N` runs an additional agent beside it (several agents
share the store's claims; see `claim_runs`), and a server's agents are such processes,
supervised by `engine.pool.AgentPool`.
"""

# ruff: noqa: E402 (the collector is paused before the imports, see below)

from __future__ import annotations

import gc

# Started as a program (`python -m headrace.engine.agent`): no collections while it imports
# (about 30 ms of a cold start on the reference machine); main() collects again once the
# store is open, with the startup objects frozen out of the collector's way.
_STARTED_AS_PROGRAM = __name__ == "__main__"
if _STARTED_AS_PROGRAM:
    gc.disable()

import argparse
import contextlib
import logging
import os
import selectors
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from headrace.config import agent_idle_seconds, agent_poll_seconds, heartbeat_timeout_seconds
from headrace.engine.agentserver import RequestServer, listen_for_requests
from headrace.engine.cleanup import DeferredRemover
from headrace.engine.commit import discard, discard_run, finalize, keep_snapshot_files
from headrace.engine.endings import StepEnd, journal_records
from headrace.engine.environments import FAILED_MARKER
from headrace.engine.executors.base import Executor, StepProcess
from headrace.engine.executors.choose import UnavailableExecutor, make_executor
from headrace.engine.executors.local import open_log, wait_for_logger
from headrace.engine.isolation import (
    OFF,
    Isolation,
    Sandbox,
    add_isolation_arguments,
    isolation_from_arguments,
    make_undumpable,
)
from headrace.engine.launcher import listen_for_wake, wake_agent
from headrace.engine.orchestrator import RunOrchestrator
from headrace.engine.outbox import OutboxSender
from headrace.engine.processes import (
    agent_identity,
    is_local_agent_dead,
    is_process_alive,
    kill_group,
    signal_escaped,
    step_processes,
)
from headrace.engine.reaper import (
    AdoptedProcess,
    exit_record_path,
    find_reaper,
    is_reaper,
    read_exit_record,
)
from headrace.engine.runtime import (
    PreparedStep,
    StepTask,
    prepare,
    prepared_again,
)
from headrace.engine.workfolders import WorkFolders
from headrace.errors import DatastorePathError, StoreError
from headrace.store.artifacts import STDERR_LOG
from headrace.store.journal import JOURNAL_NAME, JournalEntry, read_journal
from headrace.store.orm import utcnow
from headrace.store.records import Status
from headrace.store.step_runs import StepWrites
from headrace.store.steplogs import COMBINED_LOG, combined_lines
from headrace.store.workspace_store import WorkspaceStore

__all__ = ["Agent", "main"]

log = logging.getLogger("headrace.agent")

TERMINATE_GRACE_SECONDS = 5.0
HEARTBEAT_SECONDS = 5.0
JOURNAL_SECONDS = 1.0
CANCEL_CHECK_SECONDS = 0.25
WAKE = "wake"  # selector key data of the wake-up socket (`launcher.wake_agent`)


@dataclass
class Active:
    """One running attempt."""

    task: StepTask
    prepared: PreparedStep
    process: StepProcess
    orchestrator: RunOrchestrator
    deadline: float | None
    stop_reason: str | None = None
    kill_at: float | None = None
    journal_offset: int = 0
    ended_at: datetime | None = None
    journal: list[JournalEntry] = field(default_factory=list)


class Agent:
    def __init__(
        self,
        ws: WorkspaceStore,
        *,
        idle_seconds: float | None = None,
        grace_seconds: float = 0.0,
        parent_pid: int | None = None,
        step_nice: int = 0,
        isolation: Isolation = OFF,
        request_listener: socket.socket | None = None,
    ) -> None:
        self.ws = ws
        self.step_nice = step_nice  # added to the steps' niceness (see LocalExecutor)
        self.sandbox = Sandbox(isolation, ws.root) if isolation.enabled else None
        owner = None
        if self.sandbox is not None:
            make_undumpable()  # steps of this user cannot read this agent's environment
            owner = self.sandbox.owner
        self.id = agent_identity()
        self.idle_seconds = agent_idle_seconds() if idle_seconds is None else idle_seconds
        self.grace_seconds = grace_seconds
        self.parent_pid = parent_pid  # a supervised agent drains when its parent is gone
        self.drain_deadline: float | None = None
        self.poll_seconds = agent_poll_seconds()
        self.runs: dict[str, RunOrchestrator] = {}
        self.active: dict[str, Active] = {}
        self.executors: dict[str, Executor] = {}
        self.selector = selectors.DefaultSelector()
        self.remover = DeferredRemover()
        self.folders = WorkFolders(self.remover.remove, owner)
        self.writes = StepWrites()
        self._stop = False
        self._dead_agents: list[str] = []
        self._woken = False
        self._wrote = False  # step records were committed in this pass of the loop
        self._runs_changed = False  # a run was claimed or ended in this pass
        self._wake_socket = listen_for_wake(ws.root)
        if self._wake_socket is not None:
            self.selector.register(self._wake_socket, selectors.EVENT_READ, WAKE)
        # Submits and run state for processes of this user (engine/agentserver.py).
        self.requests = RequestServer(
            ws,
            self.selector,
            on_work=self._wake_up,
            driven=lambda: self.runs,
            listener=request_listener,
        )
        # Notifications and run triggers of ended runs, sent by a thread (engine/outbox.py).
        self.outbox = OutboxSender(ws)

    # -- the loop --------------------------------------------------------------------------
    def _wake_up(self) -> None:
        self._woken = True

    def _apply_writes(self) -> None:
        """Commit the step records queued so far (noting that something changed)."""
        if self.writes:
            self._wrote = True
        self.ws.meta.apply_step_writes(self.writes)

    def request_stop(self, *_: object) -> None:
        """Drain (first call, when there is a grace period), or stop now."""
        if self.drain_deadline is None and self.grace_seconds > 0:
            self.drain_deadline = time.monotonic() + self.grace_seconds
        else:
            self._stop = True
        if self._wake_socket is not None:
            # A signal does not end a select() in progress (PEP 475): wake it up.
            wake_agent(self.ws.root)

    def run(self) -> None:
        """Work until idle for `idle_seconds` (or asked to stop)."""
        idle_since = time.monotonic()
        next_claim = next_beat = next_cancel = next_journal = 0.0
        self._refresh_dead_agents()
        self.outbox.start()
        while not self._stop:
            now = time.monotonic()
            draining = self.drain_deadline is not None
            if draining and (not self.active or now >= (self.drain_deadline or 0.0)):
                break  # drained, or the grace period is over: `_shutdown` gives the rest back
            if now >= next_beat:
                self._heartbeat()
                next_beat = now + HEARTBEAT_SECONDS
            if draining:
                self._woken = False
            elif now >= next_claim or self._woken:
                self._woken = False
                self._claim()
                # While busy, new runs wait a little longer: each look costs a query.
                next_claim = now + self.poll_seconds * (4 if self.runs else 1)
            if self.runs and now >= next_cancel:
                self._check_cancel_requests()
                next_cancel = now + CANCEL_CHECK_SECONDS
            self._reap()
            if not draining:
                self._dispatch()
            self._apply_writes()
            self._enforce_deadlines()
            if self.active and time.monotonic() >= next_journal:
                self._ingest_journals()
                next_journal = time.monotonic() + JOURNAL_SECONDS
            if self.runs:
                if self._finish_done_runs():
                    self._runs_changed = True
                if not self.runs:
                    next_claim = 0.0  # idle again: look for new runs at the quick pace
            for orchestrator in self.runs.values():
                orchestrator.record_processes()
            # Waits on runs that changed are answered in the pass that recorded the change.
            self.requests.service(self._wrote or self._runs_changed, self._runs_changed)
            self._wrote = self._runs_changed = False
            if self.runs or self.active or self.outbox.busy(within=self.idle_seconds):
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since >= self.idle_seconds:
                break
            self._wait(self.poll_seconds)
        self._shutdown()

    # -- claiming and recovery -------------------------------------------------------------
    def _capacity(self) -> int:
        return sum(e.capacity for e in self.executors.values()) or (os.cpu_count() or 1)

    def _claim(self) -> None:
        if len(self.runs) >= 4 * self._capacity():
            return
        stale = utcnow() - timedelta(seconds=heartbeat_timeout_seconds())
        limit = max(1, self._capacity() - len(self.active))
        for record in self.ws.meta.claim_runs(
            self.id, limit=limit, stale_before=stale, dead_agents=self._dead_agents
        ):
            try:
                orchestrator = RunOrchestrator(self.ws, record, self.writes)
            except Exception as exc:
                log.exception("cannot load run %s", record.id)
                self.ws.meta.finish_pipeline_run(
                    record.id, Status.FAILED, {"message": f"The run cannot be loaded: {exc}"}
                )
                self._runs_changed = True
                continue
            adopted: list[Active] = []
            if orchestrator.interrupted():
                adopted = self._recover(orchestrator)
            if orchestrator.cancel_requested:
                orchestrator.request_cancel()
                for active in adopted:
                    if active.process.poll() is None:  # one that ended is kept as it ended
                        self._stop_attempt(active, "cancel")
            self.runs[record.id] = orchestrator
            self._runs_changed = True  # claimed: Running now

    def _refresh_dead_agents(self) -> None:
        self._dead_agents = [a for a in self.ws.meta.running_agents() if is_local_agent_dead(a)]

    def _recover(self, orchestrator: RunOrchestrator) -> list[Active]:
        """Take over the attempts a dead agent left Running (engine/reaper.py): adopt those
        whose process still runs or ended on its own, requeue the others saying why, stop
        every other process it left for this run and remove what those attempts left."""
        run_id = orchestrator.run.id
        leftovers = step_processes(run_id)
        by_step: dict[str, list[int]] = {}
        for leftover, step_run_id in leftovers.items():
            by_step.setdefault(step_run_id, []).append(leftover)
        running = [r for r in orchestrator.interrupted() if r.status == Status.RUNNING]
        offsets = self.ws.meta.journal_offsets([r.id for r in running])
        adopted: list[Active] = []
        reasons: dict[str, str] = {}
        for record in running:
            pid: int | None = record.pid
            started: float | None = record.pid_started
            if not pid:
                pid, started = find_reaper(by_step.get(record.id, [])) or (None, None)
            record_path = exit_record_path(self.ws.artifacts.run_dir(record.id), record.attempt)
            ended = read_exit_record(record_path) is not None
            alive = bool(pid) and is_process_alive(pid, started) and is_reaper(pid or 0)
            if not ended and not alive:
                reasons[record.id] = (
                    "its process was stopped with the agent that ran it, before it ended"
                    if pid
                    else "no process of it was found on this machine and it left no exit code "
                    "(its agent died before starting it, or it ran on Ray)"
                )
                continue
            task = orchestrator.adopt(record, "running" if alive else "ended", pid)
            active = self._watch(
                orchestrator,
                task,
                prepared_again(self.ws, task),
                AdoptedProcess(pid, started, record_path),
                started_at=record.started_at,
            )
            active.journal_offset = offsets.get(record.id, 0)
            adopted.append(active)
            log.info(
                "run %s: adopted attempt %d of step %r (%s)",
                run_id,
                record.attempt + 1,
                record.name,
                "still running" if alive else "it ended while no agent watched",
            )
        kept = {a.task.step_run_id for a in adopted}
        for leftover, step_run_id in leftovers.items():
            if step_run_id not in kept:
                with contextlib.suppress(OSError):
                    kill_group(os.getpgid(leftover))
        for record in running:
            if record.id in reasons:
                if record.pid and is_process_alive(record.pid, record.pid_started):
                    kill_group(record.pid)
                self._note_rerun(record.id, record.attempt, reasons[record.id])
        discard_run(
            self.ws, run_id, orchestrator.output_datastores(), tuple(a.task for a in adopted)
        )
        orchestrator.requeue_interrupted(reasons)
        return adopted

    def _note_rerun(self, step_run_id: str, attempt: int, reason: str) -> None:
        """Say in the step's logs and the agent's why an attempt runs again."""
        line = f"--- headrace: attempt {attempt + 1} did not finish: {reason}; it runs again ---"
        log.warning("step run %s: %s", step_run_id, line.strip("- "))
        run_dir = self.ws.artifacts.run_dir(step_run_id)
        with contextlib.suppress(OSError):
            with open_log(run_dir / STDERR_LOG) as err:
                err.write(f"\n{line}\n".encode())
            with open_log(run_dir / COMBINED_LOG) as combined:
                combined.write(combined_lines("headrace", line))

    def _heartbeat(self) -> None:
        if not self.ws.layout.config_path.exists():
            # The workspace folder was deleted under us: nothing here can finish any more.
            log.warning("workspace %s is gone; stopping", self.ws.root)
            self._stop = True
            return
        if self.parent_pid is not None and os.getppid() != self.parent_pid:
            if self.drain_deadline is None:
                log.warning("the server that started this agent is gone; draining")
                self.request_stop()
        self._refresh_dead_agents()
        if not self.runs:
            return
        held = set(self.ws.meta.heartbeat(self.id, list(self.runs)))
        for run_id in [r for r in self.runs if r not in held]:
            # Another agent took this run over (we looked dead); stop working on it.
            log.warning("run %s was taken over by another agent", run_id)
            for key, active in list(self.active.items()):
                if active.orchestrator.run.id == run_id:
                    active.process.kill()
                    self._forget(key)
            del self.runs[run_id]

    def _check_cancel_requests(self) -> None:
        for run_id in self.ws.meta.cancel_requests(list(self.runs)):
            orchestrator = self.runs[run_id]
            if orchestrator.cancel_requested and not orchestrator.pending:
                continue
            orchestrator.request_cancel()
            for active in self.active.values():
                if active.orchestrator is orchestrator and active.stop_reason is None:
                    self._stop_attempt(active, "cancel")

    # -- starting --------------------------------------------------------------------------
    def _executor(self, target: str) -> Executor | None:
        executor = self.executors.get(target)
        if isinstance(executor, UnavailableExecutor) and executor.expired:
            executor = None  # try to connect again
        if executor is None:
            record = self.ws.meta.find_compute_target(target)
            if record is None:
                return None
            executor = make_executor(record, self.ws.config, self.step_nice, self.sandbox)
            self.executors[target] = executor
        return executor

    def _free_slots(self, orchestrator: RunOrchestrator) -> dict[str, int]:
        busy: dict[str, int] = {}
        for active in self.active.values():
            target = active.task.node.compute_target
            busy[target] = busy.get(target, 0) + 1
        slots: dict[str, int] = {}
        for target in orchestrator.compute_targets:
            executor = self._executor(target)
            # An unknown target gets one slot, so the step starts and fails with a clear error.
            capacity = executor.capacity if executor else 1
            slots[target] = capacity - busy.get(target, 0)
        return slots

    def _dispatch(self) -> None:
        for orchestrator in list(self.runs.values()):
            if not orchestrator.has_work:
                continue
            try:
                tasks = orchestrator.next_tasks(self._free_slots(orchestrator))
            except StoreError:
                raise  # the database is gone: stop, and let the next agent resume
            except Exception as exc:
                log.exception("planning failed for run %s", orchestrator.run.id)
                self._fail_run(orchestrator, f"headrace could not plan the run's steps: {exc}")
                continue
            for task in tasks:
                self._start(orchestrator, task)

    def _start(self, orchestrator: RunOrchestrator, task: StepTask) -> None:
        executor = self._executor(task.node.compute_target)
        if executor is None:
            orchestrator.attempt_failed_to_start(
                task,
                f"Step {task.node.name!r}: compute target {task.node.compute_target!r} does not "
                "exist in this workspace; create it with ComputeTarget.create(...)",
            )
            return
        if self.writes:
            # A step never runs before the steps it depends on are recorded as finished
            # (after a crash those are never repeated), nor before its own attempt is
            # recorded (after a crash it is adopted, never started again: engine/reaper.py).
            # One commit holds every start of this pass: the first start makes it.
            self._apply_writes()
        try:
            isolated = getattr(executor, "isolated", False)
            fetch = executor.fetches_inputs
            prepared = prepare(self.ws, task, self.folders, fetch_remotely=fetch, isolated=isolated)
            process = executor.start(prepared)
        except Exception as exc:
            log.exception("cannot start step %s", task.step_run_id)
            discard(self.ws, task)
            orchestrator.attempt_failed_to_start(
                task, f"Step {task.node.name!r} could not be started: {exc}"
            )
            return
        self._watch(orchestrator, task, prepared, process)
        orchestrator.started(task, process, prepared.display_argv)

    def _watch(
        self,
        orchestrator: RunOrchestrator,
        task: StepTask,
        prepared: PreparedStep,
        process: StepProcess,
        started_at: datetime | None = None,
    ) -> Active:
        """Wait for a started (or adopted: `started_at`) attempt, with its timeout."""
        timeout = task.node.timeout_seconds
        deadline = None
        if timeout:
            ran = (utcnow() - started_at).total_seconds() if started_at else 0.0
            deadline = time.monotonic() + max(0.0, timeout - ran)
        active = Active(
            task=task,
            prepared=prepared,
            process=process,
            orchestrator=orchestrator,
            deadline=deadline,
        )
        self.active[task.step_run_id] = active
        handle = process.wait_handle()
        if handle is not None:
            self.selector.register(handle, selectors.EVENT_READ, task.step_run_id)
        return active

    # -- waiting and ending ----------------------------------------------------------------
    def _wait(self, timeout: float) -> None:
        if self.active:
            # Running steps leave the loop idle: a good moment for deferred work.
            for orchestrator in self.runs.values():
                orchestrator.explain_waiting()
            self.remover.work(timeout / 2)
        now = time.monotonic()
        if self.drain_deadline is not None:
            timeout = min(timeout, max(0.0, self.drain_deadline - now))
        for active in self.active.values():
            for moment in (active.deadline, active.kill_at):
                if moment is not None:
                    timeout = min(timeout, max(0.0, moment - now))
        for key, _ in self.selector.select(timeout):
            if key.data == WAKE:
                self._woken = True
                with contextlib.suppress(OSError):
                    while self._wake_socket is not None and self._wake_socket.recv(64):
                        pass
            elif self.requests.owns(key):
                self.requests.ready(key)

    def _reap(self) -> None:
        ended: list[tuple[Active, int]] = []
        for key, active in list(self.active.items()):
            code = active.process.poll()
            if code is not None:
                self._forget(key)
                ended_at = getattr(active.process, "ended_at", None)  # an adopted attempt's
                active.ended_at = (ended_at and ended_at()) or utcnow()
                ended.append((active, code))
        for active, code in ended:
            self._ended(active, code)

    def _forget(self, key: str) -> None:
        active = self.active.pop(key)
        handle = active.process.wait_handle()
        if handle is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(handle)
        active.process.close()

    def _ended(self, active: Active, code: int) -> None:
        task = active.task
        succeeded = code == 0 and active.stop_reason is None
        # The step's logger writes on for a moment after the step: read its logs after it
        # (not long for a stopped attempt: what it left running is killed next).
        wait_for_logger(active.prepared.combined_path, 0.5 if active.stop_reason else 3.0)
        if active.stop_reason is not None:
            # A stopped attempt's daemons (children that left its process group) go too.
            signal_escaped(task.step_run_id, signal.SIGKILL)
        error: str | None = None
        try:
            finalize(self.ws, active.prepared, succeeded, self.folders)
        except Exception as exc:
            log.exception("cannot keep the results of step %s", task.step_run_id)
            succeeded = False
            active.stop_reason = active.stop_reason or "finalize"
            error = f"Step {task.node.name!r} ran, but its outputs could not be kept: {exc}"
        entries, _ = read_journal(
            self.ws.artifacts.run_dir(task.step_run_id) / JOURNAL_NAME, active.journal_offset
        )
        stderr_text = ""
        if not succeeded:
            with contextlib.suppress(DatastorePathError):  # a link the step left: not followed
                raw = self.ws.artifacts.read_bytes(task.step_run_id, "user_logs/stderr.txt")
                stderr_text = raw[-16384:].decode(errors="replace")
                keep_snapshot_files(self.ws, task, stderr_text)
                if error is None and active.stop_reason is None:
                    error = self._environment_failure(task)
        lost = active.process.lost
        if lost and active.stop_reason is None and error is None:
            active.stop_reason = "node_lost"
            error = f"Step {task.node.name!r} was interrupted: {lost}"
        if active.process.not_started and error is None:
            error = f"Step {task.node.name!r} did not start: {active.process.not_started}"
        end = StepEnd(
            exit_code=code,
            stopped_for=active.stop_reason if active.stop_reason != "finalize" else None,
            timeout_seconds=task.node.timeout_seconds,
            error_message=error,
            journal=tuple(entries),
            ended_at=active.ended_at,
        )
        orchestrator = active.orchestrator
        status = orchestrator.step_ended(task, end, stderr_text)
        if status == Status.FAILED and not orchestrator.run.continue_on_step_failure:
            for other in self.active.values():
                if other.orchestrator is orchestrator and other.stop_reason is None:
                    self._stop_attempt(other, "failfast")

    def _environment_failure(self, task: StepTask) -> str | None:
        """The step's error when its environment could not be built (envrun's marker), so
        it reads as that rather than as the script's exit code."""
        raw = self.ws.artifacts.read_bytes(task.step_run_id, FAILED_MARKER, limit=4096)
        if not raw:
            return None
        said = raw.decode(errors="replace").strip()
        return f"Step {task.node.name!r}: environment build failed: {said}"

    def _stop_attempt(self, active: Active, reason: str) -> None:
        active.stop_reason = reason
        active.process.terminate()
        signal_escaped(active.task.step_run_id, signal.SIGTERM)
        active.kill_at = time.monotonic() + TERMINATE_GRACE_SECONDS

    def _enforce_deadlines(self) -> None:
        now = time.monotonic()
        for active in list(self.active.values()):
            if active.kill_at is not None and now >= active.kill_at:
                active.process.kill()
                active.kill_at = None
            elif (
                active.stop_reason is None
                and active.deadline is not None
                and now >= active.deadline
            ):
                self._stop_attempt(active, "timeout")

    def _ingest_journals(self) -> None:
        for active in self.active.values():
            path = self.ws.artifacts.run_dir(active.task.step_run_id) / JOURNAL_NAME
            entries, offset = read_journal(path, active.journal_offset)
            if not entries:
                continue
            metrics, tags = journal_records(
                entries, active.task.step_run_id, active.task.pipeline_run_id
            )
            # The offset is written with the metrics: an agent that adopts the attempt
            # after this one died reads on from there, so none is recorded twice.
            self.ws.meta.record_journal(metrics, tags, {active.task.step_run_id: offset})
            active.journal_offset = offset

    def _finish_done_runs(self) -> bool:
        """End the runs that are done; whether any was."""
        finished = False
        for run_id, orchestrator in list(self.runs.items()):
            if orchestrator.done:
                finished = True
                # A finished run leaves no working folders or staged outputs behind.
                self.remover.drain()
                self.folders.forget_run(run_id)
                discard_run(self.ws, run_id, orchestrator.output_datastores())
                try:
                    orchestrator.finish()
                finally:
                    del self.runs[run_id]
                self.outbox.wake()
        return finished

    def _fail_run(self, orchestrator: RunOrchestrator, message: str) -> None:
        for key, active in list(self.active.items()):
            if active.orchestrator is orchestrator:
                active.process.kill()
                self._forget(key)
        self._apply_writes()
        self.ws.meta.finish_pipeline_run(orchestrator.run.id, Status.FAILED, {"message": message})
        self._runs_changed = True
        self.runs.pop(orchestrator.run.id, None)
        self.outbox.wake()

    def _shutdown(self) -> None:
        """Stop: kill running attempts and give their runs back so another agent resumes them.

        A killed attempt's record stays Running and its staged outputs are removed; the agent
        that claims the run next requeues it as its next attempt (as after a crash), so no
        step is lost and no half-written output is ever kept.
        """
        # First: a request not yet read is refused (its client does the work itself).
        self.requests.close()
        for active in self.active.values():
            active.process.kill()
        for key, active in list(self.active.items()):
            deadline = time.monotonic() + 5
            while active.process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            self._forget(key)
            # Children that left the step's process group go too.
            signal_escaped(active.task.step_run_id, signal.SIGKILL)
            discard(self.ws, active.task)
        self._apply_writes()
        for run_id in list(self.runs):
            self.ws.meta.release_run(run_id, self.id)
        self.runs.clear()
        self.remover.drain()
        self.outbox.stop()
        if self._wake_socket is not None:
            self.selector.unregister(self._wake_socket)
            self._wake_socket.close()
            self._wake_socket = None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m headrace.engine.agent")
    parser.add_argument("--workspace", required=True, type=Path)
    parser.add_argument(
        "--idle-seconds", type=float, default=None, help="exit after this long idle ('inf': never)"
    )
    parser.add_argument(
        "--slot",
        type=int,
        default=0,
        help="agent slot: 0 is the workspace's usual agent, N > 0 an additional one",
    )
    parser.add_argument(
        "--grace-seconds",
        type=float,
        default=0.0,
        help="on SIGTERM/SIGINT, let running steps finish this long before requeueing them",
    )
    parser.add_argument(
        "--wait-for-slot",
        action="store_true",
        help="wait while another agent holds the slot instead of exiting",
    )
    parser.add_argument(
        "--parent-pid", type=int, default=None, help="drain and exit when this parent is gone"
    )
    parser.add_argument(
        "--step-nice",
        type=int,
        default=0,
        help="run steps this much nicer (lower CPU priority) than the agent (0-19)",
    )
    add_isolation_arguments(parser)
    args = parser.parse_args(argv)
    if args.slot < 0:
        parser.error("--slot must be 0 or more")
    isolation = isolation_from_arguments(args)
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s %(process)d slot{args.slot} %(levelname)s %(message)s",
    )
    from headrace.engine.launcher import hold_agent_lock

    stop_before_start = False

    def stop_waiting(*_: object) -> None:
        nonlocal stop_before_start
        stop_before_start = True

    ws: WorkspaceStore | None = None
    while True:
        signal.signal(signal.SIGTERM, stop_waiting)
        signal.signal(signal.SIGINT, stop_waiting)
        with hold_agent_lock(args.workspace, args.slot) as held:
            if not held:
                if not args.wait_for_slot or stop_before_start:
                    return 0  # another agent serves this slot
                # A detached agent started before the server holds the slot: it exits when
                # idle, and this one takes over. Meanwhile it serves the workspace too.
                time.sleep(0.2)
                continue
            if stop_before_start:
                return 0
            # Listening before the store opens: a submit that finds this agent's lock held
            # connects at once and waits in the backlog (engine/agentserver.py).
            listener = listen_for_requests(args.workspace)
            ws = ws or WorkspaceStore.open(args.workspace)
            agent = Agent(
                ws,
                idle_seconds=args.idle_seconds,
                grace_seconds=args.grace_seconds,
                parent_pid=args.parent_pid,
                step_nice=max(0, min(19, args.step_nice)),
                isolation=isolation,
                request_listener=listener,
            )
            signal.signal(signal.SIGTERM, agent.request_stop)
            signal.signal(signal.SIGINT, agent.request_stop)
            if _STARTED_AS_PROGRAM and not gc.isenabled():  # paused while it imported
                gc.freeze()
                gc.enable()
            if stop_before_start:
                # Stopped while the workspace opened: drain at once instead of serving on
                # (the server would wait out the grace period, then kill this agent).
                agent.request_stop()
            log.info("agent %s serving %s (slot %d)", agent.id, args.workspace, args.slot)
            agent.run()
        # The lock is released before this check: a submit that saw the lock held has
        # already queued its run, so it is found here; one after the release spawns an agent.
        stopped = agent._stop or agent.drain_deadline is not None
        if stopped or not ws.meta.has_claimable_runs():
            return 0


if __name__ == "__main__":
    sys.exit(main())
