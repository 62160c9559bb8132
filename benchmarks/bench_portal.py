"""Portal pages over 100,000 runs (issue 4 targets), on SQLite and on PostgreSQL.

A fresh workspace is seeded straight through the store's tables (bulk Core inserts: submitting
100,000 real runs would take hours): 20 experiments, 100,000 pipeline runs a few minutes apart
over a year with mixed statuses, tags and parameters, a tenth of them submitted from one
published pipeline, two step runs each (an ended run with a metric of its own and one of its
last step's, and their rows in `run_metric_finals`, as the store writes them); and one run of a
500-step pipeline (its graph row, 500 step runs, a few metrics per step). The portal is served
by a real uvicorn in this process (auth off, as `headrace ui` serves it) and each page is
requested ~20 times after a warm-up; the figure is the median (and p95) of the `Server-Timing:
app;dur=` header, the time the server spent on the request. The SQL statements of one request
of each page are counted with a `before_cursor_execute` listener on the app's engine. Floor:
the portal's 404 page (routing, template and timing, no query). PostgreSQL uses a fresh schema
of the server in HEADRACE_BENCH_POSTGRES_URL (default: HEADRACE_TEST_POSTGRES_URL, then the
machine's postgresql+psycopg://postgres@127.0.0.1:5432/test) and is skipped, with a note, when
none answers.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from benchmarks.common import BENCH_ROOT, BenchError, Context, Outcome, Row, median, num, quiet

RUNS = 100_000
EXPERIMENTS = 20
STEPS_PER_RUN = 2
BIG_STEPS = 500
TARGET_LIST_MS = 200.0
TARGET_BIG_RUN_MS = 500.0
TARGET_STATEMENTS = 5
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
STATUS_WEIGHTS = {
    "Finished": 80,
    "Failed": 10,
    "Canceled": 5,
    "Running": 3,
    "NotStarted": 2,
}
TEAMS = ("vision", "nlp", "speech", "ranking", "forecast")
CHUNK = 5_000


# -- seeding -----------------------------------------------------------------------------
def _graph(steps: int, prefix: str) -> dict[str, Any]:
    """A pipeline graph of `steps` steps: each reads the output of the one before it and, every
    tenth, of one ten back (so the drawing has more than a chain)."""
    from headrace.graph.model import DataNode, Graph, InputBinding, OutputBinding, StepNode

    nodes = []
    data = []
    for i in range(steps):
        out = f"{prefix}-out-{i}"
        data.append(
            DataNode(id=out, kind="pipeline_data", name=f"out_{i}", producer=f"{prefix}-{i}")
        )
        inputs = []
        if i > 0:
            inputs.append(InputBinding(port="previous", data=f"{prefix}-out-{i - 1}"))
        if i >= 10 and i % 10 == 0:
            inputs.append(InputBinding(port="skip", data=f"{prefix}-out-{i - 10}"))
        nodes.append(
            StepNode(
                id=f"{prefix}-{i}",
                name=f"step_{i}",
                kind="python_script",
                source_directory="src",
                script_name="step.py",
                arguments=("--output", f"$AZUREML_DATAREFERENCE_out_{i}"),
                inputs=tuple(inputs),
                outputs=(OutputBinding(port="output", data=out),),
            )
        )
    return Graph(nodes=tuple(nodes), data=tuple(data), description=f"{prefix} pipeline").to_dict()


def seed(ws: Any, runs: int) -> dict[str, Any]:
    """Fill the workspace's store; returns what the pages to request need (ids, names)."""
    from sqlalchemy import insert

    from headrace.store.metric_finals import upsert_finals
    from headrace.store.orm import (
        GraphRow,
        MetricRow,
        PipelineRunRow,
        PublishedPipelineRow,
        StepRunRow,
    )

    meta = ws.backend.meta
    rng = random.Random(4)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    experiments = [meta.get_or_create_experiment(f"project-{i:02d}") for i in range(EXPERIMENTS)]
    graphs = {name: _graph(STEPS_PER_RUN, name) for name in ("train", "evaluate", "score")}
    graph_ids = {name: meta.graph_id(graph) for name, graph in graphs.items()}
    big_graph = _graph(BIG_STEPS, "big")
    big_graph_id = meta.graph_id(big_graph)
    published_id = str(uuid.uuid4())
    statuses = list(STATUS_WEIGHTS)
    weights = list(STATUS_WEIGHTS.values())
    start = now - timedelta(days=365)
    spacing = timedelta(days=365) / runs

    with meta.db.write_conn() as conn:
        conn.execute(
            insert(GraphRow),
            [{"id": graph_ids[n], "graph": g, "created_at": start} for n, g in graphs.items()]
            + [{"id": big_graph_id, "graph": big_graph, "created_at": start}],
        )
        conn.execute(
            insert(PublishedPipelineRow),
            {
                "id": published_id,
                "name": "nightly-score",
                "description": "scores the nightly batch",
                "version": "1",
                "graph_id": graph_ids["score"],
                "status": "Active",
                "continue_on_step_failure": False,
                "source_run_id": None,
                "created_at": start,
            },
        )

    def run_rows(
        first: int, last: int
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        pipeline_runs, step_runs, metrics = [], [], []
        for i in range(first, last):
            status = rng.choices(statuses, weights)[0]
            created = start + spacing * i
            published = i % 10 == 0
            kind = "score" if published else ("train", "evaluate")[i % 2]
            started = None if status == "NotStarted" else created + timedelta(seconds=5)
            ended = None
            if started is not None and status != "Running":
                ended = started + timedelta(seconds=rng.randint(20, 3600))
            team = TEAMS[i % len(TEAMS)]
            tags: dict[str, Any] = {"team": team, "release": f"v{i // 5000}"}
            if i % 7 == 0:
                tags["nightly"] = ""
            run_id = str(uuid.uuid4())
            pipeline_runs.append(
                {
                    "id": run_id,
                    "experiment_id": experiments[i % EXPERIMENTS].id,
                    "graph_id": graph_ids[kind],
                    "status": status,
                    "parameters": {"learning_rate": round(rng.random() / 10, 5), "epochs": i % 50},
                    "tags": tags,
                    "properties": {"azureml.pipelineid": published_id} if published else {},
                    "description": f"{kind} run {i}",
                    "run_source": ("Schedule" if i % 20 == 0 else "API") if published else "SDK",
                    "continue_on_step_failure": False,
                    "regenerate_outputs": False,
                    "cancel_requested": False,
                    "created_at": created,
                    "started_at": started,
                    "ended_at": ended,
                }
            )
            for s in range(STEPS_PER_RUN):
                step_runs.append(_step_row(run_id, f"{kind}-{s}", f"step_{s}", status, created))
            if ended is not None:  # what a finished run logged: its step's and its own
                last = step_runs[-1]["id"]
                metrics.append(_metric(last, "accuracy", "scalar", rng.random(), None, created))
                best = rng.random()
                metrics.append(_metric(run_id, "best_accuracy", "scalar", best, None, created))
        return pipeline_runs, step_runs, metrics

    for first in range(0, runs, CHUNK):
        pipeline_runs, step_runs, run_metrics = run_rows(first, min(runs, first + CHUNK))
        with meta.db.write_conn() as conn:
            conn.execute(insert(PipelineRunRow), pipeline_runs)
            conn.execute(insert(StepRunRow), step_runs)
            conn.execute(insert(MetricRow), run_metrics)
            upsert_finals(conn, _finals(run_metrics, step_runs))

    # The big run: 500 steps, finished an hour ago, each with a few metrics.
    big_id = str(uuid.uuid4())
    created = now - timedelta(hours=2)
    big_steps = [
        _step_row(big_id, f"big-{i}", f"step_{i}", "Finished", created + timedelta(seconds=i))
        for i in range(BIG_STEPS)
    ]
    metrics = []
    for step in big_steps[::5]:
        metrics.append(_metric(step["id"], "accuracy", "scalar", rng.random(), None, created))
        for n in range(20):
            metrics.append(_metric(step["id"], "loss", "scalar", 1 / (n + 1), n, created))
    with meta.db.write_conn() as conn:
        conn.execute(
            insert(PipelineRunRow),
            {
                "id": big_id,
                "experiment_id": experiments[0].id,
                "graph_id": big_graph_id,
                "status": "Finished",
                "parameters": {},
                "tags": {"size": "500 steps"},
                "properties": {},
                "description": "a 500-step pipeline",
                "run_source": "SDK",
                "continue_on_step_failure": False,
                "regenerate_outputs": False,
                "cancel_requested": False,
                "created_at": created,
                "started_at": created + timedelta(seconds=1),
                "ended_at": created + timedelta(hours=1),
            },
        )
        conn.execute(insert(StepRunRow), big_steps)
        conn.execute(insert(MetricRow), metrics)
        upsert_finals(conn, _finals(metrics, big_steps))
    if not meta.db.is_sqlite:
        # What autovacuum would have done by now on a live server: planner statistics of the
        # bulk-loaded tables. (SQLite keeps none unless asked, and nothing asks: none made.)
        with meta.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")
    return {
        "experiment": experiments[3].name,
        "published_id": published_id,
        "big_run_id": big_id,
        "big_step_id": big_steps[BIG_STEPS // 2]["id"],
    }


def _finals(
    metrics: list[dict[str, Any]], steps: list[dict[str, Any]]
) -> list[tuple[str, str, Any]]:
    """The rows `run_metric_finals` holds for these metrics (what the store writes with
    them): a step's named `step/metric`, the last value of each name."""
    owners = {step["id"]: (step["pipeline_run_id"], step["name"]) for step in steps}
    rows = []
    for metric in metrics:
        run_id, step = owners.get(metric["run_id"], (metric["run_id"], None))
        name = metric["name"] if step is None else f"{step}/{metric['name']}"
        rows.append((run_id, name, metric["value"]))
    return rows


def _step_row(
    run_id: str, node_id: str, name: str, run_status: str, created: datetime
) -> dict[str, Any]:
    status = {"NotStarted": "NotStarted", "Running": "Running"}.get(run_status, run_status)
    started = None if status == "NotStarted" else created + timedelta(seconds=6)
    ended = started + timedelta(seconds=30) if started and status != "Running" else None
    step_id = str(uuid.uuid4())
    return {
        "id": step_id,
        "pipeline_run_id": run_id,
        "node_id": node_id,
        "name": name,
        "status": status,
        "attempt": 0,
        "compute_target": "local",
        "fingerprint": uuid.uuid4().hex + uuid.uuid4().hex,
        "fingerprint_parts": {},
        "run_reason": {"decision": "run", "summary": "no earlier run of this step"},
        "reused_run_id": None,
        "command": ["python", "step.py", "--output", f"/data/{step_id}/output"],
        "outputs": {
            "output": {
                "datastore": "workspaceblobstore",
                "path": f"azureml/{step_id}/output",
                "data_name": "output",
                "pipeline_output_name": None,
            }
        },
        "tags": {},
        "properties": {},
        "pid": None,
        "pid_started": None,
        "exit_code": None if ended is None else (1 if status == "Failed" else 0),
        "error": None,
        "created_at": created,
        "started_at": started,
        "ended_at": ended,
    }


def _metric(
    run_id: str, name: str, kind: str, value: Any, step: int | None, created: datetime
) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "name": name,
        "kind": kind,
        "value": value,
        "step": step,
        "description": None,
        "created_at": created,
    }


# -- serving and measuring ---------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serve(root: Path) -> Iterator[tuple[str, Any]]:
    """uvicorn serving the workspace's portal in a thread: (base URL, the app)."""
    import uvicorn

    from headrace.server.app import create_app

    app = create_app(root, auth=False)
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", ws="none")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise BenchError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(10)


def _server_ms(response: Any) -> float:
    found = re.search(r"app;dur=([\d.]+)", response.headers.get("server-timing", ""))
    if found is None:
        raise BenchError(f"no Server-Timing header on {response.url}")
    return float(found.group(1))


def measure(base: str, app: Any, paths: dict[str, str], reps: int) -> dict[str, dict[str, Any]]:
    """Per page: server milliseconds of `reps` requests, SQL statements of one, or "not built"
    when the page answers 404 (built by another part of the portal)."""
    import httpx
    from sqlalchemy import event

    engine = app.state.headrace.store.database.engine
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    results: dict[str, dict[str, Any]] = {}
    with httpx.Client(base_url=base, timeout=60) as client:
        for label, path in paths.items():
            first = client.get(path)
            if first.status_code == 404 and label != "floor":
                results[label] = {"missing": True, "path": path}
                continue
            if first.status_code != 200 and label != "floor":
                raise BenchError(f"{path} answered {first.status_code}: {first.text[:300]}")
            event.listen(engine, "before_cursor_execute", record)
            statements.clear()
            try:
                client.get(path)
            finally:
                event.remove(engine, "before_cursor_execute", record)
            count = len(statements)
            times = [_server_ms(client.get(path)) for _ in range(reps)]
            ordered = sorted(times)
            results[label] = {
                "path": path,
                "median": median(times),
                "p95": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
                "statements": count,
                "missing": False,
            }
    return results


@contextlib.contextmanager
def workspace(name: str, database_url: str | None, keep: bool) -> Iterator[tuple[Any, Path]]:
    """A fresh workspace folder in .bench/ (and its own HEADRACE_HOME)."""
    BENCH_ROOT.mkdir(exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=BENCH_ROOT))
    saved = os.environ.get("HEADRACE_HOME")
    os.environ["HEADRACE_HOME"] = str(root / "home")
    try:
        from headrace import Workspace

        with quiet():
            ws = Workspace.create(
                name, path=root / "ws", database_url=database_url, show_output=False
            )
        yield ws, root / "ws"
        ws.backend.store.close()  # type: ignore[attr-defined]
    finally:
        if saved is None:
            os.environ.pop("HEADRACE_HOME", None)
        else:
            os.environ["HEADRACE_HOME"] = saved
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def postgres_schema() -> Iterator[str | None]:
    """A URL to a fresh schema of the machine's PostgreSQL (dropped after), or None."""
    import sqlalchemy as sa

    url = (
        os.environ.get("HEADRACE_BENCH_POSTGRES_URL")
        or os.environ.get("HEADRACE_TEST_POSTGRES_URL")
        or DEFAULT_PG
    )
    schema = f"bench_portal_{uuid.uuid4().hex[:10]}"
    try:
        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        with engine.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except Exception:  # no server, no driver, no rights: the PostgreSQL half is skipped
        yield None
        return
    sep = "&" if "?" in url else "?"
    try:
        yield f"{url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


def pages(facts: dict[str, Any]) -> dict[str, str]:
    return {
        "runs list": "/ui/runs",
        "runs list, status=Failed": "/ui/runs?status=Failed",
        "runs list, tag team=nlp": "/ui/runs?tag=team%3Dnlp",
        "runs list, page 100": "/ui/runs?page=100",
        "runs list, published pipeline": f"/ui/runs?pipeline={facts['published_id']}",
        "runs list, sorted by duration": "/ui/runs?sort=duration",
        "runs list, sorted by a metric column": "/ui/runs?cols=metric:best_accuracy"
        "&sort=metric:step_1/accuracy&order=desc",
        "runs list, sorted by a parameter column": "/ui/runs?sort=param:learning_rate",
        "runs list, search q=nlp": "/ui/runs?q=nlp",
        "runs list, search q=run 4242 (11 runs)": "/ui/runs?q=run+4242",
        "experiments": "/ui/experiments",
        "one experiment": f"/ui/experiments/{facts['experiment']}",
        "500-step run": f"/ui/runs/{facts['big_run_id']}",
        "a step of the 500-step run": f"/ui/steps/{facts['big_step_id']}",
        # What a live step page asks every 1.5 s when nothing new was logged.
        "metrics poll of a step, nothing new": (
            f"/ui/steps/{facts['big_step_id']}/metrics?after=1000000000000"
        ),
        "floor": "/ui/no-such-page",
    }


def run(ctx: Context) -> Outcome:
    runs = ctx.reps(RUNS, 20_000)
    reps = ctx.reps(20, 5)
    outcome = Outcome("portal", f"portal pages over {runs:,} runs, SQLite and PostgreSQL")
    results: dict[str, dict[str, dict[str, Any]]] = {}
    with postgres_schema() as pg_url:
        databases: dict[str, str | None] = {"SQLite": None}
        if pg_url is None:
            outcome.details.append(
                "PostgreSQL skipped: no server answered (set HEADRACE_BENCH_POSTGRES_URL)"
            )
        else:
            databases["PostgreSQL"] = pg_url
        for db_name, url in databases.items():
            with workspace("portal", url, ctx.keep) as (ws, root):
                began = time.perf_counter()
                facts = seed(ws, runs)
                seeded = time.perf_counter() - began
                outcome.details.append(
                    f"{db_name}: seeded {runs:,} runs, {runs * STEPS_PER_RUN:,} step runs and a "
                    f"{BIG_STEPS}-step run in {seeded:.1f} s"
                )
                with serve(root) as (base, app):
                    results[db_name] = measure(base, app, pages(facts), reps)
    _report(outcome, results, reps)
    return outcome


def _report(outcome: Outcome, results: dict[str, dict[str, dict[str, Any]]], reps: int) -> None:
    lines = [
        "| page | " + " | ".join(f"{db} median | p95 | SQL" for db in results) + " |",
        "|---|" + "---|---|---|" * len(results),
    ]
    labels = next(iter(results.values())).keys()
    for label in labels:
        cells = []
        for db, by_page in results.items():
            found = by_page[label]
            if found["missing"]:
                cells.append("not built | — | —")
                continue
            cells.append(
                f"{num(found['median'])} ms | {num(found['p95'])} ms | {found['statements']}"
            )
            if label == "floor":
                continue
            target = TARGET_BIG_RUN_MS if label.startswith(("500", "a step")) else TARGET_LIST_MS
            floor = by_page["floor"]["median"]
            ok = found["median"] < target and found["statements"] <= TARGET_STATEMENTS
            outcome.rows.append(
                Row(
                    f"portal {label}, {db}",
                    found["median"],
                    "ms",
                    floor,
                    "404 page, no query",
                    f"< {target:.0f} ms, ≤ {TARGET_STATEMENTS} SQL",
                    ok,
                    found["median"] / floor if floor else None,
                )
            )
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for db, by_page in results.items():
        missing = [label for label, found in by_page.items() if found["missing"]]
        if missing:
            outcome.details.append(f"{db}: not built yet (404): {', '.join(missing)}")
    outcome.details.append(
        f"server time from the Server-Timing header, median and p95 of {reps} requests per page "
        "after one warm-up; SQL = statements of one request; reproduce with "
        "`.venv/bin/python benchmarks/run.py portal`"
    )
    outcome.tables.append(("server time per page", "\n".join(lines)))
