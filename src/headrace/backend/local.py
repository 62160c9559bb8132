"""`LocalBackend`: a workspace folder served in-process, with a detached local agent.

Everything is answered from the folder's metadata store, artifact store and datastores; a
submit queues the run and makes sure the workspace's agent is alive to execute it.
"""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Any

from headrace.backend.local_models import LocalModelMethods
from headrace.backend.local_notifications import LocalNotificationMethods
from headrace.backend.local_schedules import LocalScheduleMethods
from headrace.engine import publishing
from headrace.engine.graphs import load_graph
from headrace.engine.launcher import ensure_agent, wake_agent
from headrace.engine.rerun import rerun_run
from headrace.engine.snapshots import create_snapshot
from headrace.engine.submission import Submission, submit_graph
from headrace.errors import DatastoreNotFoundError, UserError
from headrace.graph.model import Graph
from headrace.limits import TEXT_MAX_CHARS, json_tags
from headrace.store.datastores import clean_relative_path
from headrace.store.objectstores import OBJECT_STORE_TYPES, ObjectDatastoreFiles, save_secrets
from headrace.store.records import (
    ComputeTargetRecord,
    DatasetLineageRecord,
    DatasetRecord,
    DatastoreRecord,
    EnvironmentRecord,
    EventRecord,
    ExperimentRecord,
    MetricRecord,
    PipelineEndpointRecord,
    PipelineRunRecord,
    PublishedPipelineRecord,
    RunFileRecord,
    Status,
    StepRunRecord,
)
from headrace.store.transfer_progress import byte_progress
from headrace.store.workspace_store import WorkspaceStore

__all__ = ["LocalBackend"]


def _common_folder(paths: list[str]) -> str:
    """The deepest folder holding every path (to list their sizes in one call)."""
    return posixpath.commonpath([posixpath.dirname(p) for p in paths])


class LocalBackend(LocalModelMethods, LocalScheduleMethods, LocalNotificationMethods):
    def __init__(self, store: WorkspaceStore) -> None:
        self.store = store
        self.meta = store.meta

    @property
    def location(self) -> str:
        return str(self.store.root)

    def workspace_info(self) -> dict[str, Any]:
        info = dict(self.meta.workspace_info())
        info["path"] = str(self.store.root)
        info["database"] = "postgresql" if not self.store.database.is_sqlite else "sqlite"
        return info

    # -- datastores ------------------------------------------------------------------------
    def list_datastores(self) -> list[DatastoreRecord]:
        return self.meta.list_datastores()

    def find_datastore(self, name: str) -> DatastoreRecord | None:
        return self.meta.find_datastore(name)

    def register_datastore(
        self, name: str, type_: str, config: dict[str, Any], *, overwrite: bool
    ) -> DatastoreRecord:
        secrets: dict[str, str] = {}
        create_root = False
        if type_ == "local":
            config = _local_folder(config)
        elif type_ in OBJECT_STORE_TYPES:
            create_root = bool(config.get("create_if_not_exists"))
            config, secrets = _object_store(config)
        if self.meta.find_datastore(name) is not None and not overwrite:
            # Checked here too: the secrets file must not change for a refused registration.
            self.meta.add_datastore(name, type_, config, overwrite=False)
        save_secrets(self.store.root, name, secrets)
        record = self.meta.add_datastore(name, type_, config, overwrite=overwrite)
        self.store.forget_datastore(name)
        files = self.store.datastore_files(name)
        if create_root and isinstance(files, ObjectDatastoreFiles):
            files.ensure_root()
        return record

    def set_default_datastore(self, name: str) -> None:
        self.meta.set_default_datastore(name)

    def local_datastore_path(self, name: str) -> str | None:
        files = self.store.datastore_files(name)
        return str(files.local_path("")) if files.is_local else None

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
        from headrace.engine import datasets

        return datasets.register(
            self.store,
            definition,
            name=name,
            description=description,
            tags=tags,
            create_new_version=create_new_version,
        )

    def get_dataset(self, name: str, version: int | None = None) -> DatasetRecord:
        return self.meta.get_dataset(name, version)

    def get_dataset_by_id(self, dataset_id: str) -> DatasetRecord:
        return self.meta.get_dataset_by_id(dataset_id)

    def list_datasets(self) -> list[DatasetRecord]:
        return self.meta.list_datasets()

    def list_dataset_versions(self, name: str) -> list[DatasetRecord]:
        return self.meta.dataset_versions(name)

    def dataset_lineage(self, dataset_id: str) -> list[DatasetLineageRecord]:
        self.meta.get_dataset_by_id(dataset_id)  # raises for an unknown id
        return self.meta.dataset_lineage(dataset_id)

    def datastore_root(self, name: str) -> str:
        record = self.meta.find_datastore(name)
        if record is None:
            raise DatastoreNotFoundError(f"No datastore named {name!r}.")
        if record.type != "local":
            return self.store.datastore_files(name).describe()  # e.g. s3://bucket
        return str(self.store.local_datastore_root(record.config))

    def upload_files(
        self,
        datastore: str,
        files: list[tuple[Path, str]],
        *,
        overwrite: bool,
        show_progress: bool,
    ) -> list[tuple[str, bool]]:
        target = self.store.datastore_files(datastore)
        # Check every target before writing anything: a bad path uploads nothing.
        checked = [(src, clean_relative_path(path, what="target path")) for src, path in files]
        total = sum(src.stat().st_size for src, _path in checked)
        if target.is_local:
            for _src, path in checked:
                target.local_path(path)
        with byte_progress(show_progress, "Uploading", total) as advance:
            # Object stores: one batched transfer; a local folder: one copy after another.
            done = target.upload_many(checked, overwrite=overwrite, advance=advance)
        return [(path, ok) for (_src, path), ok in zip(checked, done, strict=True)]

    def list_datastore_files(self, datastore: str, prefix: str) -> list[tuple[str, int]]:
        return self.store.datastore_files(datastore).list_files(prefix)

    def download_datastore_files(
        self,
        datastore: str,
        files: list[tuple[str, Path]],
        *,
        overwrite: bool,
        show_progress: bool,
    ) -> int:
        source = self.store.datastore_files(datastore)
        todo = [(p, d) for p, d in files if overwrite or not d.exists()]
        sizes: dict[str, int] = {}
        if todo and show_progress:  # the bar's total: one listing of the folder they share
            sizes = dict(source.list_files(_common_folder([p for p, _d in todo])))
        total = sum(sizes.get(p, 0) for p, _d in todo)
        with byte_progress(show_progress, "Downloading", total) as advance:
            source.download_many(todo, advance=advance)  # object stores: one batched transfer
        return len(todo)

    # -- compute ---------------------------------------------------------------------------
    def create_compute_target(
        self, name: str, type_: str, config: dict[str, Any]
    ) -> ComputeTargetRecord:
        if not name.strip() or len(name) > TEXT_MAX_CHARS or len(type_) > 64:
            raise UserError(
                f"A compute target needs a name of 1 to {TEXT_MAX_CHARS} characters and a type "
                f"of at most 64; got {len(name):,} and {len(type_):,}."
            )
        return self.meta.add_compute_target(name, type_, config, overwrite=True)

    def find_compute_target(self, name: str) -> ComputeTargetRecord | None:
        return self.meta.find_compute_target(name)

    def list_compute_targets(self) -> list[ComputeTargetRecord]:
        return self.meta.list_compute_targets()

    def running_steps(self, compute_target: str) -> int:
        return self.meta.count_running_steps(compute_target)

    # -- experiments and runs --------------------------------------------------------------
    def list_experiments(self) -> list[tuple[ExperimentRecord, int]]:
        return self.meta.list_experiments()

    def create_snapshot(self, source_directory: str) -> str:
        return create_snapshot(self.store.artifacts, source_directory).id

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
    ) -> Submission:
        submission = submit_graph(
            self.store,
            graph,
            experiment_name=experiment_name,
            parameters=parameters,
            tags=tags,
            description=description,
            run_source=run_source,
            continue_on_step_failure=continue_on_step_failure,
            regenerate_outputs=regenerate_outputs,
            properties=properties,
        )
        self._start_work()
        return submission

    def rerun(
        self,
        run_id: str,
        *,
        parameters: dict[str, Any] | None = None,
        from_failed: bool = False,
        run_source: str = "SDK",
    ) -> Submission:
        submission = rerun_run(
            self.store,
            run_id,
            parameters=parameters,
            from_failed=from_failed,
            run_source=run_source,
        )
        self._start_work()
        return submission

    def _start_work(self) -> None:
        if not self.ensure_agent():
            wake_agent(self.store.root)

    def start_work(self) -> None:
        """Make sure queued runs get executed: start the agent, or wake the running one (the
        scheduler calls this after it queued runs)."""
        self._start_work()

    def ensure_agent(self) -> bool:
        """Start an agent unless one serves this workspace; True when one was started."""
        return ensure_agent(self.store.root)

    def get_pipeline_run(self, run_id: str) -> PipelineRunRecord:
        return self.meta.get_pipeline_run(run_id)

    def list_pipeline_runs(
        self,
        *,
        experiment_name: str | None = None,
        statuses: list[str] | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[PipelineRunRecord]:
        return self.meta.list_pipeline_runs(
            experiment_name=experiment_name, statuses=statuses, limit=limit, offset=offset
        )

    def resolve_run_id(self, prefix: str) -> str:
        return self.meta.resolve_run_id(prefix)

    def get_graph(self, graph_id: str) -> Graph:
        return load_graph(self.meta, graph_id)

    def list_step_runs(self, pipeline_run_id: str) -> list[StepRunRecord]:
        return self.meta.list_step_runs(pipeline_run_id)

    def get_step_run(self, step_run_id: str) -> StepRunRecord:
        return self.meta.get_step_run(step_run_id)

    def find_step_run(self, step_run_id: str) -> StepRunRecord | None:
        return self.meta.find_step_run(step_run_id)

    def cancel_run(self, run_id: str) -> PipelineRunRecord:
        record = self.meta.request_cancel(run_id)
        if record.status == Status.RUNNING or self.meta.list_outbox(run_id=run_id, limit=1):
            self.ensure_agent()  # to stop it, or to send its notifications
        return record

    def list_events(self, run_id: str, after_id: int = 0) -> list[EventRecord]:
        return self.meta.list_events(run_id, after_id)

    # -- run files, logs, metrics, tags ----------------------------------------------------
    def read_run_file(
        self, run_id: str, name: str, offset: int = 0, limit: int | None = None
    ) -> bytes:
        return self.store.artifacts.read_bytes(run_id, name, offset, limit)

    def list_run_files(self, run_id: str) -> list[RunFileRecord]:
        return [RunFileRecord(run_id, n, s) for n, s in self.store.artifacts.list_files(run_id)]

    def download_run_file(self, run_id: str, name: str, destination: Path) -> None:
        self.store.artifacts.copy_out(run_id, name, destination)

    def upload_run_file(self, run_id: str, name: str, source: Path) -> None:
        self.store.artifacts.put_file(run_id, name, source)

    def list_metrics(self, run_ids: list[str]) -> list[MetricRecord]:
        return self.meta.list_metrics(run_ids)

    def log_metrics(self, metrics: list[MetricRecord]) -> None:
        self.meta.add_metrics(metrics)

    def tag_run(self, run_id: str, tags: dict[str, Any]) -> None:
        self.meta.update_run_tags(run_id, json_tags(tags))

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
        return publishing.publish_graph(
            self.store,
            graph,
            name=name,
            description=description,
            version=version,
            continue_on_step_failure=continue_on_step_failure,
            source_run_id=source_run_id,
        )

    def get_published_pipeline(self, pipeline_id: str) -> PublishedPipelineRecord:
        return self.meta.get_published_pipeline(pipeline_id)

    def list_published_pipelines(self, active_only: bool = True) -> list[PublishedPipelineRecord]:
        return self.meta.list_published_pipelines(active_only)

    def set_published_pipeline_status(
        self, pipeline_id: str, status: str
    ) -> PublishedPipelineRecord:
        return self.meta.set_published_pipeline_status(pipeline_id, status)

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
        ignore_unknown_parameters: bool = False,
        properties: dict[str, Any] | None = None,
    ) -> Submission:
        submission = publishing.submit_published(
            self.store,
            pipeline_id,
            experiment_name=experiment_name,
            parameters=parameters,
            tags=tags,
            description=description,
            run_source=run_source,
            continue_on_step_failure=continue_on_step_failure,
            data_path_assignments=data_path_assignments,
            with_preview=with_preview,
            ignore_unknown_parameters=ignore_unknown_parameters,
            properties=properties,
        )
        self._start_work()
        return submission

    def create_pipeline_endpoint(
        self, *, name: str, description: str | None, pipeline_id: str
    ) -> PipelineEndpointRecord:
        return self.meta.create_pipeline_endpoint(
            name=name, description=description, pipeline_id=pipeline_id
        )

    def get_pipeline_endpoint(
        self, *, id: str | None = None, name: str | None = None
    ) -> PipelineEndpointRecord:
        return self.meta.get_pipeline_endpoint(id=id, name=name)

    def list_pipeline_endpoints(self, active_only: bool = True) -> list[PipelineEndpointRecord]:
        return self.meta.list_pipeline_endpoints(active_only)

    def add_pipeline_endpoint_version(
        self, endpoint_id: str, pipeline_id: str, make_default: bool
    ) -> PipelineEndpointRecord:
        return self.meta.add_pipeline_endpoint_version(endpoint_id, pipeline_id, make_default)

    def set_pipeline_endpoint_default(
        self, endpoint_id: str, version: str
    ) -> PipelineEndpointRecord:
        return self.meta.set_pipeline_endpoint_default(endpoint_id, version)

    def update_pipeline_endpoint(
        self,
        endpoint_id: str,
        *,
        name: str | None = None,
        description: str | None = None,
        status: str | None = None,
    ) -> PipelineEndpointRecord:
        return self.meta.update_pipeline_endpoint(
            endpoint_id, name=name, description=description, status=status
        )

    def endpoint_pipeline_id(self, endpoint: PipelineEndpointRecord, version: str | None) -> str:
        return publishing.endpoint_pipeline_id(endpoint, version)

    # -- registered environments -----------------------------------------------------------
    def register_environment(self, name: str, definition: dict[str, Any]) -> EnvironmentRecord:
        return self.meta.register_environment(name, definition)

    def get_environment(self, name: str, version: int | None = None) -> EnvironmentRecord:
        return self.meta.get_environment(name, version)

    def list_environments(self) -> list[EnvironmentRecord]:
        return self.meta.list_environments()


def _object_store(config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """An object-store datastore's config to record, and the secrets to keep out of it.

    Credentials arrive under "credentials" as {field: value} (kept in the workspace secrets
    file, recorded as "workspace") or {field: "env:NAME"} (recorded as given).
    """
    config = dict(config)
    config.pop("create_if_not_exists", None)  # acted on at registration, not stored
    given = config.pop("credentials", None) or {}
    refs: dict[str, str] = {}
    secrets: dict[str, str] = {}
    for field, value in given.items():
        if value is None or value == "":
            continue
        if isinstance(value, str) and value.startswith("env:") and len(value) > 4:
            refs[field] = value
        else:
            refs[field] = "workspace"
            secrets[field] = str(value)
    if refs:
        config["credentials"] = refs
    return config, secrets


def _local_folder(config: dict[str, Any]) -> dict[str, Any]:
    """A local datastore's config with its folder made absolute, checked, and created when
    `create_if_not_exists` (not stored) allows; on this machine, where the workspace is."""
    config = dict(config)
    create = bool(config.pop("create_if_not_exists", False))
    folder = Path(str(config.get("path", ""))).expanduser().absolute()
    if not folder.exists():
        if not create:
            raise UserError(f"The folder {folder} does not exist; create it first.")
        folder.mkdir(parents=True)
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder; a local datastore is a folder.")
    config["path"] = str(folder)
    return config
