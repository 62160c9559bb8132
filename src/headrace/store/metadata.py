"""`SqlMetadataStore`: every query and state change of the metadata database.

Each public method is one short transaction. State changes of runs and steps write their
event row in the same transaction. Methods named `get_*` raise when the row is missing,
`find_*` return None.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, false, func, insert, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from headrace.errors import ConflictError, NotFoundError, RunNotFoundError
from headrace.store.database import Database
from headrace.store.dataset_queries import DatasetQueries
from headrace.store.environments import EnvironmentQueries
from headrace.store.models import ModelQueries
from headrace.store.notifications import NotificationQueries, enqueue_for_ending
from headrace.store.orm import (
    EventRow,
    ExperimentRow,
    GraphRow,
    PipelineRunRow,
    StepRunRow,
    WorkspaceRow,
    utcnow,
)
from headrace.store.publishing import PublishingQueries
from headrace.store.records import (
    TERMINAL_STATUSES,
    ExperimentRecord,
    PipelineRunRecord,
    Status,
)
from headrace.store.run_triggers import RunTriggerQueries
from headrace.store.schedules import ScheduleQueries
from headrace.store.step_runs import StepRunQueries
from headrace.store.targets import TargetQueries
from headrace.store.tokens import TokenQueries

__all__ = ["SqlMetadataStore", "pipeline_record"]


def pipeline_record(row: PipelineRunRow | Row[Any], experiment_name: str) -> PipelineRunRecord:
    """The record of a pipeline run (an ORM row or a Core row of the same columns), with its
    experiment's name from a join."""
    return PipelineRunRecord(
        id=row.id,
        experiment_id=row.experiment_id,
        experiment_name=experiment_name,
        graph_id=row.graph_id,
        status=row.status,
        parameters=dict(row.parameters or {}),
        tags=dict(row.tags or {}),
        properties=dict(row.properties or {}),
        description=row.description,
        run_source=row.run_source,
        continue_on_step_failure=row.continue_on_step_failure,
        regenerate_outputs=row.regenerate_outputs,
        cancel_requested=row.cancel_requested,
        agent_id=row.agent_id,
        heartbeat_at=row.heartbeat_at,
        error=row.error,
        created_at=row.created_at,
        started_at=row.started_at,
        ended_at=row.ended_at,
        interpreter=row.interpreter,
    )


class SqlMetadataStore(
    TargetQueries,
    StepRunQueries,
    PublishingQueries,
    TokenQueries,
    DatasetQueries,
    ModelQueries,
    EnvironmentQueries,
    ScheduleQueries,
    NotificationQueries,
    RunTriggerQueries,
):
    """The metadata store over SQLAlchemy; works the same on SQLite and PostgreSQL."""

    def __init__(self, database: Database) -> None:
        self.db = database
        # Experiments and compute targets are never renamed or deleted, so one seen once
        # stays valid and need not be looked up again.
        self._experiments: dict[str, ExperimentRecord] = {}
        self._targets_seen: set[str] = set()

    # -- workspace -------------------------------------------------------------------------
    def init_workspace(
        self,
        name: str,
        subscription_id: str | None,
        resource_group: str | None,
        location: str | None,
        extra: dict[str, Any],
    ) -> None:
        with self.db.write() as s:
            if s.get(WorkspaceRow, name) is None:
                s.add(
                    WorkspaceRow(
                        name=name,
                        subscription_id=subscription_id,
                        resource_group=resource_group,
                        location=location,
                        extra=extra,
                    )
                )

    def workspace_info(self) -> dict[str, Any]:
        with self.db.read() as s:
            row = s.scalars(select(WorkspaceRow)).first()
            if row is None:
                return {}
            return {
                "name": row.name,
                "subscription_id": row.subscription_id,
                "resource_group": row.resource_group,
                "location": row.location,
                "created_at": row.created_at.isoformat(),
                **dict(row.extra or {}),
            }

    # -- experiments and graphs ------------------------------------------------------------
    def get_or_create_experiment(self, name: str) -> ExperimentRecord:
        known = self._experiments.get(name)
        if known is not None:
            return known
        with self.db.read() as s:
            row = s.scalars(select(ExperimentRow).where(ExperimentRow.name == name)).first()
        if row is None:
            try:
                with self.db.write() as s:
                    row = ExperimentRow(id=str(uuid.uuid4()), name=name)
                    s.add(row)
                    s.flush()
            except IntegrityError:
                # Another process created it between our read and write.
                return self.get_or_create_experiment(name)
        record = ExperimentRecord(row.id, row.name, row.created_at)
        self._experiments[name] = record
        return record

    def list_experiments(self) -> list[tuple[ExperimentRecord, int]]:
        with self.db.read() as s:
            counts = (
                select(PipelineRunRow.experiment_id, func.count().label("n"))
                .group_by(PipelineRunRow.experiment_id)
                .subquery()
            )
            rows = s.execute(
                select(ExperimentRow, counts.c.n)
                .outerjoin(counts, counts.c.experiment_id == ExperimentRow.id)
                .order_by(ExperimentRow.name)
            ).all()
            return [(ExperimentRecord(e.id, e.name, e.created_at), n or 0) for e, n in rows]

    @staticmethod
    def graph_id(graph: dict[str, Any]) -> str:
        import json

        text = json.dumps(graph, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def get_graph(self, graph_id: str) -> dict[str, Any]:
        with self.db.read() as s:
            row = s.get(GraphRow, graph_id)
            if row is None:
                raise NotFoundError(f"No pipeline graph {graph_id!r}.")
            return dict(row.graph)

    # -- pipeline runs ---------------------------------------------------------------------
    def create_pipeline_run(
        self,
        *,
        experiment_name: str,
        graph: dict[str, Any] | None,
        parameters: dict[str, Any],
        tags: dict[str, Any],
        description: str | None,
        run_source: str,
        continue_on_step_failure: bool,
        regenerate_outputs: bool,
        properties: dict[str, Any] | None = None,
        stored_graph_id: str | None = None,
        interpreter: dict[str, Any] | None = None,
        in_transaction: Callable[[Connection, str], None] | None = None,
        run_id: str | None = None,
    ) -> PipelineRunRecord:
        """Queue a run (status NotStarted) in one transaction, with its graph and event.

        `run_id`: the id to give the run (a run trigger's, derived from what fired it); a
        run with that id existing already is a ConflictError and nothing is written.

        `graph=None, stored_graph_id=ID`: the run's graph is one already stored (a published
        pipeline's). `in_transaction(conn, run_id)` runs inside that transaction first; what
        it raises rolls the run back (a schedule's fire claim, store/schedules.py). Core
        statements rather than ORM objects: this is the REST submit's hot path."""
        experiment = self.get_or_create_experiment(experiment_name)
        if graph is None:
            if stored_graph_id is None:
                raise ValueError("create_pipeline_run needs a graph or a stored graph's id")
            graph_id = stored_graph_id
        else:
            graph_id = self.graph_id(graph)
        now = utcnow()
        values: dict[str, Any] = {
            "id": run_id or str(uuid.uuid4()),
            "experiment_id": experiment.id,
            "graph_id": graph_id,
            "status": Status.NOT_STARTED,
            "parameters": parameters,
            "tags": tags,
            "properties": properties or {},
            "description": description,
            "run_source": run_source,
            "continue_on_step_failure": continue_on_step_failure,
            "regenerate_outputs": regenerate_outputs,
            "cancel_requested": False,
            "created_at": now,
            "interpreter": interpreter,
        }
        try:
            self._insert_run(graph, graph_id, values, run_source, now, in_transaction)
        except IntegrityError as exc:
            if run_id is None:
                raise
            raise ConflictError(f"A pipeline run with id {run_id!r} exists already.") from exc
        return PipelineRunRecord(
            id=values["id"],
            experiment_id=experiment.id,
            experiment_name=experiment.name,
            graph_id=graph_id,
            status=Status.NOT_STARTED,
            parameters=dict(parameters),
            tags=dict(tags),
            properties=dict(properties or {}),
            description=description,
            run_source=run_source,
            continue_on_step_failure=continue_on_step_failure,
            regenerate_outputs=regenerate_outputs,
            cancel_requested=False,
            agent_id=None,
            heartbeat_at=None,
            error=None,
            created_at=now,
            started_at=None,
            ended_at=None,
            interpreter=interpreter,
        )

    def _insert_run(
        self,
        graph: dict[str, Any] | None,
        graph_id: str,
        values: dict[str, Any],
        run_source: str,
        now: datetime,
        in_transaction: Callable[[Connection, str], None] | None = None,
    ) -> None:
        with self.db.write_conn() as conn:
            if in_transaction is not None:
                in_transaction(conn, values["id"])
            if graph is not None:
                # Concurrent submits of the same pipeline insert the same graph: first one wins.
                conn.execute(
                    self._insert(GraphRow)
                    .values(id=graph_id, graph=graph, created_at=now)
                    .on_conflict_do_nothing(index_elements=["id"])
                )
            conn.execute(insert(PipelineRunRow), values)
            conn.execute(
                insert(EventRow),
                {
                    "run_id": values["id"],
                    "kind": "run.queued",
                    "payload": {"source": run_source},
                    "created_at": now,
                },
            )

    def _insert(self, table: Any) -> Any:
        """INSERT with ON CONFLICT support for the database in use."""
        if self.db.is_sqlite:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            return sqlite_insert(table)
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)

    def _pipeline_query(self) -> Any:
        return select(PipelineRunRow, ExperimentRow.name).join(
            ExperimentRow, ExperimentRow.id == PipelineRunRow.experiment_id
        )

    def find_pipeline_run(self, run_id: str) -> PipelineRunRecord | None:
        with self.db.read() as s:
            found = s.execute(self._pipeline_query().where(PipelineRunRow.id == run_id)).first()
            return None if found is None else pipeline_record(found[0], found[1])

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
        query = self._pipeline_query()
        if experiment_name is not None:
            query = query.where(ExperimentRow.name == experiment_name)
        if statuses:
            query = query.where(PipelineRunRow.status.in_(list(statuses)))
        query = query.order_by(PipelineRunRow.created_at.desc(), PipelineRunRow.id).limit(limit)
        with self.db.read() as s:
            rows = s.execute(query.offset(offset)).all()
            return [pipeline_record(r, name) for r, name in rows]

    def resolve_run_id(self, prefix: str) -> str:
        """The full id of the pipeline or step run whose id starts with `prefix`."""
        with self.db.read() as s:
            ids: list[str] = []
            for table in (PipelineRunRow, StepRunRow):
                ids += list(
                    s.scalars(select(table.id).where(table.id.startswith(prefix)).limit(2)).all()
                )
        if len(ids) == 1:
            return ids[0]
        if not ids:
            raise RunNotFoundError(f"No run with an id starting with {prefix!r}.")
        raise RunNotFoundError(f"The id prefix {prefix!r} matches several runs; give more of it.")

    def has_claimable_runs(self) -> bool:
        """Whether a run waits for an agent: queued, or running with no agent holding it."""
        with self.db.read() as s:
            found = s.scalar(
                select(PipelineRunRow.id)
                .where(
                    or_(
                        PipelineRunRow.status == Status.NOT_STARTED,
                        and_(
                            PipelineRunRow.status == Status.RUNNING,
                            PipelineRunRow.agent_id.is_(None),
                        ),
                    )
                )
                .limit(1)
            )
            return found is not None

    def claim_runs(
        self,
        agent_id: str,
        *,
        limit: int,
        stale_before: datetime,
        dead_agents: Iterable[str] = (),
    ) -> list[PipelineRunRecord]:
        """Take queued runs, and running runs whose agent died, for `agent_id`.

        On PostgreSQL the rows are locked with SKIP LOCKED, so several agents never take the
        same run; on SQLite the write transaction (BEGIN IMMEDIATE) serializes claimers.
        """
        dead = list(dead_agents)
        # `agent_id IS NULL` stands on its own: `agent_id != :me` is NULL (not true) for a
        # run an agent released, which would leave a released run unclaimable forever.
        orphaned = and_(
            PipelineRunRow.status == Status.RUNNING,
            or_(
                PipelineRunRow.agent_id.is_(None),
                and_(
                    PipelineRunRow.agent_id != agent_id,
                    or_(
                        PipelineRunRow.heartbeat_at < stale_before,
                        PipelineRunRow.agent_id.in_(dead) if dead else false(),
                    ),
                ),
            ),
        )
        query = (
            select(PipelineRunRow)
            .where(or_(PipelineRunRow.status == Status.NOT_STARTED, orphaned))
            .order_by(PipelineRunRow.created_at)
            .limit(limit)
        )
        with self.db.read() as s:
            # Most polls find nothing: look first without taking the write lock.
            if s.scalar(query.with_only_columns(PipelineRunRow.id)) is None:
                return []
        if not self.db.is_sqlite:
            query = query.with_for_update(skip_locked=True)
        now = utcnow()
        claimed: list[str] = []
        with self.db.write() as s:
            for row in s.scalars(query).all():
                resumed = row.status == Status.RUNNING
                previous = row.agent_id
                row.agent_id = agent_id
                row.heartbeat_at = now
                if not resumed:
                    row.status = Status.RUNNING
                    row.started_at = now
                s.add(
                    EventRow(
                        run_id=row.id,
                        kind="run.resumed" if resumed else "run.started",
                        payload={"agent": agent_id, "previous_agent": previous},
                    )
                )
                claimed.append(row.id)
        return [self.get_pipeline_run(run_id) for run_id in claimed]

    def running_agents(self) -> list[str]:
        with self.db.read() as s:
            rows = s.scalars(
                select(PipelineRunRow.agent_id)
                .where(
                    PipelineRunRow.status == Status.RUNNING, PipelineRunRow.agent_id.is_not(None)
                )
                .distinct()
            ).all()
            return [r for r in rows if r]

    def heartbeat(self, agent_id: str, run_ids: Sequence[str]) -> list[str]:
        """Refresh the heartbeat of runs held by `agent_id`; returns the ids still held."""
        if not run_ids:
            return []
        with self.db.write() as s:
            s.execute(
                update(PipelineRunRow)
                .where(PipelineRunRow.id.in_(list(run_ids)), PipelineRunRow.agent_id == agent_id)
                .values(heartbeat_at=utcnow())
            )
            held = s.scalars(
                select(PipelineRunRow.id).where(
                    PipelineRunRow.id.in_(list(run_ids)), PipelineRunRow.agent_id == agent_id
                )
            ).all()
            return list(held)

    def cancel_requests(self, run_ids: Sequence[str]) -> list[str]:
        if not run_ids:
            return []
        with self.db.read() as s:
            rows = s.scalars(
                select(PipelineRunRow.id).where(
                    PipelineRunRow.id.in_(list(run_ids)), PipelineRunRow.cancel_requested
                )
            ).all()
            return list(rows)

    def request_cancel(self, run_id: str) -> PipelineRunRecord:
        """Ask for a run to stop. A queued run is canceled at once; a running one is flagged
        for its agent. Canceling a finished run changes nothing."""
        with self.db.write() as s:
            row = s.get(PipelineRunRow, run_id)
            if row is None:
                raise RunNotFoundError(f"No pipeline run with id {run_id!r} in this workspace.")
            if row.status == Status.NOT_STARTED:
                row.status = Status.CANCELED
                row.ended_at = utcnow()
                s.add(EventRow(run_id=run_id, kind="run.canceled", payload={"queued": True}))
                enqueue_for_ending(s, run_id, Status.CANCELED)
            elif row.status not in TERMINAL_STATUSES and not row.cancel_requested:
                row.cancel_requested = True
                s.add(EventRow(run_id=run_id, kind="run.cancel_requested", payload={}))
        return self.get_pipeline_run(run_id)

    def finish_pipeline_run(
        self, run_id: str, status: str, error: dict[str, Any] | None = None
    ) -> None:
        with self.db.write() as s:
            s.execute(
                update(PipelineRunRow)
                .where(PipelineRunRow.id == run_id)
                .values(status=status, error=error, ended_at=utcnow(), agent_id=None)
            )
            s.add(EventRow(run_id=run_id, kind=f"run.{status.lower()}", payload=error or {}))
            enqueue_for_ending(s, run_id, status)

    def release_run(self, run_id: str, agent_id: str) -> None:
        """Give a running run back (agent shutting down) so another agent resumes it."""
        with self.db.write() as s:
            s.execute(
                update(PipelineRunRow)
                .where(PipelineRunRow.id == run_id, PipelineRunRow.agent_id == agent_id)
                .values(agent_id=None)
            )
            s.add(EventRow(run_id=run_id, kind="run.released", payload={"agent": agent_id}))

    def update_run_tags(self, run_id: str, tags: dict[str, Any]) -> None:
        with self.db.write() as s:
            row: PipelineRunRow | StepRunRow | None = s.get(PipelineRunRow, run_id) or s.get(
                StepRunRow, run_id
            )
            if row is not None:
                row.tags = {**(row.tags or {}), **tags}
                return
        raise RunNotFoundError(f"No run with id {run_id!r}.")

    # -- step runs -------------------------------------------------------------------------
    def session(self) -> Session:
        """A plain session for tests and admin tools."""
        return Session(self.db.engine)
