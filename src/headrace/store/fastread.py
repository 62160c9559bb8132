"""Reads of a SQLite workspace's metadata with the standard library's `sqlite3`, no SQLAlchemy.

Importing SQLAlchemy and the ORM costs a fresh process more than everything else a
`headrace run show` does, so the CLI's read commands ask a `FastReader` instead of
`SqlMetadataStore`. It runs the same queries as the store's read methods (same filters,
same order) on a read-only connection (`mode=ro`: it never writes, never migrates) and
returns the same records (store/records.py), decoding the columns the way the ORM's types
do: JSON text, 0/1 booleans, UTC timestamps stored without their zone. tests/test_fast_reads.py
runs both readers over the same workspace and compares every record, so the two cannot drift.

`open_fast_reader` gives None when this reader must not be trusted with the file: no database
yet, or a schema at another revision than this headrace's (`store.revision`). The caller then
opens the store the usual way, which migrates or explains. PostgreSQL workspaces always take
the SQLAlchemy path.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from headrace.errors import NotFoundError, RunNotFoundError, StoreError
from headrace.store.records import (
    DatastoreRecord,
    MetricRecord,
    PipelineRunRecord,
    StepRunRecord,
)
from headrace.store.revision import HEAD_REVISION

__all__ = ["FastReader", "open_fast_reader"]

# How long a read waits on another process's lock (WAL readers rarely wait at all).
_BUSY_SECONDS = 30.0

_RUN_COLUMNS = (
    "id, experiment_id, graph_id, status, parameters, tags, properties, description, "
    "run_source, continue_on_step_failure, regenerate_outputs, cancel_requested, agent_id, "
    "heartbeat_at, error, created_at, started_at, ended_at, interpreter"
)
# Statements are put together from these constants and `?` placeholders only; every value
# is a bound parameter.
_RUN_QUERY = (
    "SELECT "  # noqa: S608
    + ", ".join(f"p.{c.strip()}" for c in _RUN_COLUMNS.split(","))
    + ", e.name FROM pipeline_runs AS p JOIN experiments AS e ON e.id = p.experiment_id"
)
_STEP_COLUMNS = (
    "id, pipeline_run_id, node_id, name, status, attempt, compute_target, fingerprint, "
    "fingerprint_parts, run_reason, reused_run_id, command, outputs, tags, properties, pid, "
    "pid_started, exit_code, error, created_at, started_at, ended_at"
)
_STEP_QUERY = f"SELECT {_STEP_COLUMNS} FROM step_runs"  # noqa: S608


def _json(text: Any) -> Any:
    """A JSON column's value. SQLite gives a column declared JSON numeric affinity, so a
    JSON number comes back as a number (SQLAlchemy's SQLite JSON type passes those through
    too)."""
    if text is None or isinstance(text, (int, float)):
        return text
    if text == "{}":  # most tags, properties and parts: skip the parser (a 500-step run
        return {}  # has thousands of these)
    if text == "null":
        return None
    return json.loads(text)


def _time(text: Any) -> datetime | None:
    """A timestamp as `UtcDateTime` returns it: aware, in UTC."""
    if text is None:
        return None
    value = text if isinstance(text, datetime) else datetime.fromisoformat(str(text))
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def _run(row: tuple[Any, ...]) -> PipelineRunRecord:
    return PipelineRunRecord(
        id=row[0],
        experiment_id=row[1],
        experiment_name=row[19],
        graph_id=row[2],
        status=row[3],
        parameters=dict(_json(row[4]) or {}),
        tags=dict(_json(row[5]) or {}),
        properties=dict(_json(row[6]) or {}),
        description=row[7],
        run_source=row[8],
        continue_on_step_failure=bool(row[9]),
        regenerate_outputs=bool(row[10]),
        cancel_requested=bool(row[11]),
        agent_id=row[12],
        heartbeat_at=_time(row[13]),
        error=_json(row[14]),
        created_at=_time(row[15]),  # type: ignore[arg-type]  # never NULL
        started_at=_time(row[16]),
        ended_at=_time(row[17]),
        interpreter=_json(row[18]),
    )


def _step(row: tuple[Any, ...]) -> StepRunRecord:
    return StepRunRecord(
        id=row[0],
        pipeline_run_id=row[1],
        node_id=row[2],
        name=row[3],
        status=row[4],
        attempt=row[5],
        compute_target=row[6],
        fingerprint=row[7],
        fingerprint_parts=_json(row[8]),
        run_reason=_json(row[9]),
        reused_run_id=row[10],
        command=_json(row[11]),
        outputs=_json(row[12]),
        tags=_json(row[13]),
        properties=_json(row[14]),
        pid=row[15],
        pid_started=row[16],
        exit_code=row[17],
        error=_json(row[18]),
        created_at=_time(row[19]),  # type: ignore[arg-type]  # never NULL
        started_at=_time(row[20]),
        ended_at=_time(row[21]),
    )


def _connect(path: Path) -> sqlite3.Connection:
    uri = f"file:{quote(str(path.absolute()))}?mode=ro"
    # isolation_level=None: the module starts no transactions of its own; each read below
    # is one statement, or a few inside an explicit BEGIN (one snapshot).
    # check_same_thread=False: a command may read from a helper thread (SQLite serializes
    # the use of one connection by several threads itself).
    return sqlite3.connect(
        uri, uri=True, timeout=_BUSY_SECONDS, isolation_level=None, check_same_thread=False
    )


def open_fast_reader(path: Path) -> FastReader | None:
    """A reader of the SQLite database at `path`, or None when it is absent, cannot be
    opened, or is not at this headrace's schema revision (the store's own path migrates or
    explains)."""
    if not path.is_file():
        return None
    try:
        conn = _connect(path)
    except sqlite3.Error:
        return None
    try:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error:
        row = None
    if row is None or row[0] != HEAD_REVISION:
        conn.close()
        return None
    return FastReader(conn, path)


class FastReader:
    """The read methods of `SqlMetadataStore` the CLI's read commands use, on one read-only
    sqlite3 connection. Methods named `get_*` raise when the row is missing, `find_*` return
    None, as the store's do."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path

    def close(self) -> None:
        self._conn.close()

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(
                f"The metadata database {self.path} cannot be read: {exc}. Check that the "
                "workspace folder exists and is readable."
            ) from exc

    # -- pipeline runs ---------------------------------------------------------------------
    def find_pipeline_run(self, run_id: str) -> PipelineRunRecord | None:
        rows = self._rows(f"{_RUN_QUERY} WHERE p.id = ?", (run_id,))
        return _run(rows[0]) if rows else None

    def get_pipeline_run(self, run_id: str) -> PipelineRunRecord:
        record = self.find_pipeline_run(run_id)
        if record is None:
            raise RunNotFoundError(f"No pipeline run with id {run_id!r} in this workspace.")
        return record

    def list_pipeline_runs(
        self,
        *,
        experiment_name: str | None = None,
        statuses: Sequence[str] | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[PipelineRunRecord]:
        where: list[str] = []
        params: list[Any] = []
        if experiment_name is not None:
            where.append("e.name = ?")
            params.append(experiment_name)
        if statuses:
            where.append(f"p.status IN ({', '.join('?' for _ in statuses)})")
            params += list(statuses)
        sql = _RUN_QUERY + (f" WHERE {' AND '.join(where)}" if where else "")
        sql += " ORDER BY p.created_at DESC, p.id LIMIT ? OFFSET ?"
        return [_run(r) for r in self._rows(sql, [*params, limit, offset])]

    def resolve_run_id(self, prefix: str) -> str:
        """The full id of the pipeline or step run whose id starts with `prefix` (SQL LIKE,
        as the store's `startswith` query: case-insensitive for ASCII on SQLite)."""
        ids: list[str] = []
        for table in ("pipeline_runs", "step_runs"):
            sql = f"SELECT id FROM {table} WHERE id LIKE ? || '%' LIMIT 2"  # noqa: S608
            ids += [r[0] for r in self._rows(sql, (prefix,))]
        if len(ids) == 1:
            return ids[0]
        if not ids:
            raise RunNotFoundError(f"No run with an id starting with {prefix!r}.")
        raise RunNotFoundError(f"The id prefix {prefix!r} matches several runs; give more of it.")

    def get_graph(self, graph_id: str) -> dict[str, Any]:
        rows = self._rows("SELECT graph FROM graphs WHERE id = ?", (graph_id,))
        if not rows:
            raise NotFoundError(f"No pipeline graph {graph_id!r}.")
        return dict(_json(rows[0][0]))

    # -- step runs and metrics -------------------------------------------------------------
    def find_step_run(self, step_run_id: str) -> StepRunRecord | None:
        rows = self._rows(f"{_STEP_QUERY} WHERE id = ?", (step_run_id,))
        return _step(rows[0]) if rows else None

    def get_step_run(self, step_run_id: str) -> StepRunRecord:
        record = self.find_step_run(step_run_id)
        if record is None:
            raise RunNotFoundError(f"No step run with id {step_run_id!r} in this workspace.")
        return record

    def list_step_runs(self, pipeline_run_id: str) -> list[StepRunRecord]:
        sql = f"{_STEP_QUERY} WHERE pipeline_run_id = ? ORDER BY created_at, id"
        return [_step(r) for r in self._rows(sql, (pipeline_run_id,))]

    def list_metrics(self, run_ids: Sequence[str]) -> list[MetricRecord]:
        ids = list(run_ids)
        if not ids:
            return []
        marks = ", ".join("?" for _ in ids)
        sql = (
            "SELECT run_id, name, kind, value, step, description, created_at FROM metrics "  # noqa: S608
            f"WHERE run_id IN ({marks}) ORDER BY id"
        )
        return [
            MetricRecord(r[0], r[1], r[2], _json(r[3]), r[4], r[5], _time(r[6]))
            for r in self._rows(sql, ids)
        ]

    # -- datastores ------------------------------------------------------------------------
    def find_datastore(self, name: str) -> DatastoreRecord | None:
        sql = "SELECT name, type, config, is_default FROM datastores WHERE name = ?"
        rows = self._rows(sql, (name,))
        return _datastore(rows[0]) if rows else None

    def list_datastores(self) -> list[DatastoreRecord]:
        sql = "SELECT name, type, config, is_default FROM datastores ORDER BY name"
        return [_datastore(r) for r in self._rows(sql)]


def _datastore(row: tuple[Any, ...]) -> DatastoreRecord:
    return DatastoreRecord(row[0], row[1], dict(_json(row[2]) or {}), bool(row[3]))
