"""`azureml.core.environment`: a named Python environment specification and its sections.

`Environment.from_pip_requirements`, `from_conda_specification` (pip packages only) and
`python.user_managed_dependencies` behave as in SDK v1; the environment is a uv-built
virtual environment instead of a Docker image. CondaDependencies is here too, as SDK v1 code
imports it from this module as well.
"""

from __future__ import annotations

from headrace.sdk.runconfig import CondaDependencies, DockerSection, Environment, PythonSection

__all__ = ["CondaDependencies", "DockerSection", "Environment", "PythonSection"]
