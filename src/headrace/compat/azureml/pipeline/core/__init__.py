"""`azureml.pipeline.core`: pipelines, intermediate data, parameters, and their runs.

PublishedPipeline, PipelineEndpoint and Schedule come with publishing and the server (a later
issue); importing one raises NotYetImplementedError (an ImportError) saying so.
"""

from __future__ import annotations

from headrace.compat.azureml._planned import planned_names
from headrace.sdk.builder import StepSequence
from headrace.sdk.data import InputPortBinding, PipelineData, PortDataReference
from headrace.sdk.parameters import PipelineParameter
from headrace.sdk.pipeline import Pipeline
from headrace.sdk.runs import PipelineRun, StepRun, StepRunOutput
from headrace.sdk.steps import PipelineStep

__all__ = [
    "InputPortBinding",
    "Pipeline",
    "PipelineData",
    "PipelineParameter",
    "PipelineRun",
    "PipelineStep",
    "PortDataReference",
    "StepRun",
    "StepRunOutput",
    "StepSequence",
]

__getattr__ = planned_names(
    __name__,
    {
        "PipelineEndpoint": "planned with publishing and the server",
        "PublishedPipeline": "planned with publishing and the server",
        "Schedule": "planned with the server's scheduler",
        "ScheduleRecurrence": "planned with the server's scheduler",
    },
)
