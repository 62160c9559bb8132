"""`azureml.pipeline.core.pipeline_endpoint`: a named, versioned endpoint over published
pipelines."""

from __future__ import annotations

from headrace.sdk.published import PipelineEndpoint, PipelineIdVersion, PipelineVersion

__all__ = ["PipelineEndpoint", "PipelineIdVersion", "PipelineVersion"]
