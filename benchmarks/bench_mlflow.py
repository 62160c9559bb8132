"""MLflow tracking (issue 17 item 6): "the MLflow API handles 1,000 `log_metric` calls a
second from a step".

- **In a step.** A step script calls `mlflow.log_metric` N times (5,000; 1,000 with --quick)
  with the real `mlflow` client, the URI the step runtime sets (`headrace:///<workspace>`,
  headrace's tracking store: the run journal), and times the loop inside the script. The
  floor: the same number of `Run.get_context().log` calls (headrace's own logger, the same
  journal) in the same script. Then every value must be in the store, each once.
- **Through the server.** `MlflowClient(<server URL>).log_metric` N/10 times from this
  process against `headrace server` (token auth, SQLite): every call one HTTP request and
  one write transaction. Informational: a step logs through its journal, not this route.
"""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import (
    BenchError,
    Context,
    Outcome,
    Row,
    bench_workspace,
    run_pipeline,
    step_records,
    step_stdout,
    wait_until,
    write_script,
)

TARGET_RATE = 1000.0

STEP = """
import sys, time
import mlflow
from headrace import Run

n = int(sys.argv[1])
run = Run.get_context()
started = time.perf_counter()
for i in range(n):
    run.log("floor", float(i), step=i)
floor = time.perf_counter() - started
with mlflow.start_run():
    mlflow.log_metric("warm", 0.0)
    started = time.perf_counter()
    for i in range(n):
        mlflow.log_metric("loss", float(i), step=i)
    took = time.perf_counter() - started
print(f"RATES {n / took:.1f} {n / floor:.1f}", flush=True)
"""


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(ctx: Context) -> Outcome:
    try:
        import mlflow
    except ImportError as exc:
        raise BenchError("the mlflow benchmark needs mlflow-skinny (the dev extra)") from exc
    from headrace import Pipeline, PythonScriptStep
    from headrace.server.auth import issue_token

    n = ctx.reps(5000, 1000)
    outcome = Outcome("mlflow", f"MLflow log_metric: {n} calls in a step, {n // 10} via REST")
    with bench_workspace(ctx, "mlflow") as bws:
        src = bws.folder("src")
        write_script(src, "log.py", STEP)
        step = PythonScriptStep(
            "log.py", arguments=[str(n)], source_directory=str(src), allow_reuse=False
        )
        _, pipeline_run, _ = run_pipeline(bws, Pipeline(bws.ws, steps=[step]))
        (record,) = step_records(bws, pipeline_run.id)
        out = step_stdout(bws, record.id)
        if "RATES " not in out:
            raise BenchError(f"the step printed no rates: {out[-2000:]}")
        rate, floor = (float(x) for x in out.split("RATES ", 1)[1].split()[:2])
        logged = [m for m in bws.ws.backend.list_metrics([record.id]) if m.name == "loss"]
        steps = sorted(m.step for m in logged)
        if steps != list(range(n)):
            raise BenchError(f"{len(logged)} of {n} log_metric values recorded (or twice)")
        outcome.rows.append(
            Row(
                "mlflow.log_metric in a step (calls/s)",
                rate,
                "/s",
                floor,
                "run.log, same step",
                f">= {TARGET_RATE:.0f}/s",
                rate >= TARGET_RATE,
                rate / floor,
            )
        )
        outcome.rows.append(
            Row(
                f"{n} mlflow.log_metric values recorded, each once",
                float(len(logged)),
                "values",
                float(n),
                "logged",
                "all, exactly once",
                True,
            )
        )

        secret, _ = issue_token(bws.ws.backend.meta, name="bench", role="submitter")
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        exe = str(Path(sys.executable).parent / "headrace")
        log = (bws.root / "server.log").open("ab")
        me = pwd.getpwuid(os.geteuid()).pw_name  # as root, the server confines steps as a user
        server = subprocess.Popen(
            [exe, "server", "--workspace", str(bws.path), "--port", str(port), "--step-user", me],
            stdout=log,
            stderr=log,
        )
        saved = os.environ.get("MLFLOW_TRACKING_TOKEN")
        os.environ["MLFLOW_TRACKING_TOKEN"] = secret
        try:
            import httpx

            def up() -> bool:
                if server.poll() is not None:
                    tail = (bws.root / "server.log").read_text()[-2000:]
                    raise BenchError(f"the server exited: {tail}")
                try:
                    return httpx.get(f"{base}/health", timeout=1).status_code == 200
                except httpx.HTTPError:
                    return False

            wait_until(up, 60, "the server to answer /health")
            client = mlflow.MlflowClient(tracking_uri=base)
            calls = n // 10
            client.log_metric(record.id, "warm-rest", 0.0)
            started = time.perf_counter()
            for i in range(calls):
                client.log_metric(record.id, "rest", float(i), step=i)
            rest_rate = calls / (time.perf_counter() - started)
        finally:
            if saved is None:
                os.environ.pop("MLFLOW_TRACKING_TOKEN", None)
            else:
                os.environ["MLFLOW_TRACKING_TOKEN"] = saved
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
            log.close()
        outcome.rows.append(
            Row(
                "MlflowClient.log_metric via headrace server's REST API (calls/s)",
                rest_rate,
                "/s",
                None,
                "",
                "info (one request, one transaction each)",
                None,
            )
        )
        outcome.details.append(
            f"in a step: {rate:.0f} log_metric/s against {floor:.0f} run.log/s; "
            f"REST, one client: {rest_rate:.0f}/s"
        )
    return outcome
