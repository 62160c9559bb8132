"""`azureml.data.output_dataset_config`: a step's output that becomes a dataset."""

from __future__ import annotations

from headrace.sdk.dataset_outputs import OutputFileDatasetConfig, OutputTabularDatasetConfig

__all__ = ["OutputFileDatasetConfig", "OutputTabularDatasetConfig"]
