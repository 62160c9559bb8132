"""`azureml.core.model`: `Model`, the model registry (register, list, download, and
`Model.get_model_path` in a scoring script's `init()`). Deploying (`InferenceConfig`) is not
part of headrace: importing it says what to use instead."""

from __future__ import annotations

from headrace.compat.azureml._planned import planned_names
from headrace.sdk.model import Model

__all__ = ["Model"]

__getattr__ = planned_names(__name__)
