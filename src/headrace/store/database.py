"""Connections to the metadata database: SQLite (WAL, busy timeout) or PostgreSQL.

`Database` owns the SQLAlchemy engine, applies the Alembic migrations when the schema is
behind, and hands out short transactions: `read()` and `write()`. On SQLite a write
transaction starts with BEGIN IMMEDIATE, so writers queue on the busy timeout instead of
failing halfway; the threads of one process (a server's request threads) first queue on a
lock of their own, because SQLite's busy handler makes a waiting writer sleep up to 100 ms
between tries while a lock handed from thread to thread is taken at once. On PostgreSQL
callers use SKIP LOCKED where rows are claimed.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DataError, DBAPIError, OperationalError, ProgrammingError
from sqlalchemy.orm import Session

from headrace.errors import MissingDependencyError, StoreError, UserError
from headrace.store.layout import make_private
from headrace.store.revision import HEAD_REVISION  # a new migration changes it there

__all__ = ["HEAD_REVISION", "Database", "sqlite_url"]

_MIGRATIONS = Path(__file__).parent / "migrations"
# How long an SQLite statement waits for another process's write lock before failing.
BUSY_TIMEOUT_MS = 30_000


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def _private_sqlite_files(url: str) -> None:
    """The database file (made now, 0600, if absent) and its -wal and -shm files, private to
    the owner: SQLite gives the -wal and -shm files the database file's mode."""
    try:
        name = make_url(url).database
    except ArgumentError:
        return  # an invalid URL: create_engine says so
    if not name or name == ":memory:" or name.startswith("file:"):
        return
    path = Path(name)
    make_private(path, create=True)
    for suffix in ("-wal", "-shm", "-journal"):
        make_private(path.with_name(path.name + suffix))


def _redact(url: str) -> str:
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


class Database:
    """One metadata database. Create it with the URL; call `ensure_schema()` once."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        # A server runs requests on up to 40 threads: keep enough connections open that a
        # burst does not connect (and set up) new ones for every request.
        kwargs: dict[str, Any] = {"pool_size": 10, "max_overflow": 30}
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        else:
            kwargs["pool_pre_ping"] = True
            kwargs["connect_args"] = {"connect_timeout": 5}
        self._write_lock = threading.RLock() if self.is_sqlite else None
        if self.is_sqlite:
            _private_sqlite_files(url)
        try:
            self.engine: Engine = create_engine(url, **kwargs)
        except ModuleNotFoundError as exc:
            raise MissingDependencyError(
                f"The database driver for {_redact(url)} is not installed ({exc.name}); "
                "for PostgreSQL run: pip install 'headrace[postgres]'"
            ) from exc
        except Exception as exc:
            raise StoreError(f"Invalid database URL {_redact(url)!r}: {exc}") from exc
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_on_connect)
            event.listen(self.engine, "begin", _sqlite_on_begin)
        self._writer = self.engine.execution_options(sqlite_begin="IMMEDIATE")

    # -- transactions ----------------------------------------------------------------------
    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        """A short read transaction."""
        with self._translate(), Session(self.engine, expire_on_commit=False) as session:
            yield session

    @contextlib.contextmanager
    def _one_writer(self) -> Iterator[None]:
        if self._write_lock is None:
            yield
            return
        with self._write_lock:
            yield

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """A short write transaction, committed on exit (rolled back on error)."""
        with (
            self._one_writer(),
            self._translate(),
            Session(self._writer, expire_on_commit=False) as session,
            session.begin(),
        ):
            yield session

    @contextlib.contextmanager
    def read_conn(self) -> Iterator[Connection]:
        """A plain connection for Core statements on hot paths (cheaper than a Session)."""
        with self._translate(), self.engine.connect() as conn:
            yield conn

    @contextlib.contextmanager
    def write_conn(self) -> Iterator[Connection]:
        """A write transaction on a plain connection, committed on exit."""
        with self._one_writer(), self._translate(), self._writer.begin() as conn:
            yield conn

    @contextlib.contextmanager
    def _translate(self) -> Iterator[None]:
        try:
            yield
        except OperationalError as exc:
            raise StoreError(self._explain(exc)) from exc
        except ProgrammingError as exc:
            raise StoreError(
                f"The metadata database {_redact(self.url)} is not a headrace database or "
                f"its schema is damaged: {exc.orig}"
            ) from exc
        except DataError as exc:
            # A value the database cannot store as given (PostgreSQL: a text longer than its
            # column); the checks at the edges name the field, this is the net below them.
            detail = str(exc.orig).strip().splitlines()[0] if exc.orig else "invalid value"
            raise UserError(
                f"A value cannot be stored: {detail}. Names are limited to 255 characters "
                "and run sources to 64; shorten it."
            ) from exc

    def _explain(self, exc: DBAPIError) -> str:
        detail = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        if self.is_sqlite:
            return (
                f"The metadata database {_redact(self.url)} cannot be used: {detail}. "
                "Check that the workspace folder exists and is writable."
            )
        return (
            f"Cannot reach the metadata database {_redact(self.url)}: {detail}. "
            "Check that PostgreSQL is running and the URL (host, port, user, database) is right."
        )

    # -- schema ----------------------------------------------------------------------------
    def ensure_schema(self) -> None:
        """Bring the schema to the newest migration; a no-op (one query) when it is current."""
        if self.current_revision() == HEAD_REVISION:
            return
        self.upgrade()

    def current_revision(self) -> str | None:
        try:
            with self.engine.connect() as conn:
                row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
                return None if row is None else str(row[0])
        except OperationalError as exc:
            if "no such table" in str(exc.orig):
                return None
            raise StoreError(self._explain(exc)) from exc
        except ProgrammingError:
            # PostgreSQL: relation does not exist.
            return None

    def upgrade(self) -> None:
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS))
        try:
            with self.engine.begin() as conn:
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
        except OperationalError as exc:
            raise StoreError(self._explain(exc)) from exc

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    # Take transaction control away from the sqlite3 module so BEGIN is ours to issue.
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = cursor.execute("PRAGMA journal_mode = WAL").fetchone()
        if mode and str(mode[0]).lower() != "wal":
            # A read-only folder, or a filesystem without shared memory: keep going in the
            # default journal mode rather than refuse to open.
            pass
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Any) -> None:
    mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
    if mode == "IMMEDIATE" and _begin_immediate(conn.connection.dbapi_connection):
        return
    # Also the way out when the quick tries gave up: one more wait on SQLite's busy timeout,
    # and a failure raised the way SQLAlchemy wraps it (a StoreError for the user).
    conn.exec_driver_sql(f"BEGIN {mode}")


def _begin_immediate(raw: sqlite3.Connection) -> bool:
    """Try BEGIN IMMEDIATE every millisecond while another process writes; False if it
    did not get the write lock within half the busy timeout, or failed otherwise.

    SQLite's own busy handler sleeps 1, 2, 5, 10, ... and then 100 ms between tries, so a
    writer that comes just after another began can wait many times longer than the other
    one writes: that made the tail latency of REST submits while the agent writes."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 2000
    raw.execute("PRAGMA busy_timeout = 0")
    try:
        while True:
            try:
                raw.execute("BEGIN IMMEDIATE")
                return True
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    return False
                time.sleep(0.001)
    finally:
        raw.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
