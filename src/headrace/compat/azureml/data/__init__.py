"""`azureml.data`: data on datastores. The pipeline objects live in the submodules
`data_reference` and `datapath`; datasets (FileDataset, TabularDataset,
OutputFileDatasetConfig) are not implemented yet."""

from __future__ import annotations

from headrace.compat.azureml._planned import planned_names

__all__: list[str] = []

__getattr__ = planned_names(__name__)
