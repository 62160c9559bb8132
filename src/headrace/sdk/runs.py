"""Runs as the SDK v1 shows them: `Run`, `PipelineRun` and `StepRun`.

`PipelineRun` and `StepRun` read their state through the workspace's backend on every call,
so they always show the latest status, logs, metrics and outputs. `Run.get_context()` (the
in-script API) lives in `headrace.sdk.context` and is re-exported here.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headrace.errors import ActivityFailedException, UserError
from headrace.store.records import TERMINAL_STATUSES, MetricRecord, Status

if TYPE_CHECKING:
    from headrace.graph.model import Graph
    from headrace.sdk.data import PortDataReference
    from headrace.sdk.experiment import Experiment
    from headrace.sdk.published import PublishedPipeline
    from headrace.sdk.step_runs import StepRun, StepRunOutput
    from headrace.sdk.workspace import Workspace
    from headrace.store.records import PipelineRunRecord, StepRunRecord

__all__ = ["PipelineRun", "Run", "StepRun", "StepRunOutput", "metrics_dict"]

_HISTORY_STATUS = {Status.FINISHED: "Completed"}
STDOUT = "user_logs/stdout.txt"
STDERR = "user_logs/stderr.txt"


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def metrics_dict(records: list[MetricRecord]) -> dict[str, Any]:
    """Metrics as SDK v1's get_metrics returns them: a scalar logged once is a value, repeats
    become a list; lists, rows and tables are dicts or lists."""
    by_name: dict[str, list[MetricRecord]] = {}
    for record in records:
        by_name.setdefault(record.name, []).append(record)
    result: dict[str, Any] = {}
    for name, items in by_name.items():
        kind = items[0].kind
        if kind == "scalar":
            values = [i.value for i in items]
            result[name] = values[0] if len(values) == 1 else values
        elif kind == "list":
            result[name] = items[-1].value if len(items) == 1 else [i.value for i in items]
        elif kind == "row":
            columns: dict[str, list[Any]] = {}
            for item in items:
                for col, value in (item.value or {}).items():
                    columns.setdefault(col, []).append(value)
            result[name] = columns
        elif kind == "table":
            result[name] = items[-1].value
        elif kind == "image":
            result[name] = items[-1].value if len(items) == 1 else [i.value for i in items]
        else:
            result[name] = items[-1].value
    return result


class Run:
    """A run: a pipeline run, a step run, or (inside a script) the current step."""

    def __init__(self, experiment: Experiment, run_id: str) -> None:
        self.experiment = experiment
        self._id = run_id

    @property
    def id(self) -> str:
        return self._id

    @property
    def _backend(self) -> Any:
        return self.experiment.workspace.backend

    @classmethod
    def get_context(
        cls, allow_offline: bool = True, used_for_context_manager: bool = False, **kwargs: Any
    ) -> Any:
        """The run of the step this script runs in, or an offline run outside a pipeline."""
        from headrace.sdk.context import get_context

        return get_context(allow_offline=allow_offline)

    # -- metrics, tags, files --------------------------------------------------------------
    def get_metrics(
        self,
        name: str | None = None,
        recursive: bool = False,
        run_type: str | None = None,
        populate: bool = False,
    ) -> dict[str, Any]:
        if recursive:
            pairs = [(self.id, self._content_id), *self._child_ids()]
            records = self._backend.list_metrics(list({c for _, c in pairs}))
            grouped = {
                rid: metrics_dict([r for r in records if r.run_id == content])
                for rid, content in pairs
            }
            if name is not None:
                return {rid: {name: m[name]} for rid, m in grouped.items() if name in m}
            return grouped
        metrics = metrics_dict(self._backend.list_metrics([self._content_id]))
        if name is not None:
            return {name: metrics[name]} if name in metrics else {}
        return metrics

    def _child_ids(self) -> list[tuple[str, str]]:
        """(run id, id holding its logs, files and metrics) of each child run."""
        return []

    @property
    def _content_id(self) -> str:
        """The run whose logs, files and metrics this run shows (itself, or the run a reused
        step reused)."""
        return self.id

    def log(self, name: str, value: Any, description: str = "", step: int | None = None) -> None:
        """Log a scalar on this run (from outside the run's own script)."""
        if isinstance(value, (list, tuple, dict)):
            raise UserError(f"log({name!r}) takes a scalar; use log_list or log_table.")
        self._backend.log_metrics(
            [MetricRecord(self.id, name, "scalar", value, step, description or None)]
        )

    def log_list(self, name: str, value: list[Any], description: str = "") -> None:
        self._backend.log_metrics(
            [MetricRecord(self.id, name, "list", list(value), None, description or None)]
        )

    def tag(self, key: str, value: Any = None) -> None:
        self._backend.tag_run(self.id, {key: "" if value is None else value})

    def set_tags(self, tags: dict[str, Any]) -> None:
        self._backend.tag_run(self.id, dict(tags))

    def get_file_names(self) -> list[str]:
        return [f.name for f in self._backend.list_run_files(self._content_id)]

    def download_file(
        self, name: str, output_file_path: str | None = None, _validate_checksum: bool = False
    ) -> None:
        target = Path(output_file_path) if output_file_path else Path(Path(name).name)
        if target.is_dir():
            target = target / Path(name).name
        self._backend.download_run_file(self._content_id, name, target)

    def upload_file(
        self, name: str, path_or_stream: Any, datastore_name: str | None = None
    ) -> None:
        import shutil
        import tempfile

        if isinstance(path_or_stream, (str, Path)):
            self._backend.upload_run_file(self.id, name, Path(path_or_stream))
            return
        with tempfile.NamedTemporaryFile(delete=False) as tmp:
            shutil.copyfileobj(path_or_stream, tmp)
        try:
            self._backend.upload_run_file(self.id, name, Path(tmp.name))
        finally:
            Path(tmp.name).unlink(missing_ok=True)

    # -- models ----------------------------------------------------------------------------
    def register_model(
        self,
        model_name: str,
        model_path: str | None = None,
        tags: dict[str, Any] | None = None,
        properties: dict[str, Any] | None = None,
        model_framework: str | None = None,
        model_framework_version: str | None = None,
        description: str | None = None,
        datasets: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Register file or folder `model_path` of this run's files (e.g.
        'outputs/model.pkl'; default: `model_name`) as the next version of `model_name`,
        with this run as the one that produced it. A failed or canceled run is refused."""
        return self._register_run_model(
            self._content_id,
            model_name,
            model_path or model_name,
            tags=tags,
            properties=properties,
            model_framework=model_framework,
            model_framework_version=model_framework_version,
            description=description,
            datasets=datasets,
            **kwargs,
        )

    def _register_run_model(
        self,
        run_id: str,
        model_name: str,
        model_path: str,
        *,
        tags: dict[str, Any] | None,
        properties: dict[str, Any] | None,
        model_framework: str | None,
        model_framework_version: str | None,
        description: str | None,
        datasets: Any,
        **kwargs: Any,
    ) -> Any:
        from headrace.sdk.model import (
            Model,
            check_extra_arguments,
            dataset_lineage,
            framework_properties,
        )

        check_extra_arguments(kwargs, "run.register_model")
        workspace = self.experiment.workspace
        record = workspace.backend.register_run_model(
            run_id,
            model_name,
            model_path,
            description=description,
            tags=dict(tags or {}),
            properties=framework_properties(properties, model_framework, model_framework_version),
            datasets=dataset_lineage(datasets),
        )
        return Model._from_record(workspace, record)

    def complete(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("Pipeline and step runs complete on their own.")

    def fail(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("Pipeline and step runs fail on their own.")

    def child_run(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("Child runs of pipeline runs are their steps; see get_steps().")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Run) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(experiment={self.experiment.name!r}, id={self.id!r})"


class PipelineRun(Run):
    """A submitted pipeline (SDK v1 `azureml.pipeline.core.PipelineRun`)."""

    def __init__(
        self, experiment: Experiment, run_id: str, _record: PipelineRunRecord | None = None
    ) -> None:
        super().__init__(experiment, run_id)
        self._record_cache = _record

    @staticmethod
    def get(workspace: Workspace, run_id: str) -> PipelineRun:
        from headrace.sdk.experiment import Experiment

        record = workspace.backend.get_pipeline_run(workspace.backend.resolve_run_id(run_id))
        return PipelineRun(Experiment(workspace, record.experiment_name), record.id, record)

    def _record(self) -> PipelineRunRecord:
        record: PipelineRunRecord = self._backend.get_pipeline_run(self.id)
        self._record_cache = record
        return record

    def _child_ids(self) -> list[tuple[str, str]]:
        return [(s.id, s.reused_run_id or s.id) for s in self._backend.list_step_runs(self.id)]

    def rerun(
        self, pipeline_parameters: dict[str, Any] | None = None, from_failed: bool = False
    ) -> PipelineRun:
        """Submit a new run of this run's pipeline: the same graph and source snapshots, the
        same experiment, tags and parameters (`pipeline_parameters` change some).

        Steps are reused as on any submit (unchanged inputs and code, `allow_reuse=True`).
        `from_failed=True` resumes this run (Metaflow's resume): every step that finished
        here is taken as it is, even one with `allow_reuse=False`, unless a changed
        parameter or input reaches it; the failed, canceled and never-started steps run.
        The new run's properties name this run (`headrace.rerunOf`)."""
        from headrace.sdk.pipeline import parameter_values

        submission = self._backend.rerun(
            self.id, parameters=parameter_values(pipeline_parameters), from_failed=from_failed
        )
        return PipelineRun(self.experiment, submission.run.id, submission.run)

    @property
    def status(self) -> str:
        return self.get_status()

    def get_status(self) -> str:
        """NotStarted, Running, Finished, Failed or Canceled."""
        return self._record().status

    @property
    def parent(self) -> None:
        return None

    @property
    def tags(self) -> dict[str, Any]:
        return self._record().tags

    def get_tags(self) -> dict[str, Any]:
        return self._record().tags

    @property
    def properties(self) -> dict[str, Any]:
        return self._record().properties

    def get_properties(self) -> dict[str, Any]:
        return self._record().properties

    def get_graph(self) -> Graph:
        return self._backend.get_graph(self._record().graph_id)  # type: ignore[no-any-return]

    def get_steps(self) -> list[StepRun]:
        """The step runs created so far (steps that never started have none)."""
        from headrace.sdk.step_runs import StepRun

        return [StepRun._from_record(self, r) for r in self._backend.list_step_runs(self.id)]

    get_children = get_steps

    def find_step_run(self, name: str) -> list[StepRun]:
        return [s for s in self.get_steps() if s.name == name]

    def get_pipeline_output(self, pipeline_output_name: str) -> PortDataReference:
        names = []
        for step in self.get_steps():
            for port, out in step._record.outputs.items():
                if out.get("pipeline_output_name"):
                    names.append(out["pipeline_output_name"])
                if out.get("pipeline_output_name") == pipeline_output_name:
                    return step.get_output_data(port)
        raise UserError(
            f"Pipeline run {self.id} has no pipeline output {pipeline_output_name!r}"
            f" (has: {', '.join(names) or 'none'}); name one with "
            "PipelineData(..., pipeline_output_name=...)."
        )

    def cancel(self) -> None:
        self._backend.cancel_run(self.id)

    def publish_pipeline(
        self,
        name: str,
        description: str | None,
        version: str | None,
        continue_on_step_failure: bool | None = None,
        **kwargs: Any,
    ) -> PublishedPipeline:
        """Publish the graph this run ran (with the same source snapshots) under `name`."""
        from headrace.sdk.published import PublishedPipeline

        record = self._record()
        keep_going = (
            record.continue_on_step_failure
            if continue_on_step_failure is None
            else continue_on_step_failure
        )
        published = self._backend.publish_pipeline(
            self.get_graph(),
            name=name,
            description=description,
            version=version,
            continue_on_step_failure=keep_going,
            source_run_id=self.id,
        )
        return PublishedPipeline(self.experiment.workspace, published)

    def get_details(self) -> dict[str, Any]:
        record = self._record()
        details: dict[str, Any] = {
            "runId": record.id,
            "status": _history_status(record),
            "startTimeUtc": _iso(record.started_at),
            "endTimeUtc": _iso(record.ended_at),
            "properties": {
                **record.properties,
                "azureml.runsource": "azureml.PipelineRun",
                "runSource": record.run_source,
            },
            "tags": record.tags,
            "parameters": record.parameters,
            "experimentName": record.experiment_name,
            "submittedTimeUtc": _iso(record.created_at),
        }
        if record.error:
            details["error"] = {"error": record.error}
        return details

    def wait_for_completion(
        self,
        show_output: bool = True,
        timeout_seconds: float = sys.maxsize,
        raise_on_error: bool = True,
    ) -> str:
        """Wait for the run to end, streaming step logs as they are written when show_output.

        Returns the final status; raises ActivityFailedException if it failed (or was
        canceled) and raise_on_error.
        """
        from headrace.sdk.streaming import LogFollower

        follower = LogFollower(self._backend, self.id, out=sys.stdout if show_output else None)
        if show_output:
            print(f"PipelineRunId: {self.id}")  # noqa: T201
            from headrace.sdk.pipeline import cli_command

            follow = cli_command(f"run logs {self.id} --follow", self._backend.location)
            print(f"Follow it with: {follow}")  # noqa: T201
        record = follower.follow(timeout_seconds)
        if record.status not in TERMINAL_STATUSES:
            if show_output:
                print(  # noqa: T201
                    f"Stopped waiting after {timeout_seconds:g} s; "
                    f"the run goes on ({record.status})."
                )
            return record.status
        if show_output:
            follower.print_summary(record)
        if record.status != Status.FINISHED and raise_on_error:
            raise ActivityFailedException(
                _failure_message(record),
                run_id=record.id,
                status=record.status,
                error_details=record.error,
            )
        return record.status

    def __repr__(self) -> str:
        return f"PipelineRun(experiment={self.experiment.name!r}, id={self.id!r})"


def _history_status(record: PipelineRunRecord | StepRunRecord) -> str:
    if getattr(record, "cancel_requested", False) and record.status not in TERMINAL_STATUSES:
        return "CancelRequested"
    return _HISTORY_STATUS.get(record.status, record.status)


def _failure_message(record: PipelineRunRecord) -> str:
    error = record.error or {}
    if record.status == Status.CANCELED:
        return f"PipelineRun {record.id} was canceled."
    message = error.get("message") or "the run failed"
    text = f"PipelineRun {record.id} failed: {message}"
    tail = error.get("stderr_tail")
    if tail:
        text += f"\n--- last lines of stderr of step {error.get('step')!r} ---\n{tail}"
    return text


def __getattr__(name: str) -> Any:
    """`StepRun` and `StepRunOutput` live in sdk/step_runs.py (which builds on `Run`) and are
    found here too, where SDK v1 code imports them."""
    if name in ("StepRun", "StepRunOutput"):
        from headrace.sdk import step_runs

        return getattr(step_runs, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
