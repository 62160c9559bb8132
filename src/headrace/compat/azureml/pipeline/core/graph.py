"""`azureml.pipeline.core.graph`: where SDK v1 code imports `PipelineParameter` from, with the
port bindings and the reference to a finished step output."""

from __future__ import annotations

from headrace.sdk.data import InputPortBinding, PortDataReference
from headrace.sdk.parameters import PipelineParameter

__all__ = ["InputPortBinding", "PipelineParameter", "PortDataReference"]
