"""`azureml.data.dataset_factory`: the factories behind `Dataset.File` and
`Dataset.Tabular`, and `DataType` for `set_column_types`."""

from __future__ import annotations

from headrace.sdk.dataset_factory import FileDatasetFactory, TabularDatasetFactory
from headrace.sdk.datasets import DataType

__all__ = ["DataType", "FileDatasetFactory", "TabularDatasetFactory"]
