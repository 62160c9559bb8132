"""ParallelRunStep on two Ray nodes against the ideal: the same work on 2 local processes.

A two-node cluster on this machine (`ray.cluster_utils.Cluster`: a head with no CPUs and
two nodes of one CPU each, all on 127.0.0.1; shut down here, never `ray stop`), a `ray`
target attached to it, and a ParallelRunStep with node_count=2, process_count_per_node=1:
its workers are two Ray actors, one per node (kinds/parallel/raypool.py). The input is
20,000 tiny files (4,000 with --quick) in mini-batches of 10; `run()` reads each file and
spends about a millisecond of CPU on it (`sum(range(WORK))`), so one mini-batch is ~10 ms
(on a quiet machine).
The figure is the step's own processing time (the `seconds` metric: listing the files,
connecting to Ray, placing and starting the actors and their init(), the mini-batches, the
commits, the assembled output). The ideal: 2 processes on this machine
(`multiprocessing.Pool(2).imap` of the same run() over the same mini-batches, rows written
in order), which is what two one-CPU nodes can do at best. Target (issue 15): at least 0.8x.
Beside it, for information, the same step on the local pool (2 forked processes).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from benchmarks.common import PYTHON, Context, Outcome, Row, bench_workspace, median, quiet, spread

BATCH = 10
WORK = 80_000
TARGET_RATIO = 0.8
RAY_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # everything on 127.0.0.1
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",
}

ENTRY = f"""
import os


def init():
    pass


def run(mini_batch):
    rows = []
    for path in mini_batch:
        with open(path) as fh:
            text = fh.read()
        rows.append(os.path.basename(path) + " " + text + " " + str(sum(range({WORK}))))
    return rows
"""


def _score(mini_batch: list[str]) -> list[str]:
    rows = []
    for path in mini_batch:
        with open(path) as fh:
            text = fh.read()
        rows.append(os.path.basename(path) + " " + text + " " + str(sum(range(WORK))))
    return rows


def _ideal(folder: Path, target: Path) -> float:
    """Seconds for Pool(2).imap of the same run() over the same mini-batches, rows written
    in order, timed inside a fresh interpreter (this one has Ray's threads: forking it
    could hang the child)."""
    code = f"""
import multiprocessing, os, sys, time
sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r})
from benchmarks.bench_parallel_ray import BATCH, _score
if __name__ == "__main__":
    started = time.perf_counter()
    files = sorted(os.path.join({str(folder)!r}, n) for n in os.listdir({str(folder)!r}))
    batches = [files[i : i + BATCH] for i in range(0, len(files), BATCH)]
    with multiprocessing.get_context("fork").Pool(2) as pool, open({str(target)!r}, "w") as out:
        for rows in pool.imap(_score, batches):
            out.writelines(row + "\\n" for row in rows)
    print(time.perf_counter() - started)
"""
    done = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, check=True)
    return float(done.stdout.split()[-1])


def _step_seconds(bws: Any, name: str, target: Any, source: Path, data: Any) -> float:
    from headrace import Experiment, Pipeline, PipelineData
    from headrace.kinds.parallel import ParallelRunConfig, ParallelRunStep

    config = ParallelRunConfig(
        environment=None,
        entry_script="score.py",
        source_directory=str(source),
        error_threshold=0,
        output_action="append_row",
        compute_target=target,
        node_count=2 if target != "local" else 1,
        process_count_per_node=1 if target != "local" else 2,
        mini_batch_size=BATCH,
    )
    step = ParallelRunStep(
        name=name,
        parallel_run_config=config,
        inputs=[data.as_named_input("tiny")],
        output=PipelineData("rows", datastore=bws.ws.get_default_datastore()),
        allow_reuse=False,
    )
    with quiet():
        run = Experiment(bws.ws, "bench").submit(Pipeline(bws.ws, [step]))
        status = run.wait_for_completion(show_output=False, raise_on_error=False)
    step_run = run.find_step_run(name)[0]
    if status != "Finished":
        raise RuntimeError(f"the step ended {status}: {step_run.get_details()}")
    seconds = step_run.get_metrics()["seconds"]
    return float(seconds[-1] if isinstance(seconds, list) else seconds)


def _measure(ctx: Context, count: int, reps: int, times: dict[str, list[float]]) -> None:
    from ray.cluster_utils import Cluster

    from headrace import ComputeTarget, Dataset, RayCompute

    with bench_workspace(ctx, "parallel-ray") as bws:
        ws = bws.ws
        store = ws.get_default_datastore()
        folder = Path(store.root) / "tiny"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            (folder / f"f{i:07d}.txt").write_text(str(i))
        data = Dataset.File.from_files((store, "tiny"))
        source = bws.folder("src")
        (source / "score.py").write_text(ENTRY)
        loopback = {"node_ip_address": "127.0.0.1"}
        cluster: Any = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, **loopback})
        try:
            for _ in range(2):
                cluster.add_node(num_cpus=1, **loopback)
            cluster.wait_for_nodes()
            attach = RayCompute.attach_configuration(address=cluster.address)
            two = ComputeTarget.attach(ws, "two", attach)
            _step_seconds(bws, "warm-up", two, source, data)  # Ray's workers, the agent's link
            for i in range(reps):  # interleaved: the machine's load drifts
                times["ideal"].append(_ideal(folder, bws.folder("ideal") / f"rows-{i}.txt"))
                times["local"].append(_step_seconds(bws, f"local-{i}", "local", source, data))
                times["ray"].append(_step_seconds(bws, f"ray-{i}", two, source, data))
        finally:
            cluster.shutdown()


def run(ctx: Context) -> Outcome:
    outcome = Outcome("parallel-ray", "ParallelRunStep on two 1-CPU Ray nodes vs 2 processes")
    count = 4_000 if ctx.quick else 20_000
    reps = ctx.reps(3, 1)
    times: dict[str, list[float]] = {"ray": [], "local": [], "ideal": []}
    saved = {k: os.environ.get(k) for k in RAY_ENV}
    os.environ.update(RAY_ENV)  # before the agent starts: it connects to the cluster
    try:
        _measure(ctx, count, reps, times)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    ray_s, local_s, ideal_s = (median(times[k]) for k in ("ray", "local", "ideal"))
    ratio = ideal_s / ray_s
    label = f"{count:,} files, mini-batches of {BATCH} (~10 ms of run() each)"
    outcome.rows.append(
        Row(
            f"{label}, 2 Ray nodes x 1 actor (files/s)",
            count / ray_s,
            "files/s",
            count / ideal_s,
            "2 processes",
            f">= {TARGET_RATIO}x",
            ratio >= TARGET_RATIO,
            ratio,
        )
    )
    outcome.rows.append(
        Row(
            f"{label}, local pool of 2 processes (files/s)",
            count / local_s,
            "files/s",
            count / ideal_s,
            "2 processes",
            "info",
            None,
            ideal_s / local_s,
        )
    )
    for name, values in times.items():
        outcome.details.append(f"{name}: {spread(values, 1, ' s')}")
    return outcome
