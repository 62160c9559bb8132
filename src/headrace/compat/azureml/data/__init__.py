"""`azureml.data`: data on datastores and datasets. The pipeline objects live in the
submodules `data_reference` and `datapath`; datasets are here (`FileDataset`,
`TabularDataset`, `OutputFileDatasetConfig`) and in `dataset_factory`,
`dataset_consumption_config`, `output_dataset_config`, `file_dataset`, `tabular_dataset`."""

from __future__ import annotations

from headrace.compat.azureml._planned import planned_names
from headrace.sdk.dataset_outputs import OutputFileDatasetConfig, OutputTabularDatasetConfig
from headrace.sdk.datasets import DatasetConsumptionConfig, FileDataset, TabularDataset

__all__ = [
    "DatasetConsumptionConfig",
    "FileDataset",
    "OutputFileDatasetConfig",
    "OutputTabularDatasetConfig",
    "TabularDataset",
]

__getattr__ = planned_names(__name__)
