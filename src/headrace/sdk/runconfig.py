"""Run configuration and environments, with SDK v1 names.

A step's `RunConfiguration` carries environment variables and an `Environment`. The
environment's specification (pip packages, Python version, package index) is part of the
step's reuse fingerprint, and the step runs in a virtual environment built from it with uv
(engine/environments.py, engine/envrun.py), unless `python.user_managed_dependencies` is set:
then it runs in the interpreter headrace runs steps with.

Environments are pip-only: conda packages are refused with an error naming them (a conda
specification whose packages are all under `pip:` is fine, and `python=` and `pip` are
understood). `azureml-*` pip packages are left out: headrace provides that API itself.
Docker settings are recorded only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from headrace.errors import UserError

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
    """Packages an environment asks for: pip packages, a Python version, a package index."""

    def __init__(self, conda_dependencies_file_path: str | None = None) -> None:
        self.pip_packages: list[str] = []
        self.conda_packages: list[str] = []
        self.python_version: str | None = None
        self.pip_index_url: str | None = None
        self.pip_extra_index_urls: list[str] = []
        if conda_dependencies_file_path:
            self._load(_readable(conda_dependencies_file_path, "conda specification"))

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

    def set_pip_index_url(self, index_url: str) -> None:
        self.pip_index_url = index_url

    def _load(self, path: Path) -> None:
        """Read a conda environment file (the subset SDK v1 files use: `channels`,
        `dependencies` with `python=`, `pip` and a `pip:` list)."""
        section = ""
        pip_indent: int | None = None
        for raw in path.read_text(encoding="utf-8").splitlines():
            line = raw.split(" #", 1)[0].rstrip()
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            indent = len(line) - len(line.lstrip())
            stripped = line.strip()
            if indent == 0 and not stripped.startswith("-"):
                section = stripped.split(":", 1)[0].strip()
                pip_indent = None
                continue
            if section != "dependencies" or not stripped.startswith("-"):
                continue
            item = stripped[1:].strip().strip("\"'")
            if pip_indent is not None and indent > pip_indent:
                self._pip_line(item, path)
                continue
            pip_indent = None
            if item.rstrip(":").strip() == "pip" and item.endswith(":"):
                pip_indent = indent
            elif item.split("=")[0].split(">")[0].split("<")[0].strip() == "python":
                version = item[len("python") :].lstrip("=<>~ ")
                self.python_version = version or None
            elif item.split("=")[0].strip() != "pip":
                self.conda_packages.append(item)

    def _pip_line(self, item: str, path: Path) -> None:
        option, _, value = item.partition(" ")
        if option in ("--index-url", "-i"):
            self.pip_index_url = value.strip()
        elif option == "--extra-index-url":
            self.pip_extra_index_urls.append(value.strip())
        elif item.startswith("-"):
            raise UserError(
                f"{path}: pip option {item!r} is not supported in a headrace environment; "
                "list packages (with pins) and, if needed, --index-url / --extra-index-url."
            )
        else:
            self.add_pip_package(item)

    def spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "pip": sorted(p for p in self.pip_packages if not _provided_by_headrace(p)),
            "conda": sorted(self.conda_packages),
            "python": self.python_version,
        }
        if self.pip_index_url:
            spec["index_url"] = self.pip_index_url
        if self.pip_extra_index_urls:
            spec["extra_index_urls"] = sorted(self.pip_extra_index_urls)
        return spec

    def serialize_to_string(self) -> str:
        lines = ["name: project_environment", "dependencies:"]
        if self.python_version:
            lines.append(f"  - python={self.python_version}")
        lines += [f"  - {p}" for p in self.conda_packages]
        if self.pip_packages:
            lines.append("  - pip:")
            if self.pip_index_url:
                lines.append(f"    - --index-url {self.pip_index_url}")
            lines += [f"    - --extra-index-url {u}" for u in self.pip_extra_index_urls]
            lines += [f"    - {p}" for p in self.pip_packages]
        return "\n".join(lines) + "\n"


def _provided_by_headrace(requirement: str) -> bool:
    """`azureml-defaults`, `azureml-core`, ...: headrace is that API, installing them would
    only make the build slow."""
    name = requirement.strip().lower().replace("_", "-")
    return name.startswith("azureml-")


def _readable(file_path: str, what: str) -> Path:
    path = Path(file_path)
    if not path.is_file():
        raise UserError(
            f"{what} {file_path!r} not found (looked in {path.resolve().parent}). Fix: pass "
            "the path of an existing file, relative to the current folder or absolute."
        )
    return path


def _refuse_conda(name: str, conda_packages: list[str], where: str) -> None:
    if conda_packages:
        listed = ", ".join(conda_packages)
        raise UserError(
            f"Environment {name!r}: {where} asks for conda packages ({listed}), which headrace "
            "cannot install: it builds environments with pip (uv) only. Fix: list them as pip "
            "packages (under `- pip:` in a conda file, e.g. `numpy==1.26.4`, or with "
            "CondaDependencies.create(pip_packages=...)), or set "
            "env.python.user_managed_dependencies = True to run the step in the interpreter "
            "headrace runs with."
        )


def _read_requirements(path: Path, deps: CondaDependencies) -> None:
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        option, _, value = line.partition(" ")
        value = value.strip()
        if option in ("-r", "--requirement"):
            _read_requirements(_readable(str(path.parent / value), "requirements file"), deps)
        elif option in ("-i", "--index-url"):
            deps.pip_index_url = value
        elif option == "--extra-index-url":
            deps.pip_extra_index_urls.append(value)
        elif line.startswith("-"):
            raise UserError(
                f"{path}, line {number}: pip option {line!r} is not supported in a headrace "
                "environment. Fix: list packages (with pins), `-r other.txt`, `--index-url` or "
                "`--extra-index-url` only."
            )
        else:
            deps.add_pip_package(line)


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
        """An environment with the packages of a pip requirements file (`-r` includes and
        `--index-url` / `--extra-index-url` are understood)."""
        env = Environment(name)
        _read_requirements(_readable(file_path, "requirements file"), env.python.conda_dependencies)
        return env

    @staticmethod
    def from_conda_specification(name: str, file_path: str) -> Environment:
        """An environment from a conda file whose packages are all under `pip:`."""
        env = Environment(name)
        deps = CondaDependencies(file_path)
        _refuse_conda(name, deps.conda_packages, f"conda specification {file_path!r}")
        env.python.conda_dependencies = deps
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
        """What identifies this environment for reuse; None when it asks for nothing (the
        step runs in the interpreter headrace runs steps with)."""
        if self.python.user_managed_dependencies:
            interpreter = self.python.interpreter_path
            if interpreter and interpreter != "python":
                # SDK v1: an existing interpreter, used as it is.
                return {"name": self.name, "interpreter": interpreter}
            return None
        deps = self.python.conda_dependencies.spec()
        if not (deps["pip"] or deps["conda"] or deps["python"]):
            return None
        _refuse_conda(self.name, deps["conda"], "its CondaDependencies")
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
        # headrace's extension: what each attempt asks of a node on a Ray target, like a
        # step's `resources=` ({"cpu": 2, "gpu": 1, "memory": "4GB", custom: n}).
        self.resources: dict[str, Any] | None = None

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
