"""`azureml.core.workspace`: the workspace (a folder here, or later a server)."""

from __future__ import annotations

from headrace.sdk.workspace import Workspace

__all__ = ["Workspace"]
