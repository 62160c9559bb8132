"""Datastores and compute targets in the metadata store: the `SqlMetadataStore` methods
that register, find and list them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update

from headrace.errors import ConflictError, DatastoreNotFoundError
from headrace.store.database import Database
from headrace.store.orm import ComputeTargetRow, DatastoreRow
from headrace.store.records import ComputeTargetRecord, DatastoreRecord

__all__ = ["TargetQueries"]


class TargetQueries:
    db: Database
    # Compute targets are never renamed or deleted: one seen once need not be looked up again.
    _targets_seen: set[str]

    # -- datastores ------------------------------------------------------------------------
    def add_datastore(
        self, name: str, type_: str, config: dict[str, Any], *, overwrite: bool = False
    ) -> DatastoreRecord:
        with self.db.write() as s:
            row = s.get(DatastoreRow, name)
            if row is not None and not overwrite:
                raise ConflictError(
                    f"A datastore named {name!r} is already registered; pass overwrite=True "
                    "to replace it."
                )
            if row is None:
                row = DatastoreRow(name=name, type=type_, config=config, is_default=False)
                s.add(row)
            else:
                row.type, row.config = type_, config
            has_default = s.scalar(select(func.count()).where(DatastoreRow.is_default)) or 0
            if not has_default:
                row.is_default = True
            s.flush()
            return DatastoreRecord(row.name, row.type, dict(row.config), row.is_default)

    def find_datastore(self, name: str) -> DatastoreRecord | None:
        with self.db.read() as s:
            row = s.get(DatastoreRow, name)
            return (
                None
                if row is None
                else DatastoreRecord(row.name, row.type, dict(row.config), row.is_default)
            )

    def default_datastore_name(self) -> str | None:
        """The default datastore's name (one Core read: every submit asks)."""
        table = DatastoreRow.__table__
        with self.db.read_conn() as conn:
            name = conn.execute(
                select(table.c.name).where(table.c.is_default.is_(True)).order_by(table.c.name)
            ).scalar()
        return None if name is None else str(name)

    def list_datastores(self) -> list[DatastoreRecord]:
        with self.db.read() as s:
            rows = s.scalars(select(DatastoreRow).order_by(DatastoreRow.name)).all()
            return [DatastoreRecord(r.name, r.type, dict(r.config), r.is_default) for r in rows]

    def set_default_datastore(self, name: str) -> None:
        with self.db.write() as s:
            if s.get(DatastoreRow, name) is None:
                raise DatastoreNotFoundError(f"No datastore named {name!r} in this workspace.")
            s.execute(update(DatastoreRow).values(is_default=DatastoreRow.name == name))

    # -- compute targets -------------------------------------------------------------------
    def add_compute_target(
        self, name: str, type_: str, config: dict[str, Any], *, overwrite: bool = True
    ) -> ComputeTargetRecord:
        with self.db.write() as s:
            row = s.get(ComputeTargetRow, name)
            if row is None:
                row = ComputeTargetRow(name=name, type=type_, config=config)
                s.add(row)
            elif overwrite:
                row.type, row.config = type_, config
            else:
                raise ConflictError(f"A compute target named {name!r} already exists.")
            s.flush()
            return ComputeTargetRecord(row.name, row.type, dict(row.config), row.created_at)

    def find_compute_target(self, name: str) -> ComputeTargetRecord | None:
        with self.db.read() as s:
            row = s.get(ComputeTargetRow, name)
            return (
                None
                if row is None
                else ComputeTargetRecord(row.name, row.type, dict(row.config), row.created_at)
            )

    def list_compute_targets(self) -> list[ComputeTargetRecord]:
        with self.db.read() as s:
            rows = s.scalars(select(ComputeTargetRow).order_by(ComputeTargetRow.name)).all()
            records = [
                ComputeTargetRecord(r.name, r.type, dict(r.config), r.created_at) for r in rows
            ]
        self._targets_seen.update(r.name for r in records)
        return records

    def compute_targets_exist(self, names: set[str]) -> bool:
        """Whether every name in `names` is a compute target (no query once all were seen)."""
        if names <= self._targets_seen:
            return True
        self.list_compute_targets()
        return names <= self._targets_seen
