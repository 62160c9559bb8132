"""`azureml.core.conda_dependencies`: the packages an environment asks for."""

from __future__ import annotations

from headrace.sdk.runconfig import CondaDependencies

__all__ = ["CondaDependencies"]
