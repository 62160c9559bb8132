"""ParallelRunStep on Ray: its workers are Ray actors spread over the nodes of a two-node
cluster on this machine (`ray.cluster_utils.Cluster`, every node on 127.0.0.1, shared by
the module; shut down by this module, never `ray stop`)."""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from headrace import ComputeTarget, Dataset, Experiment, Pipeline, PipelineData, Workspace
from headrace.compat.azureml.pipeline.steps import ParallelRunConfig, ParallelRunStep

ray = pytest.importorskip("ray")

LOOPBACK = "127.0.0.1"
RAY_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",
}

# init() waits for the first two workers to start (both take batches). Each attempt leaves
# a file `<first item>.<pid>` in the marks folder; the first attempt of the mini-batch
# starting at img008 kills its own worker (SIGKILL) mid-batch, or with `--then hang`
# hangs (for run_invocation_timeout).
SCORE = textwrap.dedent(
    """
    import os, signal, sys, time
    from azureml_user.parallel_run import EntryScript

    def init():
        global marks, logger
        marks = sys.argv[sys.argv.index("--marks") + 1]
        logger = EntryScript().logger
        logger.info("init in %d, working in %s", os.getpid(), os.getcwd())
        open(os.path.join(marks, f"init.{os.getpid()}"), "w").close()
        deadline = time.monotonic() + 60
        while len([n for n in os.listdir(marks) if n.startswith("init.")]) < 2:
            assert time.monotonic() < deadline, "the other worker never started"
            time.sleep(0.05)

    def run(mini_batch):
        first = os.path.basename(mini_batch[0])
        with open(os.path.join(marks, f"{first}.{os.getpid()}"), "w") as fh:
            fh.write(os.getcwd())
        if first == "img008.txt" and not os.path.exists(os.path.join(marks, "struck")):
            open(os.path.join(marks, "struck"), "w").close()
            if "hang" in sys.argv:
                time.sleep(120)
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(0.2)  # long enough for both workers to take batches
        logger.info("batch of %d", len(mini_batch))
        return [f"{os.path.basename(p)}: {open(p).read().strip()}" for p in mini_batch]
    """
)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    from ray.cluster_utils import Cluster

    with pytest.MonkeyPatch.context() as patch:
        for key, value in RAY_ENV.items():
            patch.setenv(key, value)
        loopback = {"node_ip_address": LOOPBACK}
        made = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, **loopback})
        try:
            nodes = [made.add_node(num_cpus=1, **loopback) for _ in range(2)]
            made.wait_for_nodes()
            yield made, nodes
        finally:
            made.shutdown()


@pytest.fixture
def ray_ws(ws: Workspace, cluster: Any, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    """The workspace with SDK v1's AmlCompute 'cpu-cluster' backed by the cluster."""
    for key, value in RAY_ENV.items():
        monkeypatch.setenv(key, value)
    config_path = Path(ws.path) / "workspace.json"
    config = json.loads(config_path.read_text())
    config["amlcompute"] = {"backend": "ray", "address": cluster[0].address}
    config_path.write_text(json.dumps(config))
    return Workspace(path=ws.path)


def _images(ws: Workspace, tmp_path: Path, count: int) -> Any:
    data = tmp_path / "upload" / "digits"
    data.mkdir(parents=True)
    for i in range(count):
        (data / f"img{i:03d}.txt").write_text(str(i))
    store = ws.get_default_datastore()
    store.upload(str(tmp_path / "upload"), target_path="", overwrite=True, show_progress=False)
    return Dataset.File.from_files((store, "digits/**"))


def _step(ws: Workspace, tmp_path: Path, name: str, images: Any, *then: str, **changes: Any) -> Any:
    from headrace import AmlCompute

    target = ComputeTarget.create(
        ws, "cpu-cluster", AmlCompute.provisioning_configuration(vm_size="D2", max_nodes=2)
    )
    source = tmp_path / "src"
    source.mkdir(exist_ok=True)
    (source / "score.py").write_text(SCORE)
    marks = tmp_path / "marks"
    marks.mkdir(exist_ok=True)
    settings: dict[str, Any] = dict(
        environment=None,
        entry_script="score.py",
        source_directory=str(source),
        error_threshold=0,
        output_action="append_row",
        compute_target=target,
        node_count=2,
        process_count_per_node=1,
        mini_batch_size=4,
        run_invocation_timeout=60,
    )
    settings.update(changes)
    return ParallelRunStep(
        name=name,
        parallel_run_config=ParallelRunConfig(**settings),
        inputs=[images.as_named_input("digits").as_mount()],
        output=PipelineData("scores", datastore=ws.get_default_datastore()),
        arguments=["--marks", str(marks), *then],
        allow_reuse=False,
    )


def _file(step_run: Any, name: str, tmp_path: Path) -> str:
    target = tmp_path / "files" / name.replace("/", "_")
    step_run.download_file(name, str(target))
    return target.read_text()


def test_workers_on_both_nodes_a_killed_actor_loses_nothing_rows_once(
    ray_ws: Workspace, cluster: Any, tmp_path: Path
) -> None:
    ws = ray_ws
    _made, nodes = cluster
    images = _images(ws, tmp_path, 23)
    run = Experiment(ws, "prs-ray").submit(Pipeline(ws, [_step(ws, tmp_path, "score", images)]))
    run.wait_for_completion(show_output=False, raise_on_error=False)
    step_run = run.find_step_run("score")[0]
    assert run.get_status() == "Finished", step_run.get_details().get("error")

    # Every row once, in input order, though one actor died mid-batch.
    folder = Path(step_run.get_output_data("scores").download(tmp_path / "dl"))
    found = list(folder.rglob("parallel_run_step.txt"))
    assert len(found) == 1, list(folder.rglob("*"))
    assert found[0].read_text().splitlines() == [f"img{i:03d}.txt: {i}" for i in range(23)]
    # The killed attempt and its retry in another actor process.
    marks = tmp_path / "marks"
    tries = sorted(p.name for p in marks.glob("img008.txt.*"))
    assert len(tries) == 2 and (marks / "struck").exists(), tries
    # Workers ran in a copy of the working folder of their own, not in the step's.
    assert all("headrace-parallel-" in p.read_text() for p in marks.glob("img*")), [
        p.read_text() for p in marks.glob("img*")
    ]

    # The summary names the Ray node of each worker: both nodes had one.
    summary = _file(step_run, "logs/summary.txt", tmp_path)
    assert "23 items (23 done, 0 failed)" in summary, summary
    placed = dict(re.findall(r"Ray node (\w+): workers ([\d, ]+)\.", summary))
    assert set(placed) == {n.node_id for n in nodes}, summary
    out = _file(step_run, "user_logs/stdout.txt", tmp_path)
    assert "2 Ray actors" in out, out
    # Each worker stopped at the end sent its log back (the killed one's is lost); it names
    # the node the summary gives for it.
    logs = [n for n in step_run.get_file_names() if n.startswith("logs/user/worker_")]
    assert logs, step_run.get_file_names()
    texts = []
    for name in logs:
        number = name.removeprefix("logs/user/worker_").removesuffix(".txt")
        node = next(n for n, workers in placed.items() if number in workers.split(", "))
        texts.append(_file(step_run, name, tmp_path))
        assert f"worker {number} on Ray node {node}" in texts[-1].splitlines()[0], texts[-1]
    assert any("batch of" in text for text in texts), texts
    metrics = step_run.get_metrics()
    last = {k: v[-1] if isinstance(v, list) else v for k, v in metrics.items()}
    assert last["mini_batches_done"] == 6 and last["items_done"] == 23, last
    assert last["peak_rss_mb_workers"] > 10, last  # the actors' own, not this machine's children

    # More workers than the cluster has CPUs for: the step fails at once, saying so.
    big = _step(ws, tmp_path, "too-many", images, node_count=3, process_count_per_node=1)
    run = Experiment(ws, "prs-ray").submit(Pipeline(ws, [big]))
    run.wait_for_completion(show_output=False, raise_on_error=False)
    assert run.get_status() == "Failed"
    error = run.find_step_run("too-many")[0].get_details()["error"]["error"]["message"]
    assert "node_count 3 x process_count_per_node 1 asks for 3 CPUs" in error, error
    assert "live nodes have 2 (1, 1)" in error, error


def test_a_cluster_given_to_a_local_step_and_a_hung_batch_timed_out_on_ray(
    ray_ws: Workspace, cluster: Any, tmp_path: Path
) -> None:
    ws = ray_ws
    made, nodes = cluster
    images = _images(ws, tmp_path, 23)
    # The step's own process runs here (local compute); its variables name the cluster.
    variables = {"HEADRACE_RAY_ADDRESS": made.address, "HEADRACE_RAY_NODE_IP": LOOPBACK}
    step = _step(
        ws, tmp_path, "hang", images, "--then", "hang",
        compute_target="local", environment_variables=variables, run_invocation_timeout=3,
    )  # fmt: skip
    run = Experiment(ws, "prs-ray-local").submit(Pipeline(ws, [step]))
    run.wait_for_completion(show_output=False, raise_on_error=False)
    step_run = run.find_step_run("hang")[0]
    assert run.get_status() == "Finished", step_run.get_details().get("error")
    out = _file(step_run, "user_logs/stdout.txt", tmp_path)
    assert "2 Ray actors" in out and "headrace: running on" not in out, out
    folder = Path(step_run.get_output_data("scores").download(tmp_path / "dl"))
    rows = next(folder.rglob("parallel_run_step.txt")).read_text().splitlines()
    assert rows == [f"img{i:03d}.txt: {i}" for i in range(23)]
    # The hung attempt was stopped after 3 s, and the batch tried again by another actor.
    tries = sorted(p.name for p in (tmp_path / "marks").glob("img008.txt.*"))
    assert len(tries) == 2, tries
    summary = _file(step_run, "logs/summary.txt", tmp_path)
    placed = dict(re.findall(r"Ray node (\w+): workers ([\d, ]+)\.", summary))
    assert set(placed) == {n.node_id for n in nodes}, summary
