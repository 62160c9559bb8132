"""`azureml.core.runconfig`: how a step runs (environment, environment variables, docker,
distributed settings).

A step whose environment lists packages runs in a virtual environment headrace builds with
uv (see headrace.sdk.environment). Docker settings and images are recorded and kept on the
object; steps run as processes without a container. `MpiConfiguration` and
`PyTorchConfiguration` run with one node and one process; more is refused at validation,
saying to use Ray. The Databricks library descriptions (JarLibrary, PyPiLibrary, ...) are
here too, as in SDK v1 (see core.databricks).
"""

from __future__ import annotations

from headrace.compat.azureml._planned import planned_names
from headrace.sdk.runconfig import (
    DEFAULT_CPU_IMAGE,
    DEFAULT_GPU_IMAGE,
    CondaDependencies,
    DockerConfiguration,
    MpiConfiguration,
    PyTorchConfiguration,
    RunConfiguration,
    TensorflowConfiguration,
)
from headrace.sdk.sparklibs import EggLibrary, JarLibrary, MavenLibrary, PyPiLibrary, RCranLibrary

__all__ = [
    "DEFAULT_CPU_IMAGE",
    "DEFAULT_GPU_IMAGE",
    "CondaDependencies",
    "DockerConfiguration",
    "EggLibrary",
    "JarLibrary",
    "MavenLibrary",
    "MpiConfiguration",
    "PyPiLibrary",
    "PyTorchConfiguration",
    "RCranLibrary",
    "RunConfiguration",
    "TensorflowConfiguration",
]

__getattr__ = planned_names(__name__)
