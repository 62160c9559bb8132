"""`azureml.data.dataset_consumption_config`: how a step consumes a dataset."""

from __future__ import annotations

from headrace.sdk.datasets import DatasetConsumptionConfig

__all__ = ["DatasetConsumptionConfig"]
