"""Schedules (issue 16): the scheduler's lateness and CPU with 1,000 active schedules, and one
poll of a datastore trigger watching 100,000 files.

- **1,000 schedules, every minute** (the worst case of "1,000 active schedules": each fires
  every minute), their slots spread over the minute (start times one every 60 ms), served
  by the real scheduler loop (`Scheduler.run`, as `headrace scheduler` and the server run
  it) in a process of its own for 70 s (45 s with --quick): lateness of each fire (the run's
  creation time minus its slot) and the process's CPU time over the window, against the
  targets "within 1 s of its slot" and "under 5 % of one core". The queued runs are not
  executed (no agent): this measures the scheduler alone.
- **1,000 schedules due at the same instant** (info): how long one pass takes to queue them
  all (every fire is its own transaction: claim + run + event).
- **A datastore trigger over 100,000 files** (10,000 with --quick) in a local folder: the
  first poll (it takes stock of every file: 100,000 rows written), a poll with nothing
  changed, and a poll after 10 files changed, each in a fresh process, with its peak RSS.
  Target: a poll under 2 s and under 150 MB.
- **The same over S3** (moto's server on 127.0.0.1; 20,000 objects, 2,000 with --quick),
  reported only: moto, one Python process, bounds the listing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from benchmarks.common import (
    PYTHON,
    REPO,
    Context,
    Outcome,
    Row,
    bench_workspace,
    median,
    quiet,
)

UTC = timezone.utc


def _publish(ws: Any, folder: Path) -> str:
    from headrace import (
        DataPath,
        DataPathComputeBinding,
        Pipeline,
        PipelineParameter,
        PythonScriptStep,
    )

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "show.py").write_text("import sys\nprint(sys.argv[1])\n")
    ds = ws.get_default_datastore()
    param = PipelineParameter("input_data", default_value=DataPath(ds, "watched/x"))
    pair = (param, DataPathComputeBinding(mode="mount"))
    step = PythonScriptStep(
        "show.py", name="show", arguments=[pair], inputs=[pair], source_directory=str(folder)
    )
    with quiet():
        return str(Pipeline(ws, steps=[step]).publish(name="bench").id)


def _probe(argv: list[str], timeout: float) -> dict[str, Any]:
    """Run this module's probe mode in a fresh process; its JSON answer."""
    done = subprocess.run(
        [PYTHON, "-m", "benchmarks.bench_schedules", *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"probe {argv} failed: {done.stderr[-2000:]}")
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


def _recurrences(ctx: Context, outcome: Outcome) -> None:
    from headrace import Schedule, ScheduleRecurrence

    with bench_workspace(ctx, "schedules") as bws:
        ws = bws.ws
        pipeline_id = _publish(ws, bws.folder("src"))
        count = 1000
        window = 45 if ctx.quick else 70
        base = (datetime.now(UTC) + timedelta(seconds=75)).replace(second=0, microsecond=0)
        base += timedelta(minutes=1)
        for i in range(count):
            start = (base + timedelta(milliseconds=60 * i)).replace(tzinfo=None)
            Schedule.create(
                ws,
                f"s{i}",
                pipeline_id,
                "bench",
                ScheduleRecurrence("Minute", 1, start_time=start.isoformat(timespec="seconds")),
            )
        # Start the loop a little before the first slot; measure over the window.
        wait = (base - datetime.now(UTC)).total_seconds() - 5
        if wait > 0:
            time.sleep(wait)
        answer = _probe(["--loop", str(bws.path), str(window)], timeout=window + 120)
        lateness = []
        for run in ws.backend.list_pipeline_runs(limit=5000):
            fired = run.properties.get("headrace.scheduleFire", "")
            slot = datetime.fromisoformat(fired.removeprefix("slot:"))
            lateness.append((run.created_at - slot).total_seconds())
        if not lateness:
            raise RuntimeError("the scheduler fired nothing")
        lateness.sort()
        worst = lateness[-1]
        cpu = answer["cpu"] / answer["wall"] * 100
        outcome.rows.append(
            Row(
                f"1,000 every-minute schedules: worst lateness of {len(lateness)} fires",
                worst,
                "s",
                None,
                "",
                "< 1 s",
                worst < 1.0,
            )
        )
        outcome.rows.append(
            Row(
                "1,000 every-minute schedules: scheduler CPU",
                cpu,
                "%",
                None,
                "",
                "< 5 % of a core",
                cpu < 5.0,
            )
        )
        p99 = lateness[int(len(lateness) * 0.99)]
        outcome.details.append(
            f"{len(lateness)} fires in {answer['wall']:.0f} s; lateness median "
            f"{median(lateness) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max "
            f"{worst * 1000:.0f} ms; CPU {answer['cpu']:.2f} s"
        )

    with bench_workspace(ctx, "schedules-burst") as bws:
        ws = bws.ws
        pipeline_id = _publish(ws, bws.folder("src"))
        start = (datetime.now(UTC) + timedelta(hours=2)).replace(second=0, microsecond=0)
        every = ScheduleRecurrence(
            "Minute", 1, start_time=start.replace(tzinfo=None).isoformat(timespec="seconds")
        )
        for i in range(count):
            Schedule.create(ws, f"b{i}", pipeline_id, "bench", every)
        answer = _probe(["--burst", str(bws.path), start.isoformat()], timeout=600)
        outcome.rows.append(
            Row(
                "1,000 schedules due at the same instant: one pass queues them all",
                answer["wall"],
                "s",
                None,
                "",
                "info (one transaction per fire)",
                None,
            )
        )
        outcome.details.append(
            f"burst: {answer['fired']} runs in {answer['wall']:.2f} s "
            f"({answer['wall'] / max(answer['fired'], 1) * 1000:.1f} ms per fire, "
            f"CPU {answer['cpu'] / max(answer['fired'], 1) * 1000:.1f} ms per fire)"
        )


def _trigger(ctx: Context, outcome: Outcome) -> None:
    from headrace import Schedule

    files = 10_000 if ctx.quick else 100_000
    with bench_workspace(ctx, "trigger") as bws:
        ws = bws.ws
        pipeline_id = _publish(ws, bws.folder("src"))
        root = Path(ws.backend.local_datastore_path("workspaceblobstore"))
        watched = root / "watched"
        watched.mkdir()
        for i in range(files):
            (watched / f"f{i:06d}.csv").write_bytes(b"x")
        schedule = Schedule.create(
            ws,
            "watch",
            pipeline_id,
            "bench",
            datastore=ws.get_default_datastore(),
            path_on_datastore="watched",
            polling_interval=1,
            data_path_parameter_name="input_data",
        )
        now = datetime.now(UTC) + timedelta(seconds=1)
        polls: list[tuple[str, dict[str, Any]]] = []
        for label, minutes, touch in (
            ("first poll (takes stock)", 0, 0),
            ("poll, nothing changed", 1, 0),
            ("poll, 10 files changed", 2, 10),
        ):
            for i in range(touch):
                (watched / f"f{i:06d}.csv").write_bytes(b"changed")
            at = (now + timedelta(minutes=minutes)).isoformat()
            polls.append((label, _probe(["--poll", str(bws.path), at], timeout=600)))
        for label, answer in polls:
            outcome.rows.append(
                Row(
                    f"trigger over {files:,} local files: {label}",
                    answer["wall"],
                    "s",
                    None,
                    "",
                    "< 2 s",
                    answer["wall"] < 2.0,
                )
            )
        peak = max(answer["rss_mb"] for _, answer in polls)
        outcome.rows.append(
            Row(
                f"trigger over {files:,} local files: peak RSS of a polling process",
                peak,
                "MB",
                None,
                "",
                "< 150 MB",
                peak < 150,
            )
        )
        outcome.details.append(
            "polls: "
            + "; ".join(
                f"{label} {a['wall']:.2f} s (CPU {a['cpu']:.2f} s), {a['rss_mb']:.0f} MB"
                for label, a in polls
            )
            + f"; schedule {schedule.id}"
        )


def _trigger_s3(ctx: Context, outcome: Outcome) -> None:
    """The same polls over objects in a bucket of moto's S3 server (fewer: moto stores each
    object with a Python process's overhead, so 100,000 take many minutes to create)."""
    from tests.objectstores import MotoS3

    from headrace import Datastore, Schedule

    objects = 2_000 if ctx.quick else 20_000
    with bench_workspace(ctx, "trigger-s3") as bws:
        moto = MotoS3(bws.folder("moto") / "moto.log")
        try:
            ws = bws.ws
            pipeline_id = _publish(ws, bws.folder("src"))
            bucket = moto.new_bucket()
            fs = moto.filesystem()
            for start in range(0, objects, 1000):
                fs.pipe(
                    {f"{bucket}/watched/f{i:06d}.csv": b"x" for i in range(start, start + 1000)}
                )
            store = Datastore.register_s3(
                ws,
                "s3data",
                bucket,
                endpoint_url=moto.url,
                access_key_id=moto.key_id,
                secret_access_key=moto.secret,
            )
            Schedule.create(
                ws,
                "watch-s3",
                pipeline_id,
                "bench",
                datastore=store,
                path_on_datastore="watched",
                polling_interval=1,
                data_path_parameter_name="input_data",
            )
            now = datetime.now(UTC) + timedelta(seconds=1)
            polls = []
            for label, minutes, touch in (
                ("first poll (takes stock)", 0, 0),
                ("poll, nothing changed", 1, 0),
                ("poll, 10 objects changed", 2, 10),
            ):
                if touch:
                    fs.pipe({f"{bucket}/watched/f{i:06d}.csv": b"changed" for i in range(touch)})
                at = (now + timedelta(minutes=minutes)).isoformat()
                polls.append((label, _probe(["--poll", str(bws.path), at], timeout=900)))
        finally:
            moto.stop()
        for label, answer in polls:
            outcome.rows.append(
                Row(
                    f"trigger over {objects:,} S3 objects (moto): {label}",
                    answer["wall"],
                    "s",
                    None,
                    "",
                    "info (moto lists slowly)",
                    None,
                )
            )
        outcome.details.append(
            "S3 polls: "
            + "; ".join(
                f"{label} {a['wall']:.2f} s (CPU {a['cpu']:.2f} s), {a['rss_mb']:.0f} MB"
                for label, a in polls
            )
        )


def run(ctx: Context) -> Outcome:
    outcome = Outcome("schedules", "Schedules: 1,000 schedules, a trigger over 100,000 files")
    _recurrences(ctx, outcome)
    _trigger(ctx, outcome)
    _trigger_s3(ctx, outcome)
    return outcome


# -- probe mode: what the measured process runs ------------------------------------------------
def _cpu() -> float:
    times = os.times()
    return times.user + times.system


def _rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _main(argv: list[str]) -> None:
    import threading

    from headrace.engine.scheduler import Scheduler
    from headrace.store.workspace_store import WorkspaceStore

    mode, root = argv[0], Path(argv[1])
    store = WorkspaceStore.open(root)
    scheduler = Scheduler(store)
    if mode == "--loop":
        stop = threading.Event()
        threading.Timer(float(argv[2]), stop.set).start()
        cpu, wall = _cpu(), time.perf_counter()
        scheduler.run(stop)
        answer = {"cpu": _cpu() - cpu, "wall": time.perf_counter() - wall}
    else:
        at = datetime.fromisoformat(argv[2])
        cpu, wall = _cpu(), time.perf_counter()
        result = scheduler.tick(at)
        answer = {
            "cpu": _cpu() - cpu,
            "wall": time.perf_counter() - wall,
            "fired": len(result.run_ids),
            "rss_mb": _rss_mb(),
        }
    store.close()
    print(json.dumps(answer))


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    _main(sys.argv[1:])
