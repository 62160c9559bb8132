"""SparkStep / DatabricksStep: PySpark scripts and notebooks as pipeline steps, run for real.

The tests that start no JVM come first (attach checks, bad input, the SDK v1 signature, a
step recorded in the old argv form). A step's process starts its own Spark driver JVM (6 s
on two idle cores, far more under load), so the Spark runs below share one: the
`shared_jvm` fixture starts a driver JVM once for the module and hands its py4j gateway to
the steps' processes (PYSPARK_GATEWAY_PORT/SECRET, pyspark's own way of attaching to a
running driver, as spark-submit does); each step still builds and stops its own
SparkContext and SparkSession in it, with its own master and settings. Steps sharing it run
one at a time (one SparkContext per JVM). The SDK v1 script test starts its JVM the way
every step does outside these tests, so that path stays covered.
"""

from __future__ import annotations

import inspect
import json
import os
import shlex
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from headrace import (
    CommandStep,
    ComputeTarget,
    DatabricksCompute,
    DatabricksStep,
    DataReference,
    Experiment,
    Pipeline,
    PipelineData,
    PipelineParameter,
    PipelineRun,
    PythonScriptStep,
    SparkCompute,
    SparkStep,
    Workspace,
)
from headrace.errors import ComputeTargetException, UserError
from headrace.kinds.spark.legacy import spec_from_argv
from headrace.kinds.spark.spec import SparkSpec

TRIPS_CSV = "id,city,amount\n1,Oslo,10.5\n2,Oslo,4\n3,Bergen,7\n4,Bergen,1\n5,Tromso,2\n"
UNREACHABLE = "spark://127.0.0.1:1"

READER = """
import os, sys
import duckdb
folder = sys.argv[1]
files = sorted(f for f in os.listdir(folder) if f.endswith(".parquet"))
print("parquet files:", len(files) > 0)
rows = duckdb.sql(f"SELECT * FROM read_parquet('{folder}/*.parquet') ORDER BY 1").fetchall()
print("rows:", rows)
"""


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def _notebook(folder: Path, name: str, *cells: str) -> Path:
    notebook = {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": None,
                "metadata": {},
                "outputs": [],
                "source": textwrap.dedent(cell).strip().splitlines(keepends=True),
            }
            for cell in cells
        ],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    return _write(folder, name, json.dumps(notebook))


def _upload_trips(ws: Workspace, tmp_path: Path, name: str = "trips") -> DataReference:
    local = tmp_path / "upload" / "raw" / "trips.csv"
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_text(TRIPS_CSV)
    store = ws.get_default_datastore()
    store.upload_files([str(local)], target_path="raw", show_progress=False)
    return DataReference(store, name, "raw/trips.csv")


def _reader(tmp_path: Path, data: PipelineData) -> PythonScriptStep:
    """A next step printing the parquet files of `data` with DuckDB."""
    _write(tmp_path / "py", "read.py", READER)
    return PythonScriptStep(
        "read.py",
        name="reader",
        arguments=[data],
        inputs=[data],
        source_directory=str(tmp_path / "py"),
    )


def _submit(ws: Workspace, steps: list[object], **kwargs: object) -> PipelineRun:
    run = Experiment(ws, "spark").submit(Pipeline(ws, steps=steps), **kwargs)
    run.wait_for_completion(show_output=False, raise_on_error=False)
    return run


def _set_workspace_master(ws: Workspace, master: str) -> Workspace:
    """Write `spark_master` into the workspace's workspace.json; a fresh Workspace reads it."""
    root = Path(ws._path or "")
    config = json.loads((root / "workspace.json").read_text())
    config["spark_master"] = master
    (root / "workspace.json").write_text(json.dumps(config))
    return Workspace(path=root)


@pytest.fixture(scope="module")
def jvm_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """One Spark driver JVM for the module; its gateway's port and secret."""
    from pyspark import SparkConf
    from pyspark.java_gateway import launch_gateway

    log = tmp_path_factory.mktemp("jvm") / "jvm.log"
    # Short runs on two cores: the client compiler only and one GC thread roughly halve the
    # JVM's warm-up here (steps outside tests keep the JVM's defaults).
    options = "-XX:-UsePerfData -XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
    conf = SparkConf(loadDefaults=False).set("spark.driver.extraJavaOptions", options)
    saved = os.environ.get("SPARK_LOCAL_IP")
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    try:
        with log.open("wb") as out:
            gateway = launch_gateway(conf, popen_kwargs={"stdout": out, "stderr": out})
    finally:
        if saved is None:
            os.environ.pop("SPARK_LOCAL_IP")
        else:
            os.environ["SPARK_LOCAL_IP"] = saved
    parameters = gateway.java_parameters
    yield {
        "PYSPARK_GATEWAY_PORT": str(parameters.port),
        "PYSPARK_GATEWAY_SECRET": str(parameters.auth_token),
    }
    gateway.close()
    proc = gateway.proc
    proc.stdin.close()  # the JVM exits when its stdin closes
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def shared_jvm(jvm_gateway: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Steps started in this test attach to the module's JVM (the agent passes its
    environment on to them)."""
    for key, value in jvm_gateway.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


# -- no JVM ------------------------------------------------------------------------------------


def test_attach_checks_the_master(ws: Workspace, listening_port: int) -> None:
    target = ComputeTarget.attach(
        ws,
        "spark2",
        SparkCompute.attach_configuration(
            master="local[2]", spark_conf={"spark.sql.shuffle.partitions": 3}
        ),
    )
    assert type(target) is SparkCompute
    assert type(ComputeTarget(ws, "spark2")) is SparkCompute
    assert target.master == "local[2]"
    assert target.spark_conf == {"spark.sql.shuffle.partitions": "3"}
    standalone = f"spark://127.0.0.1:{listening_port}"
    attached = ComputeTarget.attach(
        ws, "standalone", SparkCompute.attach_configuration(master=standalone)
    )
    assert attached.master == standalone  # type: ignore[attr-defined]

    for master, says in [
        ("yarn", "not supported"),
        ("local[0]", "not supported"),
        ("spark://nohost", "is not spark://host:port"),
    ]:
        with pytest.raises(ComputeTargetException, match=says) as info:
            ComputeTarget.attach(ws, "bad", SparkCompute.attach_configuration(master=master))
        assert "local[*]" in str(info.value)
    with pytest.raises(ComputeTargetException, match="Spark settings are text"):
        SparkCompute.attach_configuration(spark_conf={"spark.x": [1]}).validate_configuration()

    started = time.monotonic()
    with pytest.raises(ComputeTargetException) as info:
        ComputeTarget.attach(ws, "down", SparkCompute.attach_configuration(master=UNREACHABLE))
    assert time.monotonic() - started < 5
    message = str(info.value)
    assert f"Spark master {UNREACHABLE} cannot be reached" in message
    assert "start the master" in message and "master='local[*]'" in message
    assert "down" not in {t.name for t in ComputeTarget.list(ws)}


def test_databricks_compute_takes_its_master_from_the_workspace(ws: Workspace) -> None:
    config = DatabricksCompute.attach_configuration(
        resource_group="rg", workspace_name="dbw", access_token="dapi-secret"
    )
    target = ComputeTarget.attach(ws, "databricks", config)
    assert type(target) is DatabricksCompute
    assert target.master == "local[*]"
    assert "dapi-secret" not in json.dumps(target.serialize())
    assert target.serialize()["properties"]["workspace_name"] == "dbw"
    reopened = _set_workspace_master(ws, "local[1]")
    assert ComputeTarget(reopened, "databricks").master == "local[1]"  # type: ignore[attr-defined]


def test_bad_step_input_is_refused_when_the_step_is_made(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs"
    _write(jobs, "job.py", "print('hi')\n")
    notebook = _notebook(jobs, "nb.ipynb", "print(1)")
    cases = [
        (lambda: SparkStep(), "exactly one of python_script_name"),
        (
            lambda: SparkStep("job.py", source_directory=str(jobs), notebook_path=str(notebook)),
            "got python_script_name, notebook_path",
        ),
        (lambda: SparkStep("job.py"), "python_script_name needs source_directory"),
        (lambda: SparkStep("nope.py", source_directory=str(jobs)), "'nope.py' is not in"),
        (
            lambda: SparkStep(python_script_path="dbfs:/jobs/job.py"),
            "Databricks or cloud path, which does not exist here",
        ),
        (lambda: SparkStep(notebook_path=str(jobs / "missing.ipynb")), "is not a file"),
        (
            lambda: SparkStep(notebook_path="/Users/me@example.com/etl"),
            "a Databricks workspace path\\? export the notebook",
        ),
        (
            lambda: SparkStep(notebook_path=str(jobs / "job.py")),
            "is a .py file but not a Databricks notebook",
        ),
        (
            lambda: SparkStep("job.py", source_directory=str(jobs), notebook_params={"a": "1"}),
            "notebook_params go with notebook_path",
        ),
        (
            lambda: SparkStep(notebook_path=str(notebook), python_script_params=["--a"]),
            "python_script_params go with a script",
        ),
        (
            lambda: SparkStep(notebook_path=str(notebook), notebook_params={"a": [1]}),
            "cannot be passed",
        ),
        (
            lambda: SparkStep(
                "job.py", source_directory=str(jobs), spark_conf={"spark.x": {"a": 1}}
            ),
            "Spark settings are text",
        ),
        (
            lambda: SparkStep(
                "job.py",
                source_directory=str(jobs),
                inputs=[PipelineData("same")],
                outputs=[PipelineData("same")],
            ),
            "'same' is used twice",
        ),
        (
            lambda: DatabricksStep(
                "db", existing_cluster_id="0101-abc", num_workers=1, notebook_path=str(notebook)
            ),
            "existing_cluster_id cannot be combined with num_workers",
        ),
        (
            lambda: DatabricksStep(
                "db", num_workers=2, min_workers=1, max_workers=3, notebook_path=str(notebook)
            ),
            "not both",
        ),
        (
            lambda: DatabricksStep("db", main_class_name="com.example.Main", num_workers=1),
            "a JAR task .* does not run here; call the JAR's code from a python_script_name",
        ),
    ]
    magics = _notebook(
        jobs, "magics.ipynb", "%pip install pandas", "x = (", "%md fine", "%sql\nSELECT 1"
    )
    cases.append(
        (
            lambda: SparkStep(notebook_path=str(magics)),
            r"2 cell\(s\) of the notebook cannot run:\n"
            r"- magics.ipynb, cell 1, line 1: '%pip install pandas' is a notebook magic, which "
            r"does not run here .*\n- magics.ipynb, cell 2, line 1: '\(' was never closed",
        )
    )
    for make, says in cases:
        with pytest.raises(UserError, match=says):
            make()


def test_databricks_step_keeps_the_sdk_v1_signature() -> None:
    names = list(inspect.signature(DatabricksStep).parameters)
    assert names[:33] == [
        "name", "inputs", "outputs", "existing_cluster_id", "spark_version", "node_type",
        "instance_pool_id", "num_workers", "min_workers", "max_workers", "spark_env_variables",
        "spark_conf", "init_scripts", "cluster_log_dbfs_path", "notebook_path",
        "notebook_params", "python_script_path", "python_script_params", "main_class_name",
        "jar_params", "python_script_name", "source_directory", "hash_paths", "run_name",
        "timeout_seconds", "runconfig", "maven_libraries", "pypi_libraries", "egg_libraries",
        "jar_libraries", "rcran_libraries", "compute_target", "allow_reuse",
    ]  # fmt: skip
    assert {"version", "permit_cluster_restart", "whl_libraries"} <= set(names)


def test_unreachable_master_fails_the_step_in_seconds(ws: Workspace, tmp_path: Path) -> None:
    ws = _set_workspace_master(ws, UNREACHABLE)
    target = ComputeTarget.attach(ws, "databricks", DatabricksCompute.attach_configuration())
    _write(tmp_path / "jobs", "job.py", "print('never runs')\n")
    by_object = DatabricksStep(
        "by_object",
        python_script_name="job.py",
        source_directory=str(tmp_path / "jobs"),
        compute_target=target,
        num_workers=1,
    )
    by_name = SparkStep(
        "job.py", name="by_name", source_directory=str(tmp_path / "jobs"), compute_target="local"
    )
    started = time.monotonic()
    run = _submit(ws, [by_object, by_name], continue_on_step_failure=True)
    assert time.monotonic() - started < 30
    assert run.get_status() == "Failed"
    for name in ("by_object", "by_name"):
        step = run.find_step_run(name)[0]
        assert step.get_status() == "Failed"
        stderr = step.get_stderr_log().strip()
        assert stderr.splitlines() == [
            f"SparkStep failed: Spark master {UNREACHABLE} cannot be reached (127.0.0.1:1: "
            "Connection refused); start the master (sbin/start-master.sh) or use one that "
            "runs, e.g. master='local[*]'."
        ]
        assert "never runs" not in step.get_stdout_log()


def test_making_spark_steps_loads_neither_the_engine_nor_pyspark() -> None:
    code = (
        "import sys; from headrace import SparkStep, DatabricksCompute;"
        "from headrace.sdk.spark import SparkStep as Old; assert Old is SparkStep;"
        "print(sorted({m.split('.')[0] if m.startswith('pyspark') else '.'.join(m.split('.')[:2])"
        " for m in sys.modules if m.startswith(('headrace.engine', 'headrace.backend', 'pyspark'))}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_old_argv_form_reads_as_the_spec_a_step_makes_today(ws: Workspace, tmp_path: Path) -> None:
    """A SparkStep recorded before the kind package (`python -m headrace.engine.sparkrun
    ...`, what the SDK wrote then for this very step) reads as the SparkSpec it makes now."""
    jobs = tmp_path / "jobs"
    _write(jobs, "job.py", "print('hi')\n")
    target = ComputeTarget.attach(
        ws, "spark2", SparkCompute.attach_configuration(master="local[2]", spark_conf={"a.b": 1})
    )
    step = SparkStep(
        "job.py",
        name="job",
        source_directory=str(jobs),
        inputs=[PipelineData("trips")],
        outputs=[PipelineData("totals")],
        python_script_params=["--min", PipelineParameter("min", 5)],
        spark_conf={"a.b": "2", "c.d": True},
        spark_env_variables={"MODE": "x y"},
        compute_target=target,
    )
    kind, text = step._kind_spec()
    assert kind == "spark"
    assert step.command == "python -m headrace.kinds"
    old = shlex.split(
        "--script job.py --script-directory-argument --input trips --output totals "
        "--argument HEADRACE_SPARK_ARGUMENT_0 --argument HEADRACE_SPARK_ARGUMENT_1 "
        "--master 'local[2]' --conf a.b=1 --conf a.b=2 --conf c.d=true --env 'MODE=x y'"
    )
    assert spec_from_argv(old) == SparkSpec.from_json(text)
    assert SparkSpec.from_json(text).conf == {"a.b": "2", "c.d": "true"}
    notebook = _notebook(jobs, "nb.ipynb", "print(1)")
    by_name = SparkStep(
        notebook_path=str(notebook), notebook_params={"w": 1}, compute_target="spark2"
    )
    assert spec_from_argv(
        ["--notebook", "nb.ipynb", "--widget", "w=HEADRACE_SPARK_WIDGET_0", "--target", "spark2"]
    ) == SparkSpec.from_json(by_name._kind_spec()[1])
    for bad, says in [
        ([], "one of the arguments --script --notebook is required"),
        (["--script", "a.py", "--conf", "novalue"], "--conf 'novalue' is not KEY=VALUE"),
    ]:
        with pytest.raises(ValueError, match=says):
            spec_from_argv(bad)


# -- Spark runs --------------------------------------------------------------------------------

# Whether the step's process started the Spark driver JVM itself (it is the JVM's parent).
JVM_CHECK = """
import os
_jvm = spark._jvm.java.lang
_parent = _jvm.ProcessHandle.current().parent()
print("own JVM:", _parent.isPresent() and _parent.get().pid() == os.getpid())
_args = list(_jvm.management.ManagementFactory.getRuntimeMXBean().getInputArguments())
print("no perf data:", "-XX:-UsePerfData" in _args)
"""


@pytest.mark.slow  # starts its own JVM
def test_a_step_starts_its_own_spark_driver(ws: Workspace, tmp_path: Path) -> None:
    """Outside this module's shared JVM, as everywhere else, a step's process starts its own
    driver JVM with headrace's settings (the launch path the other runs skip)."""
    assert "PYSPARK_GATEWAY_PORT" not in os.environ
    script = _write(tmp_path / "jobs", "own.py", JVM_CHECK)
    run = _submit(ws, [SparkStep(python_script_path=str(script), compute_target="local")])
    step = run.find_step_run("own.py")[0]
    assert run.get_status() == "Finished", step.get_stderr_log()
    stdout = step.get_stdout_log()
    assert "own JVM: True" in stdout and "no perf data: True" in stdout


TOTALS_JOB = (
    JVM_CHECK
    + """
import sys
from pyspark.sql import SparkSession, functions as F

spark = SparkSession.builder.getOrCreate()
print("argv:", sys.argv[1:])
print("same session:", spark is globals()["spark"], spark.sparkContext.master)
print("shuffle partitions:", spark.conf.get("spark.sql.shuffle.partitions"))
args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
minimum = int(args["--min"])
trips = spark.read.csv(args["-trips"], header=True, inferSchema=True)
totals = trips.where(F.col("amount") >= minimum).groupBy("city").agg(F.sum("amount").alias("total"))
totals.write.parquet(args["-totals"])
print("widgets:", sorted(dbutils.widgets.getAll()))
"""
)


@pytest.mark.slow  # a SparkSession in the module's JVM
def test_script_reads_csv_and_writes_parquet_for_the_next_step(
    ws: Workspace, tmp_path: Path, shared_jvm: None
) -> None:
    trips = _upload_trips(ws, tmp_path)
    target = ComputeTarget.attach(
        ws,
        "spark2",
        SparkCompute.attach_configuration(
            master="local[2]", spark_conf={"spark.sql.shuffle.partitions": "5"}
        ),
    )
    jobs = tmp_path / "jobs"
    _write(jobs, "totals.py", TOTALS_JOB)
    totals = PipelineData("totals")
    spark_step = SparkStep(
        "totals.py",
        name="totals",
        source_directory=str(jobs),
        inputs=[trips],
        outputs=[totals],
        python_script_params=["--min", PipelineParameter("min_amount", 2), "--label", "a b"],
        spark_conf={"spark.sql.shuffle.partitions": "3"},
        compute_target=target,
    )
    reader = _reader(tmp_path, totals)
    run = _submit(ws, [spark_step, reader], pipeline_parameters={"min_amount": 4})
    step = run.find_step_run("totals")[0]
    assert run.get_status() == "Finished", step.get_stderr_log()
    stdout = step.get_stdout_log()
    assert "headrace: Spark 4." in stdout and " on local[2]" in stdout
    assert "same session: True local[2]" in stdout
    assert "own JVM: False" in stdout  # the module's JVM (shared_jvm)
    assert "shuffle partitions: 3" in stdout  # the step's setting over the target's
    argv_line = next(line for line in stdout.splitlines() if line.startswith("argv:"))
    argv = eval(argv_line.removeprefix("argv: "))  # printed by our own job
    work = argv[argv.index("--AZUREML_SCRIPT_DIRECTORY_NAME") + 1]
    assert argv == [
        "--min", "4", "--label", "a b",
        "-trips", str(Path(ws.get_default_datastore().root) / "raw" / "trips.csv"),
        "-totals", argv[7],
        "--AZUREML_SCRIPT_DIRECTORY_NAME", work,
    ]  # fmt: skip
    assert "widgets: ['totals', 'trips']" in stdout
    reader_out = run.find_step_run("reader")[0].get_stdout_log()
    assert "parquet files: True" in reader_out
    assert "rows: [('Bergen', 7.0), ('Oslo', 14.5)]" in reader_out

    # The same step and values again: reused, no Spark started.
    again = _submit(ws, [spark_step, reader], pipeline_parameters={"min_amount": 4})
    assert again.find_step_run("totals")[0].reused_run_id == step.id


NOTEBOOK_CELLS = (
    """
    dbutils.widgets.text("greeting", "hello")
    rows = getArgument("myparam2")  # Databricks' global spelling of dbutils.widgets.get
    print("params:", dbutils.widgets.get("myparam"), repr(rows), dbutils.widgets.get("greeting"))
    """,
    """
    df = spark.read.csv(dbutils.widgets.get("input"), header=True, inferSchema=True)
    df.orderBy("id").limit(int(rows)).write.parquet(dbutils.widgets.get("output"))
    df.count()
    """,
    """
    %sql
    SELECT 40 + 2 AS answer
    """,
    """
    dbutils.notebook.exit("done")
    """,
    """
    raise RuntimeError("after exit: never runs")
    """,
)


@pytest.mark.slow  # a SparkSession in the module's JVM
def test_notebook_with_widgets_and_an_int_parameter_feeds_the_next_step(
    ws: Workspace, tmp_path: Path, shared_jvm: None
) -> None:
    trips = _upload_trips(ws, tmp_path, "input")
    ws = _set_workspace_master(ws, "local[1]")
    target = ComputeTarget.attach(ws, "databricks", DatabricksCompute.attach_configuration())
    notebook = _notebook(tmp_path / "notebooks", "prepare.ipynb", *NOTEBOOK_CELLS)
    output = PipelineData("output")
    step = DatabricksStep(
        name="prepare",
        inputs=[trips],
        outputs=[output],
        notebook_path=str(notebook),
        notebook_params={"myparam": "testparam", "myparam2": PipelineParameter("rows", 3)},
        num_workers=1,
        spark_version="13.3.x-scala2.12",
        node_type="Standard_D3_v2",
        compute_target=target,
    )
    reader = _reader(tmp_path, output)
    run = _submit(ws, [step, reader], pipeline_parameters={"rows": 2})
    step_run = run.find_step_run("prepare")[0]
    assert run.get_status() == "Finished", step_run.get_stderr_log()
    stdout = step_run.get_stdout_log()
    assert " on local[1]" in stdout
    assert "params: testparam '2' hello" in stdout
    assert "|42    |" in stdout
    assert "the notebook exited at cell 4: done" in stdout
    assert "never runs" not in stdout
    reader_out = run.find_step_run("reader")[0].get_stdout_log()
    assert "rows: [(1, 'Oslo', 10.5), (2, 'Oslo', 4.0)]" in reader_out

    assert "outputs/prepare.ipynb" in step_run.get_file_names()
    executed = tmp_path / "executed"
    step_run.download_file("outputs/prepare.ipynb", str(executed))
    cells = json.loads(executed.read_text())["cells"]
    assert [c["execution_count"] for c in cells] == [1, 2, 3, 4, None]
    assert cells[0]["outputs"][0]["text"] == "params: testparam '2' hello\n"
    assert cells[1]["outputs"] == [
        {
            "output_type": "execute_result",
            "execution_count": 2,
            "data": {"text/plain": "5"},
            "metadata": {},
        }
    ]


BROKEN_SOURCE_NOTEBOOK = """\
# Databricks notebook source
# MAGIC %md
# MAGIC # A broken notebook

# COMMAND ----------

x = spark.range(3).count()
print('counted', x, spark.conf.get('spark.sql.caseSensitive'))

# COMMAND ----------

def ratio(n):
    return n / 0

ratio(x)

# COMMAND ----------

print('not reached')
"""


@pytest.mark.slow  # a SparkSession in the module's JVM
def test_failing_cell_fails_the_step_showing_the_cell(
    ws: Workspace, tmp_path: Path, shared_jvm: None
) -> None:
    # A notebook in Databricks' source format (a .py export), its first cell a %md magic.
    notebook = _write(tmp_path / "notebooks", "broken.py", BROKEN_SOURCE_NOTEBOOK)
    target = ComputeTarget.attach(
        ws,
        "spark1",
        SparkCompute.attach_configuration(
            # One step at a time: the two steps share the module's JVM.
            master="local[1]",
            spark_conf={"spark.sql.caseSensitive": True},
            max_nodes=1,
        ),
    )
    step = SparkStep(notebook_path=str(notebook), compute_target="spark1")
    assert target.name == "spark1"
    script = _write(
        tmp_path / "jobs",
        "bad.py",
        """
        def check(rows):
            if rows < 5:
                raise ValueError(f"only {rows} rows")

        check(spark.range(2).count())
        """,
    )
    script_step = SparkStep(python_script_path=str(script), compute_target=target)
    run = _submit(ws, [step, script_step], continue_on_step_failure=True)

    stderr = run.find_step_run("bad.py")[0].get_stderr_log()
    failure = stderr[stderr.index("SparkStep failed:") :]
    assert failure.startswith(
        "SparkStep failed: bad.py raised ValueError\nTraceback (most recent call last):\n"
    )
    assert '/bad.py", line 6, in <module>\n    check(spark.range(2).count())\n' in failure
    assert failure.rstrip().endswith("ValueError: only 2 rows")
    assert "runpy" not in failure and "headrace/kinds" not in failure
    step_run = run.find_step_run("broken.py")[0]
    assert run.get_status() == "Failed"
    stderr = step_run.get_stderr_log()
    failure = stderr[stderr.index("SparkStep failed:") :]
    assert failure.startswith(
        "SparkStep failed: notebook broken.py, cell 3 failed with ZeroDivisionError: "
        "division by zero\n--- cell 3 ---\ndef ratio(n):\n    return n / 0\n\nratio(x)\n---\n"
        "Traceback (most recent call last):\n"
        '  File "broken.py, cell 3", line 4, in <module>\n'
    )
    assert '  File "broken.py, cell 3", line 2, in ratio\n    return n / 0' in failure
    assert "headrace/kinds" not in failure
    assert "The executed notebook is the run file outputs/broken.ipynb." in failure
    assert "counted 3 true" in step_run.get_stdout_log()  # the target's conf, read by name
    assert "not reached" not in step_run.get_stdout_log()
    error = step_run.get_details()["error"]["error"]
    assert "ZeroDivisionError" in error["stderr_tail"]
    executed = tmp_path / "executed"
    step_run.download_file("outputs/broken.ipynb", str(executed))
    cells = json.loads(executed.read_text())["cells"]
    assert cells[0]["source"] == "%md\n# A broken notebook"
    assert cells[2]["outputs"][-1]["ename"] == "ZeroDivisionError"
    assert cells[3]["outputs"] == []


LEGACY_JOB = """
import sys
print("argv:", sys.argv[1:])
print("master:", spark.sparkContext.master, spark.conf.get("spark.sql.caseSensitive"))
rows = spark.read.csv(sys.argv[sys.argv.index("-trips") + 1], header=True).count()
spark.range(rows).write.parquet(sys.argv[sys.argv.index("-counted") + 1])
"""


@pytest.mark.slow  # a SparkSession in the module's JVM
def test_a_step_stored_with_the_old_sparkrun_command_still_runs(
    ws: Workspace, tmp_path: Path, shared_jvm: None
) -> None:
    """A graph stored before SparkStep became a kind package names `headrace.engine.sparkrun`
    with its flags (a published pipeline keeps that graph): it runs as it did, the target
    it names read when it starts."""
    trips = _upload_trips(ws, tmp_path)
    ComputeTarget.attach(
        ws,
        "legacy",
        SparkCompute.attach_configuration(
            master="local[1]", spark_conf={"spark.sql.caseSensitive": "true"}
        ),
    )
    jobs = tmp_path / "jobs"
    _write(jobs, "count.py", LEGACY_JOB)
    counted = PipelineData("counted")
    old = CommandStep(
        "python -m headrace.engine.sparkrun --script count.py --script-directory-argument "
        "--input trips --output counted --argument HEADRACE_SPARK_ARGUMENT_0 --target legacy "
        "--conf spark.sql.shuffle.partitions=2",
        name="count",
        inputs=[trips],
        outputs=[counted],
        params={"HEADRACE_SPARK_ARGUMENT_0": PipelineParameter("label", "a b")},
        source_directory=str(jobs),
        compute_target="legacy",
    )
    published = Pipeline(ws, steps=[old, _reader(tmp_path, counted)]).publish("legacy-spark")
    run = published.submit(ws, "spark", pipeline_parameters={"label": "c d"})
    run.wait_for_completion(show_output=False, raise_on_error=False)
    step = run.find_step_run("count")[0]
    assert run.get_status() == "Finished", step.get_stderr_log()
    stdout = step.get_stdout_log()
    assert "argv: ['c d', '-trips', " in stdout
    assert "master: local[1] true" in stdout
    assert "rows: [(0,), (1,), (2,), (3,), (4,)]" in run.find_step_run("reader")[0].get_stdout_log()


SDK_V1_SCRIPT = """
from headrace.compat.azureml.core import Workspace
from headrace.compat.azureml.core.compute import ComputeTarget, DatabricksCompute
from headrace.compat.azureml.core.compute_target import ComputeTargetException
from headrace.compat.azureml.data.data_reference import DataReference
from headrace.compat.azureml.pipeline.core import Pipeline, PipelineData, PipelineParameter
from headrace.compat.azureml.pipeline.steps import DatabricksStep
from headrace.compat.azureml.core import Experiment

ws = Workspace.from_config()
db_compute_name = "mydbcompute"
try:
    databricks_compute = ComputeTarget(workspace=ws, name=db_compute_name)
    print("Compute target already exists")
except ComputeTargetException:
    print("compute not found")
    attach_config = DatabricksCompute.attach_configuration(
        resource_group="rg", workspace_name="dbws", access_token="dapi123"
    )
    databricks_compute = ComputeTarget.attach(ws, db_compute_name, attach_config)
    databricks_compute.wait_for_completion(True)

def_blob_store = ws.get_default_datastore()
step_1_input = DataReference(
    datastore=def_blob_store, path_on_datastore="raw/trips.csv", data_reference_name="input"
)
step_1_output = PipelineData("output", datastore=def_blob_store)
pipeline_param = PipelineParameter(name="my_pipeline_param", default_value=7)

dbPythonInLocalMachineStep = DatabricksStep(
    name="DBPythonInLocalMachine",
    inputs=[step_1_input],
    outputs=[step_1_output],
    python_script_path=SCRIPT_PATH,
    python_script_params=["--arg1", pipeline_param, "--arg2", "x"],
    run_name="DB_Python_Local_demo",
    compute_target=databricks_compute,
    num_workers=1,
    allow_reuse=True,
)
pipeline = Pipeline(workspace=ws, steps=[dbPythonInLocalMachineStep])
pipeline_run = Experiment(ws, "databricks").submit(pipeline)
pipeline_run.wait_for_completion(show_output=False)
print("status:", pipeline_run.get_status())
"""

DBFS_JOB = """
import argparse
from pyspark.sql import SparkSession

parser = argparse.ArgumentParser()
parser.add_argument("--arg1")
parser.add_argument("--arg2")
parser.add_argument("-input")
parser.add_argument("-output")
args = parser.parse_args()
spark = SparkSession.builder.getOrCreate()
n = spark.read.csv(args.input, header=True).count()
spark.createDataFrame([(n, args.arg1, args.arg2)], "n int, arg1 string, arg2 string") \\
    .write.mode("overwrite").json(args.output)
print("ok", n, args.arg1, args.arg2)
"""


@pytest.mark.slow  # a SparkSession in the module's JVM
def test_sdk_v1_databricks_script_ported_by_its_imports(
    ws: Workspace, tmp_path: Path, shared_jvm: None
) -> None:
    _upload_trips(ws, tmp_path)
    ws.write_config(path=str(tmp_path))
    job = _write(tmp_path / "dbfs", "job.py", DBFS_JOB)
    script = SDK_V1_SCRIPT.replace("SCRIPT_PATH", repr(str(job)))
    exec(compile(script, "v1_databricks.py", "exec"), {})  # the user's script

    (run,) = Experiment(ws, "databricks").get_runs()
    step = run.find_step_run("DBPythonInLocalMachine")[0]
    assert step.get_status() == "Finished", step.get_stderr_log()
    assert "ok 5 7 x" in step.get_stdout_log()
    assert isinstance(ComputeTarget(ws, "mydbcompute"), DatabricksCompute)
    folder = tmp_path / "out"
    ref = step.get_output_data("output")
    ref.download(str(folder))
    lines = [
        line
        for f in sorted((folder / ref.path_on_datastore).glob("*.json"))
        for line in f.read_text().splitlines()
    ]
    assert [json.loads(line) for line in lines] == [{"n": 5, "arg1": "7", "arg2": "x"}]
