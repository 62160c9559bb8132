"""`azureml.core.environment`: a named Python environment specification and its sections.

`Environment.from_pip_requirements`, `from_conda_specification` (pip packages only) and
`python.user_managed_dependencies` behave as in SDK v1; the environment is a uv-built
virtual environment instead of a Docker image.
"""

from __future__ import annotations

from headrace.sdk.runconfig import DockerSection, Environment, PythonSection

__all__ = ["DockerSection", "Environment", "PythonSection"]
