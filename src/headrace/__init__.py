"""headrace: self-hosted machine-learning pipelines.

Define a pipeline in Python with the Azure ML SDK v1 pipeline API, run it on a laptop with no
server, watch it, reuse unchanged steps, and (later) publish and scale it out.

    from headrace import Workspace, Experiment, Pipeline, PythonScriptStep, PipelineData

SDK v1 code runs with its `azureml.` imports unchanged under `python -m headrace.v1 script.py`
(or `%load_ext headrace.v1`), or ported by changing them to `headrace.compat.azureml.`.
"""

from __future__ import annotations

from headrace.errors import (
    ActivityFailedException,
    ComputeTargetException,
    ConfigError,
    ConflictError,
    DatasetFormatError,
    DatasetNotFoundError,
    DatasetPathError,
    DatastorePathError,
    HeadraceError,
    MissingDependencyError,
    ModelNotFoundError,
    NameConflictError,
    NotAStepError,
    NotFoundError,
    ParameterError,
    PipelineDisabledError,
    PipelineValidationError,
    RunNotFoundError,
    StoreError,
    UserError,
    WorkspaceExistsError,
    WorkspaceNotFoundError,
)
from headrace.sdk.builder import StepSequence
from headrace.sdk.compute import AdlaCompute, AmlCompute, ComputeTarget, LocalCompute, SqlCompute
from headrace.sdk.context import OfflineRun, ScriptRun
from headrace.sdk.data import (
    DataPath,
    DataPathComputeBinding,
    DataReference,
    InputPortBinding,
    PipelineData,
    PortDataReference,
)
from headrace.sdk.dataset_outputs import OutputFileDatasetConfig
from headrace.sdk.datasets import (
    Dataset,
    DatasetConsumptionConfig,
    DataType,
    FileDataset,
    TabularDataset,
)
from headrace.sdk.datastore import Datastore
from headrace.sdk.experiment import Experiment
from headrace.sdk.model import Model
from headrace.sdk.parameters import PipelineParameter
from headrace.sdk.pipeline import Pipeline
from headrace.sdk.published import PipelineEndpoint, PublishedPipeline
from headrace.sdk.ray import RayCompute
from headrace.sdk.runconfig import (
    CondaDependencies,
    Environment,
    RunConfiguration,
    ScriptRunConfig,
)
from headrace.sdk.runs import PipelineRun, Run, StepRun
from headrace.sdk.spark import DatabricksCompute, DatabricksStep, SparkCompute, SparkStep
from headrace.sdk.sql import AdlaStep, SqlStep
from headrace.sdk.steps import CommandStep, PipelineStep, PythonScriptStep
from headrace.sdk.transfer import DataFactoryCompute, DataTransferStep, TransferCompute
from headrace.sdk.workspace import TokenAuthentication, Workspace

__version__ = "0.1.0"

__all__ = [
    "ActivityFailedException",
    "AdlaCompute",
    "AdlaStep",
    "AmlCompute",
    "CommandStep",
    "ComputeTarget",
    "ComputeTargetException",
    "CondaDependencies",
    "ConfigError",
    "ConflictError",
    "DataFactoryCompute",
    "DataPath",
    "DataPathComputeBinding",
    "DataReference",
    "DataTransferStep",
    "DataType",
    "DatabricksCompute",
    "DatabricksStep",
    "Dataset",
    "DatasetConsumptionConfig",
    "DatasetFormatError",
    "DatasetNotFoundError",
    "DatasetPathError",
    "Datastore",
    "DatastorePathError",
    "Environment",
    "Experiment",
    "FileDataset",
    "HeadraceError",
    "InputPortBinding",
    "LocalCompute",
    "MissingDependencyError",
    "Model",
    "ModelNotFoundError",
    "NameConflictError",
    "NotAStepError",
    "NotFoundError",
    "OfflineRun",
    "OutputFileDatasetConfig",
    "ParameterError",
    "Pipeline",
    "PipelineData",
    "PipelineDisabledError",
    "PipelineEndpoint",
    "PipelineParameter",
    "PipelineRun",
    "PipelineStep",
    "PipelineValidationError",
    "PortDataReference",
    "PublishedPipeline",
    "PythonScriptStep",
    "RayCompute",
    "Run",
    "RunConfiguration",
    "RunNotFoundError",
    "ScriptRun",
    "ScriptRunConfig",
    "SparkCompute",
    "SparkStep",
    "SqlCompute",
    "SqlStep",
    "StepRun",
    "StepSequence",
    "StoreError",
    "TabularDataset",
    "TokenAuthentication",
    "TransferCompute",
    "UserError",
    "Workspace",
    "WorkspaceExistsError",
    "WorkspaceNotFoundError",
]
