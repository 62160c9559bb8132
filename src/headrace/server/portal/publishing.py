"""Published pipelines and pipeline endpoints: lists, details, REST examples, a submit form.

A pipeline's page shows the URL that submits it over REST (what `PublishedPipeline.endpoint`
gives, but on the server the browser is talking to), curl and Python examples with its
parameters' defaults, and a form: an experiment name and one field per parameter. The form
posts to `/ui/pipelines/{id}/submit` (CSRF, submitter role) and lands on the new run's page;
bad values show the form again with the problem, and nothing is submitted. An endpoint's page
does the same for one of its versions (the default unless `?version=` picks another).
DataPath parameters keep their defaults in the form (REST's DataPathAssignments sets them).
"""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import Request, Response
from fastapi.responses import RedirectResponse
from starlette.datastructures import FormData

from headrace.errors import ParameterError, PipelineDisabledError
from headrace.sdk.published import submit_url
from headrace.server.portal.base import (
    PortalError,
    Viewer,
    ViewerDep,
    checked_form,
    page,
    render,
    router,
    state,
)
from headrace.store.compare_views import EndpointView, PublishedView, endpoint_view, published_view
from headrace.store.publishing import ACTIVE
from headrace.store.records import PipelineEndpointRecord, PublishedPipelineRecord

__all__: list[str] = []

EXPERIMENT_NAME = re.compile(r"^[A-Za-z0-9][\w-]{0,254}$")  # as sdk.experiment checks it
FIELD = "param__"  # form fields of parameters: param__<name>


# -- published pipelines -------------------------------------------------------------------
def _pipeline_row(pipeline: PublishedPipelineRecord) -> dict[str, Any]:
    return {
        "id": pipeline.id,
        "url": f"/ui/pipelines/{pipeline.id}",
        "name": pipeline.name,
        "version": pipeline.version,
        "description": pipeline.description,
        "status": pipeline.status,
        "created_at": pipeline.created_at,
        "source_run_id": pipeline.source_run_id,
        "source_run_url": f"/ui/runs/{pipeline.source_run_id}" if pipeline.source_run_id else None,
    }


@page("/pipelines")
def pipelines(request: Request, _viewer: ViewerDep) -> Response:
    """Every published pipeline, Active and Disabled, newest first."""
    found = state(request).backend.list_published_pipelines(active_only=False)
    data = {"pipelines": [_pipeline_row(p) for p in found]}
    return render(request, "pipelines.html", title="Published pipelines", data=data)


def _find_pipeline(request: Request, pipeline_id: str) -> PublishedView:
    view = published_view(state(request).store.database, pipeline_id)
    if view is None:
        raise PortalError(
            404,
            f"There is no published pipeline {pipeline_id!r} in this workspace; the published "
            "pipelines are listed on /ui/pipelines.",
        )
    return view


@page("/pipelines/{pipeline_id}")
def pipeline(request: Request, viewer: ViewerDep, pipeline_id: str) -> Response:
    """One published pipeline: details, versions, REST URL, examples, the submit form."""
    view = _find_pipeline(request, pipeline_id)
    return _pipeline_page(request, viewer, view, None, None)


def _pipeline_page(
    request: Request,
    viewer: Viewer,
    view: PublishedView,
    error: str | None,
    values: dict[str, str] | None,
) -> Response:
    pipeline = view.pipeline
    parameters = _parameters(view.graph)
    url = _rest_url(request, f"PipelineRuns/PipelineSubmit/{pipeline.id}")
    experiment = (values or {}).get("experiment") or _experiment_for(pipeline.name)
    data = {
        "pipeline": {**_pipeline_row(pipeline), "steps": len(view.graph.get("nodes", ()))},
        "versions": [_pipeline_row(p) for p in view.same_name],
        "endpoint_url": url,
        "parameters": parameters,
        "examples": {
            "curl": _curl(url, experiment, parameters),
            "python": _python_pipeline(request, pipeline.id, experiment, parameters),
        },
        "form": _form(
            viewer,
            action=f"/ui/pipelines/{pipeline.id}/submit",
            disabled_reason=None if pipeline.status == ACTIVE else _disabled_pipeline(pipeline),
            experiment=experiment,
            parameters=parameters,
            error=error,
            values=values,
        ),
    }
    title = f"Pipeline {pipeline.name}"
    return render(request, "pipeline.html", title=title, data=data, status=400 if error else 200)


@router.post("/pipelines/{pipeline_id}/submit")
async def submit_pipeline(request: Request, viewer: ViewerDep, pipeline_id: str) -> Response:
    """Queue a run of the published pipeline from the form; on to the new run's page."""
    form = await checked_form(request, viewer, "submitter")
    view = _find_pipeline(request, pipeline_id)
    experiment, values = _posted(form)
    try:
        run_id = _submit(request, viewer, pipeline_id, experiment, values, _parameters(view.graph))
    except (ParameterError, PipelineDisabledError) as exc:
        return _pipeline_page(request, viewer, view, str(exc), {"experiment": experiment, **values})
    return RedirectResponse(f"/ui/runs/{run_id}", status_code=303)


# -- pipeline endpoints --------------------------------------------------------------------
def _endpoint_row(endpoint: PipelineEndpointRecord) -> dict[str, Any]:
    return {
        "id": endpoint.id,
        "url": f"/ui/endpoints/{endpoint.name}",
        "name": endpoint.name,
        "description": endpoint.description,
        "status": endpoint.status,
        "default_version": endpoint.default_version,
        "versions": endpoint.versions,
        "created_at": endpoint.created_at,
    }


@page("/endpoints")
def endpoints(request: Request, _viewer: ViewerDep) -> Response:
    """Pipeline endpoints, Active and Disabled, by name."""
    found = state(request).backend.list_pipeline_endpoints(active_only=False)
    data = {"endpoints": [_endpoint_row(e) for e in found]}
    return render(request, "endpoints.html", title="Pipeline endpoints", data=data)


def _find_endpoint(request: Request, name: str, version: str | None) -> EndpointView:
    view = endpoint_view(state(request).store.database, name, version)
    if view is None:
        raise PortalError(
            404,
            f"There is no pipeline endpoint named {name!r} in this workspace; the endpoints "
            "are listed on /ui/endpoints.",
        )
    if version is not None and version not in view.endpoint.versions:
        raise PortalError(
            404,
            f"Pipeline endpoint {name!r} has no version {version!r}; its versions: "
            f"{', '.join(view.endpoint.versions)}.",
        )
    return view


@page("/endpoints/{name}")
def endpoint(
    request: Request, viewer: ViewerDep, name: str, version: str | None = None
) -> Response:
    """One endpoint: its versions and their pipelines, URL, examples, the submit form of the
    default version (or of `?version=`)."""
    view = _find_endpoint(request, name, version)
    return _endpoint_page(request, viewer, view, version, None, None)


def _endpoint_page(
    request: Request,
    viewer: Viewer,
    view: EndpointView,
    version: str | None,
    error: str | None,
    values: dict[str, str] | None,
) -> Response:
    record = view.endpoint
    chosen = version or record.default_version
    parameters = _parameters(view.graph)
    route = f"PipelineRuns/PipelineEndpointSubmit/Id/{record.id}"
    url = _rest_url(request, route if version is None else f"{route}/{version}")
    experiment = (values or {}).get("experiment") or _experiment_for(record.name)
    versions = []
    for number, pipeline_id in record.versions.items():
        published = view.pipelines.get(pipeline_id)
        versions.append(
            {
                "version": number,
                "is_default": number == record.default_version,
                "form_url": f"/ui/endpoints/{record.name}?version={number}",
                "pipeline": _pipeline_row(published) if published else {"id": pipeline_id},
            }
        )
    published = view.pipelines.get(record.versions.get(chosen, ""))
    reason = None
    if record.status != ACTIVE:
        reason = (
            f"Endpoint {record.name!r} is {record.status}, so it cannot be submitted; enable it "
            f"with PipelineEndpoint.get(ws, name={record.name!r}).enable()."
        )
    elif published is not None and published.status != ACTIVE:
        reason = _disabled_pipeline(published)
    data = {
        "endpoint": _endpoint_row(record),
        "versions": versions,
        "chosen_version": chosen,
        "endpoint_url": url,
        "parameters": parameters,
        "examples": {
            "curl": _curl(url, experiment, parameters),
            "python": _python_endpoint(request, record.name, version, experiment, parameters),
        },
        "form": _form(
            viewer,
            action=f"/ui/endpoints/{record.name}/submit",
            disabled_reason=reason,
            experiment=experiment,
            parameters=parameters,
            error=error,
            values=values,
        ),
    }
    title = f"Endpoint {record.name}"
    return render(request, "endpoint.html", title=title, data=data, status=400 if error else 200)


@router.post("/endpoints/{name}/submit")
async def submit_endpoint(request: Request, viewer: ViewerDep, name: str) -> Response:
    """Queue a run of the endpoint's chosen version (the form's) and go to the run's page."""
    form = await checked_form(request, viewer, "submitter")
    version = str(form.get("version", "")).strip() or None
    view = _find_endpoint(request, name, version)
    experiment, values = _posted(form)
    try:
        pipeline_id = state(request).backend.endpoint_pipeline_id(view.endpoint, version)
        parameters = _parameters(view.graph)
        run_id = _submit(request, viewer, pipeline_id, experiment, values, parameters)
    except (ParameterError, PipelineDisabledError) as exc:
        return _endpoint_page(
            request, viewer, view, version, str(exc), {"experiment": experiment, **values}
        )
    return RedirectResponse(f"/ui/runs/{run_id}", status_code=303)


# -- the form, the examples ----------------------------------------------------------------
def _parameters(graph: dict[str, Any]) -> list[dict[str, Any]]:
    """The graph's parameters as form fields: name, type, default (and its text)."""
    fields = []
    for raw in graph.get("parameters", ()):
        default = raw.get("default")
        kind = raw.get("type", "str")
        fields.append(
            {
                "name": raw["name"],
                "type": kind,
                "default": default,
                "default_text": _text(default),
                "field": FIELD + raw["name"],
                "editable": kind != "datapath",
            }
        )
    return fields


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return f"{value.get('datastore')}/{value.get('path')}"
    return "" if value is None else str(value)


def _form(
    viewer: Viewer,
    *,
    action: str,
    disabled_reason: str | None,
    experiment: str,
    parameters: list[dict[str, Any]],
    error: str | None,
    values: dict[str, str] | None,
) -> dict[str, Any]:
    """The submit form: shown only to a submitter of an Active pipeline, else why not."""
    if disabled_reason is None and not viewer.can("submitter"):
        disabled_reason = (
            f"Your token {viewer.name!r} has role {viewer.role!r}; submitting needs "
            "'submitter' or 'admin'. Sign in with such a token to submit from here."
        )
    given = values or {}
    return {
        "action": action,
        "available": disabled_reason is None,
        "reason": disabled_reason,
        "error": error,
        "experiment": experiment,
        "values": {p["name"]: given.get(p["name"], p["default_text"]) for p in parameters},
    }


def _posted(form: FormData) -> tuple[str, dict[str, str]]:
    """The experiment name and the parameter values (as text) of a posted form."""
    experiment = str(form.get("experiment", "")).strip()
    values = {
        key[len(FIELD) :]: str(value).strip()
        for key, value in form.items()
        if key.startswith(FIELD)
    }
    return experiment, values


def _submit(
    request: Request,
    viewer: Viewer,
    pipeline_id: str,
    experiment: str,
    values: dict[str, str],
    parameters: list[dict[str, Any]],
) -> str:
    """Queue the run; ParameterError (nothing queued) for a bad experiment name or value."""
    if not EXPERIMENT_NAME.match(experiment):
        raise ParameterError(
            f"Experiment name {experiment!r} is invalid: use 1-255 letters, digits, '-' or '_', "
            "starting with a letter or digit."
        )
    editable = {p["name"] for p in parameters if p["editable"]}
    assignments = {name: value for name, value in values.items() if name in editable}
    tags = {"headrace.portal.submittedBy": viewer.name} if viewer.name else None
    submission = state(request).backend.submit_published_pipeline(
        pipeline_id,
        experiment_name=experiment,
        parameters=assignments or None,
        tags=tags,
        run_source="Portal",
        with_preview=False,
    )
    return str(submission.run.id)


def _disabled_pipeline(pipeline: PublishedPipelineRecord) -> str:
    return (
        f"Published pipeline {pipeline.name!r} is {pipeline.status}, so it cannot be "
        f"submitted; enable it with PublishedPipeline.get(ws, {pipeline.id!r}).enable()."
    )


def _experiment_for(name: str) -> str:
    """A valid experiment name to suggest: the pipeline's or endpoint's name, cleaned."""
    cleaned = re.sub(r"[^\w-]", "-", name).strip("-_")[:64]
    return cleaned or "published"


def _server(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _rest_url(request: Request, route: str) -> str:
    """The REST URL of `route` on this server, as `PublishedPipeline.endpoint` builds it."""
    store = state(request).store
    return submit_url(
        _server(request),
        route,
        subscription_id=store.config.get("subscription_id"),
        resource_group=store.config.get("resource_group"),
        workspace_name=store.name,
    )


def _defaults(parameters: list[dict[str, Any]]) -> dict[str, Any]:
    return {p["name"]: p["default"] for p in parameters if p["editable"]}


def _curl(url: str, experiment: str, parameters: list[dict[str, Any]]) -> str:
    body = json.dumps({"ExperimentName": experiment, "ParameterAssignments": _defaults(parameters)})
    quoted = body.replace("'", "'\\''")  # inside single quotes for the shell
    return (
        f'curl -X POST "{url}" \\\n'
        '  -H "Authorization: Bearer $TOKEN" \\\n'
        '  -H "Content-Type: application/json" \\\n'
        f"  -d '{quoted}'"
    )


def _python_head(request: Request) -> str:
    workspace = state(request).store.name
    return (
        f"# The token comes from $HEADRACE_TOKEN.\n"
        f"ws = Workspace.get({workspace!r}, url={_server(request)!r})\n"
    )


def _python_pipeline(
    request: Request, pipeline_id: str, experiment: str, parameters: list[dict[str, Any]]
) -> str:
    return (
        "from headrace import PublishedPipeline, Workspace\n\n"
        + _python_head(request)
        + f"pipeline = PublishedPipeline.get(ws, {pipeline_id!r})\n"
        + f"run = pipeline.submit(ws, {experiment!r}, "
        + f"pipeline_parameters={_defaults(parameters)!r})\n"
        + "run.wait_for_completion()\n"
    )


def _python_endpoint(
    request: Request,
    name: str,
    version: str | None,
    experiment: str,
    parameters: list[dict[str, Any]],
) -> str:
    chosen = "" if version is None else f", pipeline_version={version!r}"
    return (
        "from headrace import PipelineEndpoint, Workspace\n\n"
        + _python_head(request)
        + f"endpoint = PipelineEndpoint.get(ws, name={name!r})\n"
        + f"run = endpoint.submit({experiment!r}, "
        + f"pipeline_parameters={_defaults(parameters)!r}{chosen})\n"
        + "run.wait_for_completion()\n"
    )
