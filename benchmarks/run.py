"""Run headrace's benchmarks and report them (`make bench`).

    .venv/bin/python benchmarks/run.py                 # everything; writes docs/benchmarks.md
    .venv/bin/python benchmarks/run.py --quick         # fewer repetitions, smaller sizes
    .venv/bin/python benchmarks/run.py overhead reuse  # only these (see --list)

A full run of every benchmark writes docs/benchmarks.md; a partial or --quick run only
prints, unless --write is given. Before measuring, `src/` is byte-compiled (compileall,
only stale files) so imports cost what they cost in an installed package, even when the
shell sets PYTHONDONTWRITEBYTECODE.
"""

from __future__ import annotations

import argparse
import compileall
import datetime as dt
import importlib
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import REPO, Context, Outcome, Row

BENCHMARKS = {
    "overhead": "benchmarks.bench_overhead",
    "latency": "benchmarks.bench_latency",
    "reuse": "benchmarks.bench_reuse",
    "throughput": "benchmarks.bench_throughput",
    "handover": "benchmarks.bench_handover",
    "memory": "benchmarks.bench_memory",
    "imports": "benchmarks.bench_imports",
    "profile": "benchmarks.bench_profile",
    "server": "benchmarks.bench_server",
    "agents": "benchmarks.bench_agents",
    "portal": "benchmarks.bench_portal",
    "environments": "benchmarks.bench_environments",
    "objectstore": "benchmarks.bench_objectstore",
    "spark": "benchmarks.bench_spark",
    "ray": "benchmarks.bench_ray",
    "transfer": "benchmarks.bench_transfer",
    "sqlobjects": "benchmarks.bench_sqlobjects",
    "isolation": "benchmarks.bench_isolation",
    "v1launcher": "benchmarks.bench_v1launcher",
    "datasets": "benchmarks.bench_datasets",
    "models": "benchmarks.bench_models",
    "notifications": "benchmarks.bench_notifications",
    "kill": "benchmarks.bench_kill",
    "parallel": "benchmarks.bench_parallel",
    "parallel-memory": "benchmarks.bench_parallel_memory",
    "parallel-ray": "benchmarks.bench_parallel_ray",
    "schedules": "benchmarks.bench_schedules",
    "cli": "benchmarks.bench_cli",
    "mlflow": "benchmarks.bench_mlflow",
    "workloads": "benchmarks.bench_workloads",
}
HEADERS = ["benchmark", "result", "floor", "ratio", "target", "pass/fail"]


def machine_info() -> dict[str, str]:
    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=REPO, capture_output=True, text=True, check=True
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "?"

    dirty = " (with uncommitted changes)" if git("status", "--porcelain", "src") else ""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git("rev-parse", "--short", "HEAD") + dirty,
        "cores": str(os.cpu_count()),
        "python": f"{platform.python_version()} ({sys.executable})",
        "platform": platform.platform(),
        "load average at start": load,
        "PYTHONDONTWRITEBYTECODE": os.environ.get("PYTHONDONTWRITEBYTECODE", "unset"),
    }


def run_one(name: str, ctx: Context) -> Outcome:
    module = importlib.import_module(BENCHMARKS[name])
    start = time.perf_counter()
    try:
        outcome: Outcome = module.run(ctx)
    except Exception as exc:
        where = traceback.extract_tb(exc.__traceback__)[-1]
        outcome = Outcome(
            name,
            name,
            error=f"{type(exc).__name__}: {exc} (at {Path(where.filename).name}:{where.lineno})",
        )
        outcome.rows.append(Row(name, float("nan"), "", None, "", "—", False))
        traceback.print_exc()
    outcome.seconds = time.perf_counter() - start
    return outcome


def print_table(outcomes: list[Outcome]) -> None:
    rows = [row.cells() for o in outcomes for row in o.rows]
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(r[i]) for r in [HEADERS, *rows]) for i in range(len(HEADERS))]
        for r in [HEADERS, *rows]:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
        return
    table = Table(*HEADERS, title="headrace benchmarks")
    for r in rows:
        style = {"FAIL": "red", "pass": "green"}.get(r[-1])
        table.add_row(*r[:-1], f"[{style}]{r[-1]}[/]" if style else r[-1])
    Console(width=max(160, Console().width)).print(table)


def markdown(outcomes: list[Outcome], info: dict[str, str], command: str, seconds: float) -> str:
    lines = [
        "# Benchmarks",
        "",
        'The "Speed and memory" figures of issues 2, 3, 4 and 5, each beside a floor measured in '
        "the same run on the same machine. Reproduce with:",
        "",
        "```",
        command,
        "```",
        "",
        "(`make bench` runs the same; `--quick` is a smoke check with fewer repetitions; "
        "benchmark names select a subset.) Results are medians of repeated runs; the machine "
        "is shared, so expect ±30 % between runs. Timings are never asserted in the test suite.",
        "",
        "## Machine",
        "",
    ]
    lines += [f"- {key}: {value}" for key, value in info.items()]
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    lines += [f"- load average at end: {load}", f"- whole run: {seconds:.0f} s"]
    lines += ["", "## Results", ""]
    lines.append("| " + " | ".join(HEADERS) + " |")
    lines.append("|" + "---|" * len(HEADERS))
    for outcome in outcomes:
        for row in outcome.rows:
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in row.cells()) + " |")
    analysis = Path(__file__).with_name("analysis.md")
    if analysis.is_file():
        # Hand-written reading of the numbers (kept in benchmarks/analysis.md).
        lines += ["", analysis.read_text(encoding="utf-8").strip()]
    lines += ["", "## Details", ""]
    for outcome in outcomes:
        lines += [f"### {outcome.name}: {outcome.title}", ""]
        doc = (importlib.import_module(BENCHMARKS[outcome.name]).__doc__ or "").strip()
        if doc:
            lines += [" ".join(doc.split()), ""]
        if outcome.error:
            lines += [f"- **error**: {outcome.error}"]
        lines += [f"- {detail}" for detail in outcome.details]
        lines += [f"- took {outcome.seconds:.0f} s", ""]
        for title, table in outcome.tables:
            lines += [f"**{title}**", "", table, ""]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/run.py", description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, smaller sizes")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--keep", action="store_true", help="keep the workspaces in .bench/")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true", help="write the report even if partial")
    group.add_argument("--no-write", action="store_true", help="never write the report")
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "benchmarks.md")
    args = parser.parse_args(argv)
    if args.list:
        for name, module in BENCHMARKS.items():
            doc = (importlib.import_module(module).__doc__ or "").strip().splitlines()[0]
            print(f"{name:12} {doc}")
        return 0
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    names = args.names or list(BENCHMARKS)
    compileall.compile_dir(str(REPO / "src"), quiet=1)
    info = machine_info()
    ctx = Context(quick=args.quick, keep=args.keep)
    outcomes = []
    start = time.perf_counter()
    for name in names:
        print(f"== {name} ...", flush=True)
        outcome = run_one(name, ctx)
        outcomes.append(outcome)
        for row in outcome.rows:
            print("   " + " | ".join(row.cells()), flush=True)
        print(f"   ({outcome.seconds:.0f} s)", flush=True)
    seconds = time.perf_counter() - start
    print()
    print_table(outcomes)
    for outcome in outcomes:
        print(f"\n{outcome.name}: {outcome.title}")
        for detail in outcome.details:
            print(f"  - {detail}")
        for title, table in outcome.tables:
            print(f"\n  {title}\n" + "\n".join("  " + line for line in table.splitlines()))
    full = set(names) == set(BENCHMARKS) and not args.quick
    if (full or args.write) and not args.no_write:
        command = "make bench   # = .venv/bin/python benchmarks/run.py" + (
            " --quick" if args.quick else ""
        )
        if args.names:
            command = ".venv/bin/python benchmarks/run.py " + " ".join(
                (["--quick"] if args.quick else []) + names
            )
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(markdown(outcomes, info, command, seconds))
        print(f"\nwrote {args.output}")
    failed = [r.benchmark for o in outcomes for r in o.rows if r.passed is False]
    errors = [o.name for o in outcomes if o.error]
    print(f"\n{len(failed)} below target" + (f": {', '.join(failed)}" if failed else ""))
    if errors:
        print(f"benchmarks that could not run: {', '.join(errors)}")
    return 1 if errors or (args.strict and failed) else 0


if __name__ == "__main__":
    sys.exit(main())
