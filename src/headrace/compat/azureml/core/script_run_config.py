"""`azureml.core.script_run_config`: a script or command with its folder and environment (what
a CommandStep may take as its runconfig)."""

from __future__ import annotations

from headrace.sdk.runconfig import ScriptRunConfig

__all__ = ["ScriptRunConfig"]
