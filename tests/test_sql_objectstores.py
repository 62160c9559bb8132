"""SqlStep on object-store datastores: DuckDB reads the inputs where they are (through the
datastore's fsspec filesystem, registered with DuckDB), against moto's S3 server with
authentication on, Azurite and the GCS emulator. Outputs are staged locally and uploaded on success.

What a user sees: the step's log says where each table reads from, the step's working folder
never holds a copy of an input, the output lands in the bucket for the next step, and a key
the store refuses gives one line naming the datastore, with no secret in it anywhere.
"""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path
from typing import Any

import duckdb

from headrace import (
    DataReference,
    Datastore,
    Experiment,
    Pipeline,
    PipelineData,
    PipelineRun,
    PythonScriptStep,
    Workspace,
)
from headrace.kinds.sql import SqlStep
from tests.objectstores import MotoS3
from tests.test_object_datastores import azurite, moto, s3_store, store  # noqa: F401  # fixtures

# The step lists every file under its working folder: a downloaded input would show here.
TOTALS_SQL = """
CREATE TABLE totals AS
SELECT c.country, sum(t.amount) AS total, count(*) AS trips
FROM trips t JOIN cities c USING (city)
GROUP BY c.country
ORDER BY c.country;
CREATE TABLE local_files AS SELECT file FROM glob('**/*') ORDER BY file;
"""

READER = """
import os, sys
import duckdb
folder = sys.argv[1]
print("files:", sorted(os.listdir(folder)))
print("rows:", duckdb.sql(f"SELECT * FROM '{folder}/totals.parquet' ORDER BY 1").fetchall())
"""

# Holds the pipeline until the test has changed the datastore's key (flag file in argv[2]).
GATE = """
import os, sys, time
deadline = time.time() + 60
while not os.path.exists(sys.argv[2]) and time.time() < deadline:
    time.sleep(0.05)
print("gate saw", sorted(os.listdir(sys.argv[1])))
"""


def _data(tmp_path: Path) -> Path:
    """raw/trips/part-{0,1}.parquet (city, amount) and raw/cities.csv (city, country)."""
    raw = tmp_path / "raw"
    (raw / "trips").mkdir(parents=True)
    for part in range(2):
        duckdb.sql(
            f"COPY (SELECT CASE WHEN range % 2 = 0 THEN 'Oslo' ELSE 'Lyon' END AS city, "
            f"range + {part * 10} AS amount FROM range(10)) "
            f"TO '{raw}/trips/part-{part}.parquet' (FORMAT parquet)"
        )
    (raw / "cities.csv").write_text("city,country\nOslo,NO\nLyon,FR\n")
    return raw


def _sources(tmp_path: Path) -> tuple[Path, Path]:
    sql_dir, py_dir = tmp_path / "sql", tmp_path / "py"
    sql_dir.mkdir()
    py_dir.mkdir()
    (sql_dir / "totals.sql").write_text(textwrap.dedent(TOTALS_SQL))
    (sql_dir / "top.sql").write_text("SELECT country FROM totals ORDER BY total DESC LIMIT 1")
    (py_dir / "read.py").write_text(textwrap.dedent(READER))
    (py_dir / "gate.py").write_text(textwrap.dedent(GATE))
    return sql_dir, py_dir


def _totals_step(
    ds: Datastore, sql_dir: Path, outputs: list[PipelineData], **kwargs: Any
) -> SqlStep:
    """totals.sql over raw/trips (a folder of Parquet files) and raw/cities.csv on `ds`."""
    inputs = [
        DataReference(ds, "trips", "raw/trips"),
        DataReference(ds, "cities", "raw/cities.csv"),
    ]
    return SqlStep(
        "totals.sql",
        name="totals",
        source_directory=str(sql_dir),
        inputs=inputs,
        outputs=outputs,
        **kwargs,
    )


def _totals_pipeline(ws: Workspace, ds: Datastore, tmp_path: Path) -> Pipeline:
    ds.upload(str(_data(tmp_path)), target_path="raw", show_progress=False)
    sql_dir, py_dir = _sources(tmp_path)
    totals = PipelineData("totals", datastore=ds)
    files = PipelineData("local_files", datastore=ds)
    sql = _totals_step(ds, sql_dir, [totals, files], output_formats={"local_files": "csv"})
    reader = PythonScriptStep(
        "read.py", name="reader", arguments=[totals], inputs=[totals], source_directory=str(py_dir)
    )
    top = SqlStep(
        "top.sql",
        name="top",
        source_directory=str(sql_dir),
        inputs=[totals],
        outputs=[PipelineData("top", datastore=ds)],
        output_formats={"top": "csv"},
    )
    return Pipeline(ws, [sql, reader, top])


def _finished(run: PipelineRun) -> str:
    status: str = run.wait_for_completion(show_output=False, raise_on_error=False)
    return status


def _check_totals_run(run: PipelineRun, ds: Datastore, tmp_path: Path) -> None:
    status = _finished(run)
    step = run.find_step_run("totals")[0]
    assert status == "Finished", step.get_stderr_log()
    log = step.get_stdout_log()
    assert f"table trips reads 2 parquet files in place at {ds.root}/raw/trips" in log
    assert f"table cities reads 1 csv file in place at {ds.root}/raw/cities.csv" in log
    # The working folder held the snapshot (the scripts) and nothing of the inputs.
    listing = step.get_output_data("local_files")
    listed = Path(listing.download(tmp_path / "listing", show_progress=False))
    seen = (listed / "local_files.csv").read_text().split()
    assert seen == ["file", "top.sql", "totals.sql"]
    # The output is in the bucket, and the next step (a Python step) reads it.
    out = step.get_output_data("totals")
    assert out.datastore_name == ds.name
    assert ds.list_files(out.path_on_datastore) == [f"{out.path_on_datastore}/totals.parquet"]
    stdout = run.find_step_run("reader")[0].get_stdout_log()
    assert "files: ['totals.parquet']" in stdout
    assert "rows: [('FR', 100.0, 10), ('NO', 90.0, 10)]" in stdout
    # ... and so does a SqlStep, in place.
    top = run.find_step_run("top")[0]
    where = f"{ds.root}/{out.path_on_datastore}"
    assert f"table totals reads 1 parquet file in place at {where}" in top.get_stdout_log()
    result = Path(top.get_output_data("top").download(tmp_path / "top", show_progress=False))
    assert (result / "top.csv").read_text().split() == ["country", "FR"]


def test_sql_step_aggregates_in_place_into_an_output_in_the_bucket(
    ws: Workspace,
    store: Datastore,  # noqa: F811  # the fixture: S3 on moto, Azurite, the GCS emulator
    tmp_path: Path,
) -> None:
    pipeline = _totals_pipeline(ws, store, tmp_path)
    run = Experiment(ws, "sql-objects").submit(pipeline)
    _check_totals_run(run, store, tmp_path)
    step = run.find_step_run("totals")[0]
    recorded = " ".join([str(step.get_details()), step.get_stdout_log(), step.get_stderr_log()])
    secrets_file = Path(str(ws.path)) / "secrets" / "datastores.json"
    kept = json.loads(secrets_file.read_text()) if secrets_file.exists() else {}
    for secret in kept.get(store.name, {}).values():
        assert secret not in recorded


def test_a_key_refused_when_the_step_reads_gives_one_line_without_the_secret(
    ws: Workspace,
    moto: MotoS3,  # noqa: F811  # the fixture
    tmp_path: Path,
) -> None:
    """The key is changed to a wrong one while the run waits at a gate step: the SqlStep's
    process opens the datastore with the key the workspace keeps now, and is refused."""
    bucket = moto.new_bucket()

    def register(secret: str, overwrite: bool = False) -> Datastore:
        return Datastore.register_s3(
            ws,
            "rotated",
            bucket,
            endpoint_url=moto.url,
            access_key_id=moto.key_id,
            secret_access_key=secret,
            overwrite=overwrite,
        )

    ds = register(moto.secret)
    ds.upload(str(_data(tmp_path)), target_path="raw", show_progress=False)
    sql_dir, py_dir = _sources(tmp_path)
    flag = tmp_path / "go"
    raw = DataReference(ds, "raw", "raw")
    gate = PythonScriptStep(
        "gate.py",
        name="gate",
        arguments=[raw, str(flag)],
        inputs=[raw],
        source_directory=str(py_dir),
    )
    sql = _totals_step(ds, sql_dir, [PipelineData("totals", datastore=ds)])
    sql.run_after(gate)
    run = Experiment(ws, "sql-rotated").submit(Pipeline(ws, [gate, sql]))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the agent has opened the datastore for the gate
        gates = run.find_step_run("gate")
        if gates and gates[0].get_status() == "Running":
            break
        time.sleep(0.05)
    wrong = "RotatedWrongSecret0123456789"
    register(wrong, overwrite=True)
    flag.touch()
    assert _finished(run) == "Failed"
    step = run.find_step_run("totals")[0]
    stderr = step.get_stderr_log().strip()
    assert stderr.startswith("SqlStep failed: Input 'trips': Listing 'raw/trips' on datastore")
    assert "'rotated'" in stderr and "refused" in stderr and "credentials" in stderr
    assert "\n" not in stderr and "Traceback" not in stderr
    details = str(step.get_details())
    for text in (stderr, details, step.get_stdout_log()):
        assert wrong not in text and moto.secret not in text
    assert moto.filesystem().find(f"{bucket}/azureml") == []  # nothing was uploaded


def test_two_s3_datastores_in_one_step_are_refused_with_the_fix(
    ws: Workspace,
    moto: MotoS3,  # noqa: F811  # the fixture
    tmp_path: Path,
) -> None:
    """DuckDB holds one filesystem per protocol: a second S3 datastore is named, with the
    way out (download it), and the step runs once that input is a download."""
    first, second = s3_store(ws, moto, "first"), s3_store(ws, moto, "second")
    raw = _data(tmp_path)
    first.upload(str(raw / "trips"), target_path="raw/trips", show_progress=False)
    second.upload_files([str(raw / "cities.csv")], target_path="raw", show_progress=False)
    sql_dir, _py_dir = _sources(tmp_path)

    def run_with(cities: DataReference) -> PipelineRun:
        step = SqlStep(
            "totals.sql",
            name="totals",
            source_directory=str(sql_dir),
            inputs=[DataReference(first, "trips", "raw/trips"), cities],
            outputs=[PipelineData("totals", datastore=first)],
        )
        run = Experiment(ws, "two-s3").submit(Pipeline(ws, [step]))
        _finished(run)
        return run

    run = run_with(DataReference(second, "cities", "raw/cities.csv"))
    assert run.get_status() == "Failed"
    stderr = run.find_step_run("totals")[0].get_stderr_log()
    assert "Input 'cities' is on datastore 'second', another s3:// datastore than 'first'" in stderr
    assert "as_download()" in stderr
    run = run_with(DataReference(second, "cities", "raw/cities.csv").as_download())
    assert run.get_status() == "Finished"
    log = run.find_step_run("totals")[0].get_stdout_log()
    assert (
        "table cities reads 1 csv file\n" in log and "trips reads 2 parquet files in place" in log
    )


def test_an_object_that_is_not_what_its_name_says_gives_one_line(
    ws: Workspace,
    moto: MotoS3,  # noqa: F811  # the fixture
    tmp_path: Path,
) -> None:
    ds = s3_store(ws, moto, "broken")
    bad = tmp_path / "bad" / "trips.parquet"
    bad.parent.mkdir()
    bad.write_text("this is not parquet")
    ds.upload_files([str(bad)], target_path="raw/trips", show_progress=False)
    sql_dir, _py_dir = _sources(tmp_path)
    (sql_dir / "count.sql").write_text("SELECT count(*) FROM trips")
    step = SqlStep(
        "count.sql",
        name="count",
        source_directory=str(sql_dir),
        inputs=[DataReference(ds, "trips", "raw/trips")],
    )
    run = Experiment(ws, "broken").submit(Pipeline(ws, [step]))
    assert _finished(run) == "Failed"
    stderr = run.find_step_run("count")[0].get_stderr_log().strip()
    assert stderr.startswith("SqlStep failed: Input 'trips': ") and "trips.parquet" in stderr
    assert "\n" not in stderr and "Traceback" not in stderr and moto.secret not in stderr
