"""`azureml.core`: workspace, datastores, experiments, runs, compute and run configuration."""

from __future__ import annotations

from headrace.compat.azureml.core.authentication import (
    InteractiveLoginAuthentication,
    ServicePrincipalAuthentication,
)
from headrace.sdk.compute import ComputeTarget
from headrace.sdk.datastore import Datastore
from headrace.sdk.experiment import Experiment
from headrace.sdk.model import Model
from headrace.sdk.runconfig import Environment, RunConfiguration, ScriptRunConfig
from headrace.sdk.runs import Run
from headrace.sdk.workspace import Workspace

__all__ = [
    "ComputeTarget",
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
