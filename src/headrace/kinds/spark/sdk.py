"""`SparkStep` and SDK v1's `DatabricksStep`: a PySpark script or notebook as a step.

```
target = ComputeTarget.attach(ws, "spark", SparkCompute.attach_configuration(master="local[2]"))
step = SparkStep(
    python_script_name="totals.py", source_directory="jobs", inputs=[trips],
    outputs=[totals], python_script_params=["--min", PipelineParameter("min", 5)],
    spark_conf={"spark.sql.shuffle.partitions": "8"}, compute_target=target,
)
```

A SparkStep is a step of kind `spark` (see headrace.kinds): its settings travel as a
`SparkSpec` (spec.py) to its program (program.py), which builds a SparkSession on the
target's master with the target's and the step's `spark_conf`, then runs one of

- `python_script_name` in `source_directory` (snapshotted like a PythonScriptStep's folder),
- `python_script_path`, a script file (SDK v1: a file on DBFS); with no source_directory
  its folder is snapshotted, as a notebook's is,
- `notebook_path`, a Jupyter notebook (or a Databricks source notebook, a `.py` export)
  run headless in the same process, cell by cell.

`SparkSession.builder.getOrCreate()` in the code returns that session; `spark`, `sc`,
`dbutils` and `display` are also defined, as on Databricks. Inputs and outputs arrive the way
SDK v1's DatabricksStep hands them over: a script gets `-<name> <path>` arguments after its
`python_script_params` (and `--AZUREML_SCRIPT_DIRECTORY_NAME <folder>` with
`python_script_name`), a notebook gets widgets named after the ports
(`dbutils.widgets.get("input")`) beside its `notebook_params`. The path stands in for the
`wasbs://`/`dbfs:/` URI: a local folder or file that Spark reads and writes as it is. An
output's folder does not exist yet when the code starts, so `df.write.parquet(path)` works.
Parameters, PipelineParameters of any default type included, reach the code as text.

The master: a `spark` target's `master` (compute.py); a `DatabricksCompute` target's comes
from the workspace config (a `spark_master` key in the workspace folder's workspace.json),
default `local[*]`; a step on any other target, or none, uses that workspace setting too. A
target given as an object is read when the step is made; a target given by name is read
when the step starts.

Imports the SDK layer and this kind's own modules only (never the engine, never pyspark).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from headrace.errors import UserError
from headrace.kinds.spark.compute import SparkCompute
from headrace.kinds.spark.master import SparkMasterError, spark_conf_text
from headrace.kinds.spark.notebook import (
    SOURCE_HEADER,
    NotebookError,
    is_databricks_source,
    notebook_problems,
)
from headrace.kinds.spark.spec import SparkSpec
from headrace.sdk.compute import ComputeTarget
from headrace.sdk.data import input_port_name
from headrace.sdk.steps import CommandStep

__all__ = ["DatabricksStep", "SparkStep"]

KIND = "spark"


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _local_file(what: str, value: str, suffixes: tuple[str, ...]) -> Path:
    """An existing local file for `python_script_path` / `notebook_path`."""
    if value.startswith("dbfs:") or value.startswith("/Workspace/") or "://" in value:
        raise UserError(
            f"{what} {value!r} is a Databricks or cloud path, which does not exist here; copy "
            f"the file to this machine and pass its local path."
        )
    path = Path(value).expanduser().absolute()
    if not path.is_file():
        export = (
            " (a Databricks workspace path? export the notebook as IPython Notebook or Source File)"
            if what == "notebook_path"
            else ""
        )
        raise UserError(
            f"{what} {value!r} is not a file ({path}){export}; pass the path of an existing "
            "file on this machine."
        )
    if not path.name.endswith(suffixes):
        raise UserError(f"{what} {value!r} should end with {' or '.join(suffixes)}.")
    return path


def _in_snapshot(
    field: str, path: Path, source_directory: str | None
) -> tuple[dict[str, Any], str | None]:
    """A script or notebook file run from the step's snapshot: its folder is the snapshot
    when no source_directory is given (so files beside it are there too, and a change to it
    counts toward reuse). A file outside the source_directory given is used where it is,
    its content hash in the spec for reuse."""
    if source_directory is None:
        return {field: path.name}, str(path.parent)
    folder = Path(source_directory).absolute()
    if path.is_relative_to(folder):
        return {field: path.relative_to(folder).as_posix()}, source_directory
    return {field: str(path), "digest": _file_digest(path)}, source_directory


def _code_source(
    step_name: str,
    python_script_name: str | None,
    source_directory: str | None,
    python_script_path: str | None,
    notebook_path: str | None,
) -> tuple[dict[str, Any], str | None]:
    """The spec fields naming what to run (exactly one source is allowed) and the step's
    source_directory."""
    given = [
        label
        for label, value in (
            ("python_script_name", python_script_name),
            ("python_script_path", python_script_path),
            ("notebook_path", notebook_path),
        )
        if value is not None
    ]
    if len(given) != 1:
        raise UserError(
            f"Spark step {step_name!r} needs exactly one of python_script_name (with "
            f"source_directory), python_script_path or notebook_path; got "
            f"{', '.join(given) or 'none'}."
        )
    if python_script_name is not None:
        if not isinstance(python_script_name, str) or not python_script_name.endswith(".py"):
            raise UserError(f"python_script_name {python_script_name!r} should be a .py file name.")
        if source_directory is None:
            raise UserError(
                f"Spark step {step_name!r}: python_script_name needs source_directory, the "
                "folder holding the script (or pass python_script_path=<file>)."
            )
        if os.path.isdir(source_directory) and not os.path.isfile(
            os.path.join(source_directory, python_script_name)
        ):
            raise UserError(
                f"Spark step {step_name!r}: {python_script_name!r} is not in source_directory "
                f"{source_directory!r}; pass the script's path relative to that folder."
            )
        return {"script": python_script_name, "script_directory_argument": True}, source_directory
    if python_script_path is not None:
        path = _local_file("python_script_path", python_script_path, (".py",))
        return _in_snapshot("script", path, source_directory)
    assert notebook_path is not None
    path = _local_file("notebook_path", notebook_path, (".ipynb", ".py"))
    if path.suffix == ".py" and not is_databricks_source(path):
        raise UserError(
            f"notebook_path {notebook_path!r} is a .py file but not a Databricks notebook "
            f"(its first line is not '{SOURCE_HEADER}'); pass a script as python_script_path."
        )
    try:
        problems = notebook_problems(path)
    except NotebookError as exc:
        raise UserError(f"Spark step {step_name!r}: {exc}") from None
    if problems:
        raise UserError(
            f"Spark step {step_name!r}: {len(problems)} cell(s) of the notebook cannot run:\n"
            + "\n".join(f"- {p}" for p in problems)
        )
    return _in_snapshot("notebook", path, source_directory)


def _port_names(
    step_name: str, inputs: list[Any], outputs: list[Any]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The port names of the inputs and of the outputs, each told apart from the others."""
    ins: list[str] = []
    outs: list[str] = []
    seen: set[str] = set()
    for item in inputs:
        port = input_port_name(item)
        if port is None:
            raise UserError(
                f"Spark step {step_name!r}: cannot pass input {item!r}; give a DataReference, "
                "PipelineData or a named DataPath."
            )
        ins.append(port)
        seen.add(port)
    for item in outputs:
        port = getattr(item, "output_name", None)
        if not isinstance(port, str):
            raise UserError(
                f"Spark step {step_name!r}: output {item!r} is not a PipelineData; outputs are "
                "PipelineData objects."
            )
        if port in seen:
            raise UserError(
                f"Spark step {step_name!r}: the name {port!r} is used twice among inputs and "
                "outputs; each becomes an argument or widget, so give them different names."
            )
        outs.append(port)
        seen.add(port)
    return tuple(ins), tuple(outs)


def _parameter_entries(
    step_name: str, kind: str, values: Sequence[Any] | Mapping[str, Any]
) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """(key, slot) pairs and step params for script parameters or notebook widgets.

    Each value travels as a step param under its slot (so PipelineParameters of any type,
    data paths and text with placeholders become text in the step's environment), never
    through a shell; the spec names the slots.
    """
    entries: list[tuple[str, str]] = []
    params: dict[str, Any] = {}
    items = list(values.items()) if isinstance(values, Mapping) else list(enumerate(values))
    for index, (key, value) in enumerate(items):
        if isinstance(value, (list, dict, set, tuple)) or value is None:
            raise UserError(
                f"Spark step {step_name!r}: {kind} value {value!r} for {key!r} cannot be "
                "passed; use text, a number, a bool or a PipelineParameter."
            )
        slot = f"HEADRACE_SPARK_{kind.upper()}_{index}"
        params[slot] = value
        if kind == "widget":
            if not isinstance(key, str) or not key:
                raise UserError(
                    f"Spark step {step_name!r}: notebook_params key {key!r} is not a widget "
                    "name; use text keys."
                )
        entries.append((str(key), slot))
    return entries, params


def _target_fields(compute_target: Any) -> dict[str, Any]:
    """The master and settings of a target object, or its name to read when the step starts."""
    if isinstance(compute_target, SparkCompute):
        return {"master": compute_target.master, "conf": compute_target.spark_conf}
    if isinstance(compute_target, ComputeTarget):
        return {}  # another kind of target: the workspace's spark_master, else local[*]
    if isinstance(compute_target, str) and compute_target != "local":
        return {"target": compute_target}
    if isinstance(compute_target, tuple) and compute_target and isinstance(compute_target[0], str):
        return {"target": compute_target[0]}
    return {}


class SparkStep(CommandStep):
    """Runs a PySpark script or notebook with a SparkSession on its target's master."""

    kind = "spark"

    def __init__(
        self,
        python_script_name: str | None = None,
        name: str | None = None,
        inputs: Sequence[Any] | None = None,
        outputs: Sequence[Any] | None = None,
        python_script_params: Sequence[Any] | None = None,
        source_directory: str | None = None,
        compute_target: Any = None,
        allow_reuse: bool = True,
        version: str | None = None,
        *,
        python_script_path: str | None = None,
        notebook_path: str | None = None,
        notebook_params: Mapping[str, Any] | None = None,
        spark_conf: Mapping[str, Any] | None = None,
        spark_env_variables: Mapping[str, str] | None = None,
        runconfig: Any = None,
        max_retries: int = 0,
        timeout_seconds: float | None = None,
    ) -> None:
        source = python_script_name or python_script_path or notebook_path
        step_name = name or (os.path.basename(source) if isinstance(source, str) else "spark")
        code, source_directory = _code_source(
            step_name, python_script_name, source_directory, python_script_path, notebook_path
        )
        if notebook_path is None and notebook_params:
            raise UserError(
                f"Spark step {step_name!r}: notebook_params go with notebook_path; a script "
                "takes python_script_params."
            )
        if notebook_path is not None and python_script_params:
            raise UserError(
                f"Spark step {step_name!r}: python_script_params go with a script; a notebook "
                "takes notebook_params (its widgets)."
            )
        if notebook_params is not None and not isinstance(notebook_params, Mapping):
            raise UserError(
                f"Spark step {step_name!r}: notebook_params must be a dict of widget name to value."
            )
        if isinstance(python_script_params, (str, Mapping)):
            raise UserError(
                f"Spark step {step_name!r}: python_script_params must be a list of arguments, "
                "e.g. ['--rows', 100]."
            )
        inputs, outputs = list(inputs or []), list(outputs or [])
        port_inputs, port_outputs = _port_names(step_name, inputs, outputs)
        arguments, params = _parameter_entries(step_name, "argument", python_script_params or [])
        widgets, widget_params = _parameter_entries(step_name, "widget", notebook_params or {})
        params.update(widget_params)
        try:
            conf = spark_conf_text(spark_conf)
            env = spark_conf_text(spark_env_variables, "spark_env_variables")
        except SparkMasterError as exc:
            raise UserError(f"Spark step {step_name!r}: {exc}") from None
        target = _target_fields(compute_target)
        self._spec = SparkSpec(
            **code,
            inputs=port_inputs,
            outputs=port_outputs,
            arguments=tuple(slot for _, slot in arguments),
            widgets=tuple(widgets),
            master=target.get("master"),
            target=target.get("target"),
            # The step's settings over its target object's.
            conf={**target.get("conf", {}), **conf},
            env=env,
        )
        super().__init__(
            "python -m headrace.kinds",
            name=step_name,
            compute_target=compute_target,
            runconfig=runconfig,
            inputs=inputs,
            outputs=outputs,
            params=params,
            source_directory=source_directory,
            allow_reuse=allow_reuse,
            version=version,
            max_retries=max_retries,
            timeout_seconds=timeout_seconds,
        )
        self.python_script_name = python_script_name
        self.python_script_path = python_script_path
        self.notebook_path = notebook_path
        self.notebook_params = dict(notebook_params or {})
        self.python_script_params = list(python_script_params or [])
        self.spark_conf = conf
        self.spark_env_variables = env

    def _kind_spec(self) -> tuple[str, str]:
        """(kind, spec JSON): what the builder records for the step (see headrace.kinds)."""
        return KIND, self._spec.to_json()


_CLUSTER_FIELDS = (
    "spark_version",
    "node_type",
    "instance_pool_id",
    "num_workers",
    "min_workers",
    "max_workers",
)


class DatabricksStep(SparkStep):
    """SDK v1's Databricks step, run as a SparkStep on this machine (see module doc).

    The cluster arguments (existing_cluster_id, spark_version, node_type, instance_pool_id,
    num_workers, min/max_workers, init_scripts, cluster_log_dbfs_path,
    permit_cluster_restart) and the `*_libraries` are checked as SDK v1 checks them and
    recorded; they change nothing here: Spark runs on the target's master and the libraries
    must be installed in the step's environment. A JAR task (`main_class_name`) is refused.
    """

    def __init__(
        self,
        name: str,
        inputs: Sequence[Any] | None = None,
        outputs: Sequence[Any] | None = None,
        existing_cluster_id: str | None = None,
        spark_version: str | None = None,
        node_type: str | None = None,
        instance_pool_id: str | None = None,
        num_workers: int | None = None,
        min_workers: int | None = None,
        max_workers: int | None = None,
        spark_env_variables: Mapping[str, str] | None = None,
        spark_conf: Mapping[str, Any] | None = None,
        init_scripts: Sequence[str] | None = None,
        cluster_log_dbfs_path: str | None = None,
        notebook_path: str | None = None,
        notebook_params: Mapping[str, Any] | None = None,
        python_script_path: str | None = None,
        python_script_params: Sequence[Any] | None = None,
        main_class_name: str | None = None,
        jar_params: Sequence[Any] | None = None,
        python_script_name: str | None = None,
        source_directory: str | None = None,
        hash_paths: list[str] | None = None,
        run_name: str | None = None,
        timeout_seconds: int | None = None,
        runconfig: Any = None,
        maven_libraries: Sequence[Any] | None = None,
        pypi_libraries: Sequence[Any] | None = None,
        egg_libraries: Sequence[Any] | None = None,
        jar_libraries: Sequence[Any] | None = None,
        rcran_libraries: Sequence[Any] | None = None,
        compute_target: Any = None,
        allow_reuse: bool = True,
        version: str | None = None,
        permit_cluster_restart: bool | None = None,
        whl_libraries: Sequence[Any] | None = None,
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise UserError(
                "DatabricksStep needs a name, e.g. DatabricksStep(name='prepare', ...)."
            )
        cluster = {
            "spark_version": spark_version,
            "node_type": node_type,
            "instance_pool_id": instance_pool_id,
            "num_workers": num_workers,
            "min_workers": min_workers,
            "max_workers": max_workers,
        }
        if existing_cluster_id is not None:
            clashing = [k for k in _CLUSTER_FIELDS if cluster[k] is not None]
            clashing += [
                k
                for k, v in (
                    ("spark_env_variables", spark_env_variables),
                    ("spark_conf", spark_conf),
                )
                if v
            ]
            if clashing:
                raise UserError(
                    f"DatabricksStep {name!r}: existing_cluster_id cannot be combined with "
                    f"{', '.join(clashing)}; give an existing cluster or a new cluster's shape."
                )
        if num_workers is not None and (min_workers is not None or max_workers is not None):
            raise UserError(
                f"DatabricksStep {name!r}: give num_workers or min_workers and max_workers "
                "(autoscale), not both."
            )
        if (min_workers is None) != (max_workers is None):
            raise UserError(
                f"DatabricksStep {name!r}: min_workers and max_workers go together (autoscale)."
            )
        if main_class_name is not None or jar_params:
            raise UserError(
                f"DatabricksStep {name!r}: a JAR task (main_class_name={main_class_name!r}) "
                "does not run here; call the JAR's code from a python_script_name step "
                "(spark._jvm) or run spark-submit in a CommandStep."
            )
        super().__init__(
            python_script_name,
            name=name,
            inputs=inputs,
            outputs=outputs,
            python_script_params=python_script_params,
            source_directory=source_directory,
            compute_target=compute_target,
            allow_reuse=allow_reuse,
            version=version,
            python_script_path=python_script_path,
            notebook_path=notebook_path,
            notebook_params=notebook_params,
            spark_conf=spark_conf,
            spark_env_variables=spark_env_variables,
            runconfig=runconfig,
            timeout_seconds=timeout_seconds,
        )
        self.existing_cluster_id = existing_cluster_id
        self.cluster = cluster
        self.init_scripts = list(init_scripts or [])
        self.cluster_log_dbfs_path = cluster_log_dbfs_path
        self.run_name = run_name
        self.hash_paths = hash_paths
        self.permit_cluster_restart = permit_cluster_restart
        self.libraries = {
            "maven": list(maven_libraries or []),
            "pypi": list(pypi_libraries or []),
            "egg": list(egg_libraries or []),
            "jar": list(jar_libraries or []),
            "rcran": list(rcran_libraries or []),
            "whl": list(whl_libraries or []),
        }
