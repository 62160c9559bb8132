"""The metadata store, on SQLite and PostgreSQL: the migration stream matches the tables,
runs are claimed once, state changes leave events, timestamps are UTC."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from headrace.store.database import HEAD_REVISION, Database, sqlite_url
from headrace.store.metadata import SqlMetadataStore
from headrace.store.orm import Base, utcnow
from headrace.store.records import Status

TINY_GRAPH = {"nodes": [], "schema_version": 1}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> SqlMetadataStore:
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
    else:
        url = sqlite_url(tmp_path / "meta.db")
    db = Database(url)
    db.ensure_schema()
    yield SqlMetadataStore(db)
    db.dispose()


def test_migrations_create_exactly_the_orm_tables(store: SqlMetadataStore) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with store.db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], f"models and migrations differ: {diff}"
    assert store.db.current_revision() == HEAD_REVISION


def test_head_revision_constant_matches_the_newest_migration() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    import headrace.store.database as database

    config = Config()
    config.set_main_option("script_location", str(Path(database.__file__).parent / "migrations"))
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD_REVISION


def test_ensure_schema_on_a_current_database_is_a_no_op(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "m.db")
    Database(url).ensure_schema()
    again = Database(url)
    again.ensure_schema()
    assert again.current_revision() == HEAD_REVISION


def _queue(store: SqlMetadataStore, name: str = "exp") -> str:
    return store.create_pipeline_run(
        experiment_name=name,
        graph=TINY_GRAPH,
        parameters={},
        tags={},
        description=None,
        run_source="SDK",
        continue_on_step_failure=False,
        regenerate_outputs=False,
    ).id


def test_a_queued_run_is_claimed_by_one_agent_only(store: SqlMetadataStore) -> None:
    run_id = _queue(store)
    stale = utcnow() - timedelta(seconds=30)
    first = store.claim_runs("host:1:1", limit=10, stale_before=stale)
    second = store.claim_runs("host:2:2", limit=10, stale_before=stale)
    assert [r.id for r in first] == [run_id]
    assert second == []
    record = store.get_pipeline_run(run_id)
    assert record.status == Status.RUNNING and record.agent_id == "host:1:1"
    assert record.started_at is not None and record.started_at.tzinfo is not None


def test_a_run_of_a_dead_or_silent_agent_is_taken_over(store: SqlMetadataStore) -> None:
    run_id = _queue(store)
    store.claim_runs("host:1:1", limit=10, stale_before=utcnow() - timedelta(seconds=30))
    taken = store.claim_runs(
        "host:2:2",
        limit=10,
        stale_before=utcnow() - timedelta(seconds=30),
        dead_agents=["host:1:1"],
    )
    assert [r.id for r in taken] == [run_id]
    # A heartbeat older than the limit also counts as dead.
    later = store.claim_runs("host:3:3", limit=10, stale_before=utcnow() + timedelta(seconds=1))
    assert [r.id for r in later] == [run_id]
    assert store.heartbeat("host:2:2", [run_id]) == []
    kinds = [e.kind for e in store.list_events(run_id)]
    assert kinds == ["run.queued", "run.started", "run.resumed", "run.resumed"]


def test_cancel_of_a_queued_run_ends_it_at_once(store: SqlMetadataStore) -> None:
    run_id = _queue(store)
    record = store.request_cancel(run_id)
    assert record.status == Status.CANCELED
    assert store.claim_runs("a:1:1", limit=5, stale_before=utcnow()) == []


def test_same_graph_submitted_twice_is_stored_once(store: SqlMetadataStore) -> None:
    a, b = _queue(store), _queue(store)
    assert store.get_pipeline_run(a).graph_id == store.get_pipeline_run(b).graph_id
    assert {r.id for r in store.list_pipeline_runs(experiment_name="exp")} == {a, b}


def test_run_ids_resolve_from_a_unique_prefix(store: SqlMetadataStore) -> None:
    from headrace.errors import RunNotFoundError

    run_id = _queue(store)
    assert store.resolve_run_id(run_id[:8]) == run_id
    with pytest.raises(RunNotFoundError, match="No run with an id starting with"):
        store.resolve_run_id("zzzz")


def test_naive_timestamps_are_refused(tmp_path: Path) -> None:
    from datetime import datetime

    from sqlalchemy.orm import Session

    from headrace.store.orm import ExperimentRow

    engine = create_engine(sqlite_url(tmp_path / "t.db"))
    Base.metadata.create_all(engine)
    with Session(engine) as session, pytest.raises(Exception, match="naive datetime"):
        session.add(ExperimentRow(id="x", name="x", created_at=datetime(2026, 1, 1)))
        session.commit()
