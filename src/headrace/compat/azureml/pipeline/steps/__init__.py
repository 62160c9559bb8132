"""`azureml.pipeline.steps`: the step types. PythonScriptStep also accepts the seed
document's `target=` spelling for `compute_target=`.

DataTransferStep, DatabricksStep, AdlaStep and ParallelRunStep belong to later issues and are
not here yet.
"""

from __future__ import annotations

from headrace.sdk.steps import CommandStep, PythonScriptStep

__all__ = ["CommandStep", "PythonScriptStep"]
