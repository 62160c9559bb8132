"""Tables of the metadata store (SQLAlchemy 2 ORM), one Base with a naming convention.

Times are UTC-aware (`UtcDateTime` rejects naive values); JSON columns hold plain data.
The Alembic migration stream in `store/migrations` must produce exactly these tables: a test
compares them. Nothing here imports the rest of headrace.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

__all__ = [
    "ApiTokenRow",
    "Base",
    "ComputeTargetRow",
    "DatasetLineageRow",
    "DatasetRow",
    "DatastoreRow",
    "EventRow",
    "ExperimentRow",
    "GraphRow",
    "MetricRow",
    "ModelRow",
    "NotificationRow",
    "OutboxRow",
    "PipelineEndpointRow",
    "PipelineEndpointVersionRow",
    "PipelineRunRow",
    "PortalSessionRow",
    "PublishedPipelineRow",
    "RunTriggerRow",
    "ScheduleFireRow",
    "ScheduleListingRow",
    "ScheduleRow",
    "StepRunRow",
    "UtcDateTime",
    "WorkspaceRow",
    "utcnow",
]

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and always returned timezone-aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; use datetime.now(timezone.utc)")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UtcDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class WorkspaceRow(Base):
    """One row: the workspace's identity (Azure-only arguments are recorded as given)."""

    __tablename__ = "workspace"
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    subscription_id: Mapped[str | None] = mapped_column(String(255))
    resource_group: Mapped[str | None] = mapped_column(String(255))
    location: Mapped[str | None] = mapped_column(String(255))
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DatastoreRow(Base):
    __tablename__ = "datastores"
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(64))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ComputeTargetRow(Base):
    __tablename__ = "compute_targets"
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(64))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ExperimentRow(Base):
    __tablename__ = "experiments"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class GraphRow(Base):
    """A submitted pipeline graph, keyed by the hash of its JSON (deduplicated)."""

    __tablename__ = "graphs"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    graph: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PipelineRunRow(Base):
    __tablename__ = "pipeline_runs"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    experiment_id: Mapped[str] = mapped_column(ForeignKey("experiments.id"))
    graph_id: Mapped[str] = mapped_column(ForeignKey("graphs.id"))
    status: Mapped[str] = mapped_column(String(32))
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    tags: Mapped[dict[str, Any]] = mapped_column(default=dict)
    properties: Mapped[dict[str, Any]] = mapped_column(default=dict)
    description: Mapped[str | None] = mapped_column(Text)
    run_source: Mapped[str] = mapped_column(String(64), default="SDK")
    continue_on_step_failure: Mapped[bool] = mapped_column(Boolean, default=False)
    regenerate_outputs: Mapped[bool] = mapped_column(Boolean, default=False)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    agent_id: Mapped[str | None] = mapped_column(String(255))
    heartbeat_at: Mapped[datetime | None] = mapped_column()
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column()
    # The Python of the process that queued the run (engine/interpreters.py): steps without
    # an environment of their own run in it. None: runs queued before it was recorded.
    interpreter: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    __table_args__ = (
        Index("ix_pipeline_runs_status_created", "status", "created_at"),
        Index("ix_pipeline_runs_experiment_created", "experiment_id", "created_at"),
        # The portal's runs list: sorted by each of these times, and filtered by graph.
        Index("ix_pipeline_runs_created", "created_at", "id"),
        Index("ix_pipeline_runs_started", "started_at", "id"),
        Index("ix_pipeline_runs_ended", "ended_at", "id"),
        Index("ix_pipeline_runs_graph", "graph_id"),
    )


class StepRunRow(Base):
    __tablename__ = "step_runs"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    pipeline_run_id: Mapped[str] = mapped_column(ForeignKey("pipeline_runs.id"))
    node_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(32))
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    compute_target: Mapped[str] = mapped_column(String(255), default="local")
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    fingerprint_parts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    run_reason: Mapped[dict[str, Any]] = mapped_column(default=dict)
    reused_run_id: Mapped[str | None] = mapped_column(String(36))
    command: Mapped[list[Any]] = mapped_column(default=list)
    outputs: Mapped[dict[str, Any]] = mapped_column(default=dict)
    tags: Mapped[dict[str, Any]] = mapped_column(default=dict)
    properties: Mapped[dict[str, Any]] = mapped_column(default=dict)
    pid: Mapped[int | None] = mapped_column(Integer)
    pid_started: Mapped[float | None] = mapped_column(Float)
    exit_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column()
    # How far the running attempt's journal is recorded (bytes), written with the metrics
    # it held: an agent adopting the attempt reads on from there (engine/reaper.py).
    journal_offset: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    __table_args__ = (
        Index("ix_step_runs_pipeline_run", "pipeline_run_id"),
        Index("ix_step_runs_fingerprint_status", "fingerprint", "status"),
        Index("ix_step_runs_name_created", "name", "created_at"),
        # No index on (status, compute_target): every status change of every step would pay
        # for it, and only ComputeTarget.get_status counts running steps that way.
    )


class MetricRow(Base):
    """One logged value. `kind` is scalar, list, row, table or image; repeats form a series."""

    __tablename__ = "metrics"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(36))
    name: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[Any] = mapped_column(JSON)
    step: Mapped[int | None] = mapped_column(Integer)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_metrics_run_name", "run_id", "name"),)


class RunMetricFinalRow(Base):
    """The last value of each scalar metric of a pipeline run, as its runs list shows and sorts
    it: `name` is the metric's name for a pipeline-level metric (`run.parent.log`) and
    `step/metric` for a step's (a reused step's are the run it reused). Kept by the store
    where metrics are written (`store/metric_finals.py`); `number` holds numeric values (what
    sorting uses), `text` the value's text."""

    __tablename__ = "run_metric_finals"
    pipeline_run_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(600), primary_key=True)
    number: Mapped[float | None] = mapped_column(Float)
    text: Mapped[str | None] = mapped_column(String(255))

    __table_args__ = (Index("ix_run_metric_finals_name_number", "name", "number"),)


class EventRow(Base):
    """Every state change of a run or step, written in the same transaction as the change."""

    __tablename__ = "events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(36))
    step_run_id: Mapped[str | None] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_events_run", "run_id", "id"),)


class PublishedPipelineRow(Base):
    """A frozen pipeline (its graph holds the source snapshot ids) that can be submitted."""

    __tablename__ = "published_pipelines"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    version: Mapped[str | None] = mapped_column(String(255))
    graph_id: Mapped[str] = mapped_column(ForeignKey("graphs.id"))
    status: Mapped[str] = mapped_column(String(32))  # Active or Disabled
    continue_on_step_failure: Mapped[bool] = mapped_column(Boolean, default=False)
    source_run_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_published_pipelines_name", "name"),)


class PipelineEndpointRow(Base):
    """A named, versioned handle on published pipelines (SDK v1 PipelineEndpoint)."""

    __tablename__ = "pipeline_endpoints"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(32))  # Active or Disabled
    default_version: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PipelineEndpointVersionRow(Base):
    __tablename__ = "pipeline_endpoint_versions"
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("pipeline_endpoints.id"), primary_key=True)
    version: Mapped[str] = mapped_column(String(32), primary_key=True)
    pipeline_id: Mapped[str] = mapped_column(ForeignKey("published_pipelines.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiTokenRow(Base):
    """An API token of the server; only a hash of the secret is kept."""

    __tablename__ = "api_tokens"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    role: Mapped[str] = mapped_column(String(32))  # reader, submitter or admin
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scope_run_id: Mapped[str | None] = mapped_column(String(36))  # step tokens: one run only
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
    last_used_at: Mapped[datetime | None] = mapped_column()


class PortalSessionRow(Base):
    """A signed-in portal session of a token; signing out deletes it. Only a hash of the
    session id (which the cookie carries) is kept."""

    __tablename__ = "portal_sessions"
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_id: Mapped[str] = mapped_column(ForeignKey("api_tokens.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()


class DatasetRow(Base):
    """A version of a registered dataset. `files` (every file's path, size and checksum or
    ETag) can be large: queries that list datasets leave it out."""

    __tablename__ = "datasets"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    definition: Mapped[dict[str, Any]] = mapped_column()
    definition_hash: Mapped[str] = mapped_column(String(64))
    content: Mapped[dict[str, Any]] = mapped_column(default=dict)
    files: Mapped[list[Any]] = mapped_column(default=list)
    description: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[dict[str, Any]] = mapped_column(default=dict)
    produced_by: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_datasets_name_version", "name", "version", unique=True),)


class DatasetLineageRow(Base):
    """A step run that produced or consumed a dataset version (written with the step)."""

    __tablename__ = "dataset_lineage"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset_id: Mapped[str] = mapped_column(String(36))
    role: Mapped[str] = mapped_column(String(16))
    step_run_id: Mapped[str] = mapped_column(String(36))
    pipeline_run_id: Mapped[str] = mapped_column(String(36))
    port: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index("ix_dataset_lineage_dataset", "dataset_id", "id"),
        Index("ix_dataset_lineage_step_run", "step_run_id"),
    )


class ModelRow(Base):
    """A registered model version: a file or folder copied into the artifact store
    (`artifacts/models/<name>/<version>/<root>`), the run that produced it and the datasets
    it was trained on (`[{"id", "name", "version"}]`). `files` lists `[path, size, sha256]`
    below the version's folder; `content_hash` is the sha256 of that list."""

    __tablename__ = "models"
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    description: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[dict[str, Any]] = mapped_column(default=dict)
    properties: Mapped[dict[str, Any]] = mapped_column(default=dict)
    datasets: Mapped[list[Any]] = mapped_column(default=list)
    run_id: Mapped[str | None] = mapped_column(String(128), index=True)
    experiment_name: Mapped[str | None] = mapped_column(String(255))
    root: Mapped[str] = mapped_column(String(255))
    is_folder: Mapped[bool] = mapped_column(Boolean, default=False)
    files: Mapped[list[Any]] = mapped_column(default=list)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class EnvironmentRow(Base):
    """One version of a registered environment (`Environment.register(ws)`): the SDK
    object's definition as JSON data, kept as registered."""

    __tablename__ = "environments"
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    definition: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ScheduleRow(Base):
    """A schedule (SDK v1 `Schedule`): a recurrence or a datastore trigger that submits a
    published pipeline (or an endpoint's default version). `next_fire_at` is the next slot
    of a recurrence, or the next poll of a datastore trigger."""

    __tablename__ = "schedules"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    pipeline_id: Mapped[str | None] = mapped_column(String(36), index=True)
    pipeline_endpoint_id: Mapped[str | None] = mapped_column(String(36), index=True)
    experiment_name: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(32))  # Active or Disabled
    recurrence: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    datastore_name: Mapped[str | None] = mapped_column(String(255))
    path_on_datastore: Mapped[str | None] = mapped_column(String(1024))
    polling_interval: Mapped[float] = mapped_column(Float, default=5.0)  # minutes
    data_path_parameter_name: Mapped[str | None] = mapped_column(String(255))
    # Data triggers beyond SDK v1: {"include_subfolders": bool, "run_per": "file"|"batch"}
    trigger: Mapped[dict[str, Any]] = mapped_column(default=dict)
    pipeline_parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    continue_on_step_failure: Mapped[bool | None] = mapped_column(Boolean)
    catch_up: Mapped[str] = mapped_column(String(32), default="latest")
    next_fire_at: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_schedules_status_next", "status", "next_fire_at"),)


class ScheduleFireRow(Base):
    """One slot or one change a schedule fired for. The unique (schedule, key) is what makes
    a fire happen once: it is inserted in the transaction that queues the run."""

    __tablename__ = "schedule_fires"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    schedule_id: Mapped[str] = mapped_column(String(36))
    fire_key: Mapped[str] = mapped_column(String(1100))
    run_id: Mapped[str | None] = mapped_column(String(36))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("schedule_id", "fire_key", name="uq_schedule_fires_key"),
        Index("ix_schedule_fires_schedule", "schedule_id", "id"),
    )


class ScheduleListingRow(Base):
    """What a datastore trigger saw at its last poll: one compressed text blob per schedule
    (a line `path<TAB>signature<TAB>pending` per file, store/schedules.py), so a poll of
    100,000 files reads and writes one row. `digest` is the listing's hash: an unchanged
    listing without pending files needs no more."""

    __tablename__ = "schedule_listings"
    schedule_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    listing: Mapped[bytes] = mapped_column(LargeBinary)
    digest: Mapped[str] = mapped_column(String(64))
    files: Mapped[int] = mapped_column(Integer, default=0)
    pending: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class NotificationRow(Base):
    """Where to tell someone that a run ended (store/notifications.py): an email (SMTP) or a
    webhook. `config` holds no secret: an SMTP password or a webhook URL is a reference
    ("workspace": the workspace secrets file; "env:NAME"), the URL shown only redacted.
    Scope: every run (both None), the runs of one published pipeline or pipeline endpoint
    (`pipeline_id`/`endpoint_id`), or of one experiment; `on_request`: only runs submitted
    with `enable_email_notification=True` (REST `EnableNotification`)."""

    __tablename__ = "notifications"
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    statuses: Mapped[list[Any]] = mapped_column(default=list)
    pipeline_id: Mapped[str | None] = mapped_column(String(36))
    endpoint_id: Mapped[str | None] = mapped_column(String(36))
    experiment_name: Mapped[str | None] = mapped_column(String(255))
    on_request: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class OutboxRow(Base):
    """One thing to do because a run ended: a notification to deliver (`kind`
    "notification") or a run trigger to fire ("trigger"). Written in the transaction that
    records the run's final status, at most once per (kind, target, run); a sender leases
    a row (`lease_until`) while it works on it, so two agents never take the same row."""

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(255))
    run_id: Mapped[str] = mapped_column(String(36))
    run_status: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(32))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column()
    lease_until: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (
        Index("ix_outbox_once", "kind", "target", "run_id", unique=True),
        Index("ix_outbox_due", "state", "next_attempt_at"),
        Index("ix_outbox_run", "run_id"),
    )


class RunTriggerRow(Base):
    """Start a published pipeline or pipeline endpoint when a run of another one ends
    (engine/run_triggers.py). `parameters` maps a target parameter to where its value
    comes from: `{"parameter": NAME}`, `{"output": "STEP/OUTPUT"}`, `{"run": "id"}` or
    `{"value": V}`."""

    __tablename__ = "run_triggers"
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    source_pipeline_id: Mapped[str | None] = mapped_column(String(36))
    source_endpoint_id: Mapped[str | None] = mapped_column(String(36))
    statuses: Mapped[list[Any]] = mapped_column(default=list)
    target_pipeline_id: Mapped[str | None] = mapped_column(String(36))
    target_endpoint_id: Mapped[str | None] = mapped_column(String(36))
    experiment_name: Mapped[str] = mapped_column(String(255))
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
