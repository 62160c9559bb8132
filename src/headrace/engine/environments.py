"""A step's Python environment: what a step that declares one runs in.

Partial (being built): environments are recorded (and part of the reuse fingerprint) but not
yet built; the step runs in the interpreter headrace runs steps with, and a step whose
environment lists packages gets a line in its stderr log saying so. `step_argv` is the one
place the step runtime asks how to start a Python step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["step_argv"]


def step_argv(
    environment: dict[str, Any] | None,
    python: str,
    script_argv: list[str],
    stderr_log: Path,
    attempt: int,
) -> list[str]:
    """The argv that runs `script_argv` (a script and its arguments) in `environment`."""
    if environment is not None and attempt == 0:
        deps = environment.get("dependencies", {})
        wanted = ", ".join([*deps.get("pip", []), *deps.get("conda", [])]) or "nothing"
        with stderr_log.open("a", encoding="utf-8") as fh:
            fh.write(
                f"headrace: environment {environment.get('name')!r} (asks for: {wanted}) "
                f"is recorded but not built by this version; the step runs in {python}, "
                "which must provide those packages.\n"
            )
    return [python, *script_argv]
