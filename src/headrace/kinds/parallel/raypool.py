"""ParallelRunStep's workers as Ray actors spread over the nodes of a Ray cluster.

Used when the step's process runs on Ray: `engine/raynode.py` tells it the cluster's address
(`HEADRACE_RAY_ADDRESS`, and the node's own IP in `HEADRACE_RAY_NODE_IP`); set them in the
agent's environment to use a cluster for steps on local compute too. The coordinator
(program.py) connects as a Ray driver and asks for a placement group of `node_count`
bundles of `process_count_per_node` CPUs (default: the smallest node's CPUs), strategy
SPREAD: one bundle per node while there are enough nodes. Each worker is an actor of one
CPU in a bundle; a replacement goes to the bundle its predecessor left.

Nothing is assumed shared but inputs read in place (a plain folder; globbed and downloaded
dataset files are in the working folder): each actor gets the step's working folder (entry
script, source directory, those files) through Ray's object store, put there once per pool,
unpacks it in a folder of its own, and runs there. Paths into the working folder, in the
arguments, the step's variables and file mini-batches, are rewritten to the copy. The
worker's log (`logs/user/worker_<n>.txt`, whose first line names its Ray node) and what the
script wrote to `EntryScript().output_dir` come back when the worker is stopped at the end;
a worker that died or was killed for a timeout loses its log (its failed batch is in
failed_items.txt), and the next worker started on its node removes its folder.

An actor that dies mid-batch (killed, its node lost) surfaces as Ray's ActorDiedError on its
calls: the coordinator retries the batch it was running on another worker and starts a
replacement; rows are committed by the coordinator only, so exactly once still holds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from headrace.engine.raynode import (
    ADDRESS_VARIABLE,
    NODE_IP_VARIABLE,
    hold,
    pack,
    unlocked_folders,
    unpack,
)
from headrace.kinds.parallel.pool import Event, StepFailure, Worker
from headrace.kinds.parallel.spec import ParallelSpec
from headrace.kinds.parallel.worker import Scorer

__all__ = ["RayPool", "RayWorker"]

PREFIX = "headrace-parallel-"
PLACEMENT_SECONDS = 120.0
FINISH_SECONDS = 30.0
# The step's variables a worker gets (the rest of its environment is its Ray node's).
_PASSED = ("AZUREML_", "AML_", "HEADRACE_", "MLFLOW_")


def _rewrite(text: str, old: str, new: str) -> str:
    return new + text[len(old) :] if text == old or text.startswith(old + "/") else text


class RayWorker:
    """One worker, as a Ray actor: the step's working folder unpacked in a folder of its
    own, the entry script's init() once (`start`), run() per mini-batch (`score`)."""

    def __init__(
        self, number: int, settings: dict[str, Any], tree: bytes, env: dict[str, str]
    ) -> None:
        _sweep()
        self.root = Path(tempfile.mkdtemp(prefix=PREFIX))
        self.held = hold(self.root)  # a folder nobody holds is a dead actor's (see _sweep)
        self.cwd = str(self.root / "work")
        self.origin = settings["cwd"]
        unpack(tree, Path(self.cwd))
        self.log_dir = self.root / "logs"
        self.out_dir = self.root / "output"
        self.out_dir.mkdir()
        local = dict(
            settings,
            arguments=[_rewrite(a, self.origin, self.cwd) for a in settings["arguments"]],
            entry_script=_rewrite(settings["entry_script"], self.origin, self.cwd),
            output_dir=str(self.out_dir),
            log_dir=str(self.log_dir),
        )
        for name, value in env.items():
            os.environ[name] = _rewrite(value, self.origin, self.cwd)
        os.chdir(self.cwd)
        import ray

        self.node = ray.get_runtime_context().get_node_id()
        self.scorer = Scorer(number, local)
        self.scorer.logger.info("worker %d on Ray node %s", number, self.node)

    def start(self) -> Event:
        fatal = self.scorer.start()
        return ("fatal", fatal) if fatal is not None else ("ready", self.node)

    def score(self, index: int, payload: Any, size: int) -> Event:
        return self.scorer.score(index, self._local(payload), size)

    def _local(self, payload: Any) -> Any:
        """A file mini-batch's paths into the working folder, made paths into the copy
        (also the files of one partition, `entry.PartitionedBatch`)."""
        if isinstance(payload, list):
            return [
                _rewrite(p, self.origin, self.cwd) if isinstance(p, str) else p for p in payload
            ]
        data = getattr(payload, "data", None)
        if isinstance(data, list) and dataclasses.is_dataclass(payload):
            return dataclasses.replace(payload, data=self._local(data))  # type: ignore[type-var]
        return payload

    def finish(self) -> tuple[bytes, bytes, float]:
        """shutdown(), then the worker's logs and output folder (tar archives) and its
        peak memory (MB)."""
        try:
            self.scorer.finish()
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            return pack(self.log_dir), pack(self.out_dir), peak
        finally:
            os.chdir(self.root.parent)
            shutil.rmtree(self.root, ignore_errors=True)
            os.close(self.held)


def _sweep() -> None:
    """Remove the folders of workers on this node that died without cleaning up (killed for
    a timeout, or lost)."""
    for folder in unlocked_folders(PREFIX):
        shutil.rmtree(folder, ignore_errors=True)


class RayPool:
    """Workers as actors in one placement group; see the module's docstring."""

    what = "Ray actors"
    max_in_flight = 2  # each an actor call that Ray queues

    def __init__(self, spec: ParallelSpec, settings: dict[str, Any], address: str) -> None:
        try:
            import ray
            from ray.util.placement_group import placement_group
        except ImportError:
            raise StepFailure(
                f"the step runs on a Ray cluster ({address}) but Ray is not installed in its "
                f"Python ({sys.executable}); add 'ray' to the step's environment (pip "
                "packages), the version the cluster runs."
            ) from None
        self.ray: Any = ray
        self.settings = settings
        try:
            ray.init(
                address=address,
                # The node it runs on names its address; otherwise loopback, never the machine's
                # other addresses (Ray advertises eth0 unless told).
                _node_ip_address=os.environ.get(NODE_IP_VARIABLE) or "127.0.0.1",
                namespace="headrace",
                log_to_driver=False,
                configure_logging=False,
            )
        except Exception as exc:
            raise StepFailure(f"cannot connect to the Ray cluster at {address}: {exc}") from None
        sizes = [
            int(n["Resources"].get("CPU", 0))
            for n in self.ray.nodes()
            if n.get("Alive") and n["Resources"].get("CPU", 0) >= 1
        ]
        self.per_node = spec.process_count_per_node or (min(sizes) if sizes else 1)
        self.node_count = spec.node_count
        wanted = self.per_node * self.node_count
        if sum(sizes) < wanted:
            ray.shutdown()
            raise StepFailure(
                f"node_count {self.node_count} x process_count_per_node {self.per_node} asks "
                f"for {wanted} CPUs; the Ray cluster's live nodes have {sum(sizes)} "
                f"({', '.join(map(str, sizes)) or 'none'}). Lower them, or add nodes."
            )
        self.group = placement_group([{"CPU": self.per_node}] * self.node_count, "SPREAD")
        seconds = float(os.environ.get("HEADRACE_PARALLEL_PLACEMENT_SECONDS") or PLACEMENT_SECONDS)
        if not self.group.wait(timeout_seconds=seconds):
            self._release()
            raise StepFailure(
                f"the Ray cluster did not make room for {self.node_count} x "
                f"{self.per_node} CPUs within {seconds:g} s (other work holds its CPUs)."
            )
        self.free = [self.per_node] * self.node_count  # free worker slots per bundle
        self.bundle: dict[int, int] = {}  # worker number -> its bundle
        self.calls: dict[Any, tuple[Worker, int | None]] = {}  # ref -> (worker, batch index)
        self.nodes: dict[int, str] = {}  # worker number -> Ray node id
        self.peak = 0.0  # MB, the largest of the workers stopped at the end
        cwd = os.getcwd()
        settings["cwd"] = cwd
        self.tree = ray.put(pack(Path(cwd), exclude=(".parallel/committed",)))
        self.env = {k: v for k, v in os.environ.items() if k.startswith(_PASSED)}
        for name in (ADDRESS_VARIABLE, NODE_IP_VARIABLE):
            self.env.pop(name, None)
        self.actor: Any = ray.remote(RayWorker)

    def start(self, number: int) -> Worker:
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        bundle = max(range(self.node_count), key=lambda b: self.free[b])
        self.free[bundle] -= 1
        self.bundle[number] = bundle
        strategy = PlacementGroupSchedulingStrategy(self.group, placement_group_bundle_index=bundle)
        actor = self.actor.options(
            num_cpus=1, max_restarts=0, max_task_retries=0, scheduling_strategy=strategy
        ).remote(number, self.settings, self.tree, self.env)
        worker = Worker(number, actor)
        self.calls[actor.start.remote()] = (worker, None)
        return worker

    def send(self, worker: Worker, batches: list[tuple[int, Any, int]]) -> bool:
        for index, payload, size in batches:
            self.calls[worker.handle.score.remote(index, payload, size)] = (worker, index)
        return True

    def events(self, workers: list[Worker], timeout: float) -> list[tuple[Worker, Event]]:
        if not self.calls:
            time.sleep(timeout)
            return []
        refs = list(self.calls)
        ready, _ = self.ray.wait(refs, num_returns=1, timeout=timeout)
        if ready:  # and whatever else has finished meanwhile, in the order it was sent
            ready, _ = self.ray.wait(refs, num_returns=len(refs), timeout=0)
        found: list[tuple[Worker, Event]] = []
        ended: set[int] = set()
        for ref in ready:
            worker, index = self.calls.pop(ref)
            if worker.number in ended:
                continue
            event = self._outcome(ref, index)
            if event[0] == "ended":
                ended.add(worker.number)
            elif event[0] == "ready":
                self.nodes[worker.number] = event[1]
            found.append((worker, event))
        return found

    def _outcome(self, ref: Any, index: int | None) -> Event:
        exceptions = self.ray.exceptions
        try:
            event: Event = self.ray.get(ref)
        except (exceptions.RayActorError, exceptions.NodeDiedError) as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            return ("ended", f"died: its Ray actor was lost ({reason[:200]})")
        except exceptions.RayTaskError as exc:  # not run() (which never raises): Ray itself
            text = str(exc)
            return ("fatal", text) if index is None else ("error", index, text)
        return event

    def stop(self, worker: Worker, kill: bool) -> None:
        for ref in [r for r, (w, _) in self.calls.items() if w is worker]:
            del self.calls[ref]
        self.free[self.bundle.pop(worker.number)] += 1
        if not kill:
            # Its log is lost if this fails; its rows are committed already.
            with contextlib.suppress(Exception):
                logs, output, peak = self.ray.get(
                    worker.handle.finish.remote(), timeout=FINISH_SECONDS
                )
                self.peak = max(self.peak, round(peak, 1))
                unpack(logs, Path(self.settings["log_dir"]))
                unpack(output, Path(self.settings["output_dir"]))
        with contextlib.suppress(Exception):
            self.ray.kill(worker.handle, no_restart=True)

    def peak_rss_mb(self) -> float:
        return self.peak

    def placement(self) -> str:
        """Which Ray node each worker ran on, for the summary."""
        by_node: dict[str, list[int]] = {}
        for number, node in sorted(self.nodes.items()):
            by_node.setdefault(node, []).append(number)
        return "".join(
            f" Ray node {node}: workers {', '.join(map(str, numbers))}."
            for node, numbers in by_node.items()
        )

    def _release(self) -> None:
        from ray.util.placement_group import remove_placement_group

        with contextlib.suppress(Exception):
            remove_placement_group(self.group)
        self.ray.shutdown()

    def close(self) -> None:
        self._release()
