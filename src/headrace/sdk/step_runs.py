"""`StepRun`: one step of a pipeline run as SDK v1 shows it (re-exported by sdk/runs.py,
which must be imported first: this module builds on its `Run`)."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

from headrace.errors import ActivityFailedException, RunNotFoundError, UserError
from headrace.sdk.runs import STDERR, STDOUT, Run, _history_status, _iso
from headrace.store.records import TERMINAL_STATUSES, Status
from headrace.store.steplogs import COMBINED_LOG

if TYPE_CHECKING:
    from headrace.sdk.data import PortDataReference
    from headrace.sdk.experiment import Experiment
    from headrace.sdk.runs import PipelineRun
    from headrace.sdk.workspace import Workspace
    from headrace.store.records import StepRunRecord

__all__ = ["StepRun", "StepRunOutput"]


class StepRunOutput:
    """One output of a step run."""

    def __init__(self, step_run: StepRun, name: str) -> None:
        self.step_run = step_run
        self.name = name

    def get_port_data_reference(self) -> PortDataReference:
        return self.step_run.get_output_data(self.name)


class StepRun(Run):
    """One step of a pipeline run (SDK v1 `azureml.pipeline.core.StepRun`)."""

    def __init__(
        self,
        experiment: Experiment,
        step_run_id: str,
        pipeline_run_id: str | None = None,
        node_id: str | None = None,
        _record: StepRunRecord | None = None,
    ) -> None:
        super().__init__(experiment, step_run_id)
        self._cached = _record or experiment.workspace.backend.get_step_run(step_run_id)
        self.pipeline_run_id = pipeline_run_id or self._cached.pipeline_run_id
        self._node_id = node_id or self._cached.node_id

    @classmethod
    def _from_record(cls, pipeline_run: PipelineRun, record: StepRunRecord) -> StepRun:
        return cls(
            pipeline_run.experiment, record.id, record.pipeline_run_id, record.node_id, record
        )

    @staticmethod
    def get(workspace: Workspace, run_id: str) -> StepRun:
        from headrace.sdk.experiment import Experiment

        full = workspace.backend.resolve_run_id(run_id)
        record = workspace.backend.find_step_run(full)
        if record is None:
            raise RunNotFoundError(f"{run_id!r} is not a step run id.")
        pipeline = workspace.backend.get_pipeline_run(record.pipeline_run_id)
        return StepRun(Experiment(workspace, pipeline.experiment_name), record.id, _record=record)

    @property
    def _record(self) -> StepRunRecord:
        if self._cached.status not in TERMINAL_STATUSES:
            self._cached = self._backend.get_step_run(self.id)
        return self._cached

    @property
    def name(self) -> str:
        return self._cached.name

    @property
    def parent(self) -> PipelineRun:
        return PipelineRun(self.experiment, self.pipeline_run_id)

    @property
    def status(self) -> str:
        return self.get_status()

    def get_status(self) -> str:
        return self._record.status

    @property
    def tags(self) -> dict[str, Any]:
        return {
            **self._record.tags,
            "azureml.nodeid": self._node_id,
            "azureml.pipeline": self.pipeline_run_id,
        }

    def get_tags(self) -> dict[str, Any]:
        return self.tags

    @property
    def properties(self) -> dict[str, Any]:
        return dict(self._record.properties)

    def get_properties(self) -> dict[str, Any]:
        return self.properties

    @property
    def reused_run_id(self) -> str | None:
        """The step run whose outputs this run reused, or None if it ran."""
        return self._record.reused_run_id

    @property
    def run_reason(self) -> dict[str, Any]:
        """Why this step ran, or which run it reused (headrace extension)."""
        return dict(self._record.run_reason)

    @property
    def _content_id(self) -> str:
        # A reused step shows what the run it reused printed, logged and wrote.
        return self._record.reused_run_id or self.id

    def get_stdout_log(self) -> str:
        raw = self._backend.read_run_file(self._content_id, STDOUT)
        return bytes(raw).decode(errors="replace")

    def get_stderr_log(self) -> str:
        raw = self._backend.read_run_file(self._content_id, STDERR)
        return bytes(raw).decode(errors="replace")

    def get_job_log(self) -> str:
        record = self._record
        lines = [
            f"Step run {record.id} ({record.name})",
            f"Status: {record.status}",
            f"Why: {record.run_reason.get('summary', '')}",
        ]
        if record.command:
            lines.append(f"Command: {' '.join(str(c) for c in record.command)}")
        if record.error:
            lines.append(f"Error: {record.error.get('message')}")
        return "\n".join(lines) + "\n"

    def get_details(self) -> dict[str, Any]:
        record = self._record
        details: dict[str, Any] = {
            "runId": record.id,
            "target": record.compute_target,
            "status": _history_status(record),
            "startTimeUtc": _iso(record.started_at),
            "endTimeUtc": _iso(record.ended_at),
            "properties": {**record.properties, "azureml.runsource": "azureml.StepRun"},
            "tags": self.tags,
            "runDefinition": {"command": record.command, "attempt": record.attempt},
            # SDK v1's newer runtime's combined log first: stdout and stderr in order.
            "logFiles": {COMBINED_LOG: COMBINED_LOG, STDOUT: STDOUT, STDERR: STDERR},
            "reuse": dict(record.run_reason),
        }
        if record.error:
            details["error"] = {"error": record.error}
        return details

    def get_details_with_logs(self) -> dict[str, Any]:
        details = self.get_details()
        details["STDOUT"] = self.get_stdout_log()
        details["STDERR"] = self.get_stderr_log()
        details["JOBLOG"] = self.get_job_log()
        return details

    def get_outputs(self) -> dict[str, StepRunOutput]:
        return {name: StepRunOutput(self, name) for name in self._record.outputs}

    def get_output(self, name: str) -> StepRunOutput:
        if name not in self._record.outputs:
            known = ", ".join(self._record.outputs) or "none"
            raise UserError(f"Step run {self.name!r} has no output {name!r} (outputs: {known}).")
        return StepRunOutput(self, name)

    def get_output_data(self, name: str) -> PortDataReference:
        from headrace.sdk.data import PortDataReference
        from headrace.sdk.datastore import Datastore

        outputs = self._record.outputs
        out = outputs.get(name)
        if out is None:
            by_data = [port for port, o in outputs.items() if o.get("data_name") == name]
            if by_data:
                out = outputs[by_data[0]]
                name = by_data[0]
        if out is None:
            known = ", ".join(outputs) or "none"
            raise UserError(f"Step run {self.name!r} has no output {name!r} (outputs: {known}).")
        datastore = Datastore(self.experiment.workspace, out["datastore"])
        return PortDataReference(datastore, out["path"], name, self._record.data_run_id)

    def wait_for_completion(
        self,
        show_output: bool = True,
        timeout_seconds: float = sys.maxsize,
        raise_on_error: bool = True,
    ) -> str:
        deadline = time.monotonic() + timeout_seconds
        offset = 0
        while True:
            record = self._backend.get_step_run(self.id)
            if show_output:
                chunk = self._backend.read_run_file(self.id, STDOUT, offset)
                if chunk:
                    offset += len(chunk)
                    sys.stdout.write(bytes(chunk).decode(errors="replace"))
            if record.status in TERMINAL_STATUSES or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        if record.status == Status.FAILED and raise_on_error:
            message = (record.error or {}).get("message", "the step failed")
            raise ActivityFailedException(
                f"StepRun {record.id} ({record.name}) failed: {message}\n"
                f"{(record.error or {}).get('stderr_tail', '')}",
                run_id=record.id,
                status=record.status,
                error_details=record.error,
            )
        return str(record.status)

    def __repr__(self) -> str:
        return f"StepRun(name={self.name!r}, id={self.id!r}, status={self._cached.status!r})"
