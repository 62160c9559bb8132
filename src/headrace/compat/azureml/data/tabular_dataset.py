"""`azureml.data.tabular_dataset`: `TabularDataset`."""

from __future__ import annotations

from headrace.sdk.datasets import TabularDataset

__all__ = ["TabularDataset"]
