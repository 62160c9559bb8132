"""Registered datasets and their lineage: the queries `SqlMetadataStore` inherits.

A dataset's versions are rows of `datasets` (unique name + version); lineage rows say which
step runs produced or consumed each version. Listing queries leave out the (possibly
large) file list of a version.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table, func, insert, select
from sqlalchemy.exc import IntegrityError

from headrace.errors import ConflictError, DatasetNotFoundError
from headrace.store.database import Database
from headrace.store.orm import DatasetLineageRow, DatasetRow, StepRunRow, utcnow
from headrace.store.records import DatasetLineageRecord, DatasetRecord

__all__ = ["DatasetQueries", "lineage_rows"]

DATASETS = cast(Table, DatasetRow.__table__)
LINEAGE = cast(Table, DatasetLineageRow.__table__)
STEPS = cast(Table, StepRunRow.__table__)
_COLUMNS = [c for c in DATASETS.c if c.name not in ("files", "definition_hash")]


def _record(row: Any) -> DatasetRecord:
    m = row._mapping
    return DatasetRecord(
        id=m["id"],
        name=m["name"],
        version=int(m["version"]),
        kind=m["kind"],
        definition=dict(m["definition"] or {}),
        content=dict(m["content"] or {}),
        description=m["description"],
        tags=dict(m["tags"] or {}),
        produced_by=m["produced_by"],
        created_at=m["created_at"],
    )


def _lineage(row: Any) -> DatasetLineageRecord:
    m = row._mapping
    return DatasetLineageRecord(
        dataset_id=m["dataset_id"],
        role=m["role"],
        step_run_id=m["step_run_id"],
        pipeline_run_id=m["pipeline_run_id"],
        port=m["port"],
        step_name=m.get("step_name"),
        status=m.get("status"),
        created_at=m["created_at"],
    )


def lineage_rows(
    dataset_ids: dict[str, str], role: str, step_run_id: str, pipeline_run_id: str
) -> list[dict[str, Any]]:
    """Rows for `insert(dataset_lineage)`: {port: dataset id} of one step run."""
    now = utcnow()
    return [
        {
            "dataset_id": dataset_id,
            "role": role,
            "step_run_id": step_run_id,
            "pipeline_run_id": pipeline_run_id,
            "port": port,
            "created_at": now,
        }
        for port, dataset_id in sorted(dataset_ids.items())
    ]


class DatasetQueries:
    db: Database

    def add_dataset_version(
        self,
        *,
        name: str,
        kind: str,
        definition: dict[str, Any],
        definition_hash: str,
        content: dict[str, Any],
        files: list[Any],
        description: str | None,
        tags: dict[str, Any],
        create_new_version: bool,
        produced_by: str | None = None,
        pipeline_run_id: str | None = None,
    ) -> DatasetRecord:
        """Register `name`: a new version, or the latest one when nothing differs (same
        definition and content). A different definition under a taken name needs
        `create_new_version` (ConflictError otherwise), as in SDK v1; changed content
        behind the same definition makes a new version by itself."""
        for _attempt in range(3):
            try:
                return self._add_version(
                    name=name,
                    kind=kind,
                    definition=definition,
                    definition_hash=definition_hash,
                    content=content,
                    files=files,
                    description=description,
                    tags=tags,
                    create_new_version=create_new_version,
                    produced_by=produced_by,
                    pipeline_run_id=pipeline_run_id,
                )
            except IntegrityError:
                continue  # another writer took this version number: look again
        raise ConflictError(f"Could not register dataset {name!r}: too many writers at once.")

    def _add_version(self, **given: Any) -> DatasetRecord:
        """One attempt of `add_dataset_version`, in one transaction (an IntegrityError
        means another writer took the version number)."""
        name, definition_hash, content = given["name"], given["definition_hash"], given["content"]
        produced_by = given["produced_by"]
        with self.db.write_conn() as conn:
            latest = conn.execute(
                select(DATASETS)
                .where(DATASETS.c.name == name)
                .order_by(DATASETS.c.version.desc())
                .limit(1)
            ).first()
            if latest is not None:
                same_definition = latest.definition_hash == definition_hash
                same_content = (latest.content or {}).get("hash") == content.get("hash")
                if same_definition and same_content and produced_by is None:
                    return _record(latest)
                if not same_definition and not given["create_new_version"]:
                    raise ConflictError(
                        f"There is already a dataset named {name!r} (version "
                        f"{latest.version}) with another definition; register with "
                        "create_new_version=True to add a version, or choose another name."
                    )
            values = {
                "id": str(uuid.uuid4()),
                "name": name,
                "version": (latest.version + 1) if latest is not None else 1,
                "kind": given["kind"],
                "definition": given["definition"],
                "definition_hash": definition_hash,
                "content": content,
                "files": given["files"],
                "description": given["description"],
                "tags": given["tags"],
                "produced_by": produced_by,
                "created_at": utcnow(),
            }
            conn.execute(insert(DATASETS), values)
            if produced_by is not None:
                conn.execute(
                    insert(LINEAGE),
                    lineage_rows(
                        {name: str(values["id"])},
                        "produced",
                        produced_by,
                        given["pipeline_run_id"] or "",
                    ),
                )
            return _record(_ValuesRow(values))

    def find_dataset(self, name: str, version: int | None = None) -> DatasetRecord | None:
        query = select(*_COLUMNS).where(DATASETS.c.name == name)
        if version is None:
            query = query.order_by(DATASETS.c.version.desc()).limit(1)
        else:
            query = query.where(DATASETS.c.version == version)
        with self.db.read_conn() as conn:
            row = conn.execute(query).first()
        return None if row is None else _record(row)

    def get_dataset(self, name: str, version: int | None = None) -> DatasetRecord:
        record = self.find_dataset(name, version)
        if record is not None:
            return record
        versions = self.dataset_versions(name)
        if versions:
            known = ", ".join(str(v.version) for v in versions)
            raise DatasetNotFoundError(
                f"Dataset {name!r} has no version {version}; its versions are {known}."
            )
        names = sorted({r.name for r in self.list_datasets()})
        listed = ", ".join(repr(n) for n in names[:30]) if names else "none yet"
        raise DatasetNotFoundError(
            f"No dataset named {name!r} in this workspace; registered datasets: {listed}. "
            "Register one with dataset.register(ws, name)."
        )

    def get_dataset_by_id(self, dataset_id: str) -> DatasetRecord:
        with self.db.read_conn() as conn:
            row = conn.execute(select(*_COLUMNS).where(DATASETS.c.id == dataset_id)).first()
        if row is None:
            raise DatasetNotFoundError(
                f"No dataset version with id {dataset_id!r} in this workspace; "
                "`headrace datasets list` shows the registered ones."
            )
        return _record(row)

    def dataset_versions(self, name: str) -> list[DatasetRecord]:
        with self.db.read_conn() as conn:
            rows = conn.execute(
                select(*_COLUMNS).where(DATASETS.c.name == name).order_by(DATASETS.c.version)
            ).all()
        return [_record(r) for r in rows]

    def list_datasets(self) -> list[DatasetRecord]:
        """The latest version of every registered dataset, by name."""
        newest = (
            select(DATASETS.c.name, func.max(DATASETS.c.version).label("v"))
            .group_by(DATASETS.c.name)
            .subquery()
        )
        query = (
            select(*_COLUMNS)
            .join(newest, (newest.c.name == DATASETS.c.name) & (newest.c.v == DATASETS.c.version))
            .order_by(DATASETS.c.name)
        )
        with self.db.read_conn() as conn:
            return [_record(r) for r in conn.execute(query).all()]

    def dataset_files(self, dataset_id: str) -> list[Any]:
        with self.db.read_conn() as conn:
            files = conn.scalar(select(DATASETS.c.files).where(DATASETS.c.id == dataset_id))
        if files is None:
            self.get_dataset_by_id(dataset_id)  # raises, naming the id
        return list(files or [])

    def dataset_lineage(self, dataset_id: str) -> list[DatasetLineageRecord]:
        """Who produced and consumed a dataset version, oldest first, with each step
        run's name and status."""
        query = (
            select(LINEAGE, STEPS.c.name.label("step_name"), STEPS.c.status.label("status"))
            .join(STEPS, STEPS.c.id == LINEAGE.c.step_run_id, isouter=True)
            .where(LINEAGE.c.dataset_id == dataset_id)
            .order_by(LINEAGE.c.id)
        )
        with self.db.read_conn() as conn:
            return [_lineage(r) for r in conn.execute(query).all()]

    def step_run_datasets(self, step_run_ids: Sequence[str]) -> list[DatasetLineageRecord]:
        """The datasets some step runs produced or consumed."""
        if not step_run_ids:
            return []
        query = select(LINEAGE).where(LINEAGE.c.step_run_id.in_(list(step_run_ids)))
        with self.db.read_conn() as conn:
            return [_lineage(r) for r in conn.execute(query).all()]


class _ValuesRow:
    def __init__(self, values: dict[str, Any]) -> None:
        self._mapping = values
