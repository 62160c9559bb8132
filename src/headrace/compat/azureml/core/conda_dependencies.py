"""`azureml.core.conda_dependencies`: the packages an environment asks for (conda packages
are installed from PyPI where it has them, see headrace.sdk.condamap)."""

from __future__ import annotations

from headrace.sdk.environment import CondaDependencies

__all__ = ["CondaDependencies"]
