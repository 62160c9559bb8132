"""The routes: SDK v1's pipeline submit routes and a small JSON API. Thin by design: check the
token, parse, call `LocalBackend`, build the document in `server.schemas`.

Every route but /health needs a token (when auth is on); the dependencies of
`server.access` say which, and what a step's run token may do here: submit with
`?parentRunId=` its run, then read or cancel that child at `/api/v1/runs/{run_id}`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import RedirectResponse

from headrace.engine.publishing import IGNORED_PARAMETERS
from headrace.errors import NotFoundError, UserError
from headrace.sdk.published import SUBMIT_PREFIX, submit_url
from headrace.server.access import (
    PARENT_TAG,
    ChildCanceler,
    ChildReader,
    ChildSubmitter,
    Reader,
)
from headrace.server.schemas import (
    PipelineSubmissionInfo,
    endpoint_document,
    published_pipeline_document,
    run_entity,
)
from headrace.store.records import NOTIFY_PROPERTY, PipelineRunRecord

__all__ = ["SUBMIT_PREFIX", "ResourceGroup", "Subscription", "check_workspace", "router"]

router = APIRouter()


def _state(request: Request) -> Any:
    return request.app.state.headrace


@router.get("/health", tags=["server"])
def health(request: Request) -> dict[str, Any]:
    """Liveness: no token needed."""
    return {"status": "ok", "workspace": _state(request).store.name}


@router.get("/", tags=["server"], include_in_schema=False)
def home() -> RedirectResponse:
    """The web portal."""
    return RedirectResponse("/ui")


# -- SDK v1 submit routes ------------------------------------------------------------------
def check_workspace(request: Request, workspace: str) -> None:
    served = _state(request).store.name
    if workspace != served:
        raise NotFoundError(
            f"This server serves workspace {served!r}, not {workspace!r}; check the URL "
            "(PublishedPipeline.endpoint gives it)."
        )


def _submit(
    request: Request, pipeline_id: str, body: PipelineSubmissionInfo, parent_run_id: str | None
) -> dict[str, Any]:
    backend = _state(request).backend
    tags = dict(body.tags or {})
    if parent_run_id:
        # The parent is a step run (a step submitting from its script, SDK v1's use) or a
        # pipeline run; 404 for neither. Set, not defaulted: a step's token may read and
        # cancel the runs this tag names as its children.
        if backend.find_step_run(parent_run_id) is None:
            backend.get_pipeline_run(parent_run_id)
        tags[PARENT_TAG] = parent_run_id
    parameters: dict[str, Any] = dict(body.ParameterAssignments)
    parameters.update(dataset_values(backend, body.DataSetDefinitionValueAssignments))
    submission = backend.submit_published_pipeline(
        pipeline_id,
        experiment_name=body.ExperimentName,
        parameters=parameters or None,
        tags=tags or None,
        description=body.Description,
        run_source=body.RunSource or "API",
        continue_on_step_failure=body.ContinueRunOnStepFailure,
        data_path_assignments={k: v.model_dump() for k, v in body.DataPathAssignments.items()}
        or None,
        with_preview=False,
        # SDK v1 ran a REST submit with undeclared parameters and dropped them; so does
        # this route, saying which in the answer and in the run's properties.
        ignore_unknown_parameters=True,
        properties={NOTIFY_PROPERTY: "true"} if body.EnableNotification else None,
    )
    entity = _entity(request, submission.run, pipeline_id)
    if IGNORED_PARAMETERS in submission.run.properties:
        declared = submission.run.parameters  # every declared parameter has its value
        ignored = [k for k in parameters if k not in declared]
        entity["IgnoredParameterAssignments"] = ignored
    return entity


def dataset_values(backend: Any, assignments: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """SDK v1's DataSetDefinitionValueAssignments as dataset parameter values: each names a
    registered dataset by id (`SavedDataSetReference`) or by name and version
    (`DataSetReference`)."""
    values = {}
    for name, assignment in assignments.items():
        saved = assignment.get("SavedDataSetReference")
        named = assignment.get("DataSetReference")
        if isinstance(saved, dict) and isinstance(saved.get("Id"), str):
            record = backend.get_dataset_by_id(saved["Id"])
        elif isinstance(named, dict) and isinstance(named.get("Name"), str):
            version = named.get("Version")
            number = None if version in (None, "", "latest") else _dataset_version(name, version)
            record = backend.get_dataset(named["Name"], number)
        else:
            raise UserError(
                f"DataSetDefinitionValueAssignments[{name!r}] must be "
                '{"SavedDataSetReference": {"Id": "<dataset id>"}} or '
                '{"DataSetReference": {"Name": "<name>", "Version": "<version>"}}.'
            )
        registration = {"id": record.id, "name": record.name, "version": record.version}
        values[name] = {**record.definition, "registration": registration}
    return values


def _dataset_version(name: str, version: Any) -> int:
    try:
        return int(version)
    except (TypeError, ValueError):
        raise UserError(
            f"DataSetDefinitionValueAssignments[{name!r}]: Version must be a number or "
            f"'latest', not {version!r}."
        ) from None


def _entity(request: Request, run: PipelineRunRecord, pipeline_id: str | None) -> dict[str, Any]:
    backend = _state(request).backend
    total = len(backend.get_graph(run.graph_id).nodes)
    if pipeline_id is None:
        pipeline_id = run.properties.get("azureml.pipelineid")
    return run_entity(run, pipeline_id=pipeline_id, total_steps=total)


ParentRunId = Annotated[
    str | None,
    Query(
        alias="parentRunId",
        description="Record the new run as a child of this step run or pipeline run.",
    ),
]
# Part of SDK v1's URLs; not checked (PublishedPipeline.endpoint puts "local" if unknown).
Subscription = Annotated[str, Path(description="The subscription id; not checked.")]
ResourceGroup = Annotated[str, Path(description="The resource group; not checked.")]


@router.post(SUBMIT_PREFIX + "/PipelineRuns/PipelineSubmit/{pipeline_id}", tags=["submit"])
def submit_published_pipeline(
    request: Request,
    subscription: Subscription,
    resource_group: ResourceGroup,
    workspace: str,
    pipeline_id: str,
    body: PipelineSubmissionInfo,
    _token: ChildSubmitter,
    parent_run_id: ParentRunId = None,
) -> dict[str, Any]:
    """Submit a run of a published pipeline (SDK v1 `PublishedPipeline.endpoint`)."""
    check_workspace(request, workspace)
    return _submit(request, pipeline_id, body, parent_run_id)


def _submit_endpoint(
    request: Request,
    body: PipelineSubmissionInfo,
    parent_run_id: str | None,
    *,
    endpoint_id: str | None = None,
    name: str | None = None,
    version: str | None = None,
) -> dict[str, Any]:
    backend = _state(request).backend
    endpoint = backend.get_pipeline_endpoint(id=endpoint_id, name=name)
    pipeline_id = backend.endpoint_pipeline_id(endpoint, version)
    return _submit(request, pipeline_id, body, parent_run_id)


@router.post(
    SUBMIT_PREFIX + "/PipelineRuns/PipelineEndpointSubmit/Id/{endpoint_id}", tags=["submit"]
)
def submit_endpoint_by_id(
    request: Request,
    subscription: Subscription,
    resource_group: ResourceGroup,
    workspace: str,
    endpoint_id: str,
    body: PipelineSubmissionInfo,
    _token: ChildSubmitter,
    parent_run_id: ParentRunId = None,
) -> dict[str, Any]:
    """Submit the default version of a pipeline endpoint, found by id."""
    check_workspace(request, workspace)
    return _submit_endpoint(request, body, parent_run_id, endpoint_id=endpoint_id)


@router.post(
    SUBMIT_PREFIX + "/PipelineRuns/PipelineEndpointSubmit/Id/{endpoint_id}/{version}",
    tags=["submit"],
)
def submit_endpoint_version_by_id(
    request: Request,
    subscription: Subscription,
    resource_group: ResourceGroup,
    workspace: str,
    endpoint_id: str,
    version: str,
    body: PipelineSubmissionInfo,
    _token: ChildSubmitter,
    parent_run_id: ParentRunId = None,
) -> dict[str, Any]:
    """Submit one version of a pipeline endpoint, found by id."""
    check_workspace(request, workspace)
    return _submit_endpoint(request, body, parent_run_id, endpoint_id=endpoint_id, version=version)


@router.post(SUBMIT_PREFIX + "/PipelineRuns/PipelineEndpointSubmit/Name", tags=["submit"])
def submit_endpoint_by_name(
    request: Request,
    subscription: Subscription,
    resource_group: ResourceGroup,
    workspace: str,
    body: PipelineSubmissionInfo,
    _token: ChildSubmitter,
    name: Annotated[str, Query(min_length=1, description="The endpoint's name.")],
    pipeline_version: Annotated[str | None, Query(alias="pipelineVersion")] = None,
    parent_run_id: ParentRunId = None,
) -> dict[str, Any]:
    """Submit a pipeline endpoint found by name (`pipelineVersion`: default version if absent)."""
    check_workspace(request, workspace)
    return _submit_endpoint(request, body, parent_run_id, name=name, version=pipeline_version)


# -- JSON API ------------------------------------------------------------------------------
def _pipeline_url(request: Request, pipeline_id: str) -> str:
    store = _state(request).store
    info = store.meta.workspace_info()
    return submit_url(
        str(request.base_url),
        f"PipelineRuns/PipelineSubmit/{pipeline_id}",
        subscription_id=info.get("subscription_id"),
        resource_group=info.get("resource_group"),
        workspace_name=store.name,
    )


@router.get("/api/v1/published-pipelines", tags=["api"])
def list_published_pipelines(
    request: Request,
    _token: Reader,
    active_only: Annotated[bool, Query(alias="activeOnly")] = True,
) -> dict[str, Any]:
    """Published pipelines (Active ones unless activeOnly=false)."""
    backend = _state(request).backend
    return {
        "Value": [
            published_pipeline_document(p, _pipeline_url(request, p.id))
            for p in backend.list_published_pipelines(active_only)
        ]
    }


@router.get("/api/v1/published-pipelines/{pipeline_id}", tags=["api"])
def get_published_pipeline(request: Request, pipeline_id: str, _token: Reader) -> dict[str, Any]:
    """One published pipeline, with the URL to submit it."""
    pipeline = _state(request).backend.get_published_pipeline(pipeline_id)
    return published_pipeline_document(pipeline, _pipeline_url(request, pipeline.id))


@router.get("/api/v1/pipeline-endpoints", tags=["api"])
def list_pipeline_endpoints(
    request: Request,
    _token: Reader,
    active_only: Annotated[bool, Query(alias="activeOnly")] = True,
) -> dict[str, Any]:
    """Pipeline endpoints with their versions."""
    backend = _state(request).backend
    return {"Value": [endpoint_document(e) for e in backend.list_pipeline_endpoints(active_only)]}


@router.get("/api/v1/runs/{run_id}", tags=["api"])
def get_run(request: Request, run_id: str, _token: ChildReader) -> dict[str, Any]:
    """A pipeline run: its status, parameters and steps."""
    backend = _state(request).backend
    run = backend.get_pipeline_run(run_id)
    document = _entity(request, run, None)
    document["Steps"] = [
        {"Id": s.id, "Name": s.name, "Status": s.status} for s in backend.list_step_runs(run.id)
    ]
    return document


@router.post("/api/v1/runs/{run_id}/cancel", tags=["api"])
def cancel_run(request: Request, run_id: str, _token: ChildCanceler) -> dict[str, Any]:
    """Ask a pipeline run to stop; its steps are ended and it becomes Canceled."""
    backend = _state(request).backend
    return _entity(request, backend.cancel_run(run_id), None)
