"""Run configuration with SDK v1 names: how a step runs.

A step's `RunConfiguration` carries environment variables and an `Environment`
(sdk/environment.py: what Python the step runs in). SDK v1's distributed settings
(`MpiConfiguration`, `PyTorchConfiguration`, `node_count`) are accepted for one node and one
process, which is how a step runs here; more is refused when the pipeline is validated,
saying to use Ray. Docker settings are recorded only.
"""

from __future__ import annotations

from typing import Any

from headrace.sdk.environment import (
    DEFAULT_CPU_IMAGE,
    DEFAULT_GPU_IMAGE,
    CondaDependencies,
    DockerSection,
    Environment,
    PythonSection,
)

__all__ = [
    "DEFAULT_CPU_IMAGE",
    "DEFAULT_GPU_IMAGE",
    "CondaDependencies",
    "DockerConfiguration",
    "DockerSection",
    "Environment",
    "MpiConfiguration",
    "PyTorchConfiguration",
    "PythonSection",
    "RunConfiguration",
    "ScriptRunConfig",
    "TensorflowConfiguration",
]


class DockerConfiguration:
    def __init__(self, use_docker: bool = False, **kwargs: Any) -> None:
        self.use_docker = use_docker


class _Distributed:
    """SDK v1's distributed job settings: a step here is one process on one node."""

    kind = "distributed"

    def __init__(self, node_count: int = 1, process_count: int | None = None) -> None:
        self.node_count = node_count
        self.process_count = process_count

    def problem(self) -> str | None:
        """Why this cannot run here, with what to use instead; None for one process."""
        nodes = self.node_count or 1
        processes = self.process_count or nodes
        if nodes <= 1 and processes <= 1:
            return None
        return (
            f"{type(self).__name__}(node_count={nodes}, {processes} process"
            f"{'es' if processes != 1 else ''}) asks for a distributed job; headrace runs a "
            "step as one process on one node. Fix: node_count=1 and one process per node "
            "(or leave distributed_job_config out), and run the distributed part with Ray: "
            "a `ray` compute target and Ray Train / ray.util inside the step (see the "
            "user guide, 'Ray')"
        )


class MpiConfiguration(_Distributed):
    """SDK v1's MPI job: `node_count=1` and one process per node run as an ordinary step."""

    def __init__(self, process_count_per_node: int = 1, node_count: int = 1) -> None:
        super().__init__(node_count, (process_count_per_node or 1) * (node_count or 1))
        self.process_count_per_node = process_count_per_node


class PyTorchConfiguration(_Distributed):
    """SDK v1's PyTorch distributed job: one process on one node runs as an ordinary step."""

    def __init__(
        self,
        communication_backend: str = "Nccl",
        process_count: int | None = None,
        node_count: int = 1,
    ) -> None:
        super().__init__(node_count, process_count)
        self.communication_backend = communication_backend


class TensorflowConfiguration(_Distributed):
    """SDK v1's TensorFlow parameter-server job: one worker and no parameter server only."""

    def __init__(self, worker_count: int = 1, parameter_server_count: int = 1) -> None:
        super().__init__(1, (worker_count or 1) + max(0, (parameter_server_count or 0) - 1))
        self.worker_count = worker_count
        self.parameter_server_count = parameter_server_count


class RunConfiguration:
    """How a step runs: environment, environment variables, target and node count."""

    def __init__(
        self,
        script: str | None = None,
        arguments: list[Any] | None = None,
        framework: str | None = None,
        communicator: str | None = None,
        conda_dependencies: CondaDependencies | None = None,
        _history_enabled: bool | None = None,
        _path: str | None = None,
        _name: str | None = None,
        command: str | list[str] | None = None,
        *,
        environment: Environment | None = None,
    ) -> None:
        self.script = script
        self.arguments = list(arguments or [])
        self.framework = framework or "Python"
        self.communicator = communicator or "None"
        self.environment = environment if environment is not None else Environment()
        if conda_dependencies is not None:
            self.environment.python.conda_dependencies = conda_dependencies
        self.environment_variables: dict[str, str] = {}
        self.target: Any = "local"
        self.node_count = 1
        self.command = command
        self.docker: DockerConfiguration | None = None
        # SDK v1's distributed settings (ScriptRunConfig(distributed_job_config=...), or
        # set here): checked by `distribution_problem`.
        self.mpi: MpiConfiguration | None = None
        self.pytorch: PyTorchConfiguration | None = None
        self.distributed_job_config: _Distributed | None = None
        # headrace's extension: what each attempt asks of a node on a Ray target, like a
        # step's `resources=` ({"cpu": 2, "gpu": 1, "memory": "4GB", custom: n}).
        self.resources: dict[str, Any] | None = None

    def distribution_problem(self) -> str | None:
        """Why this configuration asks for more than one process, or None."""
        for config in (self.distributed_job_config, self.mpi, self.pytorch):
            if isinstance(config, _Distributed) and (problem := config.problem()):
                return problem
        nodes = self.node_count if isinstance(self.node_count, int) else 1
        if nodes > 1:
            return _Distributed(nodes).problem()
        return None

    def step_environment(self) -> tuple[dict[str, str], dict[str, Any] | None]:
        """(environment variables, environment spec) for a step using this configuration."""
        variables = {**self.environment.environment_variables, **self.environment_variables}
        return {str(k): str(v) for k, v in variables.items()}, self.environment.spec()


class ScriptRunConfig:
    """A script or command with its folder and environment (used by CommandStep)."""

    def __init__(
        self,
        source_directory: str | None = None,
        script: str | None = None,
        arguments: list[Any] | None = None,
        run_config: RunConfiguration | None = None,
        compute_target: Any = None,
        environment: Environment | None = None,
        command: str | list[Any] | None = None,
        docker_runtime_config: Any = None,
        distributed_job_config: Any = None,
        max_run_duration_seconds: float | None = None,
    ) -> None:
        self.source_directory = source_directory
        self.script = script
        self.arguments = list(arguments or [])
        self.run_config = run_config or RunConfiguration()
        if environment is not None:
            self.run_config.environment = environment
        self.compute_target = compute_target
        self.command = command
        self.max_run_duration_seconds = max_run_duration_seconds
        self.distributed_job_config = distributed_job_config
        if distributed_job_config is not None:
            self.run_config.distributed_job_config = distributed_job_config
