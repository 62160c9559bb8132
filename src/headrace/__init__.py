"""headrace: self-hosted machine-learning pipelines.

Define a pipeline in Python with the Azure ML SDK v1 pipeline API, run it on a laptop with no
server, watch it, reuse unchanged steps, and (later) publish and scale it out.

    from headrace import Workspace, Experiment, Pipeline, PythonScriptStep, PipelineData

SDK v1 code runs with its `azureml.` imports unchanged under `python -m headrace.v1 script.py`
(or `%load_ext headrace.v1`), or ported by changing them to `headrace.compat.azureml.`.
"""

from __future__ import annotations

import gc
import importlib

TYPE_CHECKING = False  # typing's own flag would cost importing typing at every start
if TYPE_CHECKING:  # what type checkers see; at run time each name loads on first use
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
        NotificationError,
        ParameterError,
        PipelineDisabledError,
        PipelineValidationError,
        RunNotFoundError,
        StoreError,
        UserError,
        WorkspaceExistsError,
        WorkspaceNotFoundError,
    )
    from headrace.kinds.parallel import ParallelRunConfig, ParallelRunStep
    from headrace.kinds.spark import DatabricksCompute, DatabricksStep, SparkCompute, SparkStep
    from headrace.kinds.sql import AdlaStep, SqlStep
    from headrace.kinds.transfer import DataFactoryCompute, DataTransferStep, TransferCompute
    from headrace.sdk.builder import StepSequence
    from headrace.sdk.compute import (
        AdlaCompute,
        AmlCompute,
        ComputeTarget,
        LocalCompute,
        SqlCompute,
    )
    from headrace.sdk.context import OfflineRun, ScriptRun
    from headrace.sdk.data import (
        DataPath,
        DataPathComputeBinding,
        DataReference,
        InputPortBinding,
        PipelineData,
        PortDataReference,
    )
    from headrace.sdk.dataset_factory import Dataset
    from headrace.sdk.dataset_outputs import OutputFileDatasetConfig
    from headrace.sdk.datasets import (
        DatasetConsumptionConfig,
        DataType,
        FileDataset,
        TabularDataset,
    )
    from headrace.sdk.datastore import Datastore
    from headrace.sdk.experiment import Experiment
    from headrace.sdk.model import Model
    from headrace.sdk.notifications import Notification, RunTrigger
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
    from headrace.sdk.schedule import Schedule, ScheduleRecurrence, TimeZone
    from headrace.sdk.steps import CommandStep, PipelineStep, PythonScriptStep
    from headrace.sdk.workspace import TokenAuthentication, Workspace

__version__ = "0.1.0"

# Where each public name lives. `import headrace` loads none of them, so whatever imports
# one headrace module (the azureml launcher, the agent, a step's Run.get_context()) pays for
# that module only; `from headrace import Workspace` loads what Workspace needs.
_HOMES = {
    "ActivityFailedException": "headrace.errors",
    "AdlaCompute": "headrace.sdk.compute",
    "AdlaStep": "headrace.kinds.sql",
    "AmlCompute": "headrace.sdk.compute",
    "CommandStep": "headrace.sdk.steps",
    "ComputeTarget": "headrace.sdk.compute",
    "ComputeTargetException": "headrace.errors",
    "CondaDependencies": "headrace.sdk.runconfig",
    "ConfigError": "headrace.errors",
    "ConflictError": "headrace.errors",
    "DataFactoryCompute": "headrace.kinds.transfer",
    "DataPath": "headrace.sdk.data",
    "DataPathComputeBinding": "headrace.sdk.data",
    "DataReference": "headrace.sdk.data",
    "DataTransferStep": "headrace.kinds.transfer",
    "ParallelRunConfig": "headrace.kinds.parallel",
    "ParallelRunStep": "headrace.kinds.parallel",
    "DataType": "headrace.sdk.datasets",
    "DatabricksCompute": "headrace.kinds.spark",
    "DatabricksStep": "headrace.kinds.spark",
    "Dataset": "headrace.sdk.dataset_factory",
    "DatasetConsumptionConfig": "headrace.sdk.datasets",
    "DatasetFormatError": "headrace.errors",
    "DatasetNotFoundError": "headrace.errors",
    "DatasetPathError": "headrace.errors",
    "Datastore": "headrace.sdk.datastore",
    "DatastorePathError": "headrace.errors",
    "Environment": "headrace.sdk.runconfig",
    "Experiment": "headrace.sdk.experiment",
    "FileDataset": "headrace.sdk.datasets",
    "HeadraceError": "headrace.errors",
    "InputPortBinding": "headrace.sdk.data",
    "LocalCompute": "headrace.sdk.compute",
    "MissingDependencyError": "headrace.errors",
    "Model": "headrace.sdk.model",
    "ModelNotFoundError": "headrace.errors",
    "NameConflictError": "headrace.errors",
    "Notification": "headrace.sdk.notifications",
    "NotificationError": "headrace.errors",
    "RunTrigger": "headrace.sdk.notifications",
    "NotAStepError": "headrace.errors",
    "NotFoundError": "headrace.errors",
    "OfflineRun": "headrace.sdk.context",
    "OutputFileDatasetConfig": "headrace.sdk.dataset_outputs",
    "ParameterError": "headrace.errors",
    "Pipeline": "headrace.sdk.pipeline",
    "PipelineData": "headrace.sdk.data",
    "PipelineDisabledError": "headrace.errors",
    "PipelineEndpoint": "headrace.sdk.published",
    "PipelineParameter": "headrace.sdk.parameters",
    "PipelineRun": "headrace.sdk.runs",
    "PipelineStep": "headrace.sdk.steps",
    "PipelineValidationError": "headrace.errors",
    "PortDataReference": "headrace.sdk.data",
    "PublishedPipeline": "headrace.sdk.published",
    "PythonScriptStep": "headrace.sdk.steps",
    "RayCompute": "headrace.sdk.ray",
    "Run": "headrace.sdk.runs",
    "RunConfiguration": "headrace.sdk.runconfig",
    "RunNotFoundError": "headrace.errors",
    "Schedule": "headrace.sdk.schedule",
    "ScheduleRecurrence": "headrace.sdk.schedule",
    "ScriptRun": "headrace.sdk.context",
    "ScriptRunConfig": "headrace.sdk.runconfig",
    "SparkCompute": "headrace.kinds.spark",
    "SparkStep": "headrace.kinds.spark",
    "SqlCompute": "headrace.sdk.compute",
    "SqlStep": "headrace.kinds.sql",
    "StepRun": "headrace.sdk.runs",
    "StepSequence": "headrace.sdk.builder",
    "StoreError": "headrace.errors",
    "TabularDataset": "headrace.sdk.datasets",
    "TimeZone": "headrace.sdk.schedule",
    "TokenAuthentication": "headrace.sdk.workspace",
    "TransferCompute": "headrace.kinds.transfer",
    "UserError": "headrace.errors",
    "Workspace": "headrace.sdk.workspace",
    "WorkspaceExistsError": "headrace.errors",
    "WorkspaceNotFoundError": "headrace.errors",
}

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
    "Notification",
    "NotificationError",
    "OfflineRun",
    "OutputFileDatasetConfig",
    "ParallelRunConfig",
    "ParallelRunStep",
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
    "RunTrigger",
    "Schedule",
    "ScheduleRecurrence",
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
    "TimeZone",
    "TokenAuthentication",
    "TransferCompute",
    "UserError",
    "Workspace",
    "WorkspaceExistsError",
    "WorkspaceNotFoundError",
]


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'headrace' has no attribute {name!r}")
    # The collector paused meanwhile: an import makes many objects and few cycles, and
    # collections during the SDK's imports cost a fresh `python pipeline.py` milliseconds.
    collecting = gc.isenabled()
    gc.disable()
    try:
        value = getattr(importlib.import_module(home), name)
    finally:
        if collecting:
            gc.enable()
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
