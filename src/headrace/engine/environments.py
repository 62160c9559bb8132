"""A step's Python environment: what a step runs in, how that is said, and how it counts.

`step_argv` is the one place the step runtime asks how to start a Python step. A step with
no environment (or `user_managed_dependencies`, or only a Docker image) runs in the Python
of its run's submitter (engine/interpreters.py), or in `python.interpreter_path` when a
user-managed environment names one. A step with a package list starts `envrun.py` in its
own process (with the uv of headrace's `uv` dependency), which builds the environment on
first use (cached by `environment_key` in the workspace's `envs/` folder, built once however
many steps ask at the same moment) and then replaces itself with the environment's
interpreter running the script: the agent never waits for a build. `step_identity` is the
environment part of a step's reuse fingerprint; `environment_notes` and
`describe_environment` are what the step's log, `step show` and the portal say about it.

Conda packages arrive already translated to PyPI requirements (sdk/condamap.py); Docker
images are recorded only; CommandSteps run their command as given, whatever their
environment. A step's timeout counts its environment's build.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from headrace.engine.interpreters import describe

__all__ = [
    "ENVRUN",
    "FAILED_MARKER",
    "builds_environment",
    "describe_environment",
    "environment_key",
    "environment_notes",
    "runs_in_submitters_python",
    "step_argv",
    "step_identity",
]

ENVRUN = str(Path(__file__).with_name("envrun.py"))
# In the step's run folder when its environment could not be built: what went wrong (the
# same as envrun.FAILED_MARKER, which may import nothing from headrace).
FAILED_MARKER = ".headrace/environment-failed.txt"


def builds_environment(environment: dict[str, Any] | None) -> bool:
    """Whether a step's environment is a uv environment headrace builds (else the step runs
    in the submitter's Python, or a user-managed interpreter)."""
    return bool(environment) and "dependencies" in (environment or {})


def runs_in_submitters_python(environment: dict[str, Any] | None) -> bool:
    """No packages and no interpreter of its own (maybe a Docker image, recorded only)."""
    return not environment or not ({"dependencies", "interpreter"} & set(environment))


def step_identity(
    environment: dict[str, Any] | None, interpreter: dict[str, Any]
) -> dict[str, Any]:
    """The environment part of a step's reuse fingerprint: its environment's specification,
    or, when it runs in the submitter's Python, that interpreter's identity (with the
    environment's name and recorded Docker image, if it has them)."""
    if not runs_in_submitters_python(environment):
        return dict(environment or {})
    identity = dict(interpreter)
    if environment:
        identity["environment"] = environment.get("name")
        if environment.get("docker"):
            identity["docker"] = environment["docker"]
    return identity


def environment_notes(environment: dict[str, Any] | None) -> list[str]:
    """What the step's stderr log says first about its environment: conda packages taken
    from PyPI, and a Docker image or Dockerfile that is recorded, not used."""
    if not environment:
        return []
    notes = []
    name = environment.get("name")
    deps = environment.get("dependencies") or {}
    if deps.get("from_conda"):
        notes.append(
            f"environment {name!r}: its conda packages ({', '.join(deps.get('conda') or [])}) "
            f"are installed from PyPI with uv as {', '.join(deps['from_conda'])}: headrace "
            "builds environments with uv, not conda"
        )
    docker = environment.get("docker")
    if docker:
        what = f"Docker image {docker['image']}" if "image" in docker else "a Dockerfile"
        where = (
            "a uv environment"
            if builds_environment(environment)
            else "the Python that submitted the run"
            if runs_in_submitters_python(environment)
            else f"the interpreter {environment.get('interpreter')}"
        )
        notes.append(
            f"environment {name!r} names {what}, which is recorded, not used: the step runs "
            f"in {where}, not in a container"
        )
    return notes


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
        "pip": sorted([*(deps.get("pip") or []), *(deps.get("from_conda") or [])]),
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
    if runs_in_submitters_python(environment):
        return [python, *script_argv]
    assert environment is not None
    if "interpreter" in environment:  # user-managed: an existing interpreter, no build
        return [str(environment["interpreter"]), *script_argv]
    # An environment is built by headrace's own Python (it has uv and headrace), and made
    # from it unless the environment asks for a Python version.
    key = environment_key(environment, sys.executable)
    spec = json.dumps(environment, sort_keys=True)
    uv = uv_binary()
    # -S: envrun needs only the standard library, and skipping site saves start-up time.
    return [
        sys.executable,
        "-S",
        ENVRUN,
        "--key",
        key,
        "--spec",
        spec,
        *(["--uv", uv] if uv else []),
        "--",
        *script_argv,
    ]


@functools.cache
def uv_binary() -> str | None:
    """The uv that headrace's `uv` dependency installed (envrun looks further when None)."""
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        return None


def describe_environment(environment: dict[str, Any] | None) -> str:
    """What a step ran in, for people, from its fingerprint's environment: the submitter's
    interpreter (`Python 3.11.7, environment /work/venv (interpreter ...)`), a user-managed
    interpreter, or a uv environment with its packages."""
    if not environment:
        return "-"
    name = environment.get("name")
    docker = environment.get("docker") or {}
    recorded = (
        f"; Docker {'image ' + docker['image'] if 'image' in docker else 'file'} recorded, not used"
        if docker
        else ""
    )
    if name is None:  # the submitter's Python (`step_identity`)
        asked = environment.get("environment")
        named = f" (environment {asked!r} asks for no packages)" if asked else ""
        return describe(environment) + named + recorded
    if "interpreter" in environment:
        return (
            f"{name}: interpreter {environment['interpreter']} (user-managed, used as it is)"
            + recorded
        )
    deps = environment.get("dependencies") or {}
    pins = [*(deps.get("pip") or []), *(deps.get("from_conda") or [])]
    python = deps.get("python") or "as headrace's"
    listed = ", ".join(pins) if pins else "no packages"
    from_conda = " (conda packages from PyPI)" if deps.get("from_conda") else ""
    return f"{name}: uv environment, Python {python}, {listed}{from_conda}{recorded}"
