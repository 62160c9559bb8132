"""`azureml.pipeline.core`: pipelines, intermediate data, parameters, and their runs.

Schedule and ScheduleRecurrence come with the server's scheduler (a later issue); importing
one raises NotYetImplementedError (an ImportError) saying so.
"""

from __future__ import annotations

from headrace.compat.azureml._planned import planned_names
from headrace.sdk.builder import StepSequence
from headrace.sdk.data import InputPortBinding, PipelineData, PortDataReference
from headrace.sdk.parameters import PipelineParameter
from headrace.sdk.pipeline import Pipeline
from headrace.sdk.published import PipelineEndpoint, PublishedPipeline
from headrace.sdk.runs import PipelineRun, StepRun, StepRunOutput
from headrace.sdk.steps import PipelineStep

__all__ = [
    "InputPortBinding",
    "Pipeline",
    "PipelineData",
    "PipelineEndpoint",
    "PipelineParameter",
    "PipelineRun",
    "PipelineStep",
    "PortDataReference",
    "PublishedPipeline",
    "StepRun",
    "StepRunOutput",
    "StepSequence",
]

__getattr__ = planned_names(
    __name__,
    {
        "Schedule": "planned with the server's scheduler",
        "ScheduleRecurrence": "planned with the server's scheduler",
    },
)
