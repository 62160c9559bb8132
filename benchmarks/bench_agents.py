"""Several agents on one PostgreSQL store: REST submissions drained by 1, then 2 agents.

A fresh PostgreSQL database is created for the run (and dropped after it) at
`HEADRACE_BENCH_POSTGRES_URL` (default: the machine's server, user postgres). A workspace on
it publishes a one-step pipeline whose step appends its pipeline run id and its agent (its
parent process) to a ledger file. Then, once with `headrace server --agents 1` and once with
`--agents 2` (same workspace, one experiment each), 20 client threads (bench_server's
client) POST 1000 submissions, and the benchmark waits until no run is queued or running.

Reported per pool size: whether exactly 1000 runs exist and all Finished, whether the
ledger holds each run exactly once (no step lost or run twice), how many runs each agent
executed, and the drain time (first submission to the last run's end, from the records).
The 2-agent drain time is compared with the 1-agent one measured in the same run.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.bench_server import CLIENTS, burst, free_port, percentile
from benchmarks.common import (
    BENCH_ROOT,
    BenchError,
    Context,
    Outcome,
    Row,
    quiet,
    wait_until,
    write_script,
)

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
LEDGER_STEP = (
    "import os, sys\n"
    # The agent is the parent of the step's reaper (the step's parent).
    "agent = open(f'/proc/{os.getppid()}/stat').read().rsplit(')', 1)[1].split()[1]\n"
    "with open(sys.argv[1], 'a') as fh:\n"
    "    fh.write(os.environ['HEADRACE_PIPELINE_RUN_ID'] + ' ' + agent + '\\n')\n"
)
UNFINISHED = ["NotStarted", "Running"]


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """A new, empty PostgreSQL database for this run; dropped afterwards."""
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    admin_url = os.environ.get("HEADRACE_BENCH_POSTGRES_URL", DEFAULT_URL)
    name = f"headrace_bench_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        engine.dispose()
        raise BenchError(
            f"cannot reach PostgreSQL at {admin_url} ({exc.orig}); start it or set "
            "HEADRACE_BENCH_POSTGRES_URL"
        ) from exc
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


@contextlib.contextmanager
def postgres_workspace(ctx: Context, url: str) -> Iterator[tuple[Any, Path]]:
    """(Workspace on `url`, its folder's parent) in `.bench/`, removed at exit."""
    BENCH_ROOT.mkdir(exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="agents-", dir=BENCH_ROOT))
    saved = os.environ.get("HEADRACE_HOME")
    os.environ["HEADRACE_HOME"] = str(root / "home")
    try:
        from headrace import Workspace

        with quiet():
            ws = Workspace.create("agents", path=root / "ws", database_url=url, show_output=False)
        try:
            yield ws, root
        finally:
            ws.backend.store.close()
    finally:
        if saved is None:
            os.environ.pop("HEADRACE_HOME", None)
        else:
            os.environ["HEADRACE_HOME"] = saved
        if not ctx.keep:
            atexit.register(shutil.rmtree, root, ignore_errors=True)


def serve(ws_path: Path, port: int, agents: int, log: Path) -> subprocess.Popen[bytes]:
    exe = str(Path(sys.executable).parent / "headrace")
    argv = [exe, "server", "--workspace", str(ws_path), "--port", str(port)]
    argv += ["--agents", str(agents), "--grace-seconds", "30"]
    # Steps as this user (Landlock alone): the machine's Python may be one another user
    # cannot run (a venv of a Python under /root).
    argv += ["--step-user", pwd.getpwuid(os.geteuid()).pw_name]
    with log.open("ab") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)


def drain_with(
    ws: Any, root: Path, published_id: str, agents: int, total: int, ledger: Path
) -> dict[str, Any]:
    """Serve with `agents` agents, submit `total` runs over REST, wait until all ended."""
    import httpx

    from headrace.sdk.published import submit_url
    from headrace.server.auth import issue_token

    secret, _ = issue_token(ws.backend.meta, name=f"bench-{agents}", role="submitter")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = root / f"server-{agents}.log"
    server = serve(Path(str(ws.path)), port, agents, log)
    experiment = f"agents_{agents}"
    meta = ws.backend.meta
    try:

        def up() -> bool:
            if server.poll() is not None:
                raise BenchError(f"the server exited: {log.read_text()[-2000:]}")
            try:
                return httpx.get(f"{base}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, 60, "the server to answer /health")
        url = submit_url(
            base,
            f"PipelineRuns/PipelineSubmit/{published_id}",
            subscription_id="local",
            resource_group="local",
            workspace_name=ws.name,
        )
        headers = {"Authorization": f"Bearer {secret}"}
        body = {"ExperimentName": experiment}
        start = time.time()
        wall, latencies = burst(url, total, headers, body)
        deadline = time.monotonic() + 1200
        while meta.list_pipeline_runs(experiment_name=experiment, statuses=UNFINISHED, limit=1):
            if time.monotonic() > deadline:
                raise BenchError(f"{experiment}: runs still unfinished after 20 minutes")
            time.sleep(0.1)
        runs = meta.list_pipeline_runs(experiment_name=experiment, limit=10 * total)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    ids = {r.id for r in runs}
    executions = [
        line.split() for line in ledger.read_text().splitlines() if line.split()[0] in ids
    ]
    per_run = Counter(run_id for run_id, _ in executions)
    per_agent = Counter(agent for _, agent in executions)
    statuses = Counter(r.status for r in runs)
    ended = [r.ended_at.timestamp() for r in runs if r.ended_at is not None]
    return {
        "agents": agents,
        "runs": len(runs),
        "finished": statuses.get("Finished", 0),
        "statuses": dict(statuses),
        "executed_once": len(per_run) == len(runs) and set(per_run.values()) == {1},
        "executions": len(executions),
        "per_agent": sorted(per_agent.values(), reverse=True),
        "drain": max(ended) - start if ended else float("nan"),
        "burst": wall,
        "p99": percentile(latencies, 0.99),
    }


def run(ctx: Context) -> Outcome:
    from headrace import Pipeline, PythonScriptStep

    total = ctx.reps(1000, 200)
    outcome = Outcome(
        "agents", f"{total} REST submissions from {CLIENTS} clients, 1 then 2 agents, PostgreSQL"
    )
    results: list[dict[str, Any]] = []
    with fresh_database() as url, postgres_workspace(ctx, url) as (ws, root):
        src = root / "src"
        write_script(src, "ledger.py", LEDGER_STEP)
        ledger = root / "ledger.txt"
        step = PythonScriptStep(
            "ledger.py",
            name="ledger",
            arguments=[str(ledger)],
            source_directory=str(src),
            allow_reuse=False,
        )
        with quiet():
            published = Pipeline(ws, steps=[step]).publish(name="ledger")
        for agents in (1, 2):
            results.append(drain_with(ws, root, published.id, agents, total, ledger))
    one, two = results
    for result in results:
        exact = result["runs"] == total and result["finished"] == total and result["executed_once"]
        outcome.rows.append(
            Row(
                f"{total} submissions, {result['agents']} agent(s): runs finished, each once",
                float(result["finished"]),
                "runs",
                float(total),
                "submitted",
                "all, exactly once",
                exact,
            )
        )
    outcome.rows.append(
        Row(
            f"drain {total} runs with 2 agents (submit burst to last run's end)",
            two["drain"],
            "s",
            one["drain"],
            "1 agent, same run",
            # Informational: once the steps saturate the machine's cores, more agents cannot
            # drain faster, and the machine is shared (load from elsewhere moves the figure).
            f"info ({os.cpu_count()} cores, load {os.getloadavg()[0]:.1f})",
            None,
            two["drain"] / one["drain"],
        )
    )
    for result in results:
        outcome.details.append(
            f"{result['agents']} agent(s): drain {result['drain']:.1f} s, submit burst "
            f"{result['burst']:.1f} s (p99 {result['p99'] * 1000:.0f} ms), statuses "
            f"{result['statuses']}, step executions {result['executions']}, runs per agent "
            f"{result['per_agent']}"
        )
    return outcome
