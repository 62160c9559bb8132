"""`azureml.pipeline.core.run`: a submitted pipeline's run, its step runs and their outputs."""

from __future__ import annotations

from headrace.sdk.runs import PipelineRun, StepRun, StepRunOutput

__all__ = ["PipelineRun", "StepRun", "StepRunOutput"]
