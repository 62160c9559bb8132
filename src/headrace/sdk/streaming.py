"""Following a pipeline run: step logs as they are written, step starts and ends, a summary.

Used by `PipelineRun.wait_for_completion(show_output=True)` and `headrace run logs`.
Each line is prefixed with its step's name, so parallel steps stay readable in one stream.
A step's lines come from its combined log (`user_logs/std_log.txt`: stdout and stderr in
the order they were written, store/steplogs.py), or from one of its streams when asked;
the first line of a step is why it ran (or which run it reused), so a step is shown only
once the agent has worked that out (it does so while the step runs).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, TextIO

from headrace.errors import DatastorePathError
from headrace.store.records import TERMINAL_STATUSES, Status
from headrace.store.steplogs import COMBINED_LOG, split_line

if TYPE_CHECKING:
    from headrace.store.records import PipelineRunRecord, StepRunRecord

__all__ = ["LogFollower"]

STREAMS = ("user_logs/stdout.txt", "user_logs/stderr.txt")
AGENT_CHECK_SECONDS = 2.0


class LogFollower:
    """`stream`: "stdout" or "stderr" to show only that stream (as the step wrote it);
    None for the combined log, each line shown with its time and stream when `stamped`
    (the CLI), or as its text alone (`wait_for_completion`)."""

    def __init__(
        self,
        backend: Any,
        run_id: str,
        out: TextIO | None,
        poll_seconds: float = 0.25,
        *,
        stream: str | None = None,
        stamped: bool = False,
    ) -> None:
        self.backend = backend
        self.run_id = run_id
        self.out = out
        self.poll_seconds = poll_seconds
        self.files = (f"user_logs/{stream}.txt",) if stream else (COMBINED_LOG,)
        self.stamped = stamped
        self._offsets: dict[tuple[str, str], int] = {}
        self._partial: dict[tuple[str, str], str] = {}
        self._seen: set[str] = set()
        self._ended: set[str] = set()

    def _write(self, text: str) -> None:
        if self.out is not None:
            self.out.write(text)
            self.out.flush()

    def follow(self, timeout_seconds: float) -> PipelineRunRecord:
        """Stream until the run ends (or the timeout passes); returns the run's last record.

        A backend with `watch_run` (the warm agent's, backend/agent_backend.py) is asked to
        answer when the run's state changes, so the end is seen the moment it is recorded;
        while output is shown it answers at least every `poll_seconds`, for the logs."""
        deadline = time.monotonic() + timeout_seconds
        next_agent_check = 0.0
        watch = getattr(self.backend, "watch_run", None)
        shown = self.out is not None  # with nothing shown, only the run's end matters
        pause = self.poll_seconds if shown else AGENT_CHECK_SECONDS
        token: str | None = None
        while True:
            steps: list[StepRunRecord] | None = None
            record: PipelineRunRecord
            if watch is not None:
                wait = max(0.0, min(pause, deadline - time.monotonic()))
                record, steps, token = watch(self.run_id, token, wait, steps=shown)
            else:
                record = self.backend.get_pipeline_run(self.run_id)
            terminal = record.status in TERMINAL_STATUSES
            if shown or watch is None:
                self.poll_steps(final=terminal, steps=steps)
            if terminal or time.monotonic() >= deadline:
                return record
            now = time.monotonic()
            if now >= next_agent_check:
                # If the agent running this run died, this starts one that resumes it.
                self.backend.ensure_agent()
                next_agent_check = now + AGENT_CHECK_SECONDS
            if watch is None:
                time.sleep(self.poll_seconds)

    def poll_steps(self, final: bool = False, steps: list[StepRunRecord] | None = None) -> None:
        if steps is None:
            steps = self.backend.list_step_runs(self.run_id)
        for step in steps:
            ended = final or step.status in TERMINAL_STATUSES
            if step.id not in self._seen:
                if step.run_reason.get("explain") and not ended:
                    continue  # why it runs is not known yet: its first line must say it
                self._seen.add(step.id)
                self._announce(step)
            if step.reused_run_id is None:
                for name in self.files:
                    self._drain(step, name, ended)
                if (
                    self.files == (COMBINED_LOG,)
                    and ended
                    and not self._offsets.get((step.id, COMBINED_LOG))
                ):
                    # A step run before combined logs: its streams, one after the other.
                    for name in STREAMS:
                        self._drain(step, name, ended)
            if step.status in TERMINAL_STATUSES and step.id not in self._ended:
                self._ended.add(step.id)
                self._conclude(step)

    def _announce(self, step: StepRunRecord) -> None:
        reason = step.run_reason.get("summary", "")
        if step.reused_run_id:
            self._write(f"[{step.name}] reused the outputs of step run {step.reused_run_id}\n")
        elif reason:
            self._write(f"[{step.name}] running as step run {step.id}: {reason}\n")
        else:
            self._write(f"[{step.name}] running as step run {step.id}\n")

    def _conclude(self, step: StepRunRecord) -> None:
        if step.reused_run_id:
            return
        line = f"[{step.name}] {step.status}"
        if step.status == Status.FAILED and step.error:
            line += f": {step.error.get('message')}"
        self._write(line + "\n")

    def _drain(self, step: StepRunRecord, stream: str, final: bool) -> None:
        key = (step.id, stream)
        offset = self._offsets.get(key, 0)
        try:
            chunk = bytes(self.backend.read_run_file(step.id, stream, offset))
        except DatastorePathError:
            chunk = b""  # the step put a link to elsewhere in place of its log: nothing to show
        if not chunk and not final:
            return
        self._offsets[key] = offset + len(chunk)
        text = self._partial.pop(key, "") + chunk.decode(errors="replace")
        lines = text.split("\n")
        rest = lines.pop()
        if rest and not final:
            self._partial[key] = rest
        elif rest:
            lines.append(rest)
        if stream == COMBINED_LOG and not self.stamped:
            lines = [split_line(line)[2] for line in lines]
        for line in lines:
            self._write(f"[{step.name}] {line}\n")

    def print_summary(self, record: PipelineRunRecord) -> None:
        steps = self.backend.list_step_runs(self.run_id)
        reused = sum(1 for s in steps if s.reused_run_id)
        self._write("\nPipelineRun Execution Summary\n==============================\n")
        self._write(f"PipelineRun Status: {record.status}\n")
        duration = ""
        if record.started_at and record.ended_at:
            duration = f" in {(record.ended_at - record.started_at).total_seconds():.1f} s"
        self._write(f"{len(steps)} steps ({reused} reused){duration}\n")
        for step in steps:
            note = " (reused)" if step.reused_run_id else ""
            self._write(f"  {step.name}: {step.status}{note}\n")
        if record.error:
            self._write(f"Error: {record.error.get('message')}\n")
