"""SqlStep / AdlaStep: DuckDB scripts as pipeline steps, run for real by the agent.

Each test builds a small pipeline over files on the workspace's default datastore, submits it
and checks what a user sees: the output files, the step's logs and the run's error.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import duckdb
import pytest

from headrace import (
    ComputeTarget,
    DataPath,
    DataPathComputeBinding,
    DataReference,
    Experiment,
    Pipeline,
    PipelineData,
    PipelineParameter,
    PipelineRun,
    PythonScriptStep,
    Workspace,
)
from headrace.errors import ComputeTargetException
from headrace.kinds.sql import AdlaStep, SqlStep
from headrace.sdk.compute import SqlCompute

TRIPS_CSV = "id,city,amount\n1,Oslo,10.5\n2,Oslo,4\n3,O'Brien Town,7\n4,Bergen,1\n"

READER = textwrap.dedent(
    """
    import os, sys
    import duckdb
    folder = sys.argv[1]
    print("files:", sorted(os.listdir(folder)))
    rows = duckdb.sql(f"SELECT * FROM read_parquet('{folder}/*.parquet') ORDER BY 1").fetchall()
    print("rows:", rows)
    """
)


def _write(folder: Path, name: str, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(textwrap.dedent(text))


def _upload_text(ws: Workspace, tmp_path: Path, name: str, text: str, target: str) -> None:
    local = tmp_path / "upload" / target / name
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_text(text)
    ws.get_default_datastore().upload_files([str(local)], target_path=target, show_progress=False)


def _submit(ws: Workspace, steps: list[object], **kwargs: object) -> PipelineRun:
    run = Experiment(ws, "sql").submit(Pipeline(ws, steps=steps), **kwargs)
    run.wait_for_completion(show_output=False, raise_on_error=False)
    return run


def _output_file(run: PipelineRun, step: str, output: str, tmp_path: Path) -> Path:
    ref = run.find_step_run(step)[0].get_output_data(output)
    target = tmp_path / "downloaded" / step
    ref.download(str(target))
    return target / ref.path_on_datastore


def test_csv_in_parquet_out_read_by_a_python_step(ws: Workspace, tmp_path: Path) -> None:
    _upload_text(ws, tmp_path, "trips.csv", TRIPS_CSV, "raw")
    sql_dir, py_dir = tmp_path / "sql", tmp_path / "py"
    _write(
        sql_dir,
        "totals.sql",
        """
        -- the total per city
        CREATE TABLE totals AS
        SELECT city, sum(amount) AS total, count(*) AS trips
        FROM trips
        GROUP BY city;
        """,
    )
    _write(py_dir, "read.py", READER)
    trips = DataReference(ws.get_default_datastore(), "trips", "raw/trips.csv")
    totals = PipelineData("totals")
    totals_step = SqlStep(
        "totals.sql",
        name="totals",
        source_directory=str(sql_dir),
        inputs=[trips],
        outputs=[totals],
    )
    reader = PythonScriptStep(
        "read.py", name="reader", arguments=[totals], inputs=[totals], source_directory=str(py_dir)
    )
    run = _submit(ws, [totals_step, reader])
    assert run.get_status() == "Finished", run.find_step_run("totals")[0].get_stderr_log()
    stdout = run.find_step_run("reader")[0].get_stdout_log()
    assert "files: ['totals.parquet']" in stdout
    assert "('Bergen', 1.0, 1)" in stdout
    assert '("O\'Brien Town", 7.0, 1)' in stdout
    assert "('Oslo', 14.5, 2)" in stdout
    assert (
        "wrote output totals to totals.parquet" in run.find_step_run("totals")[0].get_stdout_log()
    )


def test_parquet_folder_in_last_select_out_as_csv(ws: Workspace, tmp_path: Path) -> None:
    parts = tmp_path / "parts"
    parts.mkdir()
    for i in range(3):
        duckdb.sql(
            f"COPY (SELECT range AS n, {i} AS part FROM range({i * 10}, {i * 10 + 10})) "
            f"TO '{parts}/part-{i}.parquet' (FORMAT parquet)"
        )
    store = ws.get_default_datastore()
    store.upload(str(parts), target_path="numbers", show_progress=False)
    _write(
        tmp_path / "sql",
        "sum.sql",
        "SELECT part, sum(n) AS s FROM numbers GROUP BY part ORDER BY part",
    )
    numbers = DataReference(store, "numbers", "numbers")
    sums = PipelineData("sums")
    step = SqlStep(
        "sum.sql",
        name="sum",
        source_directory=str(tmp_path / "sql"),
        inputs=[numbers],
        outputs=[sums],
        output_formats={"sums": "csv"},
    )
    run = _submit(ws, [step])
    assert run.get_status() == "Finished", run.find_step_run("sum")[0].get_stderr_log()
    assert "table numbers reads 3 parquet files" in run.find_step_run("sum")[0].get_stdout_log()
    folder = _output_file(run, "sum", "sums", tmp_path)
    assert (folder / "sums.csv").read_text().splitlines() == ["part,s", "0,45", "1,145", "2,245"]


PARAMS_SQL = """
CREATE TABLE picked AS
SELECT id, city, amount
FROM trips
WHERE amount >= $min_amount
  AND city <> getvariable('skip_city')
  AND $include_all OR id = $only_id;

CREATE TABLE echo AS
SELECT $skip_city AS skip_city, $factor * 2 AS doubled, typeof($factor) AS factor_type,
       typeof($min_amount) AS min_type, typeof($include_all) AS flag_type;
"""


def _params_pipeline(ws: Workspace, tmp_path: Path, **overrides: object) -> list[object]:
    _write(tmp_path / "sql", "params.sql", PARAMS_SQL)
    trips = DataReference(ws.get_default_datastore(), "trips", "raw/trips.csv")
    picked, echo = PipelineData("picked"), PipelineData("echo")
    step = SqlStep(
        "params.sql",
        name="params",
        source_directory=str(tmp_path / "sql"),
        inputs=[trips],
        outputs=[picked, echo],
        output_formats={"echo": "csv", "picked": "csv"},
        params={
            "min_amount": PipelineParameter("min_amount", 2),
            "factor": PipelineParameter("factor", 1.5),
            "skip_city": PipelineParameter("skip_city", "x' OR 1=1; DROP TABLE trips; --"),
            "include_all": PipelineParameter("include_all", True),
            "only_id": 4,
        },
    )
    return [step]


def test_parameters_of_each_type_are_values_never_sql(ws: Workspace, tmp_path: Path) -> None:
    _upload_text(ws, tmp_path, "trips.csv", TRIPS_CSV, "raw")
    run = _submit(ws, _params_pipeline(ws, tmp_path))
    assert run.get_status() == "Finished", run.find_step_run("params")[0].get_stderr_log()
    echo = (_output_file(run, "params", "echo", tmp_path) / "echo.csv").read_text().splitlines()
    assert echo[1] == "x' OR 1=1; DROP TABLE trips; --,3.0,DOUBLE,INTEGER,BOOLEAN"
    picked = (_output_file(run, "params", "picked", tmp_path) / "picked.csv").read_text()
    assert picked.splitlines()[1:] == [
        "1,Oslo,10.5",
        "2,Oslo,4.0",
        "3,O'Brien Town,7.0",
        "4,Bergen,1.0",
    ]

    # A submitted value containing a quote is a value too; the string filter now bites.
    run = _submit(
        ws,
        _params_pipeline(ws, tmp_path),
        pipeline_parameters={"skip_city": "O'Brien Town", "include_all": False, "min_amount": 5},
    )
    assert run.get_status() == "Finished", run.find_step_run("params")[0].get_stderr_log()
    picked = (_output_file(run, "params", "picked", tmp_path) / "picked.csv").read_text()
    # (amount >= 5 AND city <> 'O''Brien Town' AND false) OR id = 4
    assert picked.splitlines()[1:] == ["4,Bergen,1.0"]


def test_resubmit_reuses_and_a_changed_parameter_reruns(ws: Workspace, tmp_path: Path) -> None:
    _upload_text(ws, tmp_path, "trips.csv", TRIPS_CSV, "raw")
    first = _submit(ws, _params_pipeline(ws, tmp_path))
    assert first.get_status() == "Finished"
    again = _submit(ws, _params_pipeline(ws, tmp_path))
    step = again.find_step_run("params")[0]
    assert step.reused_run_id == first.find_step_run("params")[0].id
    changed = _submit(ws, _params_pipeline(ws, tmp_path), pipeline_parameters={"factor": 2.5})
    step = changed.find_step_run("params")[0]
    assert step.reused_run_id is None
    assert "parameter factor changed" in str(step.run_reason.get("summary", ""))
    echo = (_output_file(changed, "params", "echo", tmp_path) / "echo.csv").read_text()
    assert ",5.0,DOUBLE," in echo


def test_syntax_error_shows_duckdb_message_and_script_line(ws: Workspace, tmp_path: Path) -> None:
    _upload_text(ws, tmp_path, "trips.csv", TRIPS_CSV, "raw")
    _write(
        tmp_path / "sql",
        "broken.sql",
        "CREATE TABLE a AS SELECT 1 AS x;\n\n-- next one is wrong\nSELEC city FROM trips;\n",
    )
    trips = DataReference(ws.get_default_datastore(), "trips", "raw/trips.csv")
    step = SqlStep("broken.sql", source_directory=str(tmp_path / "sql"), inputs=[trips])
    run = _submit(ws, [step])
    assert run.get_status() == "Failed"
    step_run = run.find_step_run("broken.sql")[0]
    stderr = step_run.get_stderr_log()
    assert 'syntax error at or near "SELEC"' in stderr
    assert "LINE 4: SELEC city FROM trips;" in stderr
    assert "Traceback" not in stderr
    error = step_run.get_details()["error"]["error"]
    assert "LINE 4" in error["stderr_tail"]


def test_missing_table_lists_the_bound_inputs(ws: Workspace, tmp_path: Path) -> None:
    _upload_text(ws, tmp_path, "trips.csv", TRIPS_CSV, "raw")
    _write(tmp_path / "sql", "typo.sql", "SELECT 1;\nSELECT count(*)\nFROM trip;\n")
    trips = DataReference(ws.get_default_datastore(), "trips", "raw/trips.csv")
    step = SqlStep("typo.sql", source_directory=str(tmp_path / "sql"), inputs=[trips])
    run = _submit(ws, [step])
    assert run.get_status() == "Failed"
    stderr = run.find_step_run("typo.sql")[0].get_stderr_log()
    assert "typo.sql, statement 2 (line 2)" in stderr
    assert "Table with name trip does not exist" in stderr
    assert "The tables this step binds are: trips." in stderr
    assert "LINE 3: FROM trip" in stderr


def test_datapath_parameter_and_a_chain_of_sql_steps(ws: Workspace, tmp_path: Path) -> None:
    """A DataPath parameter in, and one SqlStep's Parquet output read by the next (as_input)."""
    _upload_text(ws, tmp_path, "trips.csv", TRIPS_CSV, "raw")
    _upload_text(ws, tmp_path, "trips.csv", TRIPS_CSV.replace("Oslo", "Tromso"), "raw2")
    _write(tmp_path / "a", "clean.sql", "SELECT city, amount FROM source WHERE amount > 2")
    _write(
        tmp_path / "b",
        "report.sql",
        "CREATE VIEW report AS SELECT city, sum(amount) AS total FROM cleaned GROUP BY city "
        "ORDER BY city",
    )
    store = ws.get_default_datastore()
    source = PipelineParameter("source", DataPath(store, "raw/trips.csv"))
    clean, report = PipelineData("clean"), PipelineData("report")
    first = SqlStep(
        "clean.sql",
        name="clean",
        source_directory=str(tmp_path / "a"),
        inputs=[(source, DataPathComputeBinding(mode="download"))],
        outputs=[clean],
    )
    second = SqlStep(
        "report.sql",
        name="report",
        source_directory=str(tmp_path / "b"),
        inputs=[clean.as_download("cleaned")],
        outputs=[report],
        output_formats={"report": "csv"},
    )
    run = _submit(ws, [first, second])
    assert run.get_status() == "Finished", run.find_step_run("report")[0].get_stderr_log()
    text = (_output_file(run, "report", "report", tmp_path) / "report.csv").read_text()
    assert text.splitlines() == ["city,total", "O'Brien Town,7.0", "Oslo,14.5"]

    run = _submit(
        ws,
        [first, second],
        pipeline_parameters={"source": DataPath(store, "raw2/trips.csv")},
    )
    assert run.get_status() == "Finished"
    text = (_output_file(run, "report", "report", tmp_path) / "report.csv").read_text()
    assert "Tromso,14.5" in text


def test_an_output_the_script_never_writes_and_an_unknown_parameter(
    ws: Workspace, tmp_path: Path
) -> None:
    _write(tmp_path / "sql", "nothing.sql", "CREATE TABLE other AS SELECT 1 AS x;")
    _write(tmp_path / "sql", "param.sql", "SELECT $limit_rows AS n;")
    missing = SqlStep(
        "nothing.sql", source_directory=str(tmp_path / "sql"), outputs=[PipelineData("result")]
    )
    unknown = SqlStep("param.sql", source_directory=str(tmp_path / "sql"), params={"limit": 3})
    run = _submit(ws, [missing, unknown], continue_on_step_failure=True)
    assert run.get_status() == "Failed"
    stderr = run.find_step_run("nothing.sql")[0].get_stderr_log()
    assert "Output 'result' was not written: nothing.sql neither creates a table or view" in stderr
    assert "'CREATE TABLE result AS SELECT ...'" in stderr
    stderr = run.find_step_run("param.sql")[0].get_stderr_log()
    assert "$limit_rows is not a parameter of this step (its params: limit)" in stderr


def test_bad_step_arguments_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="parameter name 'min-amount' cannot be used in SQL"):
        SqlStep("x.sql", params={"min-amount": 1})
    with pytest.raises(ValueError, match="memory_limit 'lots' is not a size"):
        SqlStep("x.sql", memory_limit="lots")
    with pytest.raises(ValueError, match="output_formats names other"):
        SqlStep("x.sql", outputs=[PipelineData("out")], output_formats={"other": "csv"})
    with pytest.raises(ValueError, match="'xlsx' for 'out' is not supported"):
        SqlStep("x.sql", outputs=[PipelineData("out")], output_formats={"out": "xlsx"})
    with pytest.raises(ValueError, match="parameter 'when' is a list"):
        SqlStep("x.sql", params={"when": [1]})
    (tmp_path / "q").mkdir()
    (tmp_path / "q" / "totals.sql").write_text("SELECT 1")
    with pytest.raises(ValueError, match=r"'total.sql' is not in .*\(it has: totals.sql\)"):
        SqlStep("total.sql", source_directory=str(tmp_path / "q"))
    with pytest.raises(ValueError, match="degree_of_parallelism must be a positive int"):
        AdlaStep("x.usql", degree_of_parallelism=0)
    with pytest.raises(ComputeTargetException, match="memory_limit 'half' is not a size"):
        SqlCompute.provisioning_configuration(memory_limit="half").validate_configuration()


def test_out_of_core_aggregation_under_a_small_memory_limit(ws: Workspace, tmp_path: Path) -> None:
    """A GROUP BY over 10M rows with 2M groups (its hash table alone is well over 100 MB)
    under 64MB: DuckDB spills to the step's temporary folder and the totals are exact."""
    data = tmp_path / "big"
    data.mkdir()
    rows = 10_000_000
    duckdb.sql(
        f"COPY (SELECT range AS id, range % 2000000 AS k, (range % 97)::DOUBLE AS v "
        f"FROM range({rows})) TO '{data}/big.parquet' (FORMAT parquet)"
    )
    store = ws.get_default_datastore()
    store.upload(str(data), target_path="big", show_progress=False)
    _write(
        tmp_path / "sql",
        "agg.sql",
        """
        CREATE TABLE groups AS
        SELECT k, sum(v) AS total, count(*) AS n, min(id) AS first_id, max(id) AS last_id
        FROM big GROUP BY k;
        """,
    )
    sql_target = ComputeTarget.create(
        ws, "duck", SqlCompute.provisioning_configuration(memory_limit="64MB", threads=2)
    )
    big = DataReference(store, "big", "big")
    groups = PipelineData("groups")
    step = SqlStep(
        "agg.sql",
        name="agg",
        source_directory=str(tmp_path / "sql"),
        inputs=[big],
        outputs=[groups],
        compute_target=sql_target,
    )
    [node] = Pipeline(ws, [step]).graph.nodes
    assert node.step_kind == "sql"
    assert node.settings is not None
    assert (node.settings["memory_limit"], node.settings["threads"]) == ("64MB", 2)
    run = _submit(ws, [step])
    assert run.get_status() == "Finished", run.find_step_run("agg")[0].get_stderr_log()
    out = _output_file(run, "agg", "groups", tmp_path) / "groups.parquet"
    [(count, n, total)] = duckdb.sql(
        f"SELECT count(*), sum(n), sum(total) FROM read_parquet('{out}')"
    ).fetchall()
    assert (count, n) == (2_000_000, rows)
    [(expected,)] = duckdb.sql(f"SELECT sum((range % 97)::DOUBLE) FROM range({rows})").fetchall()
    assert total == expected


def test_the_same_aggregation_fails_without_spilling(tmp_path: Path) -> None:
    """The limit is real: with nowhere to spill, the same query runs out of memory."""
    con = duckdb.connect(config={"memory_limit": "64MB", "temp_directory": ""})
    with pytest.raises(duckdb.OutOfMemoryException):
        con.execute(
            "SELECT k, sum(v), count(*), min(id), max(id) FROM (SELECT range AS id, "
            "range % 3000000 AS k, (range % 97)::DOUBLE AS v FROM range(30000000)) GROUP BY k"
        ).fetchall()


def test_sdk_v1_names_run_the_same_step(ws: Workspace, tmp_path: Path) -> None:
    from headrace.compat.azureml.core.compute import AdlaCompute, ComputeTarget
    from headrace.compat.azureml.pipeline.steps import AdlaStep as CompatAdlaStep

    assert CompatAdlaStep is AdlaStep

    _upload_text(ws, tmp_path, "trips.csv", TRIPS_CSV, "raw")
    target = ComputeTarget.attach(
        ws, "adla", AdlaCompute.attach_configuration(resource_group="rg", account_name="lake")
    )
    assert isinstance(ComputeTarget(ws, "adla"), AdlaCompute)
    assert target.type == "AdlaCompute"
    _write(tmp_path / "sql", "count.sql", "SELECT count(*) AS n FROM trips WHERE amount > $low")
    trips = DataReference(ws.get_default_datastore(), "trips", "raw/trips.csv")
    counted = PipelineData("counted")
    step = AdlaStep(
        script_name="count.sql",
        name="count",
        inputs=[trips],
        outputs=[counted],
        params={"low": 2},
        degree_of_parallelism=2,
        priority=100,
        runtime_version="default",
        compute_target=target,
        source_directory=str(tmp_path / "sql"),
    )
    run = _submit(ws, [step])
    assert run.get_status() == "Finished", run.find_step_run("count")[0].get_stderr_log()
    out = _output_file(run, "count", "counted", tmp_path) / "counted.parquet"
    assert duckdb.sql(f"SELECT n FROM read_parquet('{out}')").fetchall() == [(3,)]
