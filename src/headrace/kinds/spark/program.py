"""The program of a SparkStep's process: a SparkSession, then the step's script or notebook.

`SparkStep` (sdk.py) makes a step of kind `spark` whose `SparkSpec` (spec.py) names what to
run, its ports, its parameter slots and its master; `headrace.kinds.main` calls `main(spec)`
here. Values never pass through a shell: an input's or output's path comes from
`AZUREML_DATAREFERENCE_<NAME>` and a parameter's text from `AML_PARAMETER_<SLOT>`, both set
by the runtime.

1. The master: `spec.master` (a target object's, fixed when the step was made), else the
   target named by `spec.target` read now, else the workspace setting `spark_master`, else
   local[*]. It is checked first (a `spark://` master must answer a TCP connection within
   seconds), so an unreachable master fails the step with one line instead of Spark's
   minute of retries.
2. The SparkSession: on that master, driver bound to 127.0.0.1 (SPARK_LOCAL_IP too), no
   UI, then the target's and the step's `spark_conf`. `SparkSession.builder.getOrCreate()`
   in user code returns it.
3. The code, with `spark`, `sc`, `dbutils` and `display` defined:
   - a script runs as `__main__` with `sys.argv = [script, *python_script_params,
     -<input> <path>, ..., -<output> <path>, ...]`, plus `--AZUREML_SCRIPT_DIRECTORY_NAME
     <its folder>` for a `python_script_name` script (SDK v1's DatabricksStep arguments);
   - a notebook runs cell by cell (notebook.py) with its widgets: the `notebook_params`
     and one per input and output holding its path. The executed notebook is saved as
     `./outputs/<name>.ipynb` (also for a Databricks source notebook, a `.py`), a run file.
   An output's folder is removed before the code starts when empty (Spark writes refuse
   an existing path) and made again, empty, if the code wrote nothing there.

A failure ends the process with exit code 1 and a readable message on stderr: the user's
traceback (frames of this module left out), or the failing cell with its source.

Only the step's process imports this module (through the kind registry), so importing
headrace never imports pyspark.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
from pathlib import Path
from typing import Any

from headrace.graph.model import STEP_ERROR_PREFIX
from headrace.kinds.spark.master import (
    DEFAULT_MASTER,
    SparkMasterError,
    check_master,
    loopback_conf,
    spark_conf_text,
    workspace_master,
)
from headrace.kinds.spark.notebook import (
    DBUtils,
    NotebookCellError,
    NotebookError,
    NotebookExit,
    run_notebook,
    user_traceback,
)
from headrace.kinds.spark.spec import SparkSpec

__all__ = ["SparkStepError", "main"]

PREFIX = "SparkStep failed: "


class SparkStepError(Exception):
    """A problem before or around the user's code, said in one message; `summary` is its
    one line for the step's error (the message's first line unless given)."""

    def __init__(self, message: str, summary: str | None = None) -> None:
        super().__init__(message)
        self.summary = summary or (message.splitlines() or [""])[0]


def _environment_value(prefix: str, name: str) -> str:
    key = f"{prefix}{name}"
    if key not in os.environ:
        raise SparkStepError(f"{key} is not set; run this as a SparkStep of a pipeline.")
    return os.environ[key]


def _workspace_config() -> dict[str, Any]:
    if "HEADRACE_SPARK_MASTER" in os.environ:  # set by the runtime: no need to read the file
        return {"spark_master": os.environ["HEADRACE_SPARK_MASTER"]}
    root = os.environ.get("HEADRACE_WORKSPACE")
    if not root:
        return {}
    from headrace.store.layout import WorkspaceLayout

    return WorkspaceLayout(Path(root)).read_config()


def _target_settings(name: str) -> tuple[str, dict[str, str]]:
    """The master and settings of the target `name`: given by the runtime when it is the
    step's own target (an isolated step cannot open the workspace), else read from it."""
    given = json.loads(os.environ.get("HEADRACE_COMPUTE_TARGET") or "{}")
    if given.get("name") == name:
        return _target_record_settings(name, given.get("type"), given.get("config") or {})
    from headrace.store.workspace_store import WorkspaceStore

    root = os.environ.get("HEADRACE_WORKSPACE")
    if not root:
        raise SparkStepError(f"HEADRACE_WORKSPACE is not set; cannot read target {name!r}.")
    store = WorkspaceStore.open(Path(root))
    try:
        record = store.meta.find_compute_target(name)
        config = store.config
    finally:
        store.close()
    if record is None or record.type != "spark":
        return workspace_master(config), {}
    return _target_record_settings(name, record.type, record.config)


def _target_record_settings(
    name: str, type_: Any, config: dict[str, Any]
) -> tuple[str, dict[str, str]]:
    if type_ != "spark":
        return workspace_master(_workspace_config()), {}
    master = config.get("master") or DEFAULT_MASTER
    try:
        return str(master), spark_conf_text(config.get("spark_conf"))
    except SparkMasterError as exc:
        raise SparkStepError(f"Compute target {name!r}: {exc}") from None


def _settings(spec: SparkSpec) -> tuple[str, dict[str, str]]:
    conf = loopback_conf()
    scratch = os.environ.get("TMPDIR")
    if scratch:
        # Spark's and the JVM's temporary files go where the step may write (an isolated
        # step writes nothing outside its own folders; the JVM ignores TMPDIR).
        conf["spark.local.dir"] = scratch
        conf["spark.driver.extraJavaOptions"] += f" -Djava.io.tmpdir={scratch}"
    if spec.master:
        master = spec.master
    elif spec.target:
        master, target_conf = _target_settings(spec.target)
        conf.update(target_conf)
    else:
        master = workspace_master(_workspace_config())
    conf.update(spec.conf)
    return master, conf


def _start_session(master: str, conf: dict[str, str], app_name: str) -> Any:
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise SparkStepError(
            "pyspark is not installed in the interpreter that runs steps "
            f"({sys.executable}); install it with: pip install 'headrace[spark]'."
        ) from None
    builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in conf.items():
        builder = builder.config(key, value)
    try:
        return builder.getOrCreate()
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise SparkStepError(
            f"Spark did not start on {master} ({first}); Spark needs Java 17 or newer on "
            "PATH or in JAVA_HOME (check with `java -version`)."
        ) from None


def _display(value: Any) -> None:
    """Databricks' `display`: a DataFrame's first rows as a table, anything else printed."""
    show = getattr(value, "show", None)
    if callable(show):
        show(truncate=False)
    else:
        print(value)  # noqa: T201


def _run_script(path: Path, argv: list[str], namespace: dict[str, Any]) -> None:
    if not path.is_file():
        raise SparkStepError(f"The script {path} does not exist.")
    sys.argv = [str(path), *argv]
    sys.path.insert(0, str(path.parent))
    try:
        runpy.run_path(str(path), init_globals=namespace, run_name="__main__")
    except SystemExit as exc:
        if exc.code not in (None, 0):
            raise SparkStepError(f"{path.name} exited with code {exc.code}.") from None
    except NotebookExit as done:
        print(f"headrace: the script exited: {done.value}")  # noqa: T201
    except Exception as exc:
        raise SparkStepError(
            f"{path.name} raised {type(exc).__name__}\n{user_traceback(exc, str(path))}".rstrip(),
            f"{path.name} raised {type(exc).__name__}: {exc}",
        ) from None


def _clear_outputs(outputs: dict[str, Path]) -> None:
    for path in outputs.values():
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()


def _restore_outputs(outputs: dict[str, Path]) -> None:
    for path in outputs.values():
        if not path.exists():
            path.mkdir(parents=True, exist_ok=True)


def _run(spec: SparkSpec) -> None:
    master, conf = _settings(spec)
    try:
        check_master(master)
    except SparkMasterError as exc:
        raise SparkStepError(str(exc)) from None
    inputs = {n: Path(_environment_value("AZUREML_DATAREFERENCE_", n)) for n in spec.inputs}
    outputs = {n: Path(_environment_value("AZUREML_DATAREFERENCE_", n)) for n in spec.outputs}
    values = [_environment_value("AML_PARAMETER_", slot) for slot in spec.arguments]
    widgets = {name: str(path) for name, path in {**inputs, **outputs}.items()}
    for name, slot in spec.widgets:
        widgets[name] = _environment_value("AML_PARAMETER_", slot)
    os.environ.update(spec.env)
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    cwd = Path.cwd()
    code = Path(spec.script or spec.notebook or "")
    session = _start_session(master, conf, os.environ.get("HEADRACE_STEP_NAME") or code.stem)
    print(f"headrace: Spark {session.version} on {master}")  # noqa: T201
    dbutils = DBUtils(widgets)
    namespace: dict[str, Any] = {
        "spark": session,
        "sc": session.sparkContext,
        "dbutils": dbutils,
        "display": _display,
        # Databricks notebooks also have the widget getter as a global function.
        "getArgument": dbutils.widgets.getArgument,
    }
    _clear_outputs(outputs)
    try:
        if spec.notebook:
            namespace["__name__"] = "__main__"
            target = cwd / "outputs" / f"{code.stem}.ipynb"
            try:
                run_notebook(cwd / code, namespace, target)
            except NotebookCellError as exc:
                raise SparkStepError(
                    f"{exc}\nThe executed notebook is the run file outputs/{target.name}."
                ) from None
            except NotebookError as exc:
                raise SparkStepError(str(exc)) from None
        else:
            argv = list(values)
            for name, path in {**inputs, **outputs}.items():
                argv += [f"-{name}", str(path)]
            if spec.script_directory_argument:
                argv += ["--AZUREML_SCRIPT_DIRECTORY_NAME", str(cwd)]
                os.environ["AZUREML_SCRIPT_DIRECTORY_NAME"] = str(cwd)
            _run_script(cwd / code, argv, namespace)
    finally:
        _restore_outputs(outputs)
        session.stop()


def main(spec: SparkSpec) -> int:
    try:
        _run(spec)
    except SparkStepError as exc:
        sys.stdout.flush()
        print(f"{PREFIX}{exc}", file=sys.stderr)  # noqa: T201
        # The step's error message (the run's, the portal's) is the reason, not an exit code.
        print(STEP_ERROR_PREFIX + " ".join(exc.summary.split()), file=sys.stderr)  # noqa: T201
        return 1
    return 0
