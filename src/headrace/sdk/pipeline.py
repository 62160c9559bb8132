"""`Pipeline`: steps joined by the data they pass, validated as a whole, submitted as a run.

`Pipeline(ws, steps=...)` accepts a step, a list (a parallel group, nestable), a
StepSequence (ordered), or a PipelineData (its producer); with `resolve_closure=True` the
producers of inputs and `run_after` predecessors are pulled in, so passing the last step
builds the whole DAG. `validate()` returns every problem at once; `submit()` refuses an
invalid pipeline with one error listing them all, and creates no run.
"""

from __future__ import annotations

import os
import uuid
from typing import TYPE_CHECKING, Any

from headrace.errors import PipelineValidationError, UserError
from headrace.graph.validate import did_you_mean, structural_problems, topological_order
from headrace.limits import scalar_tags
from headrace.sdk.builder import GraphBuilder, StepSequence, flatten_steps
from headrace.sdk.checks import check_bool, check_folder, check_text, check_workspace
from headrace.sdk.data import DataPath

if TYPE_CHECKING:
    from headrace.graph.model import Graph
    from headrace.sdk.experiment import Experiment
    from headrace.sdk.published import PublishedPipeline
    from headrace.sdk.runs import PipelineRun
    from headrace.sdk.workspace import Workspace

__all__ = ["Pipeline", "StepSequence", "parameter_values", "print_submission"]

DESCRIPTION_MAX_CHARS = 100_000  # a description is text for people, stored whole

_SUBMIT_OPTIONS = (
    "pipeline_parameters",
    "pipeline_params",
    "regenerate_outputs",
    "continue_on_step_failure",
    "parent_run_id",
    "credential_passthrough",
    "description",
    "enable_email_notification",
)


def _module_guid(fingerprint: str, node_id: str) -> str:
    """SDK v1 printed a module id per step; ours names the step's fingerprint when known."""
    if fingerprint:
        return str(uuid.UUID(hex=fingerprint[:32]))
    return str(uuid.uuid5(uuid.NAMESPACE_OID, node_id))


def parameter_values(parameters: Any) -> dict[str, Any] | None:
    """Submit-time parameter assignments as graph values (a DataPath becomes a dict)."""
    if parameters is None:
        return None
    if not isinstance(parameters, dict):
        raise UserError("pipeline_parameters must be a dict of parameter name to value.")
    from headrace.sdk.datasets import AbstractDataset

    return {
        str(k): (
            {"datastore": v.datastore_name, "path": v.path_on_datastore}
            if isinstance(v, DataPath)
            else v._graph_definition()
            if isinstance(v, AbstractDataset)
            else v
        )
        for k, v in parameters.items()
    }


def cli_command(command: str, location: str) -> str:
    """`headrace <command>` aimed at the workspace at `location` (a folder or a server URL)."""
    if location.startswith(("http://", "https://")):
        return f"headrace --server {location} {command}"
    return f"headrace {command} --workspace {location}"


def print_submission(graph: Graph, submission: Any, location: str) -> None:
    """What SDK v1 printed on submit: each step, whether it may reuse, and the run id."""
    previews = {p.node_id: p for p in submission.previews}
    for node_id in topological_order(graph):
        node = graph.node(node_id)
        preview = previews[node.id]
        note = (
            "This step is eligible to reuse a previous run's output"
            if preview.will_reuse
            else "This step will run and generate new outputs"
        )
        guid = _module_guid(preview.fingerprint, node.id)
        print(f"Created step {node.name} [{node.id}][{guid}], ({note})")  # noqa: T201
    for data in graph.data:
        if data.kind != "datastore":
            continue
        consumers = [n for n in graph.nodes if any(b.data == data.id for b in n.inputs)]
        if consumers and all(previews[c.id].will_reuse for c in consumers):
            print(  # noqa: T201
                f"Using data reference {data.name} for StepId [{consumers[0].id}], "
                "(Consumers of this data are eligible to reuse prior runs.)"
            )
        elif consumers:
            print(  # noqa: T201
                f"Created data reference {data.name} for StepId [{consumers[0].id}], "
                "(Consumers of this data will generate new runs.)"
            )
    print(f"Submitted PipelineRun {submission.run.id}")  # noqa: T201
    print(f"Watch it with: {cli_command(f'run show {submission.run.id}', location)}")  # noqa: T201


class Pipeline:
    def __init__(
        self,
        workspace: Workspace,
        steps: Any,
        description: str | None = None,
        default_datastore: Any = None,
        default_source_directory: str | None = None,
        resolve_closure: bool = True,
        _workflow_provider: Any = None,
        _service_endpoint: Any = None,
        **kwargs: Any,
    ) -> None:
        unknown = [k for k in kwargs if k != "enable_email_notification"]
        if unknown:
            raise UserError(
                f"Pipeline got unexpected keyword argument(s) {', '.join(unknown)}; the only "
                "extra argument accepted is enable_email_notification."
            )
        self._workspace = check_workspace(workspace, "Pipeline's workspace (its first argument)")
        expect_submit = getattr(self._workspace.backend, "expect_submit", None)
        if expect_submit is not None:
            expect_submit()  # a cold agent starts while the pipeline is built and snapshotted
        flatten_steps(steps)  # raises at once for objects that cannot be steps, as SDK v1 did
        self._steps = steps
        self.description = check_text(
            description, "Pipeline's description", optional=True, max_chars=DESCRIPTION_MAX_CHARS
        )
        name = getattr(default_datastore, "name", default_datastore)
        if default_datastore is not None and not isinstance(name, str):
            raise UserError(
                "Pipeline's default_datastore must be a Datastore, its name, or None, not "
                f"{default_datastore!r}."
            )
        self._default_datastore = name if isinstance(name, str) else None
        self._default_source_directory = check_folder(
            default_source_directory, "Pipeline's default_source_directory"
        )
        self._resolve_closure = check_bool(resolve_closure, "Pipeline's resolve_closure")
        # SDK v1 mailed the submitter; here it asks the workspace's notifications added with
        # on_request=True to tell about this pipeline's runs (sdk/notifications.py).
        self._enable_email_notification = check_bool(
            kwargs.get("enable_email_notification", False), "enable_email_notification"
        )

    # -- the graph -------------------------------------------------------------------------
    def _build(self) -> tuple[Graph, list[str]]:
        graph, problems, _invalid = self._build_with_names()
        return graph, problems

    def _build_with_names(self) -> tuple[Graph, list[str], set[str]]:
        builder = GraphBuilder(
            self._steps,
            default_datastore=self._default_datastore,
            default_source_directory=self._default_source_directory,
            resolve_closure=self._resolve_closure,
            description=self.description,
        )
        graph = builder.build()
        return graph, builder.problems, builder.invalid_names

    @property
    def graph(self) -> Graph:
        """The pipeline as pure data (what runs, what the UI draws)."""
        return self._build()[0]

    def _problems(self) -> tuple[Graph, list[str]]:
        graph, problems, invalid_names = self._build_with_names()
        problems = problems + structural_problems(graph, reported_names=invalid_names)
        problems += self._environment_problems(graph)
        return graph, list(dict.fromkeys(problems))

    def _environment_problems(self, graph: Graph) -> list[str]:
        problems = []
        for node in graph.nodes:
            if not os.path.isdir(node.source_directory):
                problems.append(
                    f"Step {node.name!r}: source_directory {node.source_directory!r} does not "
                    "exist; pass the folder that holds the step's script."
                )
            elif node.kind == "python_script" and node.script_name:
                script = os.path.join(node.source_directory, node.script_name)
                if not os.path.isfile(script):
                    present = sorted(
                        f for f in os.listdir(node.source_directory) if f.endswith(".py")
                    )
                    problems.append(
                        f"Step {node.name!r}: script {node.script_name!r} is not in "
                        f"source_directory {node.source_directory!r}"
                        f"{did_you_mean(node.script_name, present)}; every step runs in a "
                        "snapshot of its source_directory, so the script must be inside it."
                    )
        targets = [t.name for t in self._workspace.backend.list_compute_targets()]
        for node in graph.nodes:
            if node.compute_target not in targets:
                problems.append(
                    f"Step {node.name!r}: compute target {node.compute_target!r} does not exist"
                    f"{did_you_mean(node.compute_target, targets)}; create it with "
                    "ComputeTarget.create(ws, name, AmlCompute.provisioning_configuration(...)) "
                    f"or use one of: {', '.join(targets)}."
                )
        return problems

    def validate(self) -> list[str]:
        """Every problem of the pipeline (an empty list when it can run)."""
        graph, problems = self._problems()
        if not problems:
            for node in graph.nodes:
                print(f"Step {node.name} is ready to be created [{node.id}]")  # noqa: T201
        return problems

    # -- submitting ------------------------------------------------------------------------
    def submit(
        self,
        experiment_name: str,
        pipeline_parameters: dict[str, Any] | None = None,
        continue_on_step_failure: bool = False,
        regenerate_outputs: bool = False,
        parent_run_id: str | None = None,
        credential_passthrough: Any = None,
        **kwargs: Any,
    ) -> PipelineRun:
        from headrace.sdk.experiment import Experiment

        experiment = Experiment(self._workspace, experiment_name)
        return experiment.submit(
            self,
            pipeline_parameters=pipeline_parameters,
            continue_on_step_failure=continue_on_step_failure,
            regenerate_outputs=regenerate_outputs,
            parent_run_id=parent_run_id,
            **kwargs,
        )

    def _submit_from_experiment(
        self, experiment: Experiment, tags: dict[str, Any] | None = None, **kwargs: Any
    ) -> PipelineRun:
        unknown = [k for k in kwargs if k not in _SUBMIT_OPTIONS]
        if unknown:
            # SDK v1 silently ignored these; a typo here would change nothing, so say so.
            raise UserError(
                f"Unknown submit argument(s): {', '.join(unknown)}"
                f"{did_you_mean(unknown[0], list(_SUBMIT_OPTIONS))}; accepted: "
                f"{', '.join(_SUBMIT_OPTIONS)}."
            )
        parameters = kwargs.get("pipeline_parameters")
        if parameters is None and kwargs.get("pipeline_params") is not None:
            import warnings

            warnings.warn(
                "pipeline_params is deprecated, use pipeline_parameters",
                DeprecationWarning,
                stacklevel=3,
            )
            parameters = kwargs["pipeline_params"]
        return self._submit(
            experiment,
            parameters=parameters,
            tags=scalar_tags(tags),
            continue_on_step_failure=check_bool(
                kwargs.get("continue_on_step_failure", False), "continue_on_step_failure"
            ),
            regenerate_outputs=check_bool(
                kwargs.get("regenerate_outputs", False), "regenerate_outputs"
            ),
            description=check_text(
                kwargs.get("description"),
                "description",
                optional=True,
                max_chars=DESCRIPTION_MAX_CHARS,
            ),
            notify=check_bool(
                kwargs.get("enable_email_notification", self._enable_email_notification),
                "enable_email_notification",
            ),
        )

    def _submit(
        self,
        experiment: Experiment,
        *,
        parameters: dict[str, Any] | None,
        tags: dict[str, Any] | None,
        continue_on_step_failure: bool,
        regenerate_outputs: bool,
        description: str | None,
        notify: bool = False,
    ) -> PipelineRun:
        from headrace.sdk.runs import PipelineRun
        from headrace.store.records import NOTIFY_PROPERTY

        graph = self._frozen_graph()
        backend = self._workspace.backend
        values = parameter_values(parameters)
        submission = backend.submit(
            graph,
            experiment_name=experiment.name,
            parameters=values,
            tags=tags,
            description=description or self.description,
            continue_on_step_failure=continue_on_step_failure,
            regenerate_outputs=regenerate_outputs,
            properties={NOTIFY_PROPERTY: "true"} if notify else None,
        )
        print_submission(graph, submission, backend.location)
        return PipelineRun(experiment, submission.run.id, submission.run)

    def _frozen_graph(self) -> Graph:
        """The validated graph with each step's source snapshot taken now."""
        graph, problems = self._problems()
        if problems:
            raise PipelineValidationError(problems)
        backend = self._workspace.backend
        snapshots = {
            source: backend.create_snapshot(source)
            for source in dict.fromkeys(n.source_directory for n in graph.nodes)
        }
        return graph.with_snapshots(snapshots)

    # -- publishing ------------------------------------------------------------------------
    def publish(
        self,
        name: str | None = None,
        description: str | None = None,
        version: str | None = None,
        continue_on_step_failure: bool | None = None,
    ) -> PublishedPipeline:
        """Freeze this pipeline (its steps' source folders as they are now) under `name`.

        The published pipeline can be submitted later, from Python or over REST, and runs
        this exact code even after the folders change."""
        from headrace.sdk.published import PublishedPipeline

        if not name:
            raise UserError("Pipeline.publish needs a name: pipeline.publish(name='my-pipeline').")
        check_text(name, "Pipeline.publish's name")
        check_text(version, "Pipeline.publish's version", optional=True)
        graph = self._frozen_graph()
        record = self._workspace.backend.publish_pipeline(
            graph,
            name=name,
            description=description if description is not None else self.description,
            version=version,
            continue_on_step_failure=bool(continue_on_step_failure),
        )
        return PublishedPipeline(self._workspace, record)

    def __repr__(self) -> str:
        return f"Pipeline(steps={len(self.graph.nodes)})"
