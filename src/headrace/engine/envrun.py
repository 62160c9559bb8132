"""Start a step's script in its declared Python environment, building the environment first
if no step has built it yet.

Run as a file, never as a module, inside the step's own process (so a build never blocks the
agent, and its output is the step's stderr log):

    <python> -S .../headrace/engine/envrun.py --key KEY --spec JSON [--uv UV] -- script.py ...

The environment is a virtual environment made with uv in `<envs>/<KEY>/`, where `<envs>` is
`$HEADRACE_ENVS_DIR` or `$HEADRACE_WORKSPACE/envs` (shared by every step and run of the
workspace on this machine). A marker file written last says the build is complete; a file
lock makes concurrent steps build it once. headrace itself is made importable in the
environment through a `.pth` file and a link to this headrace's package folder (headrace's
step-side API). headrace's own runtime dependencies (SQLAlchemy, httpx, ...: the run
context logs through the server with them on a machine without the workspace folder) are
linked there too, after the environment's own packages, so a package the environment pins
wins; nothing else of headrace's environment is visible to the step.

Speed matters here: a cached environment must add almost nothing to a step, so the fast path
imports only `os` and `sys` (both already loaded at start-up) and replaces this process with
the environment's interpreter. Nothing from headrace is imported: this file must not import
anything from headrace, SQLAlchemy or other third-party packages.
"""

from __future__ import annotations

import os
import sys

# Run as a file, sys.path[0] is the engine folder: keep its modules from shadowing stdlib ones.
if sys.path and os.path.basename(sys.path[0].rstrip("/")) == "engine":
    del sys.path[0]

READY = "headrace-env-ready"  # written last: the environment is complete
LINK_DIR = "headrace-link"  # holds a `headrace` link to the package folder this file is in
PTH = "_headrace.pth"
# headrace's requirements, when it runs from a source folder without its package metadata.
FALLBACK_REQUIREMENTS = ("sqlalchemy", "alembic", "fsspec", "typer", "rich", "pathspec", "httpx")
BUILD_FAILED = 3  # the step's exit code when its environment cannot be built
# Written (in the step's run folder) when the build fails: the agent records its text as the
# step's error, so a failed build never reads as the script's own exit code.
FAILED_MARKER = os.path.join(".headrace", "environment-failed.txt")
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def envs_dir() -> str:
    """Where this machine keeps the workspace's environments."""
    explicit = os.environ.get("HEADRACE_ENVS_DIR")
    if explicit:
        return explicit
    workspace = os.environ.get("HEADRACE_WORKSPACE")
    if not workspace:
        raise fail(
            "neither HEADRACE_ENVS_DIR nor HEADRACE_WORKSPACE is set, so there is no place "
            "to keep environments. Fix: run the step through headrace (it sets both)."
        )
    return os.path.join(workspace, "envs")


def fail(message: str) -> SystemExit:
    """Say why on the step's stderr and in the run folder's marker (the step's error); the
    caller raises what this returns (the step's exit)."""
    sys.stderr.write(f"headrace: environment build failed: {message}\n")
    sys.stderr.flush()
    run_dir = os.environ.get("HEADRACE_RUN_DIR")
    if run_dir:
        try:
            os.makedirs(os.path.join(run_dir, ".headrace"), exist_ok=True)
            with open(os.path.join(run_dir, FAILED_MARKER), "w", encoding="utf-8") as fh:
                fh.write(message)
        except OSError:
            pass  # the stderr line above still says it
    return SystemExit(BUILD_FAILED)


def main(argv: list[str]) -> None:
    try:
        split = argv.index("--")
        options, script_argv = argv[:split], argv[split + 1 :]
        key = options[options.index("--key") + 1]
        spec_text = options[options.index("--spec") + 1]
        uv = options[options.index("--uv") + 1] if "--uv" in options else None
    except (ValueError, IndexError):
        raise fail("usage: envrun.py --key KEY --spec JSON [--uv UV] -- script.py ...") from None
    env_dir = os.path.join(envs_dir(), key)
    if not os.path.exists(os.path.join(env_dir, READY)):
        _ensure_built(env_dir, spec_text, uv)
    _link_headrace(env_dir)
    python = os.path.join(env_dir, "bin", "python")
    environ = dict(os.environ)
    environ["VIRTUAL_ENV"] = env_dir
    environ["PATH"] = os.path.join(env_dir, "bin") + os.pathsep + environ.get("PATH", "")
    environ.pop("PYTHONHOME", None)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(python, [python, *script_argv], environ)  # noqa: S606 (no shell: argv as given)


def _link_headrace(env_dir: str) -> None:
    """Point the environment's `headrace` at this headrace (it may have moved since the
    build); one readlink when nothing changed."""
    link = os.path.join(env_dir, LINK_DIR, "headrace")
    try:
        if os.readlink(link) == PACKAGE_DIR:
            return
    except OSError:
        pass
    temporary = f"{link}.{os.getpid()}"
    os.symlink(PACKAGE_DIR, temporary)
    os.replace(temporary, link)


def _link_dependencies(env_dir: str) -> None:
    """Link headrace's own runtime dependencies (not its extras) from headrace's environment,
    behind the environment's own packages: the run context may need them (a step on a
    machine without the workspace folder logs through the server, with the store's records
    and httpx). Nothing else of headrace's environment is visible to the step."""
    import re
    import sysconfig
    from importlib import metadata

    def normal(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    # Started with -S, this interpreter has not applied its venv (site.py does that): look
    # in the venv next to sys.executable, then in the base installation.
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    venv = os.path.dirname(os.path.dirname(sys.executable))
    sites = [os.path.join(venv, "lib", version, "site-packages"), sysconfig.get_paths()["purelib"]]
    found = {}
    for site in reversed([s for s in sites if os.path.isdir(s)]):  # the venv's win
        found.update({normal(d.metadata["Name"]): d for d in metadata.distributions(path=[site])})
    headrace = found.get("headrace")
    roots = (headrace.requires if headrace else None) or FALLBACK_REQUIREMENTS
    queue = [str(r) for r in roots]
    seen: set[str] = set()
    link_dir = os.path.join(env_dir, LINK_DIR)
    while queue:
        requirement = queue.pop()
        if "extra ==" in requirement or "extra==" in requirement:
            continue
        match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
        name = normal(match.group(0)) if match else ""
        dist = found.get(name)
        if dist is None or name in seen:
            continue
        seen.add(name)
        queue += dist.requires or []
        site = str(dist.locate_file(""))
        for top in {str(f).split("/", 1)[0] for f in dist.files or []}:
            if top.startswith(".") or top.endswith((".dist-info", ".data", ".pth")):
                continue
            if top in ("__pycache__", "bin") or os.path.exists(os.path.join(link_dir, top)):
                continue
            if os.path.exists(os.path.join(site, top)):
                os.symlink(os.path.join(site, top), os.path.join(link_dir, top))


def _ensure_built(env_dir: str, spec_text: str, uv: str | None) -> None:
    import fcntl
    import json

    spec = json.loads(spec_text)
    name = spec.get("name") or "unnamed"
    os.makedirs(os.path.dirname(env_dir), exist_ok=True)
    with open(f"{env_dir}.lock", "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _say(
                f"waiting for environment {name!r} ({os.path.basename(env_dir)}), which "
                "another step is building"
            )
            fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(os.path.join(env_dir, READY)):
            return  # built by the step we waited for
        _build(env_dir, name, spec, uv)


def _say(line: str) -> None:
    sys.stderr.write(f"headrace: {line}\n")
    sys.stderr.flush()


def _find_uv(given: str | None) -> str:
    """The uv headrace's `uv` package installed (found by the agent, `--uv`), else one next
    to this Python or on PATH (a Ray node: the agent's path may not exist there)."""
    import shutil

    if given and os.access(given, os.X_OK):
        return given
    here = os.path.join(os.path.dirname(sys.executable), "uv")
    if os.access(here, os.X_OK):
        return here
    found = shutil.which("uv")
    if found:
        return found
    raise fail(
        f"it needs uv (a dependency of headrace), found neither next to {sys.executable} nor "
        "on PATH. Fix: reinstall headrace (`pip install headrace` brings uv), or set "
        "env.python.user_managed_dependencies = True to run the step in the submitter's "
        "Python."
    )


def _run_showing(command: list[str], env: dict[str, str]) -> tuple[int, list[str]]:
    """Run `command` with its output going to the step's stderr as it comes; its exit code
    and its last few non-empty lines."""
    import collections
    import subprocess

    last: collections.deque[str] = collections.deque(maxlen=4)
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env
    ) as process:
        assert process.stdout is not None
        for raw in process.stdout:
            line = raw.decode(errors="replace")
            sys.stderr.write(line)
            sys.stderr.flush()
            if line.strip():
                last.append(line.strip())
    return process.returncode, list(last)


def _build(env_dir: str, name: str, spec: dict[str, object], uv_given: str | None) -> None:
    import json
    import shutil
    import time

    uv = _find_uv(uv_given)
    deps = spec.get("dependencies") or {}
    assert isinstance(deps, dict)
    # Conda packages arrive translated to their PyPI names (sdk/condamap.py).
    pins = [str(p) for p in [*(deps.get("pip") or []), *(deps.get("from_conda") or [])]]
    python = deps.get("python") or sys.executable
    index_url = deps.get("index_url")
    extra_urls = [str(u) for u in deps.get("extra_index_urls") or []]
    shutil.rmtree(env_dir, ignore_errors=True)  # what a failed or killed build left
    start = time.perf_counter()
    _say(
        f"building environment {name!r} ({os.path.basename(env_dir)}) with uv: "
        f"python {deps.get('python') or 'as headrace'}, packages: {', '.join(pins) or 'none'}"
    )
    env = dict(os.environ)
    env.setdefault("UV_COMPILE_BYTECODE", "1")
    env.setdefault("UV_PYTHON_DOWNLOADS", "never")  # no network for interpreters here
    env.pop("VIRTUAL_ENV", None)
    steps: list[list[str]] = [
        [uv, "venv", "--quiet", "--no-project", "--python", str(python), env_dir]
    ]
    if pins:
        requirements = os.path.join(os.path.dirname(env_dir), f"{os.path.basename(env_dir)}.txt")
        with open(requirements, "w", encoding="utf-8") as fh:
            fh.write("\n".join(pins) + "\n")
        install = [uv, "pip", "install", "--python", os.path.join(env_dir, "bin", "python")]
        if index_url:
            install += ["--index-url", str(index_url)]
        for url in extra_urls:
            install += ["--extra-index-url", url]
        steps.append([*install, "-r", requirements])
    fixes = {
        "venv": f"Fix: install Python {deps.get('python')} where uv finds it (`uv python "
        f"install {deps.get('python')}`), or leave the Python version out of the environment "
        "(python_version, or `python=` among its conda packages) to use headrace's.",
        "pip": "Fix the environment's packages (names, versions, index url) and submit again.",
    }
    for command in steps:
        # The installer's output goes to the step's stderr log, where a failure is read; its
        # last lines also go into the step's error.
        code, said = _run_showing(command, env)
        if code != 0:
            shutil.rmtree(env_dir, ignore_errors=True)
            raise fail(
                f"environment {name!r}: `uv {command[1]}` failed with exit code {code}: "
                f"{' '.join(said)[-600:].rstrip('.') or 'no output'}. {fixes[command[1]]}"
            )
    sites = [
        os.path.join(env_dir, "lib", entry, "site-packages")
        for entry in os.listdir(os.path.join(env_dir, "lib"))
        if entry.startswith("python")
    ]
    os.makedirs(os.path.join(env_dir, LINK_DIR), exist_ok=True)
    for site in sites:
        with open(os.path.join(site, PTH), "w", encoding="utf-8") as fh:
            fh.write(os.path.join(env_dir, LINK_DIR) + "\n")
    _link_headrace(env_dir)
    _link_dependencies(env_dir)
    with open(os.path.join(env_dir, READY), "w", encoding="utf-8") as fh:
        fh.write(json.dumps(spec, sort_keys=True) + "\n")
    _say(f"environment {name!r} built in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
