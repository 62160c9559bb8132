"""The library descriptions a DatabricksStep takes (SDK v1 `azureml.core.databricks`):
`JarLibrary`, `EggLibrary`, `PyPiLibrary`, `MavenLibrary`, `RCranLibrary`.

They are recorded with the step (`step.libraries`) and change nothing: its code runs with
PySpark on this machine, in the Python that runs the step, so Python packages belong in the
step's environment (RunConfiguration) and JARs on the Spark master's classpath.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["EggLibrary", "JarLibrary", "MavenLibrary", "PyPiLibrary", "RCranLibrary"]


@dataclass(frozen=True)
class JarLibrary:
    """A JAR to install on the cluster (`library`: its URI)."""

    library: str


@dataclass(frozen=True)
class EggLibrary:
    """A Python egg to install on the cluster (`library`: its URI)."""

    library: str


@dataclass(frozen=True)
class PyPiLibrary:
    """A PyPI package (`package`, optionally pinned) from `repo` (default PyPI)."""

    package: str
    repo: str | None = None


@dataclass(frozen=True)
class MavenLibrary:
    """Maven `coordinates` (group:artifact:version) from `repo`, without `exclusions`."""

    coordinates: str
    repo: str | None = None
    exclusions: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RCranLibrary:
    """A CRAN package from `repo`."""

    package: str
    repo: str | None = None
