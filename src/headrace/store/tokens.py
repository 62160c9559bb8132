"""API tokens of the server in the metadata store (only hashes of the secrets are kept), and
the portal's sign-in sessions of a token (only hashes of the session ids are kept).

`SqlMetadataStore` inherits these queries. What a token's secret looks like is here too
(`new_secret`), so the engine can give a running step a token scoped to its run; how a
request is checked against a token lives in `headrace.server.auth`.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Row, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from headrace.errors import ConflictError, NotFoundError
from headrace.store.database import Database
from headrace.store.orm import ApiTokenRow, PortalSessionRow, utcnow

__all__ = [
    "TOKEN_PREFIX",
    "TokenQueries",
    "TokenRecord",
    "hash_secret",
    "new_secret",
    "workspace_prefix",
]

TOKEN_PREFIX = "hr"  # noqa: S105 (a marker, not a secret)


def workspace_prefix(info: dict[str, Any]) -> str:
    """Twelve hex digits that identify a workspace: its id if it has one, else a digest of its
    name and creation time (two workspaces of one name made at different times differ)."""
    if info.get("id"):
        seed = str(info["id"])
    else:
        seed = f"{info.get('name')}|{info.get('created_at')}"
    return hashlib.sha256(seed.encode()).hexdigest()[:12]


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret(workspace_info: dict[str, Any]) -> str:
    """A fresh token secret of the workspace: `hr_<workspace prefix>_<random>`."""
    return f"{TOKEN_PREFIX}_{workspace_prefix(workspace_info)}_{secrets.token_urlsafe(32)}"


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; every timestamp we write is UTC.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class TokenRecord:
    """One API token, without its secret."""

    id: str
    name: str
    role: str
    token_hash: str
    scope_run_id: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None

    def usable_at(self, now: datetime) -> bool:
        """Neither revoked nor expired at `now`."""
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > now


def _record(row: ApiTokenRow | Row[Any]) -> TokenRecord:
    created = _aware(row.created_at)
    assert created is not None
    return TokenRecord(
        id=row.id,
        name=row.name,
        role=row.role,
        token_hash=row.token_hash,
        scope_run_id=row.scope_run_id,
        created_at=created,
        expires_at=_aware(row.expires_at),
        revoked_at=_aware(row.revoked_at),
        last_used_at=_aware(row.last_used_at),
    )


class TokenQueries:
    db: Database

    def create_token(
        self,
        *,
        name: str,
        role: str,
        token_hash: str,
        expires_at: datetime | None = None,
        scope_run_id: str | None = None,
    ) -> TokenRecord:
        row = ApiTokenRow(
            id=str(uuid.uuid4()),
            name=name,
            role=role,
            token_hash=token_hash,
            scope_run_id=scope_run_id,
            created_at=utcnow(),
            expires_at=expires_at,
        )
        try:
            with self.db.write() as s:
                if s.scalars(select(ApiTokenRow.id).where(ApiTokenRow.name == name)).first():
                    raise ConflictError(
                        f"A token named {name!r} already exists; choose another name, or "
                        f"revoke it first with `headrace token revoke {name}`."
                    )
                s.add(row)
        except IntegrityError as exc:
            # Two creators raced for the name (the hash is random, so it is the name).
            raise ConflictError(
                f"A token named {name!r} already exists; choose another name."
            ) from exc
        return _record(row)

    def find_token_by_hash(self, token_hash: str) -> TokenRecord | None:
        # A Core read: every authenticated request makes it (an ORM session costs twice as much).
        table = ApiTokenRow.__table__
        with self.db.read_conn() as conn:
            row = conn.execute(select(table).where(table.c.token_hash == token_hash)).first()
            return None if row is None else _record(row)

    def list_tokens(self) -> list[TokenRecord]:
        with self.db.read() as s:
            rows = s.scalars(select(ApiTokenRow).order_by(ApiTokenRow.created_at, ApiTokenRow.name))
            return [_record(row) for row in rows]

    def revoke_token(self, name: str) -> TokenRecord:
        with self.db.write() as s:
            row = s.scalars(select(ApiTokenRow).where(ApiTokenRow.name == name)).first()
            if row is None:
                names = ", ".join(s.scalars(select(ApiTokenRow.name).order_by(ApiTokenRow.name)))
                raise NotFoundError(
                    f"No token named {name!r}; the tokens are: {names or 'none'} "
                    "(see `headrace token list`)."
                )
            if row.revoked_at is None:
                row.revoked_at = utcnow()
            return _record(row)

    def touch_token(self, token_id: str, when: datetime) -> None:
        """Record that the token was used at `when`."""
        with self.db.write() as s:
            s.execute(
                update(ApiTokenRow).where(ApiTokenRow.id == token_id).values(last_used_at=when)
            )

    # -- portal sessions -------------------------------------------------------------------
    def create_portal_session(self, id_hash: str, token_id: str, expires_at: datetime) -> None:
        """Record a signed-in session (and forget the sessions that have expired)."""
        now = utcnow()
        with self.db.write_conn() as conn:
            conn.execute(delete(PortalSessionRow).where(PortalSessionRow.expires_at <= now))
            conn.execute(
                insert(PortalSessionRow).values(
                    id_hash=id_hash, token_id=token_id, created_at=now, expires_at=expires_at
                )
            )

    def find_session_token(self, id_hash: str, now: datetime) -> TokenRecord | None:
        """The token of a live session (one read: each portal request makes it), else None."""
        tokens = ApiTokenRow.__table__
        query = (
            select(tokens)
            .join(PortalSessionRow, PortalSessionRow.token_id == tokens.c.id)
            .where(PortalSessionRow.id_hash == id_hash, PortalSessionRow.expires_at > now)
        )
        with self.db.read_conn() as conn:
            row = conn.execute(query).first()
            return None if row is None else _record(row)

    def end_portal_session(self, id_hash: str) -> None:
        """Sign a session out: its cookie no longer signs anyone in, wherever it was copied."""
        with self.db.write_conn() as conn:
            conn.execute(delete(PortalSessionRow).where(PortalSessionRow.id_hash == id_hash))
