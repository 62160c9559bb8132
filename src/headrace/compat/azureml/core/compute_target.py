"""`azureml.core.compute_target`: where SDK v1 notebooks import `ComputeTargetException` from
(`try: ComputeTarget(ws, name) except ComputeTargetException: ...`)."""

from __future__ import annotations

from headrace.errors import ComputeTargetException

__all__ = ["ComputeTargetException"]
