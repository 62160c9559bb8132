"""Publishing a graph, submitting a published pipeline, and choosing an endpoint's pipeline.

A published pipeline is a stored graph whose steps carry snapshot ids, so editing the source
folders later changes nothing. Submitting one goes through `submit_graph` like any run, with
parameter values that may arrive as text (REST clients send "45" for an int).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from headrace.engine.graphs import load_graph
from headrace.engine.submission import Submission, compute_problems, submit_graph
from headrace.errors import (
    ParameterError,
    PipelineDisabledError,
    PipelineValidationError,
    UserError,
)
from headrace.graph.model import Graph
from headrace.graph.validate import did_you_mean, structural_problems
from headrace.store.publishing import ACTIVE
from headrace.store.records import (
    IGNORED_PARAMETERS,
    PipelineEndpointRecord,
    PublishedPipelineRecord,
)
from headrace.store.workspace_store import WorkspaceStore

if TYPE_CHECKING:
    from sqlalchemy import Connection

__all__ = ["IGNORED_PARAMETERS", "endpoint_pipeline_id", "publish_graph", "submit_published"]

# The run property naming the parameter assignments a REST submit sent that the pipeline
# does not declare (SDK v1 ran such a submit and dropped them without a word).


def publish_graph(
    ws: WorkspaceStore,
    graph: Graph,
    *,
    name: str,
    description: str | None,
    version: str | None,
    continue_on_step_failure: bool,
    source_run_id: str | None = None,
) -> PublishedPipelineRecord:
    """Check `graph` as submit would, then store it as an Active published pipeline."""
    problems = structural_problems(graph) + compute_problems(ws, graph)
    missing = [n.name for n in graph.nodes if n.snapshot_id is None]
    if missing:
        problems.append(
            f"Steps {', '.join(repr(m) for m in missing)} have no source snapshot; publish "
            "through Pipeline.publish or PipelineRun.publish_pipeline, which take one."
        )
    if problems:
        raise PipelineValidationError(problems)
    if not isinstance(name, str) or not name.strip():
        raise UserError("A published pipeline needs a non-empty name.")
    return ws.meta.create_published_pipeline(
        name=name,
        description=description,
        version=version,
        graph=graph.to_dict(),
        continue_on_step_failure=continue_on_step_failure,
        source_run_id=source_run_id,
    )


def _with_data_paths(
    graph: Graph, parameters: dict[str, Any] | None, data_path_assignments: dict[str, Any] | None
) -> dict[str, Any] | None:
    """Parameter assignments with the DataPath assignments of a REST submit merged in."""
    if not data_path_assignments:
        return parameters
    merged = dict(parameters or {})
    datapaths = [p.name for p in graph.parameters if p.type == "datapath"]
    problems = []
    for name, value in data_path_assignments.items():
        if name not in datapaths:
            problems.append(
                f"DataPath assignment {name!r} names no DataPath parameter"
                f"{did_you_mean(name, datapaths)}; this pipeline's DataPath parameters: "
                f"{', '.join(datapaths) or 'none'}."
            )
        else:
            merged[name] = value
    if problems:
        raise ParameterError("\n".join(problems))
    return merged


def submit_published(
    ws: WorkspaceStore,
    pipeline_id: str,
    *,
    experiment_name: str,
    parameters: dict[str, Any] | None = None,
    tags: dict[str, Any] | None = None,
    description: str | None = None,
    run_source: str = "SDK",
    continue_on_step_failure: bool | None = None,
    data_path_assignments: dict[str, Any] | None = None,
    with_preview: bool = True,
    ignore_unknown_parameters: bool = False,
    properties: dict[str, Any] | None = None,
    in_transaction: Callable[[Connection, str], None] | None = None,
    run_id: str | None = None,
) -> Submission:
    """Queue a run of an Active published pipeline (values converted to parameter types).

    `ignore_unknown_parameters` (the SDK v1 REST routes): assignments to parameters the
    pipeline does not declare are dropped, as SDK v1 did, and named in the run's property
    IGNORED_PARAMETERS; otherwise they are a ParameterError. `properties` are added to the
    run's; `in_transaction` runs in the transaction that queues it (see submit_graph)."""
    published = ws.meta.get_published_pipeline(pipeline_id)
    if published.status != ACTIVE:
        raise PipelineDisabledError(
            f"Published pipeline {published.name!r} ({published.id}) is {published.status}, "
            "so it cannot be submitted; enable it with "
            f"PublishedPipeline.get(ws, {published.id!r}).enable()."
        )
    graph = load_graph(ws.meta, published.graph_id)
    properties = {**(properties or {}), "azureml.pipelineid": published.id}
    if ignore_unknown_parameters and parameters:
        declared = {p.name for p in graph.parameters}
        ignored = sorted(name for name in parameters if name not in declared)
        if ignored:
            parameters = {k: v for k, v in parameters.items() if k in declared}
            properties[IGNORED_PARAMETERS] = ", ".join(ignored)
    values = _with_data_paths(graph, parameters, data_path_assignments)
    keep_going = (
        published.continue_on_step_failure
        if continue_on_step_failure is None
        else continue_on_step_failure
    )
    return submit_graph(
        ws,
        graph,
        experiment_name=experiment_name,
        parameters=values,
        tags=tags,
        description=description if description is not None else published.description,
        run_source=run_source,
        continue_on_step_failure=keep_going,
        properties=properties,
        with_preview=with_preview,
        stored_graph_id=published.graph_id,
        in_transaction=in_transaction,
        run_id=run_id,
    )


def endpoint_pipeline_id(endpoint: PipelineEndpointRecord, version: str | None) -> str:
    """The published pipeline behind `version` (None: the default) of an Active endpoint."""
    if endpoint.status != ACTIVE:
        raise PipelineDisabledError(
            f"Status must be Active, its status is {endpoint.status}: pipeline endpoint "
            f"{endpoint.name!r} cannot be submitted; enable it with "
            f"PipelineEndpoint.get(ws, name={endpoint.name!r}).enable()."
        )
    chosen = endpoint.default_version if version is None else str(version)
    if chosen not in endpoint.versions:
        raise UserError(
            f"Pipeline endpoint {endpoint.name!r} has no version {chosen!r}; its versions: "
            f"{', '.join(endpoint.versions)}."
        )
    return endpoint.versions[chosen]
