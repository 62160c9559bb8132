"""`azureml.core.runconfig`: how a step runs (environment, environment variables, docker).

A step whose environment lists pip packages runs in a virtual environment headrace builds
with uv (see headrace.sdk.runconfig). Docker settings are accepted and kept on the object;
steps run as processes without a container.
"""

from __future__ import annotations

from headrace.compat.azureml._planned import planned_names
from headrace.sdk.runconfig import (
    DEFAULT_CPU_IMAGE,
    CondaDependencies,
    DockerConfiguration,
    RunConfiguration,
)

__all__ = ["DEFAULT_CPU_IMAGE", "CondaDependencies", "DockerConfiguration", "RunConfiguration"]

__getattr__ = planned_names(__name__)
