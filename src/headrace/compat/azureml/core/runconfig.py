"""`azureml.core.runconfig`: how a step runs (environment, environment variables, docker).

Docker settings are accepted and kept on the object; steps run as local processes without a
container (Docker-based environments belong to later work).
"""

from __future__ import annotations

from headrace.sdk.runconfig import (
    DEFAULT_CPU_IMAGE,
    CondaDependencies,
    DockerConfiguration,
    RunConfiguration,
)

__all__ = ["DEFAULT_CPU_IMAGE", "CondaDependencies", "DockerConfiguration", "RunConfiguration"]
