"""`LocalReads`: the reads of a local SQLite workspace, answered without opening its store.

`LocalBackend` opens the metadata store through SQLAlchemy, whose import costs a fresh
process more than a whole `headrace run show`. The read commands of the CLI (runs, their
steps, metrics and files, graphs, datastores) go through this instead: the same records
from `store.fastread` (stdlib sqlite3, read-only), the same files from the artifact store.
Anything else asked of it (a write, a PostgreSQL workspace's data, an object datastore's
location) goes to the full `LocalBackend`, opened on first use, so a caller may treat it as
the workspace's backend.

`open_local_reads` gives None when the fast reader cannot be trusted with the workspace
(PostgreSQL, no database yet, a schema at another revision); the caller then uses the
workspace's backend, which migrates or explains.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headrace.errors import DatastoreNotFoundError
from headrace.store.fastread import FastReader, open_fast_reader
from headrace.store.layout import WorkspaceLayout
from headrace.store.records import (
    DatastoreRecord,
    MetricRecord,
    PipelineRunRecord,
    RunFileRecord,
    StepRunRecord,
)

if TYPE_CHECKING:
    from headrace.graph.model import Graph
    from headrace.store.artifacts import LocalArtifactStore

__all__ = ["LocalReads", "open_local_reads"]

# What only some commands need (files, graphs, starting an agent) is imported when asked.


def open_local_reads(
    root: Path, config: dict[str, Any], full: Callable[[], Any]
) -> LocalReads | None:
    """Fast reads of the workspace folder `root` (its workspace.json is `config`), or None
    when its store must be opened the usual way. `full()` gives the workspace's backend."""
    if config.get("database_url"):
        return None  # PostgreSQL: the SQLAlchemy path
    layout = WorkspaceLayout(root)
    reader = open_fast_reader(layout.sqlite_path)
    if reader is None:
        return None
    return LocalReads(layout, reader, full)


class LocalReads:
    """The read methods of `LocalBackend` on a fast reader; every other attribute is the
    full backend's."""

    def __init__(self, layout: WorkspaceLayout, reader: FastReader, full: Callable[[], Any]):
        self.layout = layout
        self.reader = reader
        self._full = full
        self._artifact_store: LocalArtifactStore | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._full(), name)

    def close(self) -> None:
        self.reader.close()

    @property
    def location(self) -> str:
        return str(self.layout.root)

    def ensure_agent(self) -> bool:
        """Start an agent unless one serves this workspace; True when one was started."""
        from headrace.engine.launcher import ensure_agent

        return ensure_agent(self.layout.root)

    @property
    def _artifacts(self) -> LocalArtifactStore:
        # Imported when a command lists files: `run list` never does.
        if self._artifact_store is None:
            from headrace.store.artifacts import LocalArtifactStore

            self._artifact_store = LocalArtifactStore(self.layout.artifacts_dir)
        return self._artifact_store

    # -- runs ------------------------------------------------------------------------------
    def get_pipeline_run(self, run_id: str) -> PipelineRunRecord:
        return self.reader.get_pipeline_run(run_id)

    def list_pipeline_runs(
        self,
        *,
        experiment_name: str | None = None,
        statuses: list[str] | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[PipelineRunRecord]:
        return self.reader.list_pipeline_runs(
            experiment_name=experiment_name, statuses=statuses, limit=limit, offset=offset
        )

    def resolve_run_id(self, prefix: str) -> str:
        return self.reader.resolve_run_id(prefix)

    def get_graph(self, graph_id: str) -> Graph:
        from headrace.engine.graphs import load_graph

        return load_graph(self.reader, graph_id)

    def list_step_runs(self, pipeline_run_id: str) -> list[StepRunRecord]:
        return self.reader.list_step_runs(pipeline_run_id)

    def get_step_run(self, step_run_id: str) -> StepRunRecord:
        return self.reader.get_step_run(step_run_id)

    def find_step_run(self, step_run_id: str) -> StepRunRecord | None:
        return self.reader.find_step_run(step_run_id)

    def list_metrics(self, run_ids: Sequence[str]) -> list[MetricRecord]:
        return self.reader.list_metrics(run_ids)

    # -- run files -------------------------------------------------------------------------
    def list_run_files(self, run_id: str) -> list[RunFileRecord]:
        return [RunFileRecord(run_id, n, s) for n, s in self._artifacts.list_files(run_id)]

    def read_run_file(
        self, run_id: str, name: str, offset: int = 0, limit: int | None = None
    ) -> bytes:
        return self._artifacts.read_bytes(run_id, name, offset, limit)

    # -- datastores ------------------------------------------------------------------------
    def list_datastores(self) -> list[DatastoreRecord]:
        return self.reader.list_datastores()

    def find_datastore(self, name: str) -> DatastoreRecord | None:
        return self.reader.find_datastore(name)

    def datastore_root(self, name: str) -> str:
        record = self.reader.find_datastore(name)
        if record is None:
            raise DatastoreNotFoundError(f"No datastore named {name!r}.")
        if record.type != "local":
            return str(self._full().datastore_root(name))  # e.g. s3://bucket
        path = Path(record.config["path"])
        return str(path if path.is_absolute() else self.layout.root / path)
