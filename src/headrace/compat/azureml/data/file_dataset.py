"""`azureml.data.file_dataset`: `FileDataset`."""

from __future__ import annotations

from headrace.sdk.datasets import FileDataset

__all__ = ["FileDataset"]
