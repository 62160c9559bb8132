"""Plain records the metadata store hands to the layers above, and the run status vocabulary.

Upper layers never see ORM rows; they get these frozen dataclasses.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, TypeVar

__all__ = [
    "ACTIVE_STEP_STATUSES",
    "IGNORED_PARAMETERS",
    "NOTIFY_PROPERTY",
    "RECOVER_FROM",
    "RERUN_OF",
    "TERMINAL_STATUSES",
    "ComputeTargetRecord",
    "DatasetLineageRecord",
    "DatasetRecord",
    "DatastoreRecord",
    "EnvironmentRecord",
    "EventRecord",
    "ExperimentRecord",
    "MetricRecord",
    "ModelRecord",
    "PipelineEndpointRecord",
    "PipelineRunRecord",
    "PublishedPipelineRecord",
    "RunFileRecord",
    "ScheduleFireRecord",
    "ScheduleRecord",
    "Status",
    "StepPreview",
    "StepRunRecord",
    "Submission",
    "from_wire",
    "to_wire",
]

R = TypeVar("R")


class Status:
    """Status strings as the SDK v1 pipeline APIs spell them."""

    NOT_STARTED = "NotStarted"
    QUEUED = "Queued"
    RUNNING = "Running"
    FINISHED = "Finished"
    FAILED = "Failed"
    CANCELED = "Canceled"


TERMINAL_STATUSES = frozenset({Status.FINISHED, Status.FAILED, Status.CANCELED})
ACTIVE_STEP_STATUSES = frozenset({Status.QUEUED, Status.RUNNING})
# The run property of a run submitted with `enable_email_notification=True` (SDK v1) or
# `EnableNotification: true` (REST): notifications added with on_request=True tell about it.
NOTIFY_PROPERTY = "headrace.enableNotification"


# Run properties of a rerun (engine.rerun): the run it reruns, and (resuming from failed
# steps) the run whose finished steps it takes as they are.
RERUN_OF = "headrace.rerunOf"
RECOVER_FROM = "headrace.recoverFrom"
# The run property that lists parameter assignments a published pipeline's submit ignored
# (engine/publishing.py), shown by `headrace run show` and the portal.
IGNORED_PARAMETERS = "headrace.ignoredParameterAssignments"


@dataclass(frozen=True)
class DatastoreRecord:
    name: str
    type: str
    config: dict[str, Any]
    is_default: bool


@dataclass(frozen=True)
class ComputeTargetRecord:
    name: str
    type: str
    config: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class ExperimentRecord:
    id: str
    name: str
    created_at: datetime


@dataclass(frozen=True)
class PipelineRunRecord:
    id: str
    experiment_id: str
    experiment_name: str
    graph_id: str
    status: str
    parameters: dict[str, Any]
    tags: dict[str, Any]
    properties: dict[str, Any]
    description: str | None
    run_source: str
    continue_on_step_failure: bool
    regenerate_outputs: bool
    cancel_requested: bool
    agent_id: str | None
    heartbeat_at: datetime | None
    error: dict[str, Any] | None
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    # The Python steps without an environment run in (engine.interpreters.Interpreter.record)
    interpreter: dict[str, Any] | None = None


@dataclass(frozen=True)
class StepRunRecord:
    id: str
    pipeline_run_id: str
    node_id: str
    name: str
    status: str
    attempt: int
    compute_target: str
    fingerprint: str | None
    fingerprint_parts: dict[str, Any]
    run_reason: dict[str, Any]
    reused_run_id: str | None
    command: list[Any]
    outputs: dict[str, Any]
    tags: dict[str, Any]
    properties: dict[str, Any]
    pid: int | None
    pid_started: float | None
    exit_code: int | None
    error: dict[str, Any] | None
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None

    @property
    def data_run_id(self) -> str:
        """The step run whose output data this run's outputs are (itself unless reused)."""
        return self.reused_run_id or self.id


@dataclass(frozen=True)
class MetricRecord:
    run_id: str
    name: str
    kind: str
    value: Any
    step: int | None = None
    description: str | None = None
    created_at: datetime | None = None


@dataclass(frozen=True)
class RunFileRecord:
    run_id: str
    name: str
    size: int


@dataclass(frozen=True)
class EventRecord:
    id: int
    run_id: str
    step_run_id: str | None
    kind: str
    payload: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None


@dataclass(frozen=True)
class PublishedPipelineRecord:
    """A published pipeline: a frozen graph with a name, submittable while Active."""

    id: str
    name: str
    description: str | None
    version: str | None
    graph_id: str
    status: str
    continue_on_step_failure: bool
    source_run_id: str | None
    created_at: datetime


@dataclass(frozen=True)
class PipelineEndpointRecord:
    """A named endpoint over published pipelines; `versions` maps version to pipeline id."""

    id: str
    name: str
    description: str | None
    status: str
    default_version: str
    versions: dict[str, str]
    created_at: datetime


@dataclass(frozen=True)
class DatasetRecord:
    """One version of a registered dataset: its definition (what it reads and how), and the
    content identity its files had when the version was made (`content`: hash, file_count,
    total_bytes; the file list itself is read with `dataset_files`)."""

    id: str
    name: str
    version: int
    kind: str
    definition: dict[str, Any]
    content: dict[str, Any]
    description: str | None
    tags: dict[str, Any]
    produced_by: str | None  # the step run that wrote the data (register_on_complete)
    created_at: datetime


@dataclass(frozen=True)
class DatasetLineageRecord:
    """A step run that produced or consumed a dataset version."""

    dataset_id: str
    role: str  # "produced" or "consumed"
    step_run_id: str
    pipeline_run_id: str
    port: str
    step_name: str | None = None
    status: str | None = None
    created_at: datetime | None = None


@dataclass(frozen=True)
class ModelRecord:
    """A registered model version. `files` lists `[path, size, sha256]` below the version's
    folder (the first part of each path is `root`, the registered file or folder's name);
    `datasets` the datasets it was trained on (`{"scenario", "id", "name", "version"}`)."""

    name: str
    version: int
    description: str | None
    tags: dict[str, Any]
    properties: dict[str, Any]
    datasets: list[dict[str, Any]]
    run_id: str | None
    experiment_name: str | None
    root: str
    is_folder: bool
    files: list[list[Any]]
    size: int
    content_hash: str
    created_at: datetime

    @property
    def id(self) -> str:
        """SDK v1's model id: `name:version`."""
        return f"{self.name}:{self.version}"


@dataclass(frozen=True)
class EnvironmentRecord:
    """A registered environment's version: its name, number (1, 2, ...) and definition."""

    name: str
    version: int
    definition: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class ScheduleRecord:
    """A schedule: a recurrence (`recurrence`, see engine/recurrence.py) or a datastore
    trigger (`datastore_name`) that submits a published pipeline or an endpoint."""

    id: str
    name: str
    description: str | None
    pipeline_id: str | None
    pipeline_endpoint_id: str | None
    experiment_name: str
    status: str
    recurrence: dict[str, Any] | None
    datastore_name: str | None
    path_on_datastore: str | None
    polling_interval: float
    data_path_parameter_name: str | None
    trigger: dict[str, Any]
    pipeline_parameters: dict[str, Any]
    continue_on_step_failure: bool | None
    catch_up: str
    next_fire_at: datetime | None
    last_error: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class ScheduleFireRecord:
    """One slot or change a schedule fired for: the run it queued, or why it could not."""

    schedule_id: str
    fire_key: str
    run_id: str | None
    error: str | None
    created_at: datetime


@dataclass(frozen=True)
class StepPreview:
    """What submit can say about a step before it runs."""

    node_id: str
    name: str
    fingerprint: str
    will_reuse: bool


@dataclass(frozen=True)
class Submission:
    """A queued run and its steps' previews: what a submit answers (engine/submission.py)."""

    run: PipelineRunRecord
    previews: list[StepPreview]


# -- the records as JSON (the server's API, the agent's request socket) ------------------
def _iso(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.isoformat()


def _plain(value: Any) -> Any:
    return _iso(value) if isinstance(value, datetime) else value


def to_wire(record: Any) -> dict[str, Any]:
    """A record dataclass as a JSON-ready dict (datetimes as ISO text)."""
    return {f.name: _plain(getattr(record, f.name)) for f in dataclasses.fields(record)}


def from_wire(cls: type[R], data: dict[str, Any]) -> R:
    """The record `cls` from its wire dict; fields typed datetime are parsed back."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name not in data:
            continue
        value = data[f.name]
        if isinstance(value, str) and "datetime" in str(f.type):
            value = datetime.fromisoformat(value)
        values[f.name] = value
    return cls(**values)
