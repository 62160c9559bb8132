"""Published pipelines and pipeline endpoints in the metadata store.

`SqlMetadataStore` inherits these queries. A published pipeline points at a stored graph (the
graph holds the steps' snapshot ids, so it is frozen); an endpoint maps version strings
"0", "1", ... to published pipelines and names one of them the default. Nothing here checks
whether a pipeline may run; that is the backend's business.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row, bindparam, select
from sqlalchemy.orm import Session

from headrace.errors import NameConflictError, NotFoundError, UserError
from headrace.store.database import Database
from headrace.store.orm import (
    GraphRow,
    PipelineEndpointRow,
    PipelineEndpointVersionRow,
    PublishedPipelineRow,
    utcnow,
)
from headrace.store.records import PipelineEndpointRecord, PublishedPipelineRecord

__all__ = ["ACTIVE", "DISABLED", "PublishingQueries", "published_record"]

ACTIVE = "Active"
DISABLED = "Disabled"
_STATUSES = (ACTIVE, DISABLED)


# Built once: constructing the statement costs more than running it (schedules fire many).
_BY_ID = select(PublishedPipelineRow.__table__).where(
    PublishedPipelineRow.__table__.c.id == bindparam("pipeline_id")
)


def published_record(row: PublishedPipelineRow | Row[Any]) -> PublishedPipelineRecord:
    return PublishedPipelineRecord(
        id=row.id,
        name=row.name,
        description=row.description,
        version=row.version,
        graph_id=row.graph_id,
        status=row.status,
        continue_on_step_failure=row.continue_on_step_failure,
        source_run_id=row.source_run_id,
        created_at=row.created_at,
    )


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), version) if version.isdigit() else (1 << 62, version)


def _check_status(status: str) -> None:
    if status not in _STATUSES:
        raise UserError(f"Status {status!r} is not valid; use one of: {', '.join(_STATUSES)}.")


class PublishingQueries:
    db: Database

    if TYPE_CHECKING:  # provided by SqlMetadataStore

        def graph_id(self, graph: dict[str, Any]) -> str: ...

        def _insert(self, table: Any) -> Any: ...

    # -- published pipelines ---------------------------------------------------------------
    def create_published_pipeline(
        self,
        *,
        name: str,
        description: str | None,
        version: str | None,
        graph: dict[str, Any],
        continue_on_step_failure: bool,
        source_run_id: str | None = None,
    ) -> PublishedPipelineRecord:
        """Store `graph` (deduplicated) and a new Active published pipeline, in one transaction."""
        graph_id = self.graph_id(graph)
        with self.db.write() as s:
            s.execute(
                self._insert(GraphRow)
                .values(id=graph_id, graph=graph, created_at=utcnow())
                .on_conflict_do_nothing(index_elements=["id"])
            )
            row = PublishedPipelineRow(
                id=str(uuid.uuid4()),
                name=name,
                description=description,
                version=version,
                graph_id=graph_id,
                status=ACTIVE,
                continue_on_step_failure=continue_on_step_failure,
                source_run_id=source_run_id,
            )
            s.add(row)
            s.flush()
            return published_record(row)

    def find_published_pipeline(self, pipeline_id: str) -> PublishedPipelineRecord | None:
        # A Core read: every REST submit makes it (an ORM session costs twice as much).
        with self.db.read_conn() as conn:
            row = conn.execute(_BY_ID, {"pipeline_id": pipeline_id}).first()
            return None if row is None else published_record(row)

    def get_published_pipeline(self, pipeline_id: str) -> PublishedPipelineRecord:
        record = self.find_published_pipeline(pipeline_id)
        if record is None:
            raise NotFoundError(
                f"No published pipeline with id {pipeline_id!r} in this workspace; "
                "PublishedPipeline.list(ws) lists them."
            )
        return record

    def list_published_pipelines(self, active_only: bool = True) -> list[PublishedPipelineRecord]:
        query = select(PublishedPipelineRow)
        if active_only:
            query = query.where(PublishedPipelineRow.status == ACTIVE)
        query = query.order_by(PublishedPipelineRow.created_at.desc(), PublishedPipelineRow.id)
        with self.db.read() as s:
            return [published_record(r) for r in s.scalars(query).all()]

    def set_published_pipeline_status(
        self, pipeline_id: str, status: str
    ) -> PublishedPipelineRecord:
        _check_status(status)
        with self.db.write() as s:
            row = s.get(PublishedPipelineRow, pipeline_id)
            if row is None:
                raise NotFoundError(
                    f"No published pipeline with id {pipeline_id!r} in this workspace; "
                    "PublishedPipeline.list(ws) lists them."
                )
            row.status = status
            s.flush()
            return published_record(row)

    # -- pipeline endpoints ----------------------------------------------------------------
    def create_pipeline_endpoint(
        self, *, name: str, description: str | None, pipeline_id: str
    ) -> PipelineEndpointRecord:
        """A new Active endpoint whose version "0" (the default) is `pipeline_id`."""
        self.get_published_pipeline(pipeline_id)
        with self.db.write() as s:
            self._refuse_taken_name(s, name)
            row = PipelineEndpointRow(
                id=str(uuid.uuid4()),
                name=name,
                description=description,
                status=ACTIVE,
                default_version="0",
            )
            s.add(row)
            s.flush()
            s.add(
                PipelineEndpointVersionRow(endpoint_id=row.id, version="0", pipeline_id=pipeline_id)
            )
            s.flush()
            return self._endpoint(s, row)

    def find_pipeline_endpoint(
        self, *, id: str | None = None, name: str | None = None
    ) -> PipelineEndpointRecord | None:
        if id is None and name is None:
            raise UserError("Give the id or the name of the pipeline endpoint.")
        query = select(PipelineEndpointRow)
        if id is not None:
            query = query.where(PipelineEndpointRow.id == id)
        if name is not None:
            query = query.where(PipelineEndpointRow.name == name)
        with self.db.read() as s:
            row = s.scalars(query).first()
            return None if row is None else self._endpoint(s, row)

    def get_pipeline_endpoint(
        self, *, id: str | None = None, name: str | None = None
    ) -> PipelineEndpointRecord:
        record = self.find_pipeline_endpoint(id=id, name=name)
        if record is None:
            which = f"id {id!r}" if id is not None else f"name {name!r}"
            raise NotFoundError(
                f"No pipeline endpoint with {which} in this workspace; "
                "PipelineEndpoint.list(ws) lists them."
            )
        return record

    def list_pipeline_endpoints(
        self, active_only: bool = True, max_results: int = 100
    ) -> list[PipelineEndpointRecord]:
        query = select(PipelineEndpointRow)
        if active_only:
            query = query.where(PipelineEndpointRow.status == ACTIVE)
        query = query.order_by(PipelineEndpointRow.name).limit(max_results)
        with self.db.read() as s:
            rows = s.scalars(query).all()
            ids = [r.id for r in rows]
            versions: dict[str, dict[str, str]] = {i: {} for i in ids}
            if ids:
                for v in s.scalars(
                    select(PipelineEndpointVersionRow).where(
                        PipelineEndpointVersionRow.endpoint_id.in_(ids)
                    )
                ):
                    versions[v.endpoint_id][v.version] = v.pipeline_id
            return [self.endpoint_record(r, versions[r.id]) for r in rows]

    def add_pipeline_endpoint_version(
        self, endpoint_id: str, pipeline_id: str, make_default: bool
    ) -> PipelineEndpointRecord:
        """Add `pipeline_id` as the next version ("1", "2", ...); a pipeline already in the
        endpoint keeps its version. With make_default it becomes the default."""
        self.get_published_pipeline(pipeline_id)
        with self.db.write() as s:
            row = self._endpoint_row(s, endpoint_id)
            versions = self.endpoint_versions(s, endpoint_id)
            existing = [v for v, p in versions.items() if p == pipeline_id]
            if existing:
                version = existing[0]
            else:
                numbers = [int(v) for v in versions if v.isdigit()]
                version = str(max(numbers, default=-1) + 1)
                s.add(
                    PipelineEndpointVersionRow(
                        endpoint_id=endpoint_id, version=version, pipeline_id=pipeline_id
                    )
                )
            if make_default:
                row.default_version = version
            s.flush()
            return self._endpoint(s, row)

    def set_pipeline_endpoint_default(
        self, endpoint_id: str, version: str
    ) -> PipelineEndpointRecord:
        with self.db.write() as s:
            row = self._endpoint_row(s, endpoint_id)
            versions = self.endpoint_versions(s, endpoint_id)
            version = str(version)
            if version not in versions:
                listing = ", ".join(sorted(versions, key=_version_key))
                raise UserError(
                    f"Pipeline endpoint {row.name!r} has no version {version!r}; "
                    f"its versions: {listing}."
                )
            row.default_version = version
            s.flush()
            return self.endpoint_record(row, versions)

    def update_pipeline_endpoint(
        self,
        endpoint_id: str,
        *,
        name: str | None = None,
        description: str | None = None,
        status: str | None = None,
    ) -> PipelineEndpointRecord:
        with self.db.write() as s:
            row = self._endpoint_row(s, endpoint_id)
            if name is not None and name != row.name:
                self._refuse_taken_name(s, name)
                row.name = name
            if description is not None:
                row.description = description
            if status is not None:
                _check_status(status)
                row.status = status
            s.flush()
            return self._endpoint(s, row)

    # -- helpers ---------------------------------------------------------------------------
    @staticmethod
    def _refuse_taken_name(s: Session, name: str) -> None:
        taken = s.scalar(select(PipelineEndpointRow.id).where(PipelineEndpointRow.name == name))
        if taken is not None:
            raise NameConflictError(
                f"A pipeline endpoint named {name!r} already exists; pick another name, or add "
                f"the pipeline to it with PipelineEndpoint.get(ws, name={name!r}).add(pipeline)."
            )

    @staticmethod
    def _endpoint_row(s: Session, endpoint_id: str) -> PipelineEndpointRow:
        row = s.get(PipelineEndpointRow, endpoint_id)
        if row is None:
            raise NotFoundError(
                f"No pipeline endpoint with id {endpoint_id!r} in this workspace; "
                "PipelineEndpoint.list(ws) lists them."
            )
        return row

    @staticmethod
    def endpoint_versions(s: Session, endpoint_id: str) -> dict[str, str]:
        rows = s.scalars(
            select(PipelineEndpointVersionRow).where(
                PipelineEndpointVersionRow.endpoint_id == endpoint_id
            )
        ).all()
        return {r.version: r.pipeline_id for r in rows}

    def _endpoint(self, s: Session, row: PipelineEndpointRow) -> PipelineEndpointRecord:
        return self.endpoint_record(row, self.endpoint_versions(s, row.id))

    @staticmethod
    def endpoint_record(
        row: PipelineEndpointRow, versions: dict[str, str]
    ) -> PipelineEndpointRecord:
        ordered = {v: versions[v] for v in sorted(versions, key=_version_key)}
        return PipelineEndpointRecord(
            id=row.id,
            name=row.name,
            description=row.description,
            status=row.status,
            default_version=row.default_version,
            versions=ordered,
            created_at=row.created_at,
        )
