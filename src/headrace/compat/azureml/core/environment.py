"""`azureml.core.environment`: a named Python environment specification and its sections."""

from __future__ import annotations

from headrace.sdk.runconfig import DockerSection, Environment, PythonSection

__all__ = ["DockerSection", "Environment", "PythonSection"]
