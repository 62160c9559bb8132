"""Finding the pipeline of `headrace run submit FILE.py[:OBJECT]`.

The file is loaded as a module (not as `__main__`, so its `if __name__ == "__main__":`
block does not run) with its folder first on `sys.path` and as the current folder, so
relative `source_directory` paths and sibling imports work as when running the file there.
Both are restored afterwards. OBJECT is a Pipeline or a function returning one, of no
arguments or of the workspace alone (`def build_pipeline(ws)`); without it the file must hold
exactly one Pipeline at module level. A file or helper module that raises while loading is
reported with the traceback through the user's frames (not headrace's).
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from headrace.errors import HeadraceError, UserError
from headrace.graph.validate import did_you_mean
from headrace.sdk.data import DataPath
from headrace.sdk.pipeline import Pipeline

__all__ = ["datapath_params", "loaded_pipeline", "parse_params", "split_spec", "typed_params"]


def split_spec(spec: str) -> tuple[Path, str | None]:
    """`pipeline.py:build` -> (pipeline.py, "build"); `pipeline.py` -> (pipeline.py, None)."""
    path_text, sep, name = spec.rpartition(":")
    if sep and path_text and name.isidentifier():
        return Path(path_text), name
    return Path(spec), None


def parse_params(assignments: list[str]) -> dict[str, str]:
    """`--param k=v` values as a dict of strings (submit converts them to each parameter's
    type and names unknown parameters)."""
    params: dict[str, str] = {}
    for item in assignments:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise UserError(
                f"--param expects NAME=VALUE, got {item!r}; for example --param lr=0.1."
            )
        if name in params:
            raise UserError(f"--param {name} is given twice; give each parameter once.")
        params[name] = value
    return params


def datapath_params(pipeline: Pipeline, params: dict[str, str]) -> dict[str, Any]:
    """`params` with the values of DataPath parameters, given as DATASTORE:PATH, made
    DataPaths; other values stay text for submit to convert."""
    return typed_params({p.name: p.type for p in pipeline.graph.parameters}, params, DataPath)


def typed_params(
    kinds: Mapping[str, str], params: dict[str, str], make: Any = None
) -> dict[str, Any]:
    """`params` (by name, the parameters' `kinds`) with each DataPath parameter's
    DATASTORE:PATH split: `make(datastore, path)`, or a {"datastore", "path"} dict."""
    values: dict[str, Any] = {}
    for name, value in params.items():
        if kinds.get(name) != "datapath":
            values[name] = value
            continue
        datastore, sep, path = value.partition(":")
        if not sep or not datastore:
            raise UserError(
                f"--param {name} is a DataPath parameter; give DATASTORE:PATH, for example "
                f"--param {name}=workspaceblobstore:data/train.csv."
            )
        values[name] = make(datastore, path) if make else {"datastore": datastore, "path": path}
    return values


@contextlib.contextmanager
def _in_folder(folder: Path) -> Iterator[None]:
    old_cwd = Path.cwd()
    old_path = list(sys.path)
    sys.path.insert(0, str(folder))
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(old_cwd)
        sys.path[:] = old_path


_HEADRACE = Path(__file__).resolve().parents[1]  # the installed package: our frames


def _theirs(frame: traceback.FrameSummary) -> bool:
    """A frame of the user's code (or a library it called), not headrace's or importlib's."""
    if frame.filename.startswith("<"):  # <frozen importlib._bootstrap>, <string>
        return False
    return not Path(frame.filename).resolve().is_relative_to(_HEADRACE)


def _where(exc: BaseException, path: Path) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename) == path]
    return f" (line {frames[-1].lineno})" if frames else ""


def _their_traceback(exc: BaseException, path: Path) -> str:
    """The traceback through the user's frames only, when it goes beyond the pipeline file
    (a helper module it imports, a library it calls); empty when the file's line says all."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if _theirs(f)]
    if all(Path(f.filename) == path for f in frames):
        return ""
    listing = "".join(traceback.format_list(frames)).rstrip()
    return f"\nTraceback (most recent call last; your code only):\n{listing}"


def _user_code_error(exc: Exception, path: Path, doing: str) -> UserError:
    return UserError(
        f"{path.name}{_where(exc, path)} raised {type(exc).__name__} while {doing}: {exc}"
        f"{_their_traceback(exc, path)}"
    )


def _exec_module(path: Path) -> ModuleType:
    stem = re.sub(r"\W", "_", path.stem)
    name = f"headrace_pipeline_file_{stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UserError(f"Cannot load {path} as Python; give a .py file.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look their module up here
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _load_module(path: Path) -> ModuleType:
    try:
        return _exec_module(path)
    except HeadraceError:
        raise
    except SystemExit as exc:
        raise UserError(
            f"{path.name} called exit({exc.code}) while being loaded; move that code under "
            "`if __name__ == '__main__':`."
        ) from exc
    except Exception as exc:
        raise _user_code_error(exc, path, "being loaded") from exc


def _functions(module: ModuleType) -> list[str]:
    return [
        name
        for name, value in vars(module).items()
        if inspect.isfunction(value)
        and value.__module__ == module.__name__
        and not name.startswith("_")
    ]


def _takes_workspace(function: Any, name: str) -> bool:
    """Whether `function`'s one required parameter `name` is the workspace: named ws or
    workspace, or annotated Workspace."""
    parameter = inspect.signature(function).parameters[name]
    annotation = parameter.annotation
    named = getattr(annotation, "__name__", annotation)  # a class, or its name as text
    return name in ("ws", "workspace") or named == "Workspace"


def _pick(
    module: ModuleType, object_name: str | None, path: Path, workspace: Callable[[], Any]
) -> Pipeline:
    if object_name is None:
        found = [
            name
            for name, value in vars(module).items()
            if isinstance(value, Pipeline) and not name.startswith("_")
        ]
        if len(found) == 1:
            return getattr(module, found[0])  # type: ignore[no-any-return]
        if found:
            raise UserError(
                f"{path.name} defines several Pipelines ({', '.join(found)}); choose one: "
                f"{path.name}:{found[0]}."
            )
        functions = _functions(module)
        hint = f" (its functions: {', '.join(functions)})" if functions else ""
        raise UserError(
            f"{path.name} defines no Pipeline at module level; assign one to a variable, or "
            "name a function that returns one (taking nothing, or the workspace), as "
            f"{path.name}:FUNCTION{hint}."
        )
    if not hasattr(module, object_name):
        names = [n for n in vars(module) if not n.startswith("_")]
        candidates = [
            n for n in names if isinstance(vars(module)[n], Pipeline) or n in _functions(module)
        ]
        raise UserError(
            f"{path.name} has no {object_name!r}{did_you_mean(object_name, names)}; "
            f"Pipelines and functions in it: {', '.join(candidates) or 'none'}."
        )
    value: Any = getattr(module, object_name)
    if isinstance(value, Pipeline):
        return value
    if not callable(value):
        raise UserError(
            f"{path.name}:{object_name} is a {type(value).__name__}; name a Pipeline or a "
            "function that returns one."
        )
    try:
        required = [
            p.name
            for p in inspect.signature(value).parameters.values()
            if p.default is inspect.Parameter.empty
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
    except (TypeError, ValueError):
        required = []
    arguments: list[Any] = []
    if len(required) == 1 and _takes_workspace(value, required[0]):
        arguments = [workspace()]  # build_pipeline(ws), as the flagship example is
    elif required:
        raise UserError(
            f"{path.name}:{object_name} needs arguments ({', '.join(required)}); name a "
            "function of no arguments or of the workspace alone (def build(ws): ...), or "
            "give the others defaults."
        )
    try:
        result = value(*arguments)
    except HeadraceError:
        raise
    except Exception as exc:
        raise _user_code_error(exc, path, f"running {object_name}()") from exc
    if not isinstance(result, Pipeline):
        raise UserError(
            f"{path.name}:{object_name}() returned a {type(result).__name__}, not a Pipeline."
        )
    return result


@contextlib.contextmanager
def loaded_pipeline(spec: str, workspace: Callable[[], Any]) -> Iterator[Pipeline]:
    """The pipeline named by `FILE.py[:OBJECT]`; the body runs in the file's folder (submit
    resolves relative source directories there). `workspace()` opens the workspace for a
    function that takes it."""
    path, object_name = split_spec(spec)
    path = path.expanduser().absolute()
    if not path.is_file():
        raise UserError(
            f"No pipeline file {path}; give a Python file, for example pipeline.py or "
            "pipeline.py:build_pipeline."
        )
    if path.suffix != ".py":
        raise UserError(f"{path} is not a .py file; give the Python file defining the pipeline.")
    with _in_folder(path.parent):
        module = _load_module(path)
        try:
            yield _pick(module, object_name, path, workspace)
        finally:
            sys.modules.pop(module.__name__, None)
