"""`azureml.pipeline.core.pipeline`: `Pipeline`."""

from __future__ import annotations

from headrace.sdk.pipeline import Pipeline

__all__ = ["Pipeline"]
