"""`azureml.core.environment`: a named Python environment specification and its sections.

`Environment.from_pip_requirements`, `from_conda_specification`, `from_docker_image`,
`from_dockerfile`, `register(ws)`, `Environment.get(ws, name, version)`,
`Environment.list(ws)` and `python.user_managed_dependencies` behave as in SDK v1. The
environment is a uv-built virtual environment instead of a Docker image: conda packages
come from PyPI where it has them (headrace.sdk.condamap), images are recorded only.
"""

from __future__ import annotations

from headrace.sdk.environment import (
    CondaDependencies,
    DockerSection,
    Environment,
    PythonSection,
)

__all__ = ["CondaDependencies", "DockerSection", "Environment", "PythonSection"]
