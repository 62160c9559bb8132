"""Run configuration and environments, with SDK v1 names.

A step's `RunConfiguration` carries environment variables and an `Environment`. The
environment's specification (pip and conda packages, Python version, docker image) is
recorded and is part of the step's reuse fingerprint.

Partial: building a separate virtual environment per specification is not done yet (it is
part of the scale-out work); until then every step runs in the interpreter headrace runs with,
and a step whose environment lists packages gets a line in its log saying so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_CPU_IMAGE",
    "CondaDependencies",
    "DockerConfiguration",
    "Environment",
    "RunConfiguration",
    "ScriptRunConfig",
]

DEFAULT_CPU_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04"


class CondaDependencies:
    """Packages an environment asks for (only their names and pins are used)."""

    def __init__(self, conda_dependencies_file_path: str | None = None) -> None:
        self.pip_packages: list[str] = []
        self.conda_packages: list[str] = []
        self.python_version: str | None = None
        self.pip_index_url: str | None = None
        if conda_dependencies_file_path:
            self._load(Path(conda_dependencies_file_path))

    @staticmethod
    def create(
        pip_indexurl: str | None = None,
        pip_packages: list[str] | None = None,
        conda_packages: list[str] | None = None,
        python_version: str | None = None,
        pin_sdk_version: bool = True,
    ) -> CondaDependencies:
        deps = CondaDependencies()
        deps.pip_packages = list(pip_packages or [])
        deps.conda_packages = list(conda_packages or [])
        deps.python_version = python_version
        deps.pip_index_url = pip_indexurl
        return deps

    def add_pip_package(self, pip_package: str) -> None:
        if pip_package not in self.pip_packages:
            self.pip_packages.append(pip_package)

    def add_conda_package(self, conda_package: str) -> None:
        if conda_package not in self.conda_packages:
            self.conda_packages.append(conda_package)

    def _load(self, path: Path) -> None:
        in_pip = False
        for raw in path.read_text(encoding="utf-8").splitlines():
            line = raw.split("#", 1)[0].rstrip()
            stripped = line.strip()
            if not stripped.startswith("- "):
                in_pip = (
                    False if stripped.endswith(":") and not stripped.startswith("-") else in_pip
                )
                continue
            item = stripped[2:].strip()
            if item == "pip:" or item.startswith("pip:"):
                in_pip = True
                continue
            indent = len(line) - len(line.lstrip())
            if in_pip and indent >= 4:
                self.pip_packages.append(item)
            else:
                in_pip = False
                if item.startswith("python=") or item.startswith("python=="):
                    self.python_version = item.split("=")[-1]
                elif item != "pip":
                    self.conda_packages.append(item)

    def spec(self) -> dict[str, Any]:
        return {
            "pip": sorted(self.pip_packages),
            "conda": sorted(self.conda_packages),
            "python": self.python_version,
        }

    def serialize_to_string(self) -> str:
        lines = ["name: project_environment", "dependencies:"]
        if self.python_version:
            lines.append(f"  - python={self.python_version}")
        lines += [f"  - {p}" for p in self.conda_packages]
        if self.pip_packages:
            lines.append("  - pip:")
            lines += [f"    - {p}" for p in self.pip_packages]
        return "\n".join(lines) + "\n"


class PythonSection:
    def __init__(self) -> None:
        self.user_managed_dependencies = False
        self.interpreter_path = "python"
        self.conda_dependencies = CondaDependencies()


class DockerSection:
    def __init__(self) -> None:
        self.enabled = False
        self.base_image: str | None = DEFAULT_CPU_IMAGE


class DockerConfiguration:
    def __init__(self, use_docker: bool = False, **kwargs: Any) -> None:
        self.use_docker = use_docker


class Environment:
    """A named Python environment specification."""

    def __init__(self, name: str = "headrace-default") -> None:
        self.name = name
        self.version: str | None = None
        self.python = PythonSection()
        self.docker = DockerSection()
        self.environment_variables: dict[str, str] = {}

    @staticmethod
    def from_pip_requirements(name: str, file_path: str) -> Environment:
        env = Environment(name)
        for raw in Path(file_path).read_text(encoding="utf-8").splitlines():
            line = raw.split("#", 1)[0].strip()
            if line and not line.startswith("-"):
                env.python.conda_dependencies.add_pip_package(line)
        return env

    @staticmethod
    def from_conda_specification(name: str, file_path: str) -> Environment:
        env = Environment(name)
        env.python.conda_dependencies = CondaDependencies(file_path)
        return env

    @staticmethod
    def from_docker_image(
        name: str, image: str, conda_specification: str | None = None
    ) -> Environment:
        env = Environment(name)
        env.docker.base_image = image
        if conda_specification:
            env.python.conda_dependencies = CondaDependencies(conda_specification)
        return env

    def spec(self) -> dict[str, Any] | None:
        """What identifies this environment for reuse; None when it asks for nothing."""
        deps = self.python.conda_dependencies.spec()
        if self.python.user_managed_dependencies or not (
            deps["pip"] or deps["conda"] or deps["python"]
        ):
            return None
        return {"name": self.name, "dependencies": deps}


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
    ) -> None:
        self.script = script
        self.arguments = list(arguments or [])
        self.framework = framework or "Python"
        self.communicator = communicator or "None"
        self.environment = Environment()
        if conda_dependencies is not None:
            self.environment.python.conda_dependencies = conda_dependencies
        self.environment_variables: dict[str, str] = {}
        self.target: Any = "local"
        self.node_count = 1
        self.command = command
        self.docker: DockerConfiguration | None = None

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
