"""An instrumented headrace agent, for `bench_profile`: where the agent's time goes per step.

Run as `python benchmarks/agent_probe.py --workspace WS --stats OUT.json [--cprofile]`. It is
the real agent (`headrace.engine.agent.main`) with timing wrappers put around its phases
and around every metadata-store call, plus SQLAlchemy event counters (statements by kind,
commits). Nothing in src/ changes: the wrappers are installed on the classes and module
attributes at start-up, and only measure while a window is open:

    SIGUSR1  open a window (reset counters; start cProfile with --cprofile)
    SIGUSR2  close it and write OUT.json (and OUT.prof with --cprofile)

The wrappers time inclusive wall time; nested labels overlap (e.g. `agent._ended` contains
`commit.finalize` and `store.complete_step_run`).
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import json
import os
import resource
import signal
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

TIMERS: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
SQL: dict[str, int] = defaultdict(int)
SQL_BY: dict[str, int] = defaultdict(int)  # statements by innermost timed label
STACK: list[str] = []
SPAWNS: dict[int, float] = {}
LIFETIMES: list[float] = []
REAPED: list[float] = []
STARTED: list[float] = []
STATE: dict[str, Any] = {"open": False}


def _timed(label: str, fn: Any) -> Any:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not STATE["open"]:
            return fn(*args, **kwargs)
        start = time.perf_counter()
        STACK.append(label)
        try:
            return fn(*args, **kwargs)
        finally:
            STACK.pop()
            entry = TIMERS[label]
            entry[0] += 1
            entry[1] += time.perf_counter() - start

    return wrapper


MISSING: list[str] = []  # wrapped names the code no longer has (src/ moves on)


def _wrap(owner: Any, names: list[str], prefix: str) -> None:
    for name in names:
        if not hasattr(owner, name):
            MISSING.append(f"{prefix}.{name}")
            continue
        setattr(owner, name, _timed(f"{prefix}.{name}", getattr(owner, name)))


def install_wrappers() -> None:
    """Timing wrappers around the agent's phases and every metadata-store method."""
    from headrace.engine import agent, fingerprint, orchestrator, planning, runtime, snapshots
    from headrace.engine.executors import local
    from headrace.store import artifacts, metadata

    _wrap(
        agent.Agent,
        [
            "_heartbeat",
            "_claim",
            "_check_cancel_requests",
            "_dispatch",
            "_free_slots",
            "_start",
            "_wait",
            "_reap",
            "_ended",
            "_enforce_deadlines",
            "_ingest_journals",
            "_finish_done_runs",
        ],
        "agent",
    )
    # The agent module imported these by name: wrap its references.
    _wrap(agent, ["prepare", "finalize", "read_journal"], "runtime")
    _wrap(runtime, ["_environment", "_resolve_input"], "runtime")
    _wrap(snapshots, ["materialize_snapshot"], "snapshots")
    _wrap(fingerprint, ["fingerprint_parts", "fingerprint", "interpreter_environment"], "fp")
    _wrap(planning, ["resolve_inputs", "outputs_exist"], "planning")
    _wrap(orchestrator, ["resolve_inputs", "outputs_exist"], "planning")
    _wrap(
        orchestrator.RunOrchestrator,
        [
            "next_tasks",
            "_ready",
            "_plan",
            "_explain_run",
            "_record_reuse",
            "_start_plan",
            "started",
            "step_ended",
            "finish",
        ],
        "orch",
    )
    _wrap(artifacts.LocalArtifactStore, ["list_files", "move_tree", "read_bytes"], "artifacts")
    store_methods = [
        n
        for n, v in vars(metadata.SqlMetadataStore).items()
        if callable(v) and not n.startswith("_")
    ]
    _wrap(metadata.SqlMetadataStore, store_methods, "store")

    start = local.LocalExecutor.start

    def timed_start(self: Any, prepared: Any) -> Any:
        t0 = time.perf_counter()
        process = start(self, prepared)
        if STATE["open"]:
            entry = TIMERS["executor.start (Popen + pidfd_open + /proc stat)"]
            entry[0] += 1
            entry[1] += time.perf_counter() - t0
            SPAWNS[process.pid] = t0
            STARTED.append(t0)
        return process

    local.LocalExecutor.start = timed_start  # type: ignore[method-assign]

    poll = local.LocalProcess.poll

    def timed_poll(self: Any) -> Any:
        code = poll(self)
        if code is not None and STATE["open"] and self.pid in SPAWNS:
            now = time.perf_counter()
            LIFETIMES.append(now - SPAWNS.pop(self.pid))
            REAPED.append(now)
        return code

    local.LocalProcess.poll = timed_poll  # type: ignore[method-assign]


def install_counters() -> None:
    """SQL statement and transaction counters on every SQLAlchemy engine."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    @event.listens_for(Engine, "before_cursor_execute")
    def count_statement(*args: Any) -> None:
        if STATE["open"]:
            statement = str(args[2]).lstrip().split(None, 1)
            SQL[statement[0].upper() if statement else "?"] += 1
            SQL_BY[STACK[-1] if STACK else "(outside timed code)"] += 1

    @event.listens_for(Engine, "commit")
    def count_commit(*_: Any) -> None:
        if STATE["open"]:
            SQL["COMMIT"] += 1

    @event.listens_for(Engine, "begin")
    def count_begin(*_: Any) -> None:
        if STATE["open"]:
            SQL["transactions"] += 1


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--stats", required=True, type=Path)
    parser.add_argument("--cprofile", action="store_true")
    args = parser.parse_args()
    install_counters()
    if not args.cprofile:  # under cProfile the wrappers would only add noise
        install_wrappers()
    profiler = cProfile.Profile() if args.cprofile else None

    def open_window(*_: Any) -> None:
        for store in (TIMERS, SQL, SQL_BY, SPAWNS):
            store.clear()
        for items in (LIFETIMES, REAPED, STARTED):
            items.clear()
        STATE.update(
            open=True,
            wall=time.perf_counter(),
            cpu=resource.getrusage(resource.RUSAGE_SELF),
            children=resource.getrusage(resource.RUSAGE_CHILDREN),
        )
        if profiler is not None:
            profiler.enable()
        args.stats.with_suffix(".open").write_text("open")

    def close_window(*_: Any) -> None:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(str(args.stats.with_suffix(".prof")))
        STATE["open"] = False
        cpu = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        # Gaps: from reaping step k's process to spawning step k+1's (a chain's dead time).
        gaps = [b - a for a, b in zip(sorted(REAPED), sorted(STARTED)[1:], strict=False)]
        stats = {
            "wall": time.perf_counter() - STATE["wall"],
            "agent_cpu": cpu.ru_utime
            + cpu.ru_stime
            - STATE["cpu"].ru_utime
            - STATE["cpu"].ru_stime,
            "children_cpu": children.ru_utime
            + children.ru_stime
            - STATE["children"].ru_utime
            - STATE["children"].ru_stime,
            "timers": {k: {"calls": v[0], "seconds": v[1]} for k, v in TIMERS.items()},
            "sql": dict(SQL),
            "sql_by": dict(SQL_BY),
            "lifetimes": LIFETIMES,
            "gaps": gaps,
            "pid": os.getpid(),
            "missing": MISSING,
        }
        tmp = args.stats.with_suffix(".tmp")
        tmp.write_text(json.dumps(stats))
        tmp.replace(args.stats)

    signal.signal(signal.SIGUSR1, open_window)
    signal.signal(signal.SIGUSR2, close_window)
    from headrace.engine.agent import main as agent_main

    return agent_main(["--workspace", args.workspace])


if __name__ == "__main__":
    sys.exit(main())
