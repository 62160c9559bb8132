"""`azureml.core.model`: `Model`, the model registry (register, list, download, and
`Model.get_model_path` in a scoring script's `init()`)."""

from __future__ import annotations

from headrace.sdk.model import Model

__all__ = ["Model"]
