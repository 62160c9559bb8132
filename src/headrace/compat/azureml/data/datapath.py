"""`azureml.data.datapath`: a datastore path, usable as a pipeline parameter's default, and how
a step receives it."""

from __future__ import annotations

from headrace.sdk.data import DataPath, DataPathComputeBinding

__all__ = ["DataPath", "DataPathComputeBinding"]
