"""Request and response shapes of the REST API (SDK v1's PascalCase on the submit routes).

`PipelineSubmissionInfo` is the body SDK v1 clients post; `run_entity` is its answer
(`PipelineRunEntity`). Documents are built from store records here, never in routes.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from headrace.store.records import PipelineRunRecord

__all__ = [
    "DataPathAssignment",
    "PipelineSubmissionInfo",
    "endpoint_document",
    "iso",
    "published_pipeline_document",
    "run_entity",
]

Scalar = str | int | float | bool | None


class DataPathAssignment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    DataStoreName: str = Field(min_length=1)
    RelativePath: str


class PipelineSubmissionInfo(BaseModel):
    """The body of a PipelineSubmit / PipelineEndpointSubmit POST."""

    # SDK v1 clients send more fields (ScheduleId, ...): accepted and ignored, as the
    # service does.
    model_config = ConfigDict(extra="ignore")

    ExperimentName: str = Field(min_length=1, description="Experiment of the new run.")
    Description: str | None = None
    RunSource: str | None = Field(
        None, max_length=64, description='Free text, e.g. "SDK" or "API" (64 characters).'
    )
    RunType: str | None = None
    ParameterAssignments: dict[str, Scalar] = Field(
        default_factory=dict, description="Pipeline parameter values (text or numbers)."
    )
    DataPathAssignments: dict[str, DataPathAssignment] = Field(default_factory=dict)
    DataSetDefinitionValueAssignments: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description=(
            "Dataset parameter values: {name: {SavedDataSetReference: {Id}}} or "
            "{name: {DataSetReference: {Name, Version}}} (a registered dataset)."
        ),
    )
    ContinueRunOnStepFailure: bool | None = None
    EnableNotification: bool | None = None
    tags: dict[str, Scalar] | None = None
    Properties: dict[str, Scalar] | None = None


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.isoformat()


def run_entity(
    run: PipelineRunRecord, *, pipeline_id: str | None, total_steps: int | None
) -> dict[str, Any]:
    """SDK v1's `PipelineRunEntity` for a pipeline run."""
    return {
        "Id": run.id,
        "Status": {
            "StatusCode": run.status,
            "StatusDetail": (run.error or {}).get("message") if run.error else None,
            "CreationTime": iso(run.created_at),
            "EndTime": iso(run.ended_at),
        },
        "GraphId": run.graph_id,
        "IsSubmitted": True,
        "HasErrors": run.error is not None,
        "ParameterAssignments": dict(run.parameters),
        "RunHistoryExperimentName": run.experiment_name,
        "PipelineId": pipeline_id,
        "RunSource": run.run_source,
        "ScheduleId": run.properties.get("azureml.scheduleId"),
        "TotalRunSteps": total_steps,
        "tags": dict(run.tags),
        "Properties": dict(run.properties),
        "CreatedDate": iso(run.created_at),
        "Description": run.description,
    }


def published_pipeline_document(pipeline: Any, endpoint: str | None) -> dict[str, Any]:
    """A published pipeline (a `PublishedPipelineRecord`) as JSON."""
    return {
        "Id": pipeline.id,
        "Name": pipeline.name,
        "Description": pipeline.description,
        "Version": pipeline.version,
        "GraphId": pipeline.graph_id,
        "Status": pipeline.status,
        "ContinueRunOnStepFailure": pipeline.continue_on_step_failure,
        "SourceRunId": getattr(pipeline, "source_run_id", None),
        "CreatedDate": iso(getattr(pipeline, "created_at", None)),
        "Url": endpoint,
    }


def endpoint_document(endpoint: Any) -> dict[str, Any]:
    """A pipeline endpoint (a `PipelineEndpointRecord`) as JSON."""
    return {
        "Id": endpoint.id,
        "Name": endpoint.name,
        "Description": endpoint.description,
        "Status": endpoint.status,
        "DefaultVersion": endpoint.default_version,
        "Versions": dict(endpoint.versions),
        "CreatedDate": iso(getattr(endpoint, "created_at", None)),
    }
