"""`azureml.core.dataset`: `Dataset`, the entry point to file and tabular datasets."""

from __future__ import annotations

from headrace.sdk.dataset_factory import Dataset

__all__ = ["Dataset"]
