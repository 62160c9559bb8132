"""What one mini-batch costs ParallelRunStep's coordinator: Ray actors against forked workers.

Drives the two pools (kinds/parallel/pool.py `LocalPool`, raypool.py `RayPool`) directly,
as the coordinator does: 2 workers, two mini-batches in flight each, N mini-batches of 10
items whose `run()` returns at once. Prints the wall time per mini-batch and the
coordinator's CPU time per mini-batch (getrusage of this process). The Ray pool runs on a
two-node cluster on this machine (one CPU each, 127.0.0.1; shut down here, never `ray
stop`). Run: `.venv/bin/python benchmarks/parallel_ray_calls.py [N]` (default 2000).
"""

from __future__ import annotations

import os
import resource
import sys
import tempfile
import time
from typing import Any

RAY_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",
}
ENTRY = "def init():\n    pass\n\n\ndef run(mini_batch):\n    return list(mini_batch)\n"


def _drive(pool: Any, n: int) -> tuple[float, float]:
    workers = [pool.start(i + 1) for i in range(2)]
    ready = 0
    while ready < 2:
        for _worker, event in pool.events(workers, 1.0):
            assert event[0] == "ready", event
            ready += 1
    started, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    sent = done = 0
    inflight = {w.number: 0 for w in workers}
    while done < n:
        for worker in workers:
            while inflight[worker.number] < 2 and sent < n:
                pool.send(worker, [(sent, [f"item{sent}-{j}" for j in range(10)], 10)])
                sent += 1
                inflight[worker.number] += 1
        for worker, event in pool.events(workers, 1.0):
            assert event[0] == "done", event
            done += 1
            inflight[worker.number] -= 1
    after = resource.getrusage(resource.RUSAGE_SELF)
    wall = time.perf_counter() - started
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    for worker in workers:
        pool.stop(worker, kill=False)
    pool.close()
    return wall, cpu


def main() -> None:
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
    from headrace.kinds.parallel.pool import LocalPool
    from headrace.kinds.parallel.raypool import RayPool
    from headrace.kinds.parallel.spec import ParallelSpec

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    os.chdir(tempfile.mkdtemp(prefix="parallel-ray-calls-"))
    with open("score.py", "w") as fh:
        fh.write(ENTRY)
    settings = {
        "entry_script": "score.py",
        "arguments": [],
        "output_dir": os.getcwd(),
        "log_dir": os.path.abspath("logs"),
        "logging_level": "INFO",
    }
    results = {"local": _drive(LocalPool(dict(settings)), n)}
    os.environ.update(RAY_ENV)
    os.environ["HEADRACE_RAY_NODE_IP"] = "127.0.0.1"
    from ray.cluster_utils import Cluster

    loopback = {"node_ip_address": "127.0.0.1"}
    cluster: Any = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, **loopback})
    try:
        for _ in range(2):
            cluster.add_node(num_cpus=1, **loopback)
        cluster.wait_for_nodes()
        spec = ParallelSpec("score.py", (("x", "file"),), node_count=2, process_count_per_node=1)
        results["ray"] = _drive(RayPool(spec, dict(settings), cluster.address), n)
    finally:
        cluster.shutdown()
    for name, (wall, cpu) in results.items():
        print(
            f"{name}: {n} mini-batches, {wall / n * 1000:.2f} ms wall and "
            f"{cpu / n * 1000:.3f} ms of coordinator CPU per mini-batch"
        )


if __name__ == "__main__":
    main()
