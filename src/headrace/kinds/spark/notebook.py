"""Jupyter notebooks run headless inside a SparkStep's process, and `dbutils` for them.

Part of the Spark kind (the SDK class checks a notebook's cells when the step is made, the
program runs them); a notebook-running step of another kind would move it to a shared
module.

A notebook's code cells run in order in one namespace, in the step's own Python process,
so they share the SparkSession the step started (as notebook cells share a Databricks
cluster's `spark`). No Jupyter kernel is started: that would need ipykernel and a second
process with a second JVM, and a notebook ported from Databricks expects `spark` and
`dbutils` to be there, not built by an injected cell.

- Parameters are widgets: `dbutils.widgets.get(name)` returns the text value passed in
  `notebook_params` or the path of an input or output named `name`; `dbutils.widgets.text(
  name, default)` defines one with a default (a passed value wins); `getArgument(name,
  default)` is the older spelling.
- `dbutils.notebook.exit(value)` ends the notebook successfully, skipping the cells after it.
- A notebook is a Jupyter `.ipynb` (format 4) or Databricks' source format (a `.py` file
  starting `# Databricks notebook source`, cells split by `# COMMAND ----------`, magics
  behind `# MAGIC`).
- Cell magics: `%md` cells are skipped, `%python` runs the rest of the cell, `%sql` runs it
  with `spark.sql` and shows the result. Other magics (`%pip`, `%sh`, `!cmd`) do not run and
  fail their cell saying so.
- A cell's printed output and its last expression's value are kept in the executed
  notebook, written where the step asks (its ./outputs, so it becomes a run file), also when
  a cell fails. A failing cell stops the notebook with a NotebookCellError showing the
  cell's source and its traceback, frames of this module left out.

Nothing here imports pyspark.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import io
import json
import linecache
import sys
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

__all__ = [
    "DBUtils",
    "NotebookCellError",
    "NotebookError",
    "NotebookExit",
    "is_databricks_source",
    "notebook_problems",
    "run_notebook",
    "user_traceback",
]


class NotebookError(Exception):
    """A notebook file that cannot be run, said in one message."""


class NotebookCellError(Exception):
    """A cell failed: `message` has the cell number, its source and the traceback."""


class NotebookExit(Exception):  # dbutils.notebook.exit is not an error
    """Raised by `dbutils.notebook.exit(value)` to end a notebook successfully."""

    def __init__(self, value: str) -> None:
        super().__init__(value)
        self.value = value


class InputWidgetNotDefinedError(LookupError):
    """`dbutils.widgets.get(name)` for a widget nobody defined (Databricks' name)."""


class Widgets:
    """Databricks' `dbutils.widgets`: text values by name."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._passed = dict(values)
        self._defaults: dict[str, str] = {}

    def get(self, name: str) -> str:
        if name in self._passed:
            return self._passed[name]
        if name in self._defaults:
            return self._defaults[name]
        known = ", ".join(sorted({*self._passed, *self._defaults})) or "none"
        raise InputWidgetNotDefinedError(
            f"No widget named {name!r} (defined: {known}); pass it in the step's "
            f"notebook_params, or define it with dbutils.widgets.text({name!r}, 'default')."
        )

    def getArgument(self, name: str, defaultValue: str | None = None) -> str | None:
        if name in self._passed or name in self._defaults or defaultValue is None:
            return self.get(name)
        return defaultValue

    def text(self, name: str, defaultValue: str = "", label: str | None = None) -> None:
        self._defaults[name] = str(defaultValue)

    def dropdown(
        self,
        name: str,
        defaultValue: str,
        choices: list[str] | None = None,
        label: str | None = None,
    ) -> None:
        self._defaults[name] = str(defaultValue)

    combobox = dropdown
    multiselect = dropdown

    def getAll(self) -> dict[str, str]:
        return {**self._defaults, **self._passed}

    def remove(self, name: str) -> None:
        self._defaults.pop(name, None)

    def removeAll(self) -> None:
        self._defaults.clear()


class _Notebook:
    """Databricks' `dbutils.notebook` (exit only: there are no other notebooks to run)."""

    def exit(self, value: Any = "") -> None:
        raise NotebookExit(str(value))


class DBUtils:
    """The `dbutils` object of a SparkStep's notebook or script: `widgets` and
    `notebook.exit`. Other parts of Databricks' dbutils (fs, secrets) are not here."""

    def __init__(self, widgets: Mapping[str, str]) -> None:
        self.widgets = Widgets(widgets)
        self.notebook = _Notebook()

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(
            f"dbutils.{name} is not available in headrace (only dbutils.widgets and "
            "dbutils.notebook.exit are); use Python's own file and os functions instead."
        )


def user_traceback(exc: BaseException, first_file: str) -> str:
    """The traceback of `exc` from the first frame in `first_file` on (the user's code),
    without the frames of the runner that called it."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != first_file:
        tb = tb.tb_next
    if tb is None:  # raised before any user line ran (a %sql cell): the error alone
        return "".join(traceback.format_exception_only(type(exc), exc))
    return "".join(traceback.format_exception(type(exc), exc, tb))


class _Tee(io.TextIOBase):
    """Writes to the step's log and keeps a copy for the notebook."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.copy = io.StringIO()

    def write(self, text: str) -> int:
        self.stream.write(text)
        self.copy.write(text)
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def _source(cell: Mapping[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


SOURCE_HEADER = "# Databricks notebook source"
_COMMAND = "\n# COMMAND ----------\n"
_MAGIC = "# MAGIC"


def is_databricks_source(path: Path) -> bool:
    """Whether `path` is a notebook in Databricks' source format (a .py export)."""
    try:
        with path.open(encoding="utf-8") as text:
            return text.readline().strip() == SOURCE_HEADER
    except (OSError, UnicodeDecodeError):
        return False


def _cell_from_source(text: str) -> dict[str, Any]:
    lines = [
        line[len(_MAGIC) :].removeprefix(" ") if line.startswith(_MAGIC) else line
        for line in text.strip("\n").split("\n")
    ]
    return {"cell_type": "code", "metadata": {}, "outputs": [], "source": "\n".join(lines)}


def _read_databricks_source(path: Path) -> dict[str, Any]:
    """A Databricks source notebook as a notebook: one cell per `# COMMAND ----------`
    block, `# MAGIC ` prefixes removed (so `%md` and `%sql` cells are magics again)."""
    text = path.read_text(encoding="utf-8").replace("\r\n", "\n")
    body = text.split("\n", 1)[1] if "\n" in text else ""
    return {
        "cells": [_cell_from_source(part) for part in f"\n{body}\n".split(_COMMAND)],
        "metadata": {"headrace": {"converted_from": "Databricks notebook source"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def _read(path: Path) -> dict[str, Any]:
    if is_databricks_source(path):
        return _read_databricks_source(path)
    try:
        notebook = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NotebookError(f"Cannot read the notebook {path.name}: {exc}.") from None
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        raise NotebookError(
            f"{path.name} is not a Jupyter notebook in format 4 (no 'cells' list); save it "
            "from Jupyter, or export it from Databricks as IPython Notebook (.ipynb)."
        )
    return notebook


def _magic_problem(code: str, exc: SyntaxError) -> str | None:
    lines = code.splitlines()
    line = lines[exc.lineno - 1].strip() if exc.lineno and exc.lineno <= len(lines) else ""
    if line.startswith(("%", "!")):
        return (
            f"line {exc.lineno}: {line!r} is a notebook magic, which does not run here (cells "
            "are plain Python; %md, %python and %sql cells are understood); remove it, and "
            "install packages into the step's environment instead of %pip."
        )
    return None


def _cell_code(code: str) -> tuple[str, str]:
    """(the cell magic, or "", and the Python to run: the cell without a %python line)."""
    first = code.lstrip().split("\n", 1)
    magic = first[0].strip() if first[0].strip().startswith("%") else ""
    if magic == "%python":
        return magic, "\n" + (first[1] if len(first) > 1 else "")  # line numbers stay
    return magic, code


def notebook_problems(path: Path) -> list[str]:
    """Every cell that cannot run, each with its number and the fix (a magic that does not
    run here, a syntax error); raises NotebookError for a file that is not a notebook."""
    problems = []
    for number, cell in enumerate(_read(path)["cells"], start=1):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        magic, code = _cell_code(_source(cell))
        if magic.startswith("%md") or magic == "%sql":
            continue
        try:
            ast.parse(code)
        except SyntaxError as exc:
            found = _magic_problem(code, exc) or f"line {exc.lineno}: {exc.msg}"
            problems.append(f"{path.name}, cell {number}, {found}")
    return problems


def _execute(code: str, filename: str, namespace: dict[str, Any]) -> Any:
    """Run a cell; the value of its last line when that is an expression (as Jupyter shows)."""
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    tree = ast.parse(code, filename)
    last: ast.Expression | None = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body[-1].value)
        tree.body.pop()
    exec(compile(tree, filename, "exec"), namespace)  # noqa: S102  # the user's own notebook
    if last is not None:
        return eval(compile(last, filename, "eval"), namespace)  # noqa: S307
    return None


def _run_cell(code: str, filename: str, namespace: dict[str, Any]) -> Any:
    magic, code = _cell_code(code)
    if magic.startswith("%md"):
        return None
    if magic == "%sql":
        lines = code.lstrip().split("\n", 1)
        result = namespace["spark"].sql(lines[1] if len(lines) > 1 else "")
        namespace["display"](result)
        return None
    return _execute(code, filename, namespace)


def _error_output(exc: BaseException, text: str) -> dict[str, Any]:
    return {
        "output_type": "error",
        "ename": type(exc).__name__,
        "evalue": str(exc),
        "traceback": text.splitlines(),
    }


def run_notebook(path: Path, namespace: dict[str, Any], save_to: Path) -> str | None:
    """Run the notebook's code cells in `namespace`, saving the executed notebook to
    `save_to`; returns the `dbutils.notebook.exit` value, if a cell called it."""
    notebook = _read(path)
    executed = copy.deepcopy(notebook)
    count = 0
    exit_value: str | None = None
    try:
        for number, cell in enumerate(executed["cells"], start=1):
            if not isinstance(cell, dict) or cell.get("cell_type") != "code":
                continue
            code = _source(cell)
            count += 1
            cell["execution_count"] = count
            outputs: list[dict[str, Any]] = []
            cell["outputs"] = outputs
            filename = f"{path.name}, cell {number}"
            out, err = _Tee(sys.stdout), _Tee(sys.stderr)
            failure: BaseException | None = None
            value: Any = None
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    value = _run_cell(code, filename, namespace)
                except NotebookExit as done:
                    exit_value = done.value
                    print(f"headrace: the notebook exited at cell {number}: {done.value}")  # noqa: T201
                except Exception as exc:
                    failure = exc
            for name, tee in (("stdout", out), ("stderr", err)):
                if tee.copy.getvalue():
                    outputs.append(
                        {"output_type": "stream", "name": name, "text": tee.copy.getvalue()}
                    )
            if failure is not None:
                problem = (
                    _magic_problem(code, failure) if isinstance(failure, SyntaxError) else None
                )
                text = problem or user_traceback(failure, filename)
                outputs.append(_error_output(failure, text))
                raise NotebookCellError(
                    f"notebook {path.name}, cell {number} failed"
                    f"{'' if problem else f' with {type(failure).__name__}: {failure}'}\n"
                    f"--- cell {number} ---\n{code.rstrip()}\n---\n{text.rstrip()}"
                )
            if value is not None:
                print(repr(value))  # noqa: T201  # in the log, as Jupyter shows it
                outputs.append(
                    {
                        "output_type": "execute_result",
                        "execution_count": count,
                        "data": {"text/plain": repr(value)},
                        "metadata": {},
                    }
                )
            if exit_value is not None:
                break
    finally:
        save_to.parent.mkdir(parents=True, exist_ok=True)
        save_to.write_text(json.dumps(executed, indent=1), encoding="utf-8")
    return exit_value
