"""`azureml.pipeline.core`: pipelines, intermediate data, parameters, and their runs."""

from __future__ import annotations

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
