"""`azureml.data.data_reference`: data already on a datastore, used as a step input."""

from __future__ import annotations

from headrace.sdk.data import DataReference

__all__ = ["DataReference"]
