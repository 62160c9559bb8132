"""`azureml.core.experiment`: a named group of runs, and `submit`."""

from __future__ import annotations

from headrace.sdk.experiment import Experiment

__all__ = ["Experiment"]
