"""Notifications: what they add to a run's ending, how fast the outbox drains, and how long
a webhook waits after a run ends.

- **Ending a run** (`finish_pipeline_run`, one transaction) with 20 matching notifications,
  against the same with none: the outbox rows are written in the ending's transaction.
- **Draining** 200 due webhook deliveries to a local HTTP receiver with one sender
  (`engine.outbox.send_due`: lease, POST, record), in deliveries per second.
- **Run ended -> webhook received**: a one-step run submitted with a webhook notification;
  from the run's recorded end to the POST arriving (the agent's sender thread is woken when
  the run ends). Target: under 1 s (median).
"""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from benchmarks.common import Context, Outcome, Row, bench_workspace, median, quiet, spread

TARGET_SECONDS = 1.0


class _Receiver:
    def __init__(self) -> None:
        self.arrivals: list[tuple[float, dict[str, Any]]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.arrivals.append((time.time(), json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _queue_runs(store: Any, count: int) -> list[str]:
    graph = {"nodes": [], "schema_version": 1}
    return [
        store.meta.create_pipeline_run(
            experiment_name="bench",
            graph=graph,
            parameters={},
            tags={},
            description=None,
            run_source="bench",
            continue_on_step_failure=False,
            regenerate_outputs=False,
        ).id
        for _ in range(count)
    ]


def _finish_times(store: Any, run_ids: list[str]) -> list[float]:
    times = []
    for run_id in run_ids:
        started = time.perf_counter()
        store.meta.finish_pipeline_run(run_id, "Finished")
        times.append(time.perf_counter() - started)
    return times


def run(ctx: Context) -> Outcome:
    from headrace import Notification, Pipeline, PythonScriptStep
    from headrace.engine.outbox import send_due

    outcome = Outcome("notifications", "Notifications: ending a run, the outbox, a webhook")
    count = ctx.reps(200, 40)
    receiver = _Receiver()
    try:
        with bench_workspace(ctx, "notify", idle_seconds=5) as bws:
            store = bws.ws.backend.store  # type: ignore[attr-defined]
            plain = _finish_times(store, _queue_runs(store, count))
            for n in range(20):
                Notification.webhook(bws.ws, f"hook-{n}", url=receiver.url(f"/{n}"))
            notified = _finish_times(store, _queue_runs(store, max(10, count // 4)))
            outcome.rows.append(
                Row(
                    "finish_pipeline_run with 20 matching notifications (outbox rows written "
                    "in the ending's transaction)",
                    median(notified) * 1000,
                    "ms",
                    median(plain) * 1000,
                    "with none",
                    "report",
                    None,
                    median(notified) / median(plain),
                )
            )
            outcome.details.append(f"with 20 notifications: {spread(notified, 1000, ' ms')}")
            outcome.details.append(f"with none: {spread(plain, 1000, ' ms')}")

            # Drain: as many due deliveries as the finishes above queued, capped.
            due = [r for r in store.meta.list_outbox(limit=100_000) if r.state == "pending"]
            started = time.perf_counter()
            sent = send_due(store)
            drain = time.perf_counter() - started
            outcome.rows.append(
                Row(
                    f"one sender delivering {sent} webhook POSTs to a local receiver",
                    sent / drain,
                    "deliveries/s",
                    None,
                    "",
                    "report",
                    None,
                )
            )
            outcome.details.append(f"{len(due)} due, {sent} sent in {drain:.2f} s")
            for n in range(20):
                Notification.get(bws.ws, f"hook-{n}").remove()

            Notification.webhook(bws.ws, "latency", url=receiver.url("/latency"))
            folder = bws.folder("src")
            (folder / "a.py").write_text("print('a')\n")
            step = PythonScriptStep("a.py", name="a", source_directory=str(folder))
            waits: list[float] = []
            for _ in range(ctx.reps(7, 3)):
                with quiet():
                    pipeline_run = Pipeline(bws.ws, [step]).submit("latency")
                    pipeline_run.wait_for_completion(show_output=False)
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    got = [a for a in receiver.arrivals if a[1].get("run_id") == pipeline_run.id]
                    if got:
                        break
                    time.sleep(0.005)
                ended = store.meta.get_pipeline_run(pipeline_run.id).ended_at
                assert ended is not None and got, "no webhook within 30 s"
                received = datetime.fromtimestamp(got[0][0], timezone.utc)
                waits.append((received - ended).total_seconds())
            outcome.rows.append(
                Row(
                    "run ended -> webhook received (the agent's sender thread)",
                    median(waits),
                    "s",
                    None,
                    "",
                    f"< {TARGET_SECONDS:g} s",
                    median(waits) < TARGET_SECONDS,
                )
            )
            outcome.details.append(f"run ended -> webhook: {spread(waits, 1000, ' ms')}")
    finally:
        receiver.close()
    return outcome
