"""`azureml.core.databricks`: the library descriptions a DatabricksStep takes. They are
recorded with the step; its code runs with PySpark on this machine (headrace.sdk.sparklibs)."""

from __future__ import annotations

from headrace.sdk.sparklibs import EggLibrary, JarLibrary, MavenLibrary, PyPiLibrary, RCranLibrary

__all__ = ["EggLibrary", "JarLibrary", "MavenLibrary", "PyPiLibrary", "RCranLibrary"]
