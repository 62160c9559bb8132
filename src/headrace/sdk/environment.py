"""Environments with SDK v1 names: `CondaDependencies`, `Environment` and its registry.

An environment's specification (`Environment.spec`) is part of a step's reuse fingerprint,
and the step runs in a virtual environment built from it with uv (engine/environments.py,
engine/envrun.py). A step whose environment asks for no packages runs in the Python that
submitted its run, as does one with `python.user_managed_dependencies` (or in its
`python.interpreter_path` when it names one).

Conda packages are installed from PyPI when PyPI has them under the same or a known name
(sdk/condamap.py); the rest are refused when the pipeline is validated, each named.
`azureml-*` pip packages are left out: headrace provides that API itself. Docker images
and Dockerfiles are recorded and shown, not used: steps run as processes, in a uv
environment or the submitter's Python, never in a container.

`env.register(ws)`, `Environment.get(ws, name, version)` and `Environment.list(ws)` keep
named, versioned environments in the workspace (the `environments` table); registering an
unchanged environment returns its current version.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headrace.errors import NotFoundError, UserError
from headrace.sdk.condamap import translate_conda_packages

if TYPE_CHECKING:
    from headrace.sdk.workspace import Workspace
    from headrace.store.records import EnvironmentRecord

__all__ = [
    "DEFAULT_CPU_IMAGE",
    "DEFAULT_GPU_IMAGE",
    "CondaDependencies",
    "DockerSection",
    "Environment",
    "EnvironmentDockerWarning",
    "PythonSection",
]

DEFAULT_CPU_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04"
DEFAULT_GPU_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-cuda11.8-cudnn8-ubuntu22.04"


class EnvironmentDockerWarning(UserWarning):
    """An environment names a Docker image or Dockerfile, which headrace records only."""


class CondaDependencies:
    """Packages an environment asks for: pip and conda packages, a Python version, an index."""

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

    def set_python_version(self, version: str) -> None:
        self.python_version = version

    def set_pip_index_url(self, index_url: str) -> None:
        self.pip_index_url = index_url

    def _load(self, path: Path) -> None:
        """Read a conda environment file (the subset SDK v1 files use: `channels`,
        `dependencies` with `python=`, conda packages, and a `pip:` list)."""
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
                self.conda_packages.append(item)  # installed from PyPI where it has them

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

    def _definition(self) -> dict[str, Any]:
        return {
            "pip_packages": list(self.pip_packages),
            "conda_packages": list(self.conda_packages),
            "python_version": self.python_version,
            "pip_index_url": self.pip_index_url,
            "pip_extra_index_urls": list(self.pip_extra_index_urls),
        }

    @staticmethod
    def _from_definition(data: dict[str, Any]) -> CondaDependencies:
        deps = CondaDependencies()
        deps.pip_packages = list(data.get("pip_packages") or [])
        deps.conda_packages = list(data.get("conda_packages") or [])
        deps.python_version = data.get("python_version")
        deps.pip_index_url = data.get("pip_index_url")
        deps.pip_extra_index_urls = list(data.get("pip_extra_index_urls") or [])
        return deps


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
    """Recorded, not used: steps never run in a container here."""

    def __init__(self) -> None:
        self.enabled = False
        self.base_image: str | None = DEFAULT_CPU_IMAGE
        self.base_dockerfile: str | None = None
        self.base_image_registry: Any = None
        self.shm_size: str | None = None
        self.arguments: list[str] = []

    def _record(self) -> dict[str, str] | None:
        """What the step's log and `step show` say about it; None when nothing was asked."""
        if self.base_dockerfile:
            digest = hashlib.sha256(self.base_dockerfile.encode()).hexdigest()[:12]
            return {"dockerfile": f"sha256 {digest}"}
        if self.enabled or (self.base_image and self.base_image != DEFAULT_CPU_IMAGE):
            return {"image": str(self.base_image)}
        return None


class Environment:
    """A named Python environment specification."""

    def __init__(self, name: str = "headrace-default") -> None:
        self.name = name
        self.version: str | None = None
        self.python = PythonSection()
        self.docker = DockerSection()
        self.environment_variables: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"Environment(name={self.name!r}, version={self.version!r})"

    @staticmethod
    def from_pip_requirements(name: str, file_path: str) -> Environment:
        """An environment with the packages of a pip requirements file (`-r` includes and
        `--index-url` / `--extra-index-url` are understood)."""
        env = Environment(name)
        _read_requirements(_readable(file_path, "requirements file"), env.python.conda_dependencies)
        return env

    @staticmethod
    def from_conda_specification(name: str, file_path: str) -> Environment:
        """An environment from a conda file: its `pip:` packages, and its conda packages
        that PyPI has (checked when a pipeline using it is validated)."""
        env = Environment(name)
        env.python.conda_dependencies = CondaDependencies(file_path)
        return env

    @staticmethod
    def from_docker_image(
        name: str,
        image: str,
        container_registry: Any = None,
        conda_specification: str | None = None,
        pip_requirements: str | None = None,
    ) -> Environment:
        """SDK v1's environment in a Docker image: the image is recorded only (steps run in
        a uv environment, or the submitter's Python, not in a container)."""
        env = Environment._with_packages(name, conda_specification, pip_requirements)
        env.docker.base_image = image
        env.docker.base_image_registry = container_registry
        _warn_docker(name, f"Docker image {image!r}")
        return env

    @staticmethod
    def from_dockerfile(
        name: str,
        dockerfile: str,
        conda_specification: str | None = None,
        pip_requirements: str | None = None,
    ) -> Environment:
        """SDK v1's environment built from a Dockerfile (a path, or its text): recorded
        only (steps run in a uv environment, or the submitter's Python, not a container)."""
        env = Environment._with_packages(name, conda_specification, pip_requirements)
        path = Path(dockerfile)
        try:
            is_file = len(dockerfile) < 4096 and "\n" not in dockerfile and path.is_file()
        except OSError:
            is_file = False
        env.docker.base_dockerfile = path.read_text(encoding="utf-8") if is_file else dockerfile
        env.docker.base_image = None
        _warn_docker(name, "a Dockerfile")
        return env

    @staticmethod
    def _with_packages(
        name: str, conda_specification: str | None, pip_requirements: str | None
    ) -> Environment:
        if conda_specification:
            env = Environment.from_conda_specification(name, conda_specification)
        elif pip_requirements:
            env = Environment.from_pip_requirements(name, pip_requirements)
        else:
            env = Environment(name)
        return env

    def spec(self) -> dict[str, Any] | None:
        """What identifies this environment for reuse and what the step runs in; None when
        it asks for nothing (the step runs in the submitter's Python). A UserError naming
        every conda package PyPI does not have."""
        docker = self.docker._record()
        extra: dict[str, Any] = {"docker": docker} if docker else {}
        if self.python.user_managed_dependencies:
            interpreter = self.python.interpreter_path
            if interpreter and interpreter != "python":
                # SDK v1: an existing interpreter, used as it is.
                return {"name": self.name, "interpreter": interpreter, **extra}
            return {"name": self.name, **extra} if extra else None
        deps = self.python.conda_dependencies.spec()
        translation = translate_conda_packages(deps["conda"])
        if translation.problems:
            listed = "; ".join(translation.problems)
            raise UserError(
                f"Environment {self.name!r} asks for conda packages that headrace cannot "
                f"install: {listed}. headrace builds environments with uv from PyPI: conda "
                "packages PyPI has under the same or a known name are installed from there. "
                "Fix: list these as pip packages (CondaDependencies.create(pip_packages=...) "
                "or under `- pip:` in a conda file) under their PyPI names, or drop them, or "
                "set env.python.user_managed_dependencies = True to run in the submitter's "
                "Python."
            )
        if deps["python"] is None and translation.python_version:
            deps["python"] = translation.python_version
        if translation.requirements:
            deps["from_conda"] = sorted(translation.requirements)
        if not (deps["pip"] or translation.requirements or deps["python"]):
            return {"name": self.name, **extra} if extra else None
        return {"name": self.name, "dependencies": deps, **extra}

    # -- the registry ----------------------------------------------------------------------
    def register(self, workspace: Workspace) -> Environment:
        """Keep this environment in `workspace` under its name; a new version when its
        definition changed since the latest one, else the latest. Returns the registered
        environment (with `version` set)."""
        self.spec()  # refuse what could never be built, before it is kept
        record = workspace.backend.register_environment(self.name, self._definition())
        self.version = str(record.version)
        return Environment._from_record(record)

    @staticmethod
    def get(workspace: Workspace, name: str, version: str | int | None = None) -> Environment:
        """The registered environment `name` (its latest version, or `version`)."""
        number = _version_number(name, version)
        try:
            record = workspace.backend.get_environment(name, number)
        except NotFoundError as exc:
            if name.lower().startswith("azureml-") and version is None:
                raise NotFoundError(
                    f"{exc} {name!r} is an Azure ML curated environment, which headrace does "
                    "not have. Fix: register an environment under that name with the packages "
                    f"your steps need (Environment({name!r}) with conda_dependencies, then "
                    ".register(ws)), so this code runs unchanged, or leave the environment "
                    "out to run steps in the submitter's Python."
                ) from None
            raise
        return Environment._from_record(record)

    @staticmethod
    def list(workspace: Workspace) -> dict[str, Environment]:
        """The latest version of every registered environment, by name (SDK v1 returns
        this dictionary)."""
        return {
            record.name: Environment._from_record(record)
            for record in workspace.backend.list_environments()
        }

    def _definition(self) -> dict[str, Any]:
        """Everything this object holds, as JSON data (what the registry keeps)."""
        return {
            "python": {
                "user_managed_dependencies": self.python.user_managed_dependencies,
                "interpreter_path": self.python.interpreter_path,
                "conda_dependencies": self.python.conda_dependencies._definition(),
            },
            "docker": {
                "enabled": self.docker.enabled,
                "base_image": self.docker.base_image,
                "base_dockerfile": self.docker.base_dockerfile,
            },
            "environment_variables": dict(self.environment_variables),
        }

    @staticmethod
    def _from_record(record: EnvironmentRecord) -> Environment:
        data = record.definition
        env = Environment(record.name)
        env.version = str(record.version)
        python = data.get("python") or {}
        env.python.user_managed_dependencies = bool(python.get("user_managed_dependencies"))
        env.python.interpreter_path = python.get("interpreter_path") or "python"
        env.python.conda_dependencies = CondaDependencies._from_definition(
            python.get("conda_dependencies") or {}
        )
        docker = data.get("docker") or {}
        env.docker.enabled = bool(docker.get("enabled"))
        env.docker.base_image = docker.get("base_image")
        env.docker.base_dockerfile = docker.get("base_dockerfile")
        env.environment_variables = dict(data.get("environment_variables") or {})
        return env


def _version_number(name: str, version: str | int | None) -> int | None:
    if version is None:
        return None
    try:
        number = int(str(version))
    except ValueError:
        number = 0
    if number < 1:
        raise UserError(
            f"Environment {name!r}: version {version!r} is not a version number; versions are "
            "1, 2, 3, ... (or leave version out for the latest)."
        )
    return number


def _warn_docker(name: str, what: str) -> None:
    warnings.warn(
        f"Environment {name!r}: {what} is recorded, not used: headrace runs steps as "
        "processes in a uv environment (or the submitter's Python), not in a container.",
        EnvironmentDockerWarning,
        stacklevel=3,
    )
