"""`azureml.pipeline.steps`: the step types. PythonScriptStep also accepts the seed
document's `target=` spelling for `compute_target=`.

DataTransferStep, DatabricksStep, AdlaStep and ParallelRunStep belong to later issues; importing
one raises NotYetImplementedError (an ImportError) saying so.
"""

from __future__ import annotations

from headrace.compat.azureml._planned import planned_names
from headrace.sdk.steps import CommandStep, PythonScriptStep

__all__ = ["CommandStep", "PythonScriptStep"]

__getattr__ = planned_names(
    __name__,
    {
        "AdlaStep": "planned as a SQL step on DuckDB",
        "DataTransferStep": "planned with the data-transfer engine",
        "DatabricksStep": "planned as a Spark step",
        "ParallelRunConfig": "planned with ParallelRunStep",
        "ParallelRunStep": "planned",
    },
)
