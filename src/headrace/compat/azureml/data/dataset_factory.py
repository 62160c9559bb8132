"""`azureml.data.dataset_factory`: the factories behind `Dataset.File` and
`Dataset.Tabular`, and `DataType` for `set_column_types`."""

from __future__ import annotations

from headrace.sdk.datasets import DataType
from headrace.sdk.datasets import _FileFactory as FileDatasetFactory
from headrace.sdk.datasets import _TabularFactory as TabularDatasetFactory

__all__ = ["DataType", "FileDatasetFactory", "TabularDatasetFactory"]
