"""A SqlStep aggregating Parquet on an S3 datastore, read in place, against DuckDB run by hand.

A real S3 server (moto_server on 127.0.0.1, authentication on) in the same run. Data: 16
Parquet files of 8 double columns plus a key (about 245 MB in all; --quick: 4 files, 61 MB).
The query sums two columns per key, so it needs a quarter of the columns. Parts of ~15 MB,
because moto answers each range request in time proportional to the object's size (it
copies the object): one 245 MB file read in place costs ~0.26 s per range request there,
which real S3 does not.

- headrace, in place: a SqlStep over a DataReference on the bucket (DuckDB reads through
  the datastore's s3fs filesystem; nothing is downloaded), submit to finished;
- headrace, downloaded: the same step with the input `as_download()` (the runtime copies
  the file into the step's folder first), for comparison;
- floor: the same query by hand in this process, DuckDB with the same s3fs filesystem
  registered, reading the same files the same way (`union_by_name=True`, which reads every
  file's footer when the view is made: about twice the range requests of a plain glob);
  no pipeline, no step process.

Ratio: floor time / in-place time; target >= 0.5 (a pipeline run adds submit, the agent's
pickup, a process start and the output's upload to the query).
"""

from __future__ import annotations

import time
from pathlib import Path

from benchmarks.common import Context, Outcome, Row, bench_workspace, median, quiet, spread

TARGET = 0.5
MB = 1024 * 1024
QUERY = "SELECT k, sum(v0) AS s0, sum(v1) AS s1 FROM trips GROUP BY k ORDER BY k"


def _make_parts(folder: Path, parts: int, rows: int) -> None:
    import duckdb

    columns = ", ".join(f"random() AS v{i}" for i in range(8))
    for part in range(parts):
        duckdb.sql(
            f"COPY (SELECT range % 1000 AS k, {columns} FROM range({rows})) "
            f"TO '{folder}/part-{part:02d}.parquet' (FORMAT parquet)"
        )


def run(ctx: Context) -> Outcome:
    import duckdb
    from tests.objectstores import MotoS3

    from headrace import DataReference, Datastore, Experiment, Pipeline, PipelineData
    from headrace.kinds.sql import SqlStep

    outcome = Outcome("sqlobjects", "SqlStep on S3 Parquet: in place vs downloaded vs by hand")
    reps = ctx.reps(3, 1)
    parts = 4 if ctx.quick else 16
    with bench_workspace(ctx, "sqlobjects") as bws:
        moto = MotoS3(bws.folder("moto") / "moto.log")
        try:
            bucket = moto.new_bucket()
            with quiet():
                ds = Datastore.register_s3(
                    bws.ws,
                    "lake",
                    bucket,
                    endpoint_url=moto.url,
                    access_key_id=moto.key_id,
                    secret_access_key=moto.secret,
                )
            local = bws.folder("trips")
            _make_parts(local, parts, 250_000)
            size = sum(p.stat().st_size for p in local.iterdir())
            ds.upload(str(local), target_path="raw/trips", show_progress=False)
            sql_dir = bws.folder("sql")
            (sql_dir / "totals.sql").write_text(QUERY + ";\n")

            def pipeline_seconds(download: bool, rep: int) -> float:
                trips = DataReference(ds, "trips", "raw/trips")
                step = SqlStep(
                    "totals.sql",
                    name="totals",
                    source_directory=str(sql_dir),
                    inputs=[trips.as_download() if download else trips],
                    outputs=[PipelineData("totals", datastore=ds)],
                    allow_reuse=False,
                )
                start = time.perf_counter()
                with quiet():
                    run = Experiment(bws.ws, f"sql-{rep}").submit(Pipeline(bws.ws, [step]))
                    status = run.wait_for_completion(show_output=False, raise_on_error=False)
                seconds = time.perf_counter() - start
                if status != "Finished":
                    raise RuntimeError(run.find_step_run("totals")[0].get_stderr_log())
                return seconds

            def by_hand() -> float:
                start = time.perf_counter()
                con = duckdb.connect()
                con.register_filesystem(moto.filesystem())
                files = sorted(moto.filesystem().glob(f"{bucket}/raw/trips/*.parquet"))
                # As the step reads them: the listed files, columns matched by name.
                urls = [f"s3://{f}" for f in files]
                con.read_parquet(urls, union_by_name=True).create_view("trips")
                con.sql(QUERY).fetchall()
                con.close()
                return time.perf_counter() - start

            in_place: list[float] = []
            downloaded: list[float] = []
            hand: list[float] = []
            pipeline_seconds(True, -1)  # starts the agent, which then waits for work
            for rep in range(reps):
                # Alternate who goes first (moto keeps its objects in memory: no disk cache).
                order = [False, True] if rep % 2 == 0 else [True, False]
                for download in order:
                    (downloaded if download else in_place).append(pipeline_seconds(download, rep))
                hand.append(by_hand())
        finally:
            moto.stop()
    t_ours, t_down, t_hand = median(in_place), median(downloaded), median(hand)
    label = f"{parts} Parquet files, {size / MB:,.0f} MB, 2 of 9 columns summed"
    outcome.rows.append(
        Row(
            f"SqlStep on S3, read in place ({label})",
            round(t_ours, 2),
            "s",
            round(t_hand, 2),
            "DuckDB + s3fs by hand",
            f">= {TARGET:.0%} of by hand",
            t_hand / t_ours >= TARGET,
            t_hand / t_ours,
        )
    )
    outcome.rows.append(
        Row(
            f"SqlStep on S3, input as_download() ({label})",
            round(t_down, 2),
            "s",
            round(t_ours, 2),
            "read in place",
            "info",
            None,
            t_ours / t_down,
        )
    )
    outcome.details += [
        f"in place: {spread(in_place, 1, ' s')}",
        f"downloaded: {spread(downloaded, 1, ' s')}",
        f"by hand: {spread(hand, 1, ' s')}",
        "moto_server is a single Python process that copies an object for each range request; "
        "the numbers compare ways of reading on this server, not S3's throughput. Reading in "
        "place goes through DuckDB's fsspec bridge, one range request at a time per thread.",
    ]
    return outcome
