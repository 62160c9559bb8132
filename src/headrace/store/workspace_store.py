"""`WorkspaceStore`: one workspace's state, opened from its folder.

It bundles the folder layout, the metadata store (SQLite in the folder, or the PostgreSQL
named by `database_url` in workspace.json), the artifact store, and file access to each
registered datastore
(a folder, or an object store over fsspec).
"""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from headrace.errors import ConfigError, DatastoreNotFoundError, WorkspaceExistsError
from headrace.store.artifacts import LocalArtifactStore
from headrace.store.database import Database, sqlite_url
from headrace.store.datastores import DatastoreFiles, LocalDatastoreFiles
from headrace.store.layout import WorkspaceLayout
from headrace.store.metadata import SqlMetadataStore
from headrace.store.objectstores import OBJECT_STORE_TYPES, object_datastore_files

__all__ = ["DEFAULT_DATASTORES", "WorkspaceStore"]

DEFAULT_DATASTORES = ("workspaceblobstore", "workspacefilestore")


def _absent(layout: WorkspaceLayout) -> list[Path]:
    """The workspace's folders and database files that do not exist yet, outermost first."""
    sqlite = layout.sqlite_path
    candidates = [
        layout.root,
        layout.artifacts_dir,
        layout.work_dir,
        layout.agent_dir,
        layout.datastores_dir,
        sqlite,
        sqlite.with_name(sqlite.name + "-wal"),
        sqlite.with_name(sqlite.name + "-shm"),
        sqlite.with_name(sqlite.name + "-journal"),
    ]
    return [p for p in candidates if not p.exists()]


def _remove(paths: list[Path]) -> None:
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


class WorkspaceStore:
    def __init__(self, layout: WorkspaceLayout, config: dict[str, Any]) -> None:
        self.layout = layout
        self.config = config
        self.name: str = config["name"]
        url = config.get("database_url") or sqlite_url(layout.sqlite_path)
        self.database = Database(url)
        self.meta = SqlMetadataStore(self.database)
        self.artifacts = LocalArtifactStore(layout.artifacts_dir)
        self._datastore_files: dict[str, DatastoreFiles] = {}

    @property
    def root(self) -> Path:
        return self.layout.root

    # -- opening and creating --------------------------------------------------------------
    @classmethod
    def open(cls, root: Path) -> WorkspaceStore:
        layout = WorkspaceLayout(Path(root).absolute())
        store = cls(layout, layout.read_config())
        store.database.ensure_schema()
        return store

    @classmethod
    def create(
        cls,
        root: Path,
        name: str,
        *,
        subscription_id: str | None = None,
        resource_group: str | None = None,
        location: str | None = None,
        database_url: str | None = None,
        exist_ok: bool = False,
        extra: dict[str, Any] | None = None,
    ) -> WorkspaceStore:
        layout = WorkspaceLayout(Path(root).absolute())
        if layout.exists():
            existing = layout.read_config()
            if not exist_ok:
                found = f"A workspace already exists at {layout.root} (named {existing['name']!r})"
                raise WorkspaceExistsError(
                    f"{found}; pass exist_ok=True to use it, or choose another name or path."
                ).in_cli_words(
                    f"{found}; pass --exist-ok to use it, or choose another name or --path."
                )
            return cls.open(layout.root)
        config: dict[str, Any] = {
            "name": name,
            "subscription_id": subscription_id,
            "resource_group": resource_group,
            "location": location,
            "database_url": database_url,
            "created_at": datetime.now(timezone.utc).isoformat(),
        }
        created = _absent(layout)
        layout.create_folders()
        store = cls(layout, config)
        try:
            # The database first: if it cannot be reached, no workspace.json is left behind.
            store.database.ensure_schema()
            store.meta.init_workspace(name, subscription_id, resource_group, location, extra or {})
            for ds_name in DEFAULT_DATASTORES:
                if store.meta.find_datastore(ds_name) is None:
                    folder = layout.datastores_dir / ds_name
                    folder.mkdir(parents=True, exist_ok=True)
                    store.meta.add_datastore(ds_name, "local", {"path": f"datastores/{ds_name}"})
            store.meta.set_default_datastore(DEFAULT_DATASTORES[0])
            if store.meta.find_compute_target("local") is None:
                store.meta.add_compute_target("local", "local", {"max_nodes": None})
            layout.write_config(config)
        except BaseException:
            # Leave no half-created workspace: remove what this call created, nothing else.
            store.close()
            _remove(created)
            raise
        return store

    # -- datastores ------------------------------------------------------------------------
    def datastore_files(self, name: str) -> DatastoreFiles:
        cached = self._datastore_files.get(name)
        if cached is not None:
            return cached
        record = self.meta.find_datastore(name)
        if record is None:
            known = [d.name for d in self.meta.list_datastores()]
            raise DatastoreNotFoundError(
                f"No datastore named {name!r} in workspace {self.name!r}; known: "
                f"{', '.join(known) or 'none'}."
            )
        files: DatastoreFiles
        if record.type in OBJECT_STORE_TYPES:
            files = object_datastore_files(name, record.type, record.config, self.layout.root)
        elif record.type == "local":
            files = LocalDatastoreFiles(name, self.local_datastore_root(record.config))
        else:
            raise ConfigError(
                f"Datastore {name!r} has type {record.type!r}, which this version of headrace "
                "cannot open."
            )
        self._datastore_files[name] = files
        return files

    def local_datastore_root(self, config: dict[str, Any]) -> Path:
        path = Path(config["path"])
        return path if path.is_absolute() else self.layout.root / path

    def forget_datastore(self, name: str) -> None:
        self._datastore_files.pop(name, None)

    def close(self) -> None:
        self.database.dispose()
