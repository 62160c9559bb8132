"""`RunOrchestrator`: walks one pipeline run's DAG and records every decision.

For each step whose predecessors finished it computes the fingerprint, then either reuses an
earlier successful run (recording which one and why) or plans a new attempt, explaining why
the step runs. It reacts to ended attempts (success, failure, retry, timeout, cancel),
applies `continue_on_step_failure`, and decides the run's final status. After an agent crash
it adopts the attempts whose processes still run or ended on their own (`adopt`) and
re-queues the others (`requeue_interrupted`); the agent decides which (engine/reaper.py).
Why a step runs or is reused is worded in engine/reasons.py; where an attempt's outputs go,
how they are recorded and registered, in engine/stepoutputs.py.

It does not start processes: the agent owns the executors and asks for work with
`next_tasks(free_slots)`. Every state change is queued, with its event, on the agent's
`StepWrites`, which the agent applies in one transaction per pass of its loop.
"""

from __future__ import annotations

import functools
import sys
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from headrace.engine import fingerprint as fp
from headrace.engine.endings import StepEnd, failure_record, journal_records, previous_attempt
from headrace.engine.environments import step_identity
from headrace.engine.executors.base import StepProcess
from headrace.engine.graphs import load_graph
from headrace.engine.interpreters import Interpreter, current
from headrace.engine.planning import (
    RECOVER_FROM,
    ProducedData,
    input_datasets,
    outputs_exist,
    resolve_inputs,
    workspace_default_datastore,
)
from headrace.engine.reasons import explain_run, reuse_fields
from headrace.engine.runtime import ResolvedData, StepTask
from headrace.engine.stepoutputs import output_records, register_outputs, step_outputs
from headrace.graph.model import StepNode
from headrace.graph.validate import topological_order
from headrace.store.dataset_queries import lineage_rows
from headrace.store.orm import utcnow
from headrace.store.records import PipelineRunRecord, Status, StepRunRecord
from headrace.store.step_runs import StepWrites
from headrace.store.workspace_store import WorkspaceStore

__all__ = ["Plan", "RunOrchestrator"]


@dataclass
class Plan:
    """A decided, not yet started, attempt of a step."""

    node: StepNode
    fingerprint: str
    parts: dict[str, Any]
    reason: dict[str, Any]
    inputs: tuple[ResolvedData, ...]
    step_run_id: str = field(default_factory=lambda: str(uuid.uuid4()))


class RunOrchestrator:
    def __init__(
        self, ws: WorkspaceStore, run: PipelineRunRecord, writes: StepWrites | None = None
    ) -> None:
        self.ws = ws
        self.run = run
        self.writes = StepWrites() if writes is None else writes
        self.graph = load_graph(ws.meta, run.graph_id)
        self.order = topological_order(self.graph)
        self.parameters: dict[str, Any] = dict(run.parameters)
        # Steps without an environment run in the submitter's Python (engine/interpreters);
        # a run queued before headrace recorded it runs in the agent's.
        self.interpreter = Interpreter.from_record(run.interpreter) or current()
        self.steps: dict[str, StepRunRecord] = {}
        for record in ws.meta.list_step_runs(run.id):
            self.steps[record.node_id] = record
        self.pending: dict[str, Plan] = {}
        self.retry_queue: list[str] = []
        self.running: set[str] = set()
        self.processes: dict[str, tuple[float, StepProcess, list[str]]] = {}
        self.unwritten_reasons: set[str] = set()
        self._to_explain: set[str] = set()
        self.step_nodes: dict[str, str] = {r.id: n for n, r in self.steps.items()}
        self.failed_step: StepRunRecord | None = None
        self.cancel_requested = run.cancel_requested
        self._default_datastore: str | None = None
        # A run resuming an earlier one (engine.rerun, from_failed): that run's finished steps.
        self.recovered: dict[str, StepRunRecord] = {}
        recover_from = run.properties.get(RECOVER_FROM)
        if recover_from:
            self.recovered = {
                r.node_id: r
                for r in ws.meta.list_step_runs(str(recover_from))
                if r.status == Status.FINISHED
            }
        if any(s.status == Status.FAILED for s in self.steps.values()):
            self.failed_step = next(s for s in self.steps.values() if s.status == Status.FAILED)
        # Readiness is kept incrementally: how many predecessors each step still waits for.
        self._position = {node_id: i for i, node_id in enumerate(self.order)}
        self._preds = {n.id: self.graph.predecessors(n.id) for n in self.graph.nodes}
        self._succs: dict[str, list[str]] = {n.id: [] for n in self.graph.nodes}
        for node_id, preds in self._preds.items():
            for pred in preds:
                self._succs[pred].append(node_id)
        finished = {n for n, r in self.steps.items() if r.status == Status.FINISHED}
        self._waiting = {
            n: sum(1 for p in preds if p not in finished) for n, preds in self._preds.items()
        }
        self._ready = {
            n for n, count in self._waiting.items() if count == 0 and n not in self.steps
        }

    @functools.cached_property
    def compute_targets(self) -> list[str]:
        return sorted({n.compute_target for n in self.graph.nodes})

    @property
    def has_work(self) -> bool:
        """Whether `next_tasks` could start or decide anything now."""
        return not self.stopping and bool(self._ready or self.pending or self.retry_queue)

    def has_predecessors(self, node_id: str) -> bool:
        return bool(self._preds[node_id])

    def _record_step(self, record: StepRunRecord) -> None:
        """Keep the latest record of a step; a finished step releases its successors."""
        previous = self.steps.get(record.node_id)
        self.steps[record.node_id] = record
        self._ready.discard(record.node_id)
        if record.status == Status.FINISHED and (
            previous is None or previous.status != Status.FINISHED
        ):
            for successor in self._succs[record.node_id]:
                self._waiting[successor] -= 1
                if self._waiting[successor] == 0 and successor not in self.steps:
                    self._ready.add(successor)

    # -- recovery --------------------------------------------------------------------------
    def interrupted(self) -> list[StepRunRecord]:
        """Attempts a previous agent left Queued or Running."""
        return [s for s in self.steps.values() if s.status in (Status.QUEUED, Status.RUNNING)]

    def adopt(self, record: StepRunRecord, how: str, pid: int | None) -> StepTask:
        """Take over an attempt a dead agent left Running whose process still runs or has
        ended on its own (engine/reaper.py): it counts as running, and its end is recorded
        as the dead agent would have. Returns its task (inputs are not needed any more)."""
        node = self.graph.node(record.node_id)
        self.running.add(record.id)
        self.step_nodes[record.id] = record.node_id
        fields: dict[str, Any] = {}
        if pid and not record.pid:
            fields = {"pid": pid}  # started just before its agent died, never recorded
        self.writes.update(
            record.id,
            pipeline_run_id=self.run.id,
            event="step.adopted",
            payload={"attempt": record.attempt, "process": how},
            **fields,
        )
        return self._task(node, record.id, record.attempt, ())

    def requeue_interrupted(self, reasons: dict[str, str] | None = None) -> None:
        """Put attempts a dead agent left Running back in the queue, as their next attempt
        (`reasons`: why, by step run id), and its queued retries as they are; adopted
        attempts stay as they are.

        The caller has already stopped their processes and removed their staged outputs.
        """
        reasons = reasons or {}
        for record in self.interrupted():
            if record.id in self.running:
                continue  # adopted
            if record.status == Status.QUEUED:
                # A retry that had not started (an attempt is recorded Running before its
                # process starts): it starts now, as the attempt it is.
                self.retry_queue.append(record.id)
                continue
            attempt = record.attempt + 1
            fields: dict[str, Any] = {
                "status": Status.QUEUED,
                "attempt": attempt,
                "pid": None,
                "pid_started": None,
            }
            self.writes.update(
                record.id,
                pipeline_run_id=self.run.id,
                event="step.interrupted",
                payload={
                    "attempt": record.attempt,
                    "requeued_as": attempt,
                    **({"reason": reasons[record.id]} if record.id in reasons else {}),
                },
                **fields,
            )
            self._record_step(replace(record, **fields))
            self.retry_queue.append(record.id)

    # -- planning --------------------------------------------------------------------------
    @property
    def stopping(self) -> bool:
        """No new attempts: the run is being canceled, or failed without continue."""
        return self.cancel_requested or (
            self.failed_step is not None and not self.run.continue_on_step_failure
        )

    def default_datastore(self) -> str:
        if self._default_datastore is None:
            self._default_datastore = workspace_default_datastore(self.ws, self.graph)
        return self._default_datastore

    def _resolve_inputs(
        self, node: StepNode, identities_seen: dict[str, str] | None = None
    ) -> tuple[tuple[ResolvedData, ...], dict[str, str]]:
        producers = {
            pred: ProducedData(self.steps[pred].data_run_id, self.steps[pred].outputs)
            for pred in self._preds[node.id]
            if pred in self.steps and self.steps[pred].status == Status.FINISHED
        }
        return resolve_inputs(
            self.ws,
            self.graph,
            node,
            self.parameters,
            producers,
            self.default_datastore(),
            identities_seen,
        )

    def _plan_wave(self, node_ids: list[str]) -> None:
        """Decide every ready step: record reuses, queue plans for the rest.

        One query finds reusable earlier runs for the whole wave."""
        candidates = []
        identities_seen: dict[str, str] = {}
        for node_id in node_ids:
            node = self.graph.node(node_id)
            inputs, identities = self._resolve_inputs(node, identities_seen)
            environment = step_identity(
                node.environment, fp.interpreter_environment(self.interpreter)
            )
            parts = fp.fingerprint_parts(node, self.graph, self.parameters, identities, environment)
            candidates.append((node, inputs, parts, fp.fingerprint(parts)))
        reusable = {}
        if not self.run.regenerate_outputs:
            keys = [key for node, _, _, key in candidates if node.allow_reuse]
            reusable = self.ws.meta.find_reusable_step_runs(keys)
        for node, inputs, parts, key in candidates:
            reason: dict[str, Any]
            prior = self.recovered.get(node.id)
            if prior is not None and prior.fingerprint == key and outputs_exist(self.ws, prior):
                summary = (
                    f"finished in run {prior.pipeline_run_id}, which this run resumes: "
                    f"reused the outputs of step run {prior.data_run_id}"
                )
                self._record_reuse(node, key, parts, prior, summary)
                continue
            if self.run.regenerate_outputs:
                reason = {"decision": "run", "summary": "regenerate_outputs=True: every step runs"}
            elif not node.allow_reuse:
                reason = {"decision": "run", "summary": "allow_reuse=False: this step always runs"}
            else:
                earlier = reusable.get(key)
                if earlier is not None and outputs_exist(self.ws, earlier):
                    self._record_reuse(node, key, parts, earlier)
                    continue
                # Why it runs is worked out while the agent waits on running steps (one
                # query for all of them, and manifest diffs): see `explain_waiting`.
                reason = {"decision": "run", "summary": "", "explain": True}
                if earlier is not None:
                    reason = explain_run(self.ws, node, parts, earlier)
            self.pending[node.id] = Plan(
                node=node, fingerprint=key, parts=parts, reason=reason, inputs=inputs
            )

    def _record_reuse(
        self,
        node: StepNode,
        key: str,
        parts: dict[str, Any],
        earlier: StepRunRecord,
        summary: str | None = None,
    ) -> None:
        now = utcnow()
        record = self.writes.create(
            event="step.reused",
            id=str(uuid.uuid4()),
            **reuse_fields(self.run.id, node, key, parts, earlier, summary),
            created_at=now,
            started_at=now,
            ended_at=now,
        )
        self._record_step(record)
        self._record_consumption(node, record.id)

    def next_tasks(self, free_slots: dict[str, int]) -> list[StepTask]:
        """Attempts to start now; reuses are recorded on the way. Decrements `free_slots`."""
        if self.stopping:
            return []
        tasks: list[StepTask] = []
        while self._ready:
            # Reused steps release their successors, which form the next wave.
            wave = sorted(self._ready, key=self._position.__getitem__)
            self._ready.clear()
            self._plan_wave(wave)
        for step_run_id in list(self.retry_queue):
            record = self.steps[self.step_nodes[step_run_id]]
            node = self.graph.node(record.node_id)
            if free_slots.get(node.compute_target, 0) <= 0:
                continue
            free_slots[node.compute_target] -= 1
            self.retry_queue.remove(step_run_id)
            inputs, _ = self._resolve_inputs(node)
            tasks.append(self._start_record(record, node, inputs))
        for node_id in sorted(self.pending, key=self._position.__getitem__):
            plan = self.pending[node_id]
            target = plan.node.compute_target
            if free_slots.get(target, 0) <= 0:
                continue
            free_slots[target] -= 1
            del self.pending[node_id]
            tasks.append(self._start_plan(plan))
        return tasks

    def output_datastores(self) -> set[str]:
        """The datastores this run's steps write outputs to (where their staging lives)."""
        return {
            self.graph.data_node(binding.data).datastore or self.default_datastore()
            for node in self.graph.nodes
            for binding in node.outputs
        }

    def _task(
        self, node: StepNode, step_run_id: str, attempt: int, inputs: tuple[ResolvedData, ...]
    ) -> StepTask:
        return StepTask(
            step_run_id=step_run_id,
            pipeline_run_id=self.run.id,
            attempt=attempt,
            experiment_name=self.run.experiment_name,
            node=node,
            parameters=self.parameters,
            inputs=inputs,
            outputs=step_outputs(self.graph, node, step_run_id, self.default_datastore()),
            python=self.interpreter.path if self.interpreter else sys.executable,
        )

    def _start_plan(self, plan: Plan) -> StepTask:
        task = self._task(plan.node, plan.step_run_id, 0, plan.inputs)
        now = utcnow()
        record = self.writes.create(
            event="step.started",
            id=plan.step_run_id,
            pipeline_run_id=self.run.id,
            node_id=plan.node.id,
            name=plan.node.name,
            status=Status.RUNNING,
            attempt=0,
            compute_target=plan.node.compute_target,
            fingerprint=plan.fingerprint,
            fingerprint_parts=plan.parts,
            run_reason=plan.reason,
            outputs=output_records(self.graph, task.outputs, plan.node),
            properties={"azureml.nodeid": plan.node.id, "azureml.pipeline": self.run.id},
            created_at=now,
            started_at=now,
        )
        self._record_consumption(plan.node, record.id)
        self.steps[plan.node.id] = record
        self.running.add(record.id)
        self.step_nodes[record.id] = record.node_id
        if plan.reason.get("explain"):
            self._to_explain.add(plan.node.id)
        return task

    def _start_record(
        self, record: StepRunRecord, node: StepNode, inputs: tuple[ResolvedData, ...]
    ) -> StepTask:
        started_at = record.started_at or utcnow()
        self.writes.update(
            record.id,
            event="step.started",
            payload={"attempt": record.attempt},
            pipeline_run_id=self.run.id,
            status=Status.RUNNING,
            started_at=started_at,
            journal_offset=0,  # each attempt writes a journal of its own
        )
        self.steps[node.id] = replace(record, status=Status.RUNNING, started_at=started_at)
        self.running.add(record.id)
        self.step_nodes[record.id] = record.node_id
        task = self._task(node, record.id, record.attempt, inputs)
        return replace(task, previous=previous_attempt(record))

    def _record_consumption(self, node: StepNode, step_run_id: str) -> None:
        """Lineage: the registered datasets this step run consumes, written with it."""
        consumed = input_datasets(self.graph, node, self.parameters)
        if consumed:
            self.writes.lineage(lineage_rows(consumed, "consumed", step_run_id, self.run.id))

    def attempt_failed_to_start(self, task: StepTask, message: str) -> None:
        self.step_ended(task, StepEnd(exit_code=None, error_message=message))

    def started(self, task: StepTask, process: StepProcess, command: list[str]) -> None:
        """Note the process of an attempt. It is written by `record_processes` once the step
        has run a moment: most short steps end first and never pay for the write (crash
        recovery finds unrecorded step processes by their HEADRACE_RUN_ID)."""
        self.processes[task.step_run_id] = (time.monotonic(), process, command)

    def explain_waiting(self) -> None:
        """Work out why planned and started steps run: deferred from planning so it is off
        the path to starting them, and done for all of them with one query.

        A started step's reason is written with its process record or with its ending."""
        waiting = [n for n, plan in self.pending.items() if plan.reason.get("explain")]
        self._explain([*self._to_explain, *waiting])

    def _explain(self, node_ids: list[str]) -> None:
        if not node_ids:
            return
        names = {self.graph.node(n).name for n in node_ids}
        previous = self.ws.meta.find_previous_step_runs(
            sorted(names), self.run.experiment_id, exclude_run_id=self.run.id
        )
        for node_id in node_ids:
            node = self.graph.node(node_id)
            plan = self.pending.get(node_id)
            if plan is not None:
                plan.reason = explain_run(self.ws, node, plan.parts, None, previous.get(node.name))
                continue
            self._to_explain.discard(node_id)
            record = self.steps[node_id]
            reason = explain_run(
                self.ws, node, record.fingerprint_parts, None, previous.get(node.name)
            )
            self.steps[node_id] = replace(record, run_reason=reason)
            self.unwritten_reasons.add(record.id)

    def record_processes(self, older_than: float = 0.5) -> None:
        now = time.monotonic()
        for step_run_id, (since, process, command) in list(self.processes.items()):
            if now - since < older_than or step_run_id not in self.running:
                continue
            del self.processes[step_run_id]
            fields: dict[str, Any] = {
                "pid": process.pid,
                "pid_started": process.started,
                "command": command,
            }
            record = self.steps.get(self.step_nodes.get(step_run_id, ""))
            if record is not None and step_run_id in self.unwritten_reasons:
                self.unwritten_reasons.discard(step_run_id)
                fields["run_reason"] = record.run_reason
            self.writes.update(
                step_run_id,
                event="step.process",
                payload={"pid": process.pid},
                pipeline_run_id=self.run.id,
                **fields,
            )

    # -- endings ---------------------------------------------------------------------------
    def step_ended(self, task: StepTask, end: StepEnd, stderr_text: str = "") -> str:
        """Record how an attempt ended; returns the step's new status (Queued on retry)."""
        self.running.discard(task.step_run_id)
        node = task.node
        metrics, tags = journal_records(end.journal, task.step_run_id, self.run.id)
        fields: dict[str, Any] = {"exit_code": end.exit_code, "pid": None}
        ended_at = end.ended_at or utcnow()
        process = self.processes.pop(task.step_run_id, None)
        if process is not None:
            fields["command"] = process[2]
        if self.steps[node.id].run_reason.get("explain"):
            self._explain([node.id])
        if task.step_run_id in self.unwritten_reasons:
            self.unwritten_reasons.discard(task.step_run_id)
            fields["run_reason"] = self.steps[node.id].run_reason
        if end.exit_code == 0 and end.stopped_for is None and end.error_message is None:
            problem = register_outputs(self.ws, self.graph, task, self.run.id)
            if problem is not None:
                end = replace(end, error_message=problem)
        if end.exit_code == 0 and end.stopped_for is None and end.error_message is None:
            # (An error message with exit code 0: the script ran, its outputs were not kept.)
            status = Status.FINISHED
            fields.update(status=status, ended_at=ended_at, error=None)
        elif end.stopped_for in ("cancel", "failfast"):
            status = Status.CANCELED
            fields.update(
                status=status,
                ended_at=ended_at,
                error={
                    "message": f"Step {node.name!r} was canceled"
                    + (" because another step failed" if end.stopped_for == "failfast" else "")
                },
            )
        else:
            error = failure_record(node, end, stderr_text)
            # A lost node is not the step's fault: it gets one attempt more than max_retries.
            retries = node.max_retries + (1 if end.stopped_for == "node_lost" else 0)
            if task.attempt < retries and not self.stopping:
                status = Status.QUEUED
                fields.update(status=status, attempt=task.attempt + 1, error=error)
                self.retry_queue.append(task.step_run_id)
            else:
                status = Status.FAILED
                fields.update(status=status, ended_at=ended_at, error=error)
        event = {
            Status.FINISHED: "step.finished",
            Status.FAILED: "step.failed",
            Status.CANCELED: "step.canceled",
            Status.QUEUED: "step.retry",
        }[status]
        self.writes.complete(
            task.step_run_id,
            pipeline_run_id=self.run.id,
            event=event,
            payload={"status": status, "attempt": task.attempt, "exit_code": end.exit_code},
            fields=fields,
            metrics=metrics,
            tags=tags,
        )
        record = replace(self.steps[node.id], **fields)
        self._record_step(record)
        if status == Status.FAILED and self.failed_step is None:
            self.failed_step = record
        return status

    # -- the run as a whole ----------------------------------------------------------------
    def request_cancel(self) -> None:
        self.cancel_requested = True
        self.pending.clear()
        for step_run_id in list(self.retry_queue):
            self.retry_queue.remove(step_run_id)
            fields: dict[str, Any] = {"status": Status.CANCELED, "ended_at": utcnow()}
            self.writes.update(
                step_run_id, pipeline_run_id=self.run.id, event="step.canceled", **fields
            )
            self._record_step(replace(self.steps[self.step_nodes[step_run_id]], **fields))

    @property
    def done(self) -> bool:
        if self.running:
            return False
        if self.stopping:
            return True
        return not self.pending and not self.retry_queue and not self._ready

    def finish(self) -> str:
        """Record the run's final status (call when `done`), after its steps' records."""
        self.ws.meta.apply_step_writes(self.writes)
        statuses = [self.steps[n].status if n in self.steps else None for n in self.order]
        error = None
        if self.cancel_requested:
            status = Status.CANCELED
        elif self.failed_step is not None:
            status = Status.FAILED
            failed = self.failed_step
            error = {
                "message": (failed.error or {}).get("message", f"Step {failed.name!r} failed"),
                "step": failed.name,
                "step_run_id": failed.id,
                "stderr_tail": (failed.error or {}).get("stderr_tail", ""),
            }
        elif all(s == Status.FINISHED for s in statuses):
            status = Status.FINISHED
        else:
            status = Status.FAILED
            error = {
                "message": "Some steps could not run because a step they depend on did not finish"
            }
        self.ws.meta.finish_pipeline_run(self.run.id, status, error)
        return status
