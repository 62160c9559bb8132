"""`azureml.pipeline.core.builder`: the pieces a pipeline is built from: steps, intermediate
data, and sequential ordering."""

from __future__ import annotations

from headrace.sdk.builder import StepSequence
from headrace.sdk.data import PipelineData
from headrace.sdk.steps import PipelineStep

__all__ = ["PipelineData", "PipelineStep", "StepSequence"]
