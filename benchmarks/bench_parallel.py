"""ParallelRunStep throughput against multiprocessing.Pool(2).imap.

100,000 tiny files (10,000 with --quick) in one folder on the workspace's local datastore, a
FileDataset over the folder, mini-batches of 10 files, `run()` reading each file and
returning one line per file, 2 worker processes, append_row. The result is the step's own
processing time (its program's wall time from start to the assembled output, the `seconds`
metric: listing the files, starting workers and init(), the mini-batches, committing each
batch, joining the output), not the agent's start of the step. The floor: in one process,
list the same files, `multiprocessing.Pool(2).imap` the same run() over mini-batches of the
same size, write the rows in order to one file. Targets (issue 15): at least 0.9x of the
floor's throughput; per-mini-batch overhead ((step - floor) / mini-batches) under 5 ms.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

from benchmarks.common import Context, Outcome, Row, bench_workspace, median, quiet, spread

BATCH = 10
TARGET_RATIO = 0.9
TARGET_OVERHEAD_MS = 5.0

ENTRY = """
import os


def init():
    pass


def run(mini_batch):
    rows = []
    for path in mini_batch:
        with open(path) as fh:
            rows.append(os.path.basename(path) + " " + fh.read())
    return rows
"""


def _score(mini_batch: list[str]) -> list[str]:
    rows = []
    for path in mini_batch:
        with open(path) as fh:
            rows.append(os.path.basename(path) + " " + fh.read())
    return rows


def _floor(folder: Path, target: Path) -> float:
    started = time.perf_counter()
    files: list[str] = []
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        files.extend(os.path.join(root, n) for n in sorted(names))
    batches = [files[i : i + BATCH] for i in range(0, len(files), BATCH)]
    with multiprocessing.get_context("fork").Pool(2) as pool, open(target, "w") as out:
        for rows in pool.imap(_score, batches):
            out.writelines(row + "\n" for row in rows)
    return time.perf_counter() - started


def run(ctx: Context) -> Outcome:
    from headrace import Dataset, Experiment, Pipeline, PipelineData
    from headrace.kinds.parallel import ParallelRunConfig, ParallelRunStep

    outcome = Outcome("parallel", "ParallelRunStep vs multiprocessing.Pool(2).imap")
    count = 10_000 if ctx.quick else 100_000
    reps = ctx.reps(3, 2)
    with bench_workspace(ctx, "parallel") as bws:
        ws = bws.ws
        store = ws.get_default_datastore()
        data = Path(store.root) / "tiny"
        data.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            (data / f"f{i:07d}.txt").write_text(str(i))
        source = bws.folder("src")
        (source / "score.py").write_text(ENTRY)
        step_seconds: list[float] = []
        floor_seconds: list[float] = []
        for i in range(reps):
            config = ParallelRunConfig(
                environment=None,
                entry_script="score.py",
                source_directory=str(source),
                error_threshold=0,
                output_action="append_row",
                compute_target="local",
                node_count=1,
                process_count_per_node=2,
                mini_batch_size=BATCH,
            )
            step = ParallelRunStep(
                name=f"tiny-{i}",
                parallel_run_config=config,
                inputs=[Dataset.File.from_files((store, "tiny")).as_named_input("tiny")],
                output=PipelineData("rows", datastore=store),
                allow_reuse=False,
            )
            with quiet():
                run_ = Experiment(ws, "bench").submit(Pipeline(ws, [step]))
                status = run_.wait_for_completion(show_output=False, raise_on_error=False)
            step_run = run_.find_step_run(f"tiny-{i}")[0]
            if status != "Finished":
                raise RuntimeError(f"the step ended {status}: {step_run.get_details()}")
            seconds = step_run.get_metrics()["seconds"]
            step_seconds.append(seconds[-1] if isinstance(seconds, list) else seconds)
            floor_seconds.append(_floor(data, bws.folder("floor") / f"rows-{i}.txt"))
        step_s, floor_s = median(step_seconds), median(floor_seconds)
        ratio = floor_s / step_s
        outcome.rows.append(
            Row(
                f"{count:,} tiny files, mini-batches of {BATCH}, 2 processes (files/s)",
                count / step_s,
                "files/s",
                count / floor_s,
                "Pool(2).imap",
                f">= {TARGET_RATIO}x",
                ratio >= TARGET_RATIO,
                ratio,
            )
        )
        batches = count / BATCH
        overhead_ms = (step_s - floor_s) / batches * 1000
        outcome.rows.append(
            Row(
                "per-mini-batch overhead over Pool(2).imap",
                overhead_ms,
                "ms",
                None,
                "",
                f"< {TARGET_OVERHEAD_MS} ms",
                overhead_ms < TARGET_OVERHEAD_MS,
            )
        )
        outcome.details.append(f"step: {spread(step_seconds, 1, ' s')}")
        outcome.details.append(f"Pool(2).imap: {spread(floor_seconds, 1, ' s')}")
    return outcome
