"""A step's Python environment: what a step that declares one runs in.

`step_argv` is the one place the step runtime asks how to start a Python step. A step with
no environment (or `user_managed_dependencies`) runs in the Python of its run's submitter
(engine/interpreters.py), or in `python.interpreter_path` when a user-managed environment
names one. A step with
a package list starts `envrun.py` in its own process, which builds the environment with uv
on first use (cached by `environment_key` in the workspace's `envs/` folder, built once
however many steps ask at the same moment) and then replaces itself with the environment's
interpreter running the script: the agent never waits for a build.

Not covered: conda packages (refused when the step is defined, see sdk/runconfig.py), Docker
images (recorded only), and environments for CommandSteps (they run their command as given).
A step's timeout counts its environment's build.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from headrace.engine.interpreters import describe

__all__ = ["ENVRUN", "describe_environment", "environment_key", "step_argv"]

ENVRUN = str(Path(__file__).with_name("envrun.py"))


def environment_key(environment: dict[str, Any], python: str) -> str:
    """The cache key of an environment: its Python version (or the interpreter it is made
    from), its sorted pins and index urls; not its name, so equal specs share one build."""
    deps = environment.get("dependencies") or {}
    requested = deps.get("python")
    if not requested:
        requested = f"interpreter {os.path.realpath(python)}"
        if os.path.realpath(python) == os.path.realpath(sys.executable):
            requested += " " + ".".join(map(str, sys.version_info[:3]))
    identity = {
        "python": requested,
        "pip": sorted(deps.get("pip") or []),
        "index_url": deps.get("index_url"),
        "extra_index_urls": sorted(deps.get("extra_index_urls") or []),
    }
    text = json.dumps(identity, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def step_argv(
    environment: dict[str, Any] | None,
    python: str,
    script_argv: list[str],
    stderr_log: Path,
    attempt: int,
) -> list[str]:
    """The argv that runs `script_argv` (a script and its arguments) in `environment`:
    `python` (the submitter's interpreter) when there is none."""
    if environment is None:
        return [python, *script_argv]
    if "interpreter" in environment:  # user-managed: an existing interpreter, no build
        return [str(environment["interpreter"]), *script_argv]
    # An environment is built by headrace's own Python (it has uv and headrace), and made
    # from it unless the environment asks for a Python version.
    key = environment_key(environment, sys.executable)
    spec = json.dumps(environment, sort_keys=True)
    # -S: envrun needs only the standard library, and skipping site saves start-up time.
    return [sys.executable, "-S", ENVRUN, "--key", key, "--spec", spec, "--", *script_argv]


def describe_environment(environment: dict[str, Any] | None) -> str:
    """What a step ran in, for people, from its fingerprint's environment: the submitter's
    interpreter (`Python 3.11.7, environment /work/venv (interpreter ...)`), a user-managed
    interpreter, or a uv environment with its packages."""
    if not environment:
        return "-"
    name = environment.get("name")
    if name is None:
        return describe(environment)
    if "interpreter" in environment:
        return f"{name}: interpreter {environment['interpreter']} (user-managed, used as it is)"
    deps = environment.get("dependencies") or {}
    pins = deps.get("pip") or []
    python = deps.get("python") or "as headrace's"
    listed = ", ".join(pins) if pins else "no packages"
    return f"{name}: uv environment, Python {python}, {listed}"
