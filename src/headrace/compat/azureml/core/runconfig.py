"""`azureml.core.runconfig`: how a step runs (environment, environment variables, docker).

A step whose environment lists pip packages runs in a virtual environment headrace builds
with uv (see headrace.sdk.runconfig). Docker settings are accepted and kept on the object;
steps run as processes without a container. The Databricks library descriptions
(JarLibrary, PyPiLibrary, ...) are here too, as in SDK v1 (see core.databricks).
"""

from __future__ import annotations

from headrace.compat.azureml._planned import planned_names
from headrace.sdk.runconfig import (
    DEFAULT_CPU_IMAGE,
    CondaDependencies,
    DockerConfiguration,
    RunConfiguration,
)
from headrace.sdk.sparklibs import EggLibrary, JarLibrary, MavenLibrary, PyPiLibrary, RCranLibrary

__all__ = [
    "DEFAULT_CPU_IMAGE",
    "CondaDependencies",
    "DockerConfiguration",
    "EggLibrary",
    "JarLibrary",
    "MavenLibrary",
    "PyPiLibrary",
    "RCranLibrary",
    "RunConfiguration",
]

__getattr__ = planned_names(__name__)
