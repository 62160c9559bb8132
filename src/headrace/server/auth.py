"""API tokens: how secrets look, how they are issued, and how a request's token is checked.

A secret is `hr_<workspace prefix>_<random>`; only its sha256 is stored. The workspace prefix
lets a server tell "a token of another workspace" (403) from "not a token at all" (401) without
a database hit. Roles are ordered reader < submitter < admin. A token with a `scope_run_id`
(given to a running step) is good only where the route's rule for steps allows its run
(`server.access` says where).

No FastAPI here: the CLI issues tokens with these functions, the app checks them.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from headrace.errors import UserError
from headrace.server.errors import ApiError
from headrace.store.metadata import SqlMetadataStore
from headrace.store.tokens import (
    TokenRecord,
    hash_secret,
    new_secret,
    workspace_prefix,
)

__all__ = [
    "ROLES",
    "Authenticator",
    "hash_secret",
    "issue_token",
    "parse_expires",
    "workspace_prefix",
]

ROLES = ("reader", "submitter", "admin")
_RANK = {role: rank for rank, role in enumerate(ROLES)}
# last_used_at is written at most this often per token: a read must not cost a write.
TOUCH_INTERVAL_SECONDS = 60.0
_SECRET = re.compile(r"^hr_([0-9a-f]{12})_([A-Za-z0-9_-]{20,})$")


def parse_expires(text: str, *, now: datetime | None = None) -> datetime:
    """`30d`, `12h`, `90m` (from now) or a date `2026-12-31` / ISO time, as a UTC datetime."""
    now = now or datetime.now(timezone.utc)
    match = re.fullmatch(r"\s*(\d+)\s*([dhm])\s*", text)
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        if amount <= 0:
            raise UserError(f"--expires {text!r} must be in the future.")
        delta = {"d": timedelta(days=amount), "h": timedelta(hours=amount)}.get(
            unit, timedelta(minutes=amount)
        )
        return now + delta
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UserError(
            f"--expires {text!r} is neither a duration (30d, 12h, 90m) nor a date "
            "(2026-12-31 or 2026-12-31T18:00:00)."
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    if when <= now:
        raise UserError(f"--expires {text!r} is in the past; give a later date.")
    return when


def issue_token(
    meta: SqlMetadataStore,
    *,
    name: str,
    role: str,
    expires_at: datetime | None = None,
    scope_run_id: str | None = None,
) -> tuple[str, TokenRecord]:
    """Create a token; returns its secret (shown once, never stored) and its record."""
    if role not in _RANK:
        raise UserError(f"Unknown role {role!r}; use one of: {', '.join(ROLES)}.")
    if not name.strip():
        raise UserError("A token needs a name (--name), e.g. --name ci-submitter.")
    secret = new_secret(meta.workspace_info())
    record = meta.create_token(
        name=name,
        role=role,
        token_hash=hash_secret(secret),
        expires_at=expires_at,
        scope_run_id=scope_run_id,
    )
    return secret, record


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "Unauthorized", message)


class Authenticator:
    """Checks `Authorization: Bearer <token>` headers against one workspace's tokens."""

    def __init__(self, meta: SqlMetadataStore) -> None:
        self.meta = meta
        self.prefix = workspace_prefix(meta.workspace_info())
        self._touched: dict[str, float] = {}
        self._lock = threading.Lock()

    def check(
        self, header: str | None, role: str, *, step: Callable[[str], bool] | None = None
    ) -> TokenRecord:
        """The token of a request allowed `role`; raises ApiError if not. A step's run token
        (scoped to run S) passes only if `step(S)` is true: no rule, no step tokens."""
        if not header:
            raise _unauthorized(
                "This route needs an API token: send 'Authorization: Bearer <token>'; "
                "create one with `headrace token create --name NAME --role reader`."
            )
        scheme, _, secret = header.strip().partition(" ")
        secret = secret.strip()
        if scheme.lower() != "bearer" or not secret:
            raise _unauthorized(
                "The Authorization header must be 'Bearer <token>' (a headrace API token)."
            )
        match = _SECRET.match(secret)
        if match is None:
            raise _unauthorized("The API token is not a headrace token (hr_...); check it.")
        if match.group(1) != self.prefix:
            raise ApiError(
                403,
                "Forbidden",
                "The API token belongs to another workspace; create one for this workspace "
                "with `headrace token create` on it.",
            )
        record = self.meta.find_token_by_hash(hash_secret(secret))
        now = datetime.now(timezone.utc)
        if record is None:
            raise _unauthorized("The API token is unknown (deleted, or mistyped); check it.")
        if record.revoked_at is not None:
            raise _unauthorized(f"The API token {record.name!r} was revoked; create a new one.")
        if not record.usable_at(now):
            raise _unauthorized(f"The API token {record.name!r} has expired; create a new one.")
        if _RANK.get(record.role, -1) < _RANK[role]:
            raise ApiError(
                403,
                "Forbidden",
                f"The API token {record.name!r} has role {record.role!r}; this route needs "
                f"{role!r} or higher.",
            )
        scope = record.scope_run_id
        if scope is not None and (step is None or not step(scope)):
            raise ApiError(
                403,
                "Forbidden",
                f"The API token {record.name!r} is limited to run {scope}: a step's token may "
                f"use that run's files, metrics and tags, submit a published pipeline or "
                f"endpoint with ?parentRunId={scope}, and read or cancel the runs it submitted "
                "so; not this route.",
            )
        self._touch(record, now)
        return record

    def _touch(self, record: TokenRecord, now: datetime) -> None:
        mono = time.monotonic()
        with self._lock:
            last = self._touched.get(record.id)
            if last is not None and mono - last < TOUCH_INTERVAL_SECONDS:
                return
            self._touched[record.id] = mono
        self.meta.touch_token(record.id, now)
