"""Run Azure ML SDK v1 code with its `azureml.` imports unchanged.

    python -m headrace.v1 script.py [arguments]     # runs the script as `python script.py`
    python -m headrace.v1 -m package.module [args]  # runs a module as `python -m`
    headrace run-v1 script.py [arguments]            # the same, from the command line
    %load_ext headrace.v1                            # in Jupyter or IPython
    import headrace.v1; headrace.v1.install()        # in code, before the first azureml import

Each turns on the `azureml` import alias (headrace.compat.azureml.alias): `import
azureml.core`, `from azureml.pipeline.core import Pipeline` and every other spelling give the
headrace objects. A pipeline built while the alias is on runs its Python steps through this
launcher too, so step scripts keep `from azureml.core import Run`.

The alias refuses to start where a real Azure ML SDK is importable (it would hide it): the
launcher then prints one line and exits with status 1 without running the script.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType, TracebackType

from headrace.compat.azureml.alias import install, installed, uninstall

TYPE_CHECKING = False  # typing's own flag would cost importing typing at every start
if TYPE_CHECKING:
    from typing import Any

__all__ = ["install", "installed", "load_ipython_extension", "main", "uninstall"]

USAGE = "usage: python -m headrace.v1 script.py [arguments] | -m module [arguments]"


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext headrace.v1`: turn the alias on in the kernel (one line if it refuses)."""
    try:
        install()
    except Exception as exc:
        if not _refused(exc):
            raise
        sys.stderr.write(f"{exc}\n")


def unload_ipython_extension(ipython: Any) -> None:
    """`%unload_ext headrace.v1`: turn the alias off again."""
    uninstall()


def main(argv: list[str] | None = None) -> int:
    """Run a script or module (argv as after `python`) with the alias on; the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help") or (args[0] == "-m" and len(args) < 2):
        sys.stderr.write(USAGE + "\n")
        return 0 if args[:1] in (["-h"], ["--help"]) else 2
    # sys.path[0] as `python script.py` (the script's folder) or `python -m` (the current
    # folder) has it, before the alias looks for a real SDK on sys.path.
    first = os.getcwd() if args[0] == "-m" else os.path.dirname(os.path.abspath(args[0]))
    if sys.path:
        sys.path[0] = first
    else:
        sys.path.append(first)
    try:
        install()
    except Exception as exc:
        if not _refused(exc):
            raise
        sys.stderr.write(f"error: {exc}\n")
        return 1
    try:
        if args[0] == "-m":
            _run_module(args[1], args[2:])
        else:
            _run_file(args[0], args[1:])
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:  # the script's own error: shown as Python shows it
        # The display takes the exception's own traceback, so that is what gets trimmed.
        exc.__traceback__ = _user_frames(exc.__traceback__)
        sys.excepthook(type(exc), exc, exc.__traceback__)
        return 1
    return 0


def _refused(exc: Exception) -> bool:
    """Whether `exc` is the alias refusing beside a real SDK (headrace.errors is imported
    only on this path: a launch that goes well never loads it)."""
    from headrace.errors import AliasConflictError

    return isinstance(exc, AliasConflictError)


def _run_file(path: str, args: list[str]) -> None:
    """Execute `path` as `__main__`, as `python path args` does."""
    try:
        with open(path, "rb") as source_file:
            source = source_file.read()
    except OSError as exc:
        sys.stderr.write(
            f"headrace.v1: can't open file {path!r}: [Errno {exc.errno}] {exc.strerror}\n"
        )
        raise SystemExit(2) from None
    sys.argv[:] = [path, *args]
    module = ModuleType("__main__")
    module.__file__ = path
    module.__builtins__ = __builtins__  # type: ignore[attr-defined]
    sys.modules["__main__"] = module
    code = compile(source, path, "exec", dont_inherit=True)
    exec(code, module.__dict__)  # noqa: S102 (running the user's script is the point)


def _run_module(name: str, args: list[str]) -> None:
    """Run module `name` as `__main__`, as `python -m name args` does."""
    import runpy

    sys.argv[:] = [name, *args]
    runpy.run_module(name, run_name="__main__", alter_sys=True)


def _user_frames(tb: TracebackType | None) -> TracebackType | None:
    """The traceback without this launcher's (and runpy's) frames at its head."""
    import runpy

    ours = {os.path.abspath(__file__), os.path.abspath(runpy.__file__ or "runpy")}
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename != "<frozen runpy>" and os.path.abspath(filename) not in ours:
            break
        tb = tb.tb_next
    return tb


if __name__ == "__main__":
    sys.exit(main())
