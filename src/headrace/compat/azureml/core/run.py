"""`azureml.core.run`: `Run`, and `Run.get_context()` inside step scripts (an offline run that
prints when the script runs outside a pipeline)."""

from __future__ import annotations

from headrace.sdk.runs import Run

__all__ = ["Run"]
