"""`PublishedPipeline` and `PipelineEndpoint`: frozen pipelines that can be submitted again.

`Pipeline.publish()` (or `PipelineRun.publish_pipeline()`) stores the pipeline's graph with its
source snapshots, so a published pipeline runs the same code however the folders change
later. A `PipelineEndpoint` is a stable name over versions "0", "1", ... of published
pipelines, one of them the default. Both can be submitted from Python here, or over REST
through a headrace server at the URL in `.endpoint` (`submit_url` builds it; the server
mirrors these routes).
"""

from __future__ import annotations

import builtins
import os
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from headrace.errors import NameConflictError, UserError

if TYPE_CHECKING:
    from headrace.graph.model import Graph
    from headrace.sdk.experiment import Experiment
    from headrace.sdk.runs import PipelineRun
    from headrace.sdk.workspace import Workspace
    from headrace.store.records import PipelineEndpointRecord, PublishedPipelineRecord

__all__ = [
    "DEFAULT_SERVER_URL",
    "SUBMIT_PREFIX",
    "PipelineEndpoint",
    "PipelineIdVersion",
    "PipelineVersion",
    "PublishedPipeline",
    "server_url",
    "submit_url",
]

DEFAULT_SERVER_URL = "http://127.0.0.1:8765"
SUBMIT_PREFIX = (
    "/pipelines/v1.0/subscriptions/{subscription}/resourceGroups/{resource_group}"
    "/providers/Microsoft.MachineLearningServices/workspaces/{workspace}"
)


def submit_url(
    server: str,
    route: str,
    *,
    subscription_id: str | None,
    resource_group: str | None,
    workspace_name: str,
) -> str:
    """`{server}/pipelines/v1.0/subscriptions/.../workspaces/{ws}/{route}`, as SDK v1 spelled
    its REST URLs; a workspace without subscription or resource group uses "local"."""
    prefix = SUBMIT_PREFIX.format(
        subscription=subscription_id or "local",
        resource_group=resource_group or "local",
        workspace=workspace_name,
    )
    return f"{server.rstrip('/')}{prefix}/{route.lstrip('/')}"


def server_url(workspace: Workspace) -> str:
    """The headrace server that serves `workspace`: its config's `server_url`, else
    $HEADRACE_SERVER_URL, else the default local address."""
    configured = workspace._config.get("server_url")
    if isinstance(configured, str) and configured:
        return configured
    return os.environ.get("HEADRACE_SERVER_URL") or DEFAULT_SERVER_URL


def _workspace_url(workspace: Workspace, route: str) -> str:
    return submit_url(
        server_url(workspace),
        route,
        subscription_id=workspace.subscription_id,
        resource_group=workspace.resource_group,
        workspace_name=workspace.name,
    )


def _submitted(workspace: Workspace, experiment_name: str, submission: Any) -> PipelineRun:
    from headrace.sdk.experiment import Experiment
    from headrace.sdk.pipeline import print_submission
    from headrace.sdk.runs import PipelineRun

    graph = workspace.backend.get_graph(submission.run.graph_id)
    print_submission(graph, submission, workspace.backend.location)
    return PipelineRun(Experiment(workspace, experiment_name), submission.run.id, submission.run)


def _parent_run_ignored(parent_run_id: str | None) -> None:
    if parent_run_id is not None:
        import warnings

        warnings.warn(
            "parent_run_id is accepted for SDK v1 compatibility and ignored: headrace pipeline "
            "runs have no parent run.",
            UserWarning,
            stacklevel=3,
        )


class PublishedPipeline:
    """A published pipeline (SDK v1 `azureml.pipeline.core.PublishedPipeline`)."""

    def __init__(self, workspace: Workspace, _record: PublishedPipelineRecord) -> None:
        self._workspace = workspace
        self._record = _record

    # -- lookups ---------------------------------------------------------------------------
    @staticmethod
    def get(
        workspace: Workspace,
        id: str,
        _workflow_provider: Any = None,
        _service_endpoint: Any = None,
    ) -> PublishedPipeline:
        return PublishedPipeline(workspace, workspace.backend.get_published_pipeline(id))

    @staticmethod
    def list(
        workspace: Workspace,
        active_only: bool = True,
        _service_endpoint: Any = None,
    ) -> list[PublishedPipeline]:
        records = workspace.backend.list_published_pipelines(active_only)
        return [PublishedPipeline(workspace, r) for r in records]

    # -- attributes ------------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self._record.id

    @property
    def name(self) -> str:
        return self._record.name

    @property
    def description(self) -> str | None:
        return self._record.description

    @property
    def version(self) -> str | None:
        return self._record.version

    @property
    def graph_id(self) -> str:
        return self._record.graph_id

    @property
    def status(self) -> str:
        return self._record.status

    @property
    def continue_on_step_failure(self) -> bool:
        return self._record.continue_on_step_failure

    @property
    def source_run_id(self) -> str | None:
        """The pipeline run it was published from, if any (headrace extension)."""
        return self._record.source_run_id

    @property
    def created_at(self) -> datetime:
        return self._record.created_at

    @property
    def endpoint(self) -> str:
        """The REST URL that submits this pipeline through a headrace server."""
        return _workspace_url(self._workspace, f"PipelineRuns/PipelineSubmit/{self.id}")

    @property
    def total_run_steps(self) -> int:
        return len(self.get_graph().nodes)

    def get_graph(self) -> Graph:
        """The frozen graph (steps with their snapshot ids)."""
        return self._workspace.backend.get_graph(self.graph_id)

    def get_step_names(self) -> builtins.list[str]:
        return [n.name for n in self.get_graph().nodes]

    # -- state -----------------------------------------------------------------------------
    def enable(self) -> None:
        self._record = self._workspace.backend.set_published_pipeline_status(self.id, "Active")

    def disable(self) -> None:
        self._record = self._workspace.backend.set_published_pipeline_status(self.id, "Disabled")

    # -- submitting ------------------------------------------------------------------------
    def submit(
        self,
        workspace: Workspace,
        experiment_name: str,
        pipeline_parameters: dict[str, Any] | None = None,
        _workflow_provider: Any = None,
        _service_endpoint: Any = None,
        parent_run_id: str | None = None,
        continue_on_step_failure: bool | None = None,
    ) -> PipelineRun:
        """Queue a run of this pipeline; a submit-time continue_on_step_failure overrides the
        published one."""
        from headrace.sdk.experiment import Experiment
        from headrace.sdk.pipeline import parameter_values

        Experiment(workspace, experiment_name)  # checks the name
        _parent_run_ignored(parent_run_id)
        submission = workspace.backend.submit_published_pipeline(
            self.id,
            experiment_name=experiment_name,
            parameters=parameter_values(pipeline_parameters),
            continue_on_step_failure=continue_on_step_failure,
        )
        return _submitted(workspace, experiment_name, submission)

    def _submit_from_experiment(
        self, experiment: Experiment, tags: dict[str, Any] | None = None, **kwargs: Any
    ) -> PipelineRun:
        from headrace.sdk.pipeline import parameter_values

        accepted = ("pipeline_parameters", "parent_run_id", "continue_on_step_failure")
        _refuse_unknown(kwargs, accepted)
        _parent_run_ignored(kwargs.get("parent_run_id"))
        workspace = experiment.workspace
        submission = workspace.backend.submit_published_pipeline(
            self.id,
            experiment_name=experiment.name,
            parameters=parameter_values(kwargs.get("pipeline_parameters")),
            tags=tags,
            continue_on_step_failure=kwargs.get("continue_on_step_failure"),
        )
        return _submitted(workspace, experiment.name, submission)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublishedPipeline) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return (
            f"PublishedPipeline(Name: {self.name}, Id: {self.id}, Status: {self.status}, "
            f"Endpoint: {self.endpoint})"
        )


def _refuse_unknown(kwargs: dict[str, Any], accepted: tuple[str, ...]) -> None:
    from headrace.graph.validate import did_you_mean

    unknown = [k for k in kwargs if k not in accepted]
    if unknown:
        raise UserError(
            f"Unknown submit argument(s): {', '.join(unknown)}"
            f"{did_you_mean(unknown[0], list(accepted))}; accepted: {', '.join(accepted)}."
        )


@dataclass(frozen=True)
class PipelineIdVersion:
    """One version of a pipeline endpoint (SDK v1 `PipelineIdVersion`)."""

    pipeline_id: str
    version: str


class PipelineVersion(PipelineIdVersion):
    """One version of a pipeline endpoint as `list_versions()` gives it (SDK v1
    `PipelineVersion`): `version`, `pipeline_id`, and `pipeline`, the PublishedPipeline."""

    def __init__(self, workspace: Workspace, pipeline_id: str, version: str) -> None:
        super().__init__(pipeline_id, version)
        object.__setattr__(self, "_workspace", workspace)

    @property
    def pipeline(self) -> PublishedPipeline:
        workspace: Workspace = self._workspace  # type: ignore[attr-defined]
        record = workspace.backend.get_published_pipeline(self.pipeline_id)
        return PublishedPipeline(workspace, record)


def _published_id(pipeline: Any) -> str:
    if isinstance(pipeline, PublishedPipeline):
        return pipeline.id
    raise UserError(
        f"Expected a PublishedPipeline, got {type(pipeline).__name__}; publish a Pipeline "
        "first with pipeline.publish(name)."
    )


class PipelineEndpoint:
    """A named, versioned endpoint over published pipelines (SDK v1 `PipelineEndpoint`)."""

    def __init__(self, workspace: Workspace, _record: PipelineEndpointRecord) -> None:
        self._workspace = workspace
        self._record = _record

    # -- creating and finding --------------------------------------------------------------
    @staticmethod
    def publish(
        workspace: Workspace,
        name: str,
        description: str | None,
        pipeline: Any,
        _workflow_provider: Any = None,
        _service_endpoint: Any = None,
    ) -> PipelineEndpoint:
        """A new endpoint whose version "0" is `pipeline` (a Pipeline is published first, as
        `<name>-<mm-dd-YYYY-HH-MM>-Pipeline`). ValueError if the name is taken."""
        from headrace.sdk.pipeline import Pipeline

        backend = workspace.backend
        try:
            backend.get_pipeline_endpoint(name=name)
        except LookupError:
            pass
        else:
            raise NameConflictError(
                f"A pipeline endpoint named {name!r} already exists; pick another name, or add "
                f"the pipeline to it with PipelineEndpoint.get(ws, name={name!r}).add(pipeline)."
            )
        if isinstance(pipeline, Pipeline):
            stamp = datetime.now().strftime("%m-%d-%Y-%H-%M")
            pipeline = pipeline.publish(name=f"{name}-{stamp}-Pipeline", description=description)
        record = backend.create_pipeline_endpoint(
            name=name, description=description, pipeline_id=_published_id(pipeline)
        )
        return PipelineEndpoint(workspace, record)

    @staticmethod
    def get(
        workspace: Workspace,
        id: str | None = None,
        name: str | None = None,
        _workflow_provider: Any = None,
        _service_endpoint: Any = None,
    ) -> PipelineEndpoint:
        if id is None and name is None:
            raise UserError("PipelineEndpoint.get needs an id or a name.")
        return PipelineEndpoint(
            workspace, workspace.backend.get_pipeline_endpoint(id=id, name=name)
        )

    @staticmethod
    def list(
        workspace: Workspace,
        active_only: bool = True,
        max_results: int = 100,
        _workflow_provider: Any = None,
        _service_endpoint: Any = None,
    ) -> list[PipelineEndpoint]:
        records = workspace.backend.list_pipeline_endpoints(active_only)
        return [PipelineEndpoint(workspace, r) for r in records[:max_results]]

    # -- attributes ------------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self._record.id

    @property
    def name(self) -> str:
        return self._record.name

    @property
    def description(self) -> str | None:
        return self._record.description

    @property
    def status(self) -> str:
        return self._record.status

    @property
    def default_version(self) -> str:
        return self._record.default_version

    @property
    def endpoint(self) -> str:
        """The REST URL that submits this endpoint's default version through a server."""
        return _workspace_url(self._workspace, f"PipelineRuns/PipelineEndpointSubmit/Id/{self.id}")

    # -- versions --------------------------------------------------------------------------
    def get_default_version(self) -> str:
        return self._record.default_version

    def list_versions(self) -> builtins.list[PipelineVersion]:
        """Every version, oldest first: `.version`, `.pipeline_id` and `.pipeline`."""
        return [PipelineVersion(self._workspace, p, v) for v, p in self._record.versions.items()]

    def list_pipelines(self, active_only: bool = True) -> builtins.list[PublishedPipeline]:
        backend = self._workspace.backend
        pipelines = [
            PublishedPipeline(self._workspace, backend.get_published_pipeline(p))
            for p in dict.fromkeys(self._record.versions.values())
        ]
        return [p for p in pipelines if not active_only or p.status == "Active"]

    def get_pipeline(self, version: str | None = None) -> PublishedPipeline:
        chosen = self.default_version if version is None else str(version)
        pipeline_id = self._record.versions.get(chosen)
        if pipeline_id is None:
            raise UserError(
                f"Pipeline endpoint {self.name!r} has no version {chosen!r}; its versions: "
                f"{', '.join(self._record.versions)}."
            )
        return PublishedPipeline(
            self._workspace, self._workspace.backend.get_published_pipeline(pipeline_id)
        )

    def add(self, pipeline: PublishedPipeline) -> None:
        """Add a version for `pipeline`; the default stays as it is."""
        self._record = self._workspace.backend.add_pipeline_endpoint_version(
            self.id, _published_id(pipeline), make_default=False
        )

    def add_default(self, pipeline: PublishedPipeline) -> None:
        """Add a version for `pipeline` and make it the default."""
        self._record = self._workspace.backend.add_pipeline_endpoint_version(
            self.id, _published_id(pipeline), make_default=True
        )

    def set_default_version(self, version: str) -> None:
        self._record = self._workspace.backend.set_pipeline_endpoint_default(self.id, str(version))

    def set_default(self, pipeline: PublishedPipeline) -> None:
        pipeline_id = _published_id(pipeline)
        versions = [v for v, p in self._record.versions.items() if p == pipeline_id]
        if not versions:
            raise UserError(
                f"Published pipeline {pipeline_id} is not in pipeline endpoint {self.name!r}; "
                "add it first with add(pipeline) or add_default(pipeline)."
            )
        self.set_default_version(versions[0])

    # -- name and status -------------------------------------------------------------------
    def _update(self, **changes: Any) -> None:
        self._record = self._workspace.backend.update_pipeline_endpoint(self.id, **changes)

    def set_name(self, name: str) -> None:
        self._update(name=name)

    def enable(self) -> None:
        self._update(status="Active")

    def disable(self) -> None:
        self._update(status="Disabled")

    def archive(self) -> None:
        """Disable the endpoint and free its name (it is renamed with a uuid suffix)."""
        self._update(name=f"{self.name}_{uuid.uuid4()}", status="Disabled")

    def reactivate(self, name: str) -> None:
        """Enable an archived endpoint again under `name`."""
        self._update(name=name, status="Active")

    # -- submitting ------------------------------------------------------------------------
    def submit(
        self,
        experiment_name: str,
        pipeline_parameters: dict[str, Any] | None = None,
        parent_run_id: str | None = None,
        pipeline_version: str | None = None,
    ) -> PipelineRun:
        """Queue a run of `pipeline_version` (default: the default version)."""
        from headrace.sdk.experiment import Experiment

        experiment = Experiment(self._workspace, experiment_name)
        return self._submit_from_experiment(
            experiment,
            pipeline_parameters=pipeline_parameters,
            parent_run_id=parent_run_id,
            pipeline_version=pipeline_version,
        )

    def _submit_from_experiment(
        self, experiment: Experiment, tags: dict[str, Any] | None = None, **kwargs: Any
    ) -> PipelineRun:
        from headrace.sdk.pipeline import parameter_values

        accepted = ("pipeline_parameters", "parent_run_id", "pipeline_version")
        _refuse_unknown(kwargs, accepted)
        _parent_run_ignored(kwargs.get("parent_run_id"))
        backend = self._workspace.backend
        self._record = backend.get_pipeline_endpoint(id=self.id)
        version = kwargs.get("pipeline_version")
        pipeline_id = backend.endpoint_pipeline_id(
            self._record, None if version is None else str(version)
        )
        submission = backend.submit_published_pipeline(
            pipeline_id,
            experiment_name=experiment.name,
            parameters=parameter_values(kwargs.get("pipeline_parameters")),
            tags=tags,
        )
        return _submitted(self._workspace, experiment.name, submission)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PipelineEndpoint) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return (
            f"PipelineEndpoint(Name: {self.name}, Id: {self.id}, Status: {self.status}, "
            f"Default version: {self.default_version})"
        )
