"""`azureml.pipeline.core.graph`: where SDK v1 code imports `PipelineParameter` from, with the
port bindings, the reference to a finished step output, and `PublishedPipeline`."""

from __future__ import annotations

from headrace.compat.azureml._planned import planned_names
from headrace.sdk.data import InputPortBinding, PortDataReference
from headrace.sdk.parameters import PipelineParameter
from headrace.sdk.published import PublishedPipeline

__all__ = ["InputPortBinding", "PipelineParameter", "PortDataReference", "PublishedPipeline"]

__getattr__ = planned_names(__name__)
