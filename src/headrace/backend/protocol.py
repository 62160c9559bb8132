"""The `Backend` protocol: everything the SDK objects ask of where state lives.

`LocalBackend` answers from a workspace folder (metadata store, artifacts, datastores) and
starts a local agent; a `RemoteBackend` answers the same calls over HTTP from a headrace
server. The SDK never reaches past this seam. Records come from `headrace.store.records`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from headrace.engine.submission import Submission
    from headrace.graph.model import Graph
    from headrace.store.records import (
        ComputeTargetRecord,
        DatasetLineageRecord,
        DatasetRecord,
        DatastoreRecord,
        EnvironmentRecord,
        EventRecord,
        ExperimentRecord,
        MetricRecord,
        ModelRecord,
        PipelineEndpointRecord,
        PipelineRunRecord,
        PublishedPipelineRecord,
        RunFileRecord,
        ScheduleRecord,
        StepRunRecord,
    )

__all__ = ["Backend"]


class Backend(Protocol):
    """Where a workspace's state lives, and how its runs get executed."""

    # -- workspace -------------------------------------------------------------------------
    def workspace_info(self) -> dict[str, Any]: ...

    @property
    def location(self) -> str:
        """The workspace folder or server URL, for messages."""
        ...

    # -- datastores ------------------------------------------------------------------------
    def list_datastores(self) -> list[DatastoreRecord]: ...

    def find_datastore(self, name: str) -> DatastoreRecord | None: ...

    def register_datastore(
        self, name: str, type_: str, config: dict[str, Any], *, overwrite: bool
    ) -> DatastoreRecord: ...

    def set_default_datastore(self, name: str) -> None: ...

    def datastore_root(self, name: str) -> str:
        """Where a datastore keeps its files, for display (a folder or a URL)."""
        ...

    def upload_files(
        self,
        datastore: str,
        files: list[tuple[Path, str]],
        *,
        overwrite: bool,
        show_progress: bool,
    ) -> list[tuple[str, bool]]:
        """Upload (local file, datastore path) pairs; returns (path, uploaded?) for each."""
        ...

    def list_datastore_files(self, datastore: str, prefix: str) -> list[tuple[str, int]]: ...

    def download_datastore_files(
        self,
        datastore: str,
        files: list[tuple[str, Path]],
        *,
        overwrite: bool,
        show_progress: bool,
    ) -> int:
        """Download (datastore path, local file) pairs; returns how many were written."""
        ...

    def local_datastore_path(self, name: str) -> str | None:
        """The folder of a datastore on this machine (read directly, no copy); None for
        object stores and for datastores of a server."""
        ...

    # -- datasets --------------------------------------------------------------------------
    def register_dataset(
        self,
        definition: dict[str, Any],
        *,
        name: str,
        description: str | None,
        tags: dict[str, Any],
        create_new_version: bool,
    ) -> DatasetRecord:
        """Register a dataset definition as a version of `name`, recording its content
        identity (store/dataset_queries.py says when a new version is made)."""
        ...

    def get_dataset(self, name: str, version: int | None = None) -> DatasetRecord:
        """A version (None: the latest); DatasetNotFoundError lists what exists."""
        ...

    def get_dataset_by_id(self, dataset_id: str) -> DatasetRecord: ...

    def list_datasets(self) -> list[DatasetRecord]:
        """The latest version of every dataset."""
        ...

    def list_dataset_versions(self, name: str) -> list[DatasetRecord]: ...

    def dataset_lineage(self, dataset_id: str) -> list[DatasetLineageRecord]:
        """The step runs that produced and consumed a dataset version."""
        ...

    # -- compute ---------------------------------------------------------------------------
    def create_compute_target(
        self, name: str, type_: str, config: dict[str, Any]
    ) -> ComputeTargetRecord: ...

    def find_compute_target(self, name: str) -> ComputeTargetRecord | None: ...

    def list_compute_targets(self) -> list[ComputeTargetRecord]: ...

    def running_steps(self, compute_target: str) -> int: ...

    # -- experiments and runs --------------------------------------------------------------
    def list_experiments(self) -> list[tuple[ExperimentRecord, int]]: ...

    def create_snapshot(self, source_directory: str) -> str: ...

    def submit(
        self,
        graph: Graph,
        *,
        experiment_name: str,
        parameters: dict[str, Any] | None,
        tags: dict[str, Any] | None,
        description: str | None,
        continue_on_step_failure: bool,
        regenerate_outputs: bool,
        run_source: str = "SDK",
        properties: dict[str, Any] | None = None,
    ) -> Submission: ...

    def rerun(
        self,
        run_id: str,
        *,
        parameters: dict[str, Any] | None = None,
        from_failed: bool = False,
        run_source: str = "SDK",
    ) -> Submission:
        """Queue a new run of pipeline run `run_id`'s graph (engine.rerun)."""
        ...

    def ensure_agent(self) -> bool:
        """Make sure something executes queued runs (a local agent, or the server's);
        True when one had to be started."""
        ...

    def get_pipeline_run(self, run_id: str) -> PipelineRunRecord: ...

    def list_pipeline_runs(
        self,
        *,
        experiment_name: str | None = None,
        statuses: list[str] | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[PipelineRunRecord]: ...

    def resolve_run_id(self, prefix: str) -> str: ...

    def get_graph(self, graph_id: str) -> Graph: ...

    def list_step_runs(self, pipeline_run_id: str) -> list[StepRunRecord]: ...

    def get_step_run(self, step_run_id: str) -> StepRunRecord: ...

    def find_step_run(self, step_run_id: str) -> StepRunRecord | None: ...

    def cancel_run(self, run_id: str) -> PipelineRunRecord: ...

    def list_events(self, run_id: str, after_id: int = 0) -> list[EventRecord]: ...

    # -- run files, logs, metrics, tags ----------------------------------------------------
    def read_run_file(
        self, run_id: str, name: str, offset: int = 0, limit: int | None = None
    ) -> bytes: ...

    def list_run_files(self, run_id: str) -> list[RunFileRecord]: ...

    def download_run_file(self, run_id: str, name: str, destination: Path) -> None: ...

    def upload_run_file(self, run_id: str, name: str, source: Path) -> None: ...

    def list_metrics(self, run_ids: list[str]) -> list[MetricRecord]: ...

    def log_metrics(self, metrics: list[MetricRecord]) -> None: ...

    def tag_run(self, run_id: str, tags: dict[str, Any]) -> None: ...

    # -- published pipelines and endpoints -------------------------------------------------
    def publish_pipeline(
        self,
        graph: Graph,
        *,
        name: str,
        description: str | None,
        version: str | None,
        continue_on_step_failure: bool,
        source_run_id: str | None = None,
    ) -> PublishedPipelineRecord:
        """Freeze a validated graph (steps carry snapshot ids) as an Active published pipeline."""
        ...

    def get_published_pipeline(self, pipeline_id: str) -> PublishedPipelineRecord: ...

    def list_published_pipelines(
        self, active_only: bool = True
    ) -> list[PublishedPipelineRecord]: ...

    def set_published_pipeline_status(
        self, pipeline_id: str, status: str
    ) -> PublishedPipelineRecord: ...

    def submit_published_pipeline(
        self,
        pipeline_id: str,
        *,
        experiment_name: str,
        parameters: dict[str, Any] | None = None,
        tags: dict[str, Any] | None = None,
        description: str | None = None,
        run_source: str = "SDK",
        continue_on_step_failure: bool | None = None,
        data_path_assignments: dict[str, Any] | None = None,
        with_preview: bool = True,
    ) -> Submission:
        """Queue a run of a published pipeline; a Disabled one raises PipelineDisabledError.

        Parameter values may be text ("45", "true"): they are converted to each parameter's
        type. `data_path_assignments` ({name: {DataStoreName, RelativePath}}) set DataPath
        parameters. `with_preview=False`: no reuse preview (`Submission.previews` empty)."""
        ...

    def create_pipeline_endpoint(
        self, *, name: str, description: str | None, pipeline_id: str
    ) -> PipelineEndpointRecord: ...

    def get_pipeline_endpoint(
        self, *, id: str | None = None, name: str | None = None
    ) -> PipelineEndpointRecord: ...

    def list_pipeline_endpoints(self, active_only: bool = True) -> list[PipelineEndpointRecord]: ...

    def add_pipeline_endpoint_version(
        self, endpoint_id: str, pipeline_id: str, make_default: bool
    ) -> PipelineEndpointRecord: ...

    def set_pipeline_endpoint_default(
        self, endpoint_id: str, version: str
    ) -> PipelineEndpointRecord: ...

    def update_pipeline_endpoint(
        self,
        endpoint_id: str,
        *,
        name: str | None = None,
        description: str | None = None,
        status: str | None = None,
    ) -> PipelineEndpointRecord: ...

    def endpoint_pipeline_id(self, endpoint: PipelineEndpointRecord, version: str | None) -> str:
        """The published pipeline behind `version` (None: the default) of an Active endpoint."""
        ...

    # -- schedules -------------------------------------------------------------------------
    def create_schedule(self, **fields: Any) -> ScheduleRecord:
        """Check and store an Active schedule (engine/schedules.create_schedule's fields)."""
        ...

    def get_schedule(self, schedule_id: str) -> ScheduleRecord: ...

    def list_schedules(
        self,
        *,
        active_only: bool = True,
        pipeline_id: str | None = None,
        pipeline_endpoint_id: str | None = None,
    ) -> list[ScheduleRecord]: ...

    def update_schedule(self, schedule_id: str, **changes: Any) -> ScheduleRecord:
        """Change the fields given (None: unchanged); engine/schedules.update_schedule."""
        ...

    def list_schedule_runs(self, schedule_id: str, limit: int = 100) -> list[PipelineRunRecord]:
        """The runs a schedule queued, newest first."""
        ...

    # -- registered environments -----------------------------------------------------------
    def register_environment(self, name: str, definition: dict[str, Any]) -> EnvironmentRecord:
        """A new version of environment `name`, or its latest when that has `definition`."""
        ...

    def get_environment(self, name: str, version: int | None = None) -> EnvironmentRecord:
        """Version `version` (None: the latest) of a registered environment, or
        NotFoundError saying what is registered."""
        ...

    def list_environments(self) -> list[EnvironmentRecord]:
        """The latest version of every registered environment, by name."""
        ...

    # -- the model registry ----------------------------------------------------------------
    def register_model(
        self,
        name: str,
        source: Path,
        *,
        child_paths: list[str] | None = None,
        description: str | None = None,
        tags: dict[str, Any] | None = None,
        properties: dict[str, Any] | None = None,
        datasets: list[dict[str, Any]] | None = None,
        run_id: str | None = None,
    ) -> ModelRecord:
        """Copy the file or folder at `source` (on this machine) into the registry as the
        next version of `name`; `run_id`: the run registering it (lineage)."""
        ...

    def register_run_model(
        self,
        run_id: str,
        name: str,
        path: str,
        *,
        description: str | None = None,
        tags: dict[str, Any] | None = None,
        properties: dict[str, Any] | None = None,
        datasets: list[dict[str, Any]] | None = None,
    ) -> ModelRecord:
        """Register file or folder `path` of a run's files; refused for a failed run."""
        ...

    def get_model(self, name: str, version: int | None = None) -> ModelRecord:
        """A version of a model (None: the newest); ModelNotFoundError lists what exists."""
        ...

    def list_models(
        self,
        *,
        name: str | None = None,
        tags: Any = None,
        properties: Any = None,
        run_id: str | None = None,
        dataset_id: str | None = None,
        latest: bool = False,
    ) -> list[ModelRecord]: ...

    def update_model(
        self,
        name: str,
        version: int,
        *,
        tags: dict[str, Any] | None = None,
        properties: dict[str, Any] | None = None,
        description: str | None = None,
    ) -> ModelRecord: ...

    def delete_model(self, name: str, version: int) -> None: ...

    def model_local_path(self, record: ModelRecord) -> Path | None:
        """Where this machine can read the model's file or folder in place, if anywhere."""
        ...

    def download_model(self, record: ModelRecord, target_dir: Path) -> Path:
        """Copy the model's file or folder into `target_dir`; the path of the copy."""
        ...

    # -- notifications and run triggers (documents without secrets) ------------------------
    def add_notification(self, spec: dict[str, Any], *, overwrite: bool) -> dict[str, Any]: ...

    def list_notifications(self) -> list[dict[str, Any]]: ...

    def get_notification(self, name: str) -> dict[str, Any]: ...

    def remove_notification(self, name: str) -> None: ...

    def test_notification(self, name: str) -> dict[str, Any]: ...

    def list_notification_deliveries(
        self, *, name: str | None = None, run_id: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]: ...

    def add_run_trigger(self, spec: dict[str, Any]) -> dict[str, Any]: ...

    def list_run_triggers(self) -> list[dict[str, Any]]: ...

    def get_run_trigger(self, name: str) -> dict[str, Any]: ...

    def remove_run_trigger(self, name: str) -> None: ...

    def set_run_trigger_enabled(self, name: str, enabled: bool) -> dict[str, Any]: ...

    def list_trigger_firings(
        self, *, name: str | None = None, run_id: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]: ...
