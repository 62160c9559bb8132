"""ParallelRunStep memory over 1,000,000 items: coordinator, workers and agent stay flat.

A CSV of 1,000,000 rows (id, value, a short label; 200,000 with --quick) on the workspace's
local datastore, a TabularDataset over it, mini-batches of 64KB (about 245 of them), a
`run()` returning one line per row (so 1,000,000 output rows, assembled in order), 2 worker
processes, append_row. Measured: the peak resident memory of the step's coordinator process
and of its largest worker (the step's own `peak_rss_mb_coordinator` / `peak_rss_mb_workers`
metrics, `ru_maxrss`), and of the agent that ran it (`VmHWM` in /proc). The same step over a
tenth of the rows gives the informational "at 1/10 the items" rows: flat means the two
are close. Target (issue 15): under 200 MB each.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.common import Context, Outcome, Row, bench_workspace, quiet

TARGET_MB = 200.0

ENTRY = """
def init():
    pass


def run(mini_batch):
    mini_batch["double"] = mini_batch["value"] * 2
    return mini_batch[["id", "double", "label"]]
"""


def _write_csv(path: Path, rows: int) -> None:
    with path.open("w") as fh:
        fh.write("id,value,label\n")
        chunk = 100_000
        for start in range(0, rows, chunk):
            fh.write(
                "".join(
                    f"{i},{i % 977},item-{i % 100}\n"
                    for i in range(start, min(rows, start + chunk))
                )
            )


def _agent_peak_mb(root: Path) -> float:
    pid = (root / "agent" / "agent.lock").read_text().strip()
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM for the agent")


def _step_peaks(ws: Any, store: Any, source: Path, folder: str, name: str) -> tuple[float, float]:
    from headrace import Dataset, Experiment, Pipeline, PipelineData
    from headrace.kinds.parallel import ParallelRunConfig, ParallelRunStep

    config = ParallelRunConfig(
        environment=None,
        entry_script="score.py",
        source_directory=str(source),
        error_threshold=0,
        output_action="append_row",
        compute_target="local",
        node_count=1,
        process_count_per_node=2,
        mini_batch_size="64KB",
    )
    table = Dataset.Tabular.from_delimited_files((store, f"{folder}/rows.csv"))
    step = ParallelRunStep(
        name=name,
        parallel_run_config=config,
        inputs=[table.as_named_input("rows")],
        output=PipelineData("scores", datastore=store),
        allow_reuse=False,
    )
    with quiet():
        run = Experiment(ws, "bench").submit(Pipeline(ws, [step]))
        status = run.wait_for_completion(show_output=False, raise_on_error=False)
    step_run = run.find_step_run(name)[0]
    if status != "Finished":
        raise RuntimeError(f"the step ended {status}: {step_run.get_details()}")
    metrics = step_run.get_metrics()

    def last(key: str) -> float:
        value = metrics[key]
        return float(value[-1] if isinstance(value, list) else value)

    if last("items_remaining") or last("items_failed"):
        raise RuntimeError(f"the step left items undone or failed: {metrics}")
    return last("peak_rss_mb_coordinator"), last("peak_rss_mb_workers")


def run(ctx: Context) -> Outcome:
    outcome = Outcome("parallel-memory", "ParallelRunStep memory over 1,000,000 items")
    count = 200_000 if ctx.quick else 1_000_000
    with bench_workspace(ctx, "parallel-memory") as bws:
        ws = bws.ws
        store = ws.get_default_datastore()
        for folder, rows in (("small", count // 10), ("big", count)):
            target = Path(store.root) / folder
            target.mkdir(parents=True, exist_ok=True)
            _write_csv(target / "rows.csv", rows)
        source = bws.folder("src")
        (source / "score.py").write_text(ENTRY)
        small = _step_peaks(ws, store, source, "small", "small")
        big = _step_peaks(ws, store, source, "big", "big")
        agent = _agent_peak_mb(Path(str(ws.path)))
        for label, value, tenth in (
            ("coordinator", big[0], small[0]),
            ("largest worker", big[1], small[1]),
        ):
            outcome.rows.append(
                Row(
                    f"{count:,} items: {label} peak RSS",
                    value,
                    "MB",
                    tenth,
                    f"at {count // 10:,} items",
                    f"< {TARGET_MB:.0f} MB",
                    value < TARGET_MB,
                    value / tenth if tenth else None,
                )
            )
        outcome.rows.append(
            Row(
                f"{count:,} items: agent peak RSS (both steps)",
                agent,
                "MB",
                None,
                "",
                f"< {TARGET_MB:.0f} MB",
                agent < TARGET_MB,
            )
        )
        outcome.details.append(
            f"{count:,} rows of id,value,label in one CSV; mini-batches of 64KB; 2 workers"
        )
    return outcome
