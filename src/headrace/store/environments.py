"""Registered environments in the metadata store: named, versioned definitions.

`SqlMetadataStore` inherits these queries. A version is a number (1, 2, ...); registering a
definition equal to the latest version's returns that version instead of adding one, as
SDK v1's `Environment.register` did.
"""

from __future__ import annotations

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from headrace.errors import ConflictError, NotFoundError, UserError
from headrace.store.database import Database
from headrace.store.orm import EnvironmentRow, utcnow
from headrace.store.records import EnvironmentRecord

__all__ = ["MAX_NAME", "EnvironmentQueries"]

MAX_NAME = 255  # the column's length


def _record(row: EnvironmentRow) -> EnvironmentRecord:
    return EnvironmentRecord(
        name=row.name,
        version=row.version,
        definition=dict(row.definition or {}),
        created_at=row.created_at,
    )


class EnvironmentQueries:
    db: Database

    def register_environment(self, name: str, definition: dict[str, object]) -> EnvironmentRecord:
        if not name.strip() or len(name) > MAX_NAME:
            raise UserError(
                f"Environment name {name[:60]!r} must be 1 to {MAX_NAME} characters long; "
                "for example 'train-env'."
            )
        for _ in range(5):  # two registrations of one name at once: the later one retries
            latest = self._latest_environment(name)
            if latest is not None and latest.definition == definition:
                return latest
            version = 1 if latest is None else latest.version + 1
            now = utcnow()
            try:
                with self.db.write_conn() as conn:
                    conn.execute(
                        insert(EnvironmentRow),
                        {
                            "name": name,
                            "version": version,
                            "definition": definition,
                            "created_at": now,
                        },
                    )
            except IntegrityError:
                continue
            return EnvironmentRecord(name, version, dict(definition), now)
        raise ConflictError(
            f"Environment {name!r} is being registered by others at the same time; try again."
        )

    def get_environment(self, name: str, version: int | None = None) -> EnvironmentRecord:
        if version is None:
            found = self._latest_environment(name)
        else:
            with self.db.read() as s:
                row = s.get(EnvironmentRow, (name, version))
                found = None if row is None else _record(row)
        if found is not None:
            return found
        with self.db.read() as s:
            versions = list(
                s.scalars(select(EnvironmentRow.version).where(EnvironmentRow.name == name))
            )
        if versions:
            raise NotFoundError(
                f"Environment {name!r} has no version {version}; it has versions "
                f"{', '.join(map(str, sorted(versions)))}."
            )
        names = sorted(r.name for r in self.list_environments())
        known = f"registered: {', '.join(names)}" if names else "none is registered yet"
        raise NotFoundError(
            f"No environment named {name!r} in this workspace ({known}). Register one with "
            "Environment(name).register(ws)."
        )

    def list_environments(self) -> list[EnvironmentRecord]:
        """The latest version of every registered environment, by name."""
        latest = (
            select(EnvironmentRow.name, func.max(EnvironmentRow.version).label("version"))
            .group_by(EnvironmentRow.name)
            .subquery()
        )
        query = (
            select(EnvironmentRow)
            .join(
                latest,
                (latest.c.name == EnvironmentRow.name)
                & (latest.c.version == EnvironmentRow.version),
            )
            .order_by(EnvironmentRow.name)
        )
        with self.db.read() as s:
            return [_record(r) for r in s.scalars(query).all()]

    def _latest_environment(self, name: str) -> EnvironmentRecord | None:
        query = (
            select(EnvironmentRow)
            .where(EnvironmentRow.name == name)
            .order_by(EnvironmentRow.version.desc())
            .limit(1)
        )
        with self.db.read() as s:
            row = s.scalars(query).first()
            return None if row is None else _record(row)
