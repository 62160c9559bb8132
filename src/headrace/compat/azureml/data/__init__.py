"""`azureml.data`: data on datastores. The pipeline objects live in the submodules
`data_reference` and `datapath`; datasets (FileDataset, TabularDataset,
OutputFileDatasetConfig) are not implemented yet."""

from __future__ import annotations

__all__: list[str] = []
