"""The typed description of one SparkStep, made by the SDK class (sdk.py) and read by the
step's program (program.py) from the same class: no argv string in between.

Values never travel in the spec itself: an input's or output's path comes from
`AZUREML_DATAREFERENCE_<port>` and a parameter's text from `AML_PARAMETER_<slot>`, both set
by the step runtime; the spec names the ports and the slots.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

__all__ = ["SparkSpec"]


@dataclass(frozen=True)
class SparkSpec:
    """One SparkStep: what to run, which ports and parameter slots it reads, and where."""

    # Exactly one of script / notebook: a path relative to the step's working folder (its
    # snapshot), or an absolute path of a file used where it is (then `digest` is its
    # content hash, so that a change to it counts toward reuse).
    script: str | None = None
    notebook: str | None = None
    digest: str | None = None
    # A `python_script_name` script also gets `--AZUREML_SCRIPT_DIRECTORY_NAME <folder>`.
    script_directory_argument: bool = False
    inputs: tuple[str, ...] = ()  # port names, in order: `-<name> <path>` / widgets
    outputs: tuple[str, ...] = ()
    arguments: tuple[str, ...] = ()  # the script's parameters: AML_PARAMETER_<slot>, in order
    widgets: tuple[tuple[str, str], ...] = ()  # (widget name, parameter slot)
    # The master: a target object's (fixed when the step was made); else the target named
    # `target`, read when the step starts; else the workspace's `spark_master`.
    master: str | None = None
    target: str | None = None
    conf: dict[str, str] = field(default_factory=dict)  # over the target's settings
    env: dict[str, str] = field(default_factory=dict)  # spark_env_variables

    def __post_init__(self) -> None:
        if (self.script is None) == (self.notebook is None):
            raise ValueError("a SparkSpec runs exactly one of script or notebook")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> SparkSpec:
        raw: dict[str, Any] = json.loads(text)
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in raw.items() if k in known}
        for name in ("inputs", "outputs", "arguments"):
            values[name] = tuple(str(v) for v in values.get(name) or ())
        values["widgets"] = tuple((str(k), str(v)) for k, v in values.get("widgets") or ())
        for name in ("conf", "env"):
            values[name] = {str(k): str(v) for k, v in (values.get(name) or {}).items()}
        return cls(**values)
