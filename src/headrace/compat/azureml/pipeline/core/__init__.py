"""`azureml.pipeline.core`: pipelines, intermediate data, parameters, and their runs.

Names headrace does not have (PipelineDraft, TrainingOutput, ...) raise an
ImportError saying what to use instead (`_planned`).
"""

from __future__ import annotations

from headrace.compat.azureml._planned import planned_names
from headrace.sdk.builder import StepSequence
from headrace.sdk.data import InputPortBinding, PipelineData, PortDataReference
from headrace.sdk.parameters import PipelineParameter
from headrace.sdk.pipeline import Pipeline
from headrace.sdk.published import PipelineEndpoint, PublishedPipeline
from headrace.sdk.runs import PipelineRun, StepRun, StepRunOutput
from headrace.sdk.schedule import Schedule, ScheduleRecurrence, TimeZone
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
    "Schedule",
    "ScheduleRecurrence",
    "StepRun",
    "StepRunOutput",
    "StepSequence",
    "TimeZone",
]

__getattr__ = planned_names(__name__)
