"""Published-pipeline submissions over HTTP to a real `headrace server` (issue 3 targets).

A workspace on SQLite publishes a one-step pipeline with an int parameter and starts
`headrace server` (uvicorn, token auth on) on 127.0.0.1. Then 20 client threads, each with
its own keep-alive HTTP connection, POST the SDK v1 submit body to the published pipeline's
REST endpoint. First an open-loop load at the target rate (200 submissions a second spread
over the clients, each latency counted from when the request was due): its p50 and p99 are
the latency figures. Then the clients send back to back (saturation): accepted submissions
per second over the whole burst. Also reported: whether every submission became exactly one
run and all runs finish (none lost, none duplicated), and the server's RSS when idle.
Floors: the same clients, the same way, against `GET /health` (the HTTP stack alone).
"""

from __future__ import annotations

import os
import pwd
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    BenchError,
    Context,
    Outcome,
    Row,
    bench_workspace,
    median,
    proc_status_kb,
    wait_until,
    write_script,
)

CLIENTS = 20
TARGET_RATE = 200.0
TARGET_P99_MS = 100.0
TARGET_RSS_MB = 200.0
STEP = "import sys\nprint('arg', sys.argv[1])\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def burst(
    url: str, total: int, headers: dict[str, str], body: Any, rate: float | None = None
) -> tuple[float, list[float]]:
    """`total` requests from CLIENTS threads: (wall seconds, per-request seconds).

    Each client is a thread with one keep-alive connection of the standard library's
    http.client: the clients share the machine's two cores with the server, and the lightest
    client leaves the most of them to the server being measured.

    With `rate`, request j is due at start + j / rate (an open-loop load of `rate` requests a
    second spread over the clients) and its latency counts from when it was due, so a server
    that falls behind is charged for the wait too (no coordinated omission). Without `rate`,
    each client sends its next request as soon as the last one is answered (saturation)."""
    import http.client
    import json
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    payload = None if body is None else json.dumps(body).encode()
    sent = {**headers, **({"Content-Type": "application/json"} if payload else {})}
    latencies: list[float] = []
    failures: list[str] = []
    issued = [0]
    lock = threading.Lock()

    def client() -> None:
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
        try:
            while True:
                with lock:
                    if issued[0] >= total:
                        return
                    index = issued[0]
                    issued[0] += 1
                start = time.perf_counter()
                if rate is not None:
                    due = began + index / rate
                    if due > start:
                        time.sleep(due - start)
                    start = due
                conn.request("POST" if payload else "GET", path, body=payload, headers=sent)
                response = conn.getresponse()
                text = response.read()
                elapsed = time.perf_counter() - start
                with lock:
                    latencies.append(elapsed)
                    if response.status != 200:
                        failures.append(f"{response.status}: {text[:200]!r}")
        finally:
            conn.close()

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    if failures:
        raise BenchError(f"{len(failures)} requests failed, e.g. {failures[0]}")
    return wall, latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(ctx: Context) -> Outcome:
    from headrace import Pipeline, PipelineParameter, PythonScriptStep
    from headrace.sdk.published import submit_url
    from headrace.server.auth import issue_token

    total = ctx.reps(1000, 200)
    outcome = Outcome("server", f"{total} REST submissions from {CLIENTS} clients")
    with bench_workspace(ctx, "server") as bws:
        src = bws.folder("src-server")
        write_script(src, "step.py", STEP)
        arg = PipelineParameter("pipeline_arg", default_value=1)
        step = PythonScriptStep(
            "step.py", name="echo", arguments=[arg], source_directory=str(src), allow_reuse=False
        )
        published = Pipeline(bws.ws, steps=[step]).publish(name="bench")
        secret, _ = issue_token(bws.ws.backend.meta, name="bench", role="submitter")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log = (bws.root / "server.log").open("ab")
        headrace = Path(os.environ.get("VIRTUAL_ENV", "")) / "bin" / "headrace"
        exe = (
            str(headrace)
            if headrace.exists()
            else str(Path(__import__("sys").executable).parent / "headrace")
        )
        # Steps as this user (Landlock alone): the machine's Python may be one another user
        # cannot run (a venv of a Python under /root), as bench_mlflow does.
        me = pwd.getpwuid(os.geteuid()).pw_name
        server = subprocess.Popen(
            [exe, "server", "--workspace", str(bws.path), "--port", str(port), "--step-user", me],
            stdout=log,
            stderr=log,
        )
        try:
            import httpx

            def up() -> bool:
                if server.poll() is not None:
                    raise BenchError(
                        f"the server exited: {(bws.root / 'server.log').read_text()[-2000:]}"
                    )
                try:
                    return httpx.get(f"{base}/health", timeout=1).status_code == 200
                except httpx.HTTPError:
                    return False

            wait_until(up, 60, "the server to answer /health")
            time.sleep(1.0)
            rss_idle = (proc_status_kb(server.pid, "VmRSS") or 0) / 1024
            headers = {"Authorization": f"Bearer {secret}"}
            url = submit_url(
                base,
                f"PipelineRuns/PipelineSubmit/{published.id}",
                subscription_id="local",
                resource_group="local",
                workspace_name=bws.ws.name,
            )
            body = {"ExperimentName": "bench_rest", "ParameterAssignments": {"pipeline_arg": 20}}
            burst(url, 40, headers, body)  # warm-up: connections, imports, caches
            # Latency at the target rate (open loop), then the most the server takes.
            _, health_paced = burst(f"{base}/health", total, headers, None, TARGET_RATE)
            _, paced = burst(url, total, headers, body, TARGET_RATE)
            health_wall, health_lat = burst(f"{base}/health", total, headers, None)
            wall, latencies = burst(url, total, headers, body)
            rate = total / wall
            p50, p99 = percentile(paced, 0.5), percentile(paced, 0.99)
            # Every accepted submission is one run, and every run finishes.
            meta = bws.ws.backend.meta
            deadline = time.monotonic() + 600
            while True:
                runs = meta.list_pipeline_runs(experiment_name="bench_rest", limit=10 * total)
                done = [r for r in runs if r.status in ("Finished", "Failed", "Canceled")]
                if len(done) == len(runs) or time.monotonic() > deadline:
                    break
                time.sleep(1)
            warm = 40
            statuses = {s: sum(1 for r in runs if r.status == s) for s in {r.status for r in runs}}
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                server.kill()
            log.close()
    submitted = 2 * total + warm
    exact = len(runs) == submitted and statuses.get("Finished", 0) == submitted
    outcome.rows.append(
        Row(
            f"REST submissions, {CLIENTS} clients, SQLite (throughput, saturated)",
            rate,
            "/s",
            total / health_wall,
            "GET /health, same clients",
            f"≥ {TARGET_RATE:.0f}/s",
            rate >= TARGET_RATE,
            rate / (total / health_wall),
        )
    )
    outcome.rows.append(
        Row(
            f"REST submission latency p99 at {TARGET_RATE:.0f}/s",
            p99 * 1000,
            "ms",
            percentile(health_paced, 0.99) * 1000,
            f"GET /health p99 at {TARGET_RATE:.0f}/s",
            f"< {TARGET_P99_MS:.0f} ms",
            p99 * 1000 < TARGET_P99_MS,
            p99 / percentile(health_paced, 0.99),
        )
    )
    outcome.rows.append(
        Row(
            f"{2 * total} submissions: runs created and finished",
            float(statuses.get("Finished", 0) - warm),
            "runs",
            float(2 * total),
            "submitted",
            "all, exactly once",
            exact,
        )
    )
    outcome.rows.append(
        Row(
            "server RSS, idle",
            rss_idle,
            "MB",
            None,
            "",
            f"< {TARGET_RSS_MB:.0f} MB",
            rss_idle < TARGET_RSS_MB,
        )
    )
    outcome.details.append(
        f"at {TARGET_RATE:.0f} submissions/s offered: latency p50 {p50 * 1000:.1f} ms, p99 "
        f"{p99 * 1000:.1f} ms (/health at that rate: p50 {median(health_paced) * 1000:.1f} ms)"
    )
    outcome.details.append(
        f"saturated ({CLIENTS} clients sending back to back): {total} submissions in "
        f"{wall:.2f} s, latency p50 {percentile(latencies, 0.5) * 1000:.1f} ms, p99 "
        f"{percentile(latencies, 0.99) * 1000:.1f} ms (/health p50 "
        f"{median(health_lat) * 1000:.1f} ms)"
    )
    outcome.details.append(
        f"runs of the experiment by status after the burst: {statuses} ({warm} warm-up)"
    )
    return outcome
