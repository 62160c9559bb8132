"""The `ray` compute target on real Ray: a local head the agent starts, and a two-node cluster
on this machine (`ray.cluster_utils.Cluster`) with one node killed mid-step.

Everything stays on 127.0.0.1 (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0) with usage statistics off
and no token file written; nothing here runs `ray stop`, which would stop every Ray on the
machine: each cluster is shut down by what started it.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from headrace import (
    AmlCompute,
    ComputeTarget,
    ComputeTargetException,
    CondaDependencies,
    DataReference,
    Environment,
    Experiment,
    Pipeline,
    PipelineData,
    PipelineValidationError,
    PythonScriptStep,
    RayCompute,
    RunConfiguration,
    Workspace,
)

ray = pytest.importorskip("ray")

LOOPBACK = "127.0.0.1"
RAY_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_AUTH_MODE": "disabled",
}

PRODUCE = """
import argparse, os, sys
from headrace.compat.azureml.core import Run
p = argparse.ArgumentParser(); p.add_argument("--raw"); p.add_argument("--out")
a = p.parse_args()
run = Run.get_context()
print("cwd", os.getcwd())
text = open(a.raw).read().strip()
os.makedirs(a.out, exist_ok=True)
with open(os.path.join(a.out, "upper.txt"), "w") as fh:
    fh.write(text.upper())
os.makedirs("outputs", exist_ok=True)
with open("outputs/model.txt", "w") as fh:
    fh.write("weights")
run.log("rows", 3)
print("a warning", file=sys.stderr)
"""

WITH_ENV = """
import sys, six
print("python", sys.prefix)
print("six", six.__version__)
"""

CONSUME = """
import os, sys
print("got", open(os.path.join(sys.argv[1], "upper.txt")).read())
"""

SLOW = """
import os, sys, time
marker = sys.argv[1]
attempt = os.environ["HEADRACE_ATTEMPT"]
with open(marker + "." + attempt, "w") as fh:
    fh.write(str(os.getpid()))
if attempt == "0":
    time.sleep(120)
print("attempt", attempt, "done")
"""


@pytest.fixture
def ray_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in RAY_ENV.items():
        monkeypatch.setenv(key, value)


def _descendants(root: int) -> set[int]:
    """`root` and every process below it (from /proc)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found = {root}
    grew = True
    while grew:
        below = {pid for pid, parent in parents.items() if parent in found}
        grew = not below <= found
        found |= below
    return found


def assert_listening_on_loopback_only(root: int) -> None:
    """Every TCP socket that `root` or a process below it listens on is bound to 127.0.0.1
    (as `ss -ltnp` shows them), and there is at least one (Ray's GCS)."""
    pids = _descendants(root)
    table = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    mine = [
        (line.split()[3], line.split()[-1])
        for line in table.splitlines()
        if any(int(pid) in pids for pid in re.findall(r"pid=(\d+)", line))
    ]
    assert any("gcs_server" in who for _where, who in mine), table
    elsewhere = [
        (where, who)
        for where, who in mine
        if not where.startswith((f"{LOOPBACK}:", f"[::ffff:{LOOPBACK}]:"))
    ]
    assert elsewhere == [], elsewhere


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return folder


def _stdout(ws: Workspace, step_run_id: str) -> str:
    path = Path(ws.path) / "artifacts" / "runs" / step_run_id / "user_logs" / "stdout.txt"
    return path.read_text() if path.exists() else ""


def _wait_for(predicate: Any, seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


# -- bad input, no Ray started ---------------------------------------------------------------
def test_unreachable_address_is_refused_at_attach(ws: Workspace) -> None:
    started = time.monotonic()
    with pytest.raises(ComputeTargetException) as info:
        ComputeTarget.attach(ws, "ray", RayCompute.attach_configuration(address="127.0.0.1:1"))
    message = str(info.value)
    assert "No Ray cluster answers at 127.0.0.1:1" in message
    assert "ray start --head" in message
    assert time.monotonic() - started < 10
    with pytest.raises(ComputeTargetException, match="not host:port"):
        ComputeTarget.attach(ws, "ray", RayCompute.attach_configuration(address="nowhere"))
    with pytest.raises(ComputeTargetException, match="num_cpus must be a positive int"):
        ComputeTarget.create(ws, "ray", RayCompute.provisioning_configuration(num_cpus=0))
    assert "ray" not in ws.compute_targets


def test_an_address_that_is_not_ray_fails_the_step_in_seconds(
    ws: Workspace, tmp_path: Path, ray_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEADRACE_RAY_CONNECT_SECONDS", "3")
    with socket.create_server(("127.0.0.1", 0)) as impostor:  # answers TCP, speaks no Ray
        address = f"127.0.0.1:{impostor.getsockname()[1]}"
        target = ComputeTarget.attach(ws, "ray", RayCompute.attach_configuration(address=address))
        src = _write(tmp_path / "src", "noop.py", "")
        step = PythonScriptStep("noop.py", source_directory=str(src), compute_target=target)
        started = time.monotonic()
        run = Experiment(ws, "not-ray").submit(Pipeline(ws, [step]))
        run.wait_for_completion(show_output=False, raise_on_error=False)
        elapsed = time.monotonic() - started
    assert run.get_status() == "Failed"
    message = run.get_steps()[0].get_details()["error"]["error"]["message"]
    assert f"Ray at {address} did not answer within 3 s" in message, message
    assert elapsed < 60


def test_bad_resources_are_refused_when_the_pipeline_is_built(
    ws: Workspace, tmp_path: Path
) -> None:
    src = _write(tmp_path / "src", "noop.py", "")
    step = PythonScriptStep(
        "noop.py", source_directory=str(src), resources={"cpu": "two", "memory": "lots"}
    )
    problems = Pipeline(ws, [step]).validate()
    assert any("resource 'cpu' must be a number, not 'two'" in p for p in problems), problems
    with pytest.raises(PipelineValidationError, match="resource 'cpu' must be a number"):
        Experiment(ws, "bad").submit(Pipeline(ws, [step]))


# -- a local Ray head --------------------------------------------------------------------------
def test_local_head_runs_a_pipeline_with_data_logs_and_metrics(
    ws: Workspace, tmp_path: Path, ray_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Where the Ray node keeps the environments it builds (inherited by the agent's Ray head).
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "node-cache"))
    # The agent (and its Ray head) stays up after the run, to be looked at; the ws fixture
    # stops it.
    monkeypatch.setenv("HEADRACE_AGENT_IDLE_SECONDS", "60")
    # The head the agent starts listens on 127.0.0.1 even if this says otherwise.
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "1")
    src = _write(tmp_path / "src", "produce.py", PRODUCE)
    _write(src, "consume.py", CONSUME)
    _write(src, "with_env.py", WITH_ENV)
    (tmp_path / "raw.txt").write_text("abc\n")
    ds = ws.get_default_datastore()
    ds.upload_files([str(tmp_path / "raw.txt")], target_path="raw", overwrite=True)
    target = ComputeTarget.create(ws, "ray", RayCompute.provisioning_configuration(num_cpus=2))
    assert type(ComputeTarget(ws, "ray")) is RayCompute
    raw = DataReference(ds, data_reference_name="raw", path_on_datastore="raw/raw.txt")
    upper = PipelineData("upper", datastore=ds)
    produce = PythonScriptStep(
        "produce.py",
        arguments=["--raw", raw, "--out", upper],
        inputs=[raw],
        outputs=[upper],
        source_directory=str(src),
        compute_target=target,
    )
    consume = PythonScriptStep(
        "consume.py",
        arguments=[upper],
        inputs=[upper],
        source_directory=str(src),
        compute_target=target,
        resources={"cpu": 1, "memory": "100MB"},
    )
    asks_much = RunConfiguration()
    asks_much.resources = {"cpu": 64, "gpu": 1}  # from the run configuration this time
    big = PythonScriptStep(
        "consume.py",
        name="too-big",
        source_directory=str(src),
        compute_target=target,
        runconfig=asks_much,
    )
    env = Environment("six")
    env.python.conda_dependencies = CondaDependencies.create(pip_packages=["six==1.16.0"])
    with_env = PythonScriptStep(
        "with_env.py",
        source_directory=str(src),
        compute_target=target,
        runconfig=RunConfiguration(environment=env),
    )
    run = Experiment(ws, "ray").submit(
        Pipeline(ws, [produce, consume, big, with_env]), continue_on_step_failure=True
    )
    run.wait_for_completion(show_output=False, raise_on_error=False)
    steps = {s.name: s for s in run.get_steps()}
    agent = int((Path(ws.path) / "agent" / "agent.lock").read_text().strip())
    assert_listening_on_loopback_only(agent)

    # The step that asks for more than the cluster has fails at once, with the numbers.
    error = steps["too-big"].get_details()["error"]["error"]["message"]
    assert "asks for 64 CPU, 1 GPU" in error and "2 CPU" in error, error

    for name in ("produce.py", "consume.py", "with_env.py"):
        assert steps[name].get_status() == "Finished", steps[name].get_details()
    out = _stdout(ws, steps["produce.py"].id)
    assert "headrace: running on" in out and "Ray node" in out
    # The step ran in a folder of the node's, not in the workspace.
    cwd = next(line for line in out.splitlines() if line.startswith("cwd "))[4:]
    assert not cwd.startswith(str(ws.path)), cwd
    assert "got ABC" in _stdout(ws, steps["consume.py"].id)
    assert steps["produce.py"].get_metrics() == {"rows": 3}
    assert "outputs/model.txt" in steps["produce.py"].get_file_names()
    stderr = Path(ws.path) / "artifacts" / "runs" / steps["produce.py"].id / "user_logs/stderr.txt"
    assert "a warning" in stderr.read_text()

    # The environment was built on the node, in its cache, not in the workspace.
    built = _stdout(ws, steps["with_env.py"].id)
    assert "six 1.16.0" in built, built
    assert str(tmp_path / "node-cache" / "headrace" / "envs") in built
    assert not (Path(ws.path) / "envs").exists()

    # Reuse works as on local compute: nothing changed, nothing runs again.
    again = Experiment(ws, "ray").submit(Pipeline(ws, [produce, consume]))
    again.wait_for_completion(show_output=False)
    reused = {s.name: s.reused_run_id for s in again.get_steps()}
    assert reused == {"produce.py": steps["produce.py"].id, "consume.py": steps["consume.py"].id}


def test_cancel_stops_the_step_on_its_node(ws: Workspace, tmp_path: Path, ray_env: None) -> None:
    src = _write(tmp_path / "src", "slow.py", SLOW)
    marker = tmp_path / "marker"
    target = ComputeTarget.create(ws, "ray", RayCompute.provisioning_configuration(num_cpus=1))
    step = PythonScriptStep(
        "slow.py", arguments=[str(marker)], source_directory=str(src), compute_target=target
    )
    run = Experiment(ws, "ray-cancel").submit(Pipeline(ws, [step]))
    pid = int(_wait_for(lambda: _read(Path(f"{marker}.0")), 180, "the step to start"))
    run.cancel()
    run.wait_for_completion(show_output=False, raise_on_error=False)
    assert run.get_status() == "Canceled"
    _wait_for(lambda: not _alive(pid), 15, "the step's process to stop")


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "State:\tZ" not in status.read_text()


# -- two nodes, one of them lost -----------------------------------------------------------------
@pytest.fixture
def two_nodes(ray_env: None) -> Iterator[Any]:
    from ray.cluster_utils import Cluster

    loopback = {"node_ip_address": LOOPBACK}
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, **loopback})
    workers = [cluster.add_node(num_cpus=1, **loopback) for _ in range(2)]
    cluster.wait_for_nodes()
    try:
        yield cluster, workers
    finally:
        cluster.shutdown()


def test_a_lost_node_fails_the_attempt_and_the_retry_runs_on_another(
    ws: Workspace, tmp_path: Path, two_nodes: Any
) -> None:
    cluster, workers = two_nodes
    # Issue 13: the head and both nodes listen on 127.0.0.1 only, nowhere else.
    assert_listening_on_loopback_only(os.getpid())
    # SDK v1's cluster idiom, backed by Ray through the workspace configuration.
    config_path = Path(ws.path) / "workspace.json"
    config = json.loads(config_path.read_text())
    config["amlcompute"] = {"backend": "ray", "address": cluster.address}
    config_path.write_text(json.dumps(config))
    ws = Workspace(path=ws.path)
    target = ComputeTarget.create(
        ws, "cpu-cluster", AmlCompute.provisioning_configuration(vm_size="D2", max_nodes=2)
    )
    src = _write(tmp_path / "src", "slow.py", SLOW)
    marker = tmp_path / "marker"
    step = PythonScriptStep(
        "slow.py", arguments=[str(marker)], source_directory=str(src), compute_target=target
    )
    run = Experiment(ws, "ray-lost").submit(Pipeline(ws, [step]))
    _wait_for(lambda: _read(Path(f"{marker}.0")), 90, "the first attempt to start")
    step_run = run.get_steps()[0]
    first = _wait_for(lambda: _node_of(_stdout(ws, step_run.id)), 30, "the node in the log")
    victim = next(w for w in workers if w.node_id.startswith(first))
    cluster.remove_node(victim)

    run.wait_for_completion(show_output=False)
    step_run = run.get_steps()[0]
    assert step_run.get_status() == "Finished"
    assert step_run.get_details()["runDefinition"]["attempt"] == 1  # max_retries is 0
    out = _stdout(ws, step_run.id)
    assert "attempt 1 done" in out
    nodes = [line for line in out.splitlines() if line.startswith("headrace: running on")]
    assert len(nodes) == 2 and first not in nodes[1], nodes
    stderr = Path(ws.path) / "artifacts" / "runs" / step_run.id / "user_logs/stderr.txt"
    assert "node it was running on is dead" in stderr.read_text()
    # The lost attempt's process outlived its node's Ray processes (they share this machine);
    # the next step Ray ran here stopped it.
    _wait_for(lambda: not _alive(int(_read(Path(f"{marker}.0")))), 15, "the orphan to stop")


def _node_of(log: str) -> str | None:
    for line in log.splitlines():
        if "(Ray node " in line:
            return line.rsplit("(Ray node ", 1)[1].rstrip(")")
    return None


# -- object-store inputs, downloaded by the node -----------------------------------------------
READ_INPUTS = """
import os, sys
folder, single, out = sys.argv[1:4]
names = sorted(os.listdir(folder))
print("folder", names, [open(os.path.join(folder, n)).read() for n in names])
print("single", os.path.basename(single), open(single).read())
os.makedirs(out, exist_ok=True)
with open(os.path.join(out, "joined.txt"), "w") as fh:
    fh.write("+".join(open(os.path.join(folder, n)).read() for n in names))
"""


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from tests.objectstores import MotoS3

    server = MotoS3(tmp_path_factory.mktemp("moto") / "moto.log")
    yield server
    server.stop()


def _s3_inputs(ws: Workspace, moto: Any, tmp_path: Path, name: str, **credentials: str) -> Any:
    from headrace import Datastore

    ds = Datastore.register_s3(ws, name, moto.new_bucket(), endpoint_url=moto.url, **credentials)
    folder = tmp_path / f"{name}-data"
    _write(folder / "raw", "a.txt", "A")
    _write(folder / "raw", "b.txt", "B")
    _write(folder / "one", "single.txt", "S")
    ds.upload(str(folder), show_progress=False)
    return ds


def _env_credentials_store(
    ws: Workspace, moto: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Any:
    """The S3 datastore 's3env', its credentials in HR_RAY_KEY and HR_RAY_SECRET (set here,
    so in the agent and what it starts, not in Ray processes that were already running)."""
    monkeypatch.setenv("HR_RAY_KEY", moto.key_id)
    monkeypatch.setenv("HR_RAY_SECRET", moto.secret)
    return _s3_inputs(
        ws, moto, tmp_path, "s3env", access_key_id_env="HR_RAY_KEY",
        secret_access_key_env="HR_RAY_SECRET",
    )  # fmt: skip


def _reader_step(ds: Any, src: Path, target: Any, tag: str) -> Any:
    folder = DataReference(ds, data_reference_name=f"raw_{tag}", path_on_datastore="raw")
    single = DataReference(ds, data_reference_name=f"one_{tag}", path_on_datastore="one/single.txt")
    joined = PipelineData(f"joined_{tag}", datastore=ds)
    step = PythonScriptStep(
        "read_inputs.py",
        name=f"read-{tag}",
        arguments=[folder.as_download(), single.as_download(), joined],
        inputs=[folder.as_download(), single.as_download()],
        outputs=[joined],
        source_directory=str(src),
        compute_target=target,
    )
    return step


def test_object_store_inputs_are_downloaded_by_the_node(
    ws: Workspace, tmp_path: Path, ray_env: None, moto: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Credentials from the environment: the node opens the datastore itself (the agent's Ray
    # head, and so its node, inherit these). Credentials kept in the workspace's secrets file
    # are not on the node: the agent downloads those inputs and sends them with the step.
    from_env = _env_credentials_store(ws, moto, tmp_path, monkeypatch)
    kept = _s3_inputs(
        ws, moto, tmp_path, "s3kept", access_key_id=moto.key_id, secret_access_key=moto.secret
    )
    src = _write(tmp_path / "src", "read_inputs.py", READ_INPUTS)
    target = ComputeTarget.create(ws, "ray", RayCompute.provisioning_configuration(num_cpus=2))
    by_node = _reader_step(from_env, src, target, "env")
    by_agent = _reader_step(kept, src, target, "kept")
    run = Experiment(ws, "ray-s3").submit(Pipeline(ws, [by_node, by_agent]))
    run.wait_for_completion(show_output=False, raise_on_error=False)
    steps = {s.name: s for s in run.get_steps()}
    for step in steps.values():
        assert step.get_status() == "Finished", step.get_details()
        out = _stdout(ws, step.id)
        assert "folder ['a.txt', 'b.txt'] ['A', 'B']" in out, out
        assert "single single.txt S" in out, out

    node_log = _stdout(ws, steps["read-env"].id)
    bucket = from_env.root.removeprefix("s3://")
    assert (
        f"headrace: downloaded input 'raw_env' on this node: 2 file(s), 0.0 MB from "
        f"s3://{bucket}/raw in"
    ) in node_log, node_log
    single = f"input 'one_env' on this node: 1 file(s), 0.0 MB from s3://{bucket}/one/single.txt"
    assert single in node_log, node_log
    assert "downloaded input" not in _stdout(ws, steps["read-kept"].id)
    # The output went back through the agent to the bucket, committed on success.
    written = [p for p in from_env.list_files("azureml") if p.endswith("joined.txt")]
    assert len(written) == 1, from_env.list_files("azureml")
    assert moto.filesystem().cat(f"{bucket}/{written[0]}") == b"A+B"


def test_a_node_without_the_datastores_credentials_fails_the_step_saying_so(
    ws: Workspace, tmp_path: Path, moto: Any, two_nodes: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster, _workers = two_nodes  # started before the variables below are set
    ds = _env_credentials_store(ws, moto, tmp_path, monkeypatch)
    src = _write(tmp_path / "src", "read_inputs.py", READ_INPUTS)
    target = ComputeTarget.attach(
        ws, "two", RayCompute.attach_configuration(address=cluster.address)
    )
    step = _reader_step(ds, src, target, "env")
    run = Experiment(ws, "ray-s3-nocreds").submit(Pipeline(ws, [step]))
    run.wait_for_completion(show_output=False, raise_on_error=False)
    step_run = run.get_steps()[0]
    assert step_run.get_status() == "Failed"
    stderr = Path(ws.path) / "artifacts" / "runs" / step_run.id / "user_logs/stderr.txt"
    text = stderr.read_text()
    assert (
        "headrace: input 'raw_env' (s3://" in text
        and "could not be downloaded on its node: Datastore 's3env' reads its access_key_id "
        "from the environment variable HR_RAY_KEY, which is not set here"
        in text
    ), text
    assert moto.secret not in text
    error = step_run.get_details()["error"]["error"]["message"]
    assert error.startswith("Step 'read-env' did not start: input 'raw_env' (s3://"), error
    assert "HR_RAY_KEY, which is not set here" in error and moto.secret not in error
    assert "folder" not in _stdout(ws, step_run.id)  # the script never started
