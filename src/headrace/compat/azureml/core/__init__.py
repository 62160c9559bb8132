"""`azureml.core`: workspace, datastores, experiments, runs, compute and run configuration.

`VERSION` is the SDK v1 release whose API headrace follows (azureml-core 1.61, see
docs/porting.md) with headrace's own version after a `+`, so `print(azureml.core.VERSION)`
says which it is and version comparisons treat it as that release.
"""

from __future__ import annotations

from headrace import __version__
from headrace.compat.azureml._planned import planned_names
from headrace.compat.azureml.core.authentication import (
    InteractiveLoginAuthentication,
    ServicePrincipalAuthentication,
)
from headrace.sdk.compute import ComputeTarget
from headrace.sdk.dataset_factory import Dataset
from headrace.sdk.datastore import Datastore
from headrace.sdk.experiment import Experiment
from headrace.sdk.model import Model
from headrace.sdk.runconfig import Environment, RunConfiguration, ScriptRunConfig
from headrace.sdk.runs import Run
from headrace.sdk.workspace import Workspace

VERSION = f"1.61.0+headrace.{__version__}"

__all__ = [
    "VERSION",
    "ComputeTarget",
    "Dataset",
    "Datastore",
    "Environment",
    "Experiment",
    "InteractiveLoginAuthentication",
    "Model",
    "Run",
    "RunConfiguration",
    "ScriptRunConfig",
    "ServicePrincipalAuthentication",
    "Workspace",
]

__getattr__ = planned_names(__name__)
