"""`azureml.pipeline.steps`: the step types. PythonScriptStep also accepts the seed
document's `target=` spelling for `compute_target=`. AdlaStep runs its script with DuckDB
(headrace.kinds.sql: the script must be DuckDB SQL, not U-SQL). DatabricksStep runs its
notebook or script with PySpark on this machine (headrace.kinds.spark: a SparkStep).

DataTransferStep copies between any two datastores with headrace's transfer engine
(headrace.kinds.transfer). ParallelRunStep and ParallelRunConfig run batch scoring in local
worker processes (headrace.kinds.parallel). The steps headrace does not have (AutoMLStep,
HyperDriveStep, ...) raise an ImportError saying what to use instead (`_planned`).
"""

from __future__ import annotations

from headrace.compat.azureml._planned import planned_names
from headrace.kinds.parallel import ParallelRunConfig, ParallelRunStep
from headrace.kinds.spark import DatabricksStep
from headrace.kinds.sql import AdlaStep
from headrace.kinds.transfer import DataTransferStep
from headrace.sdk.steps import CommandStep, PythonScriptStep

__all__ = [
    "AdlaStep",
    "CommandStep",
    "DataTransferStep",
    "DatabricksStep",
    "ParallelRunConfig",
    "ParallelRunStep",
    "PythonScriptStep",
]

__getattr__ = planned_names(__name__)
