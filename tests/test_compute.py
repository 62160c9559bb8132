"""Compute targets: the built-in `local`, the SDK v1 get-or-create idiom for AmlCompute, status
as the reference serializes it, and max_nodes limiting how many steps run at once."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

import headrace
from headrace import (
    AmlCompute,
    ComputeTarget,
    ComputeTargetException,
    Experiment,
    LocalCompute,
    Pipeline,
    Workspace,
)
from tests import shapes

NODE_STATES = {
    "preparingNodeCount",
    "runningNodeCount",
    "idleNodeCount",
    "unusableNodeCount",
    "leavingNodeCount",
    "preemptedNodeCount",
}
STATUS_FIELDS = {
    "currentNodeCount",
    "targetNodeCount",
    "nodeStateCounts",
    "allocationState",
    "errors",
    "creationTime",
    "provisioningState",
    "scaleSettings",
    "vmPriority",
    "vmSize",
}


def cluster(ws: Workspace, name: str = "cpu", max_nodes: int = 1) -> Any:
    config = AmlCompute.provisioning_configuration(
        vm_size="STANDARD_D2", min_nodes=0, max_nodes=max_nodes
    )
    return ComputeTarget.create(ws, name, config)


def test_local_always_exists(ws: Workspace) -> None:
    assert list(ws.compute_targets) == ["local"]
    local = ComputeTarget(ws, "local")
    assert isinstance(local, LocalCompute) and local.name == "local"
    assert local.max_nodes >= 1


def test_missing_target_raises_compute_target_exception(ws: Workspace) -> None:
    assert headrace.ComputeTargetException is ComputeTargetException
    with pytest.raises(ComputeTargetException) as info:
        ComputeTarget(ws, "nope")
    assert "'nope' not found" in str(info.value) and "ComputeTarget.create" in str(info.value)
    with pytest.raises(ComputeTargetException):
        AmlCompute(ws, "nope")


def test_get_or_create_idiom(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    # The notebooks' idiom, verbatim apart from the import.
    cpu_cluster_name = "cpu-cluster"
    try:
        cpu_cluster = ComputeTarget(workspace=ws, name=cpu_cluster_name)
        print("Found existing cluster, use it.")
    except ComputeTargetException:
        compute_config = AmlCompute.provisioning_configuration(
            vm_size="STANDARD_D2", min_nodes=0, max_nodes=1
        )
        cpu_cluster = ComputeTarget.create(ws, cpu_cluster_name, compute_config)
    cpu_cluster.wait_for_completion(show_output=True)
    out = capsys.readouterr().out
    assert "Found existing" not in out and "Succeeded" in out
    assert type(cpu_cluster) is AmlCompute
    again = ComputeTarget(workspace=ws, name=cpu_cluster_name)
    assert type(again) is AmlCompute and again.max_nodes == 1
    assert type(ws.compute_targets[cpu_cluster_name]) is AmlCompute
    assert type(AmlCompute(ws, cpu_cluster_name)) is AmlCompute
    assert sorted(ws.compute_targets) == ["cpu-cluster", "local"]
    # A new handle on the workspace folder sees it too.
    assert "cpu-cluster" in Workspace(path=ws.path).compute_targets


def test_status_has_the_reference_fields(ws: Workspace) -> None:
    ct = cluster(ws, max_nodes=3)
    status = ct.get_status().serialize()
    assert STATUS_FIELDS <= set(status)
    assert set(status["nodeStateCounts"]) == NODE_STATES
    assert status["scaleSettings"]["minNodeCount"] == 0
    assert status["scaleSettings"]["maxNodeCount"] == 3
    assert re.fullmatch(r"PT\d+S", status["scaleSettings"]["nodeIdleTimeBeforeScaleDown"])
    assert status["vmSize"] == "STANDARD_D2" and status["vmPriority"] == "Dedicated"
    assert status["provisioningState"] == "Succeeded" and status["errors"] is None
    assert status["allocationState"] == "Steady"
    assert status["currentNodeCount"] == 0
    assert status["nodeStateCounts"]["idleNodeCount"] == 3
    assert ct.status.serialize() == status
    assert ct.get_status().provisioning_state == "Succeeded"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"max_nodes": 0}, "max_nodes must be a positive int, not 0"),
        ({"max_nodes": -1}, "max_nodes must be a positive int"),
        ({"max_nodes": 1.5}, "max_nodes must be a positive int"),
        ({"max_nodes": "4"}, "max_nodes must be a positive int"),
        ({"max_nodes": True}, "max_nodes must be a positive int"),
        ({"min_nodes": -1, "max_nodes": 2}, "min_nodes must be 0 or more"),
        ({"min_nodes": 3, "max_nodes": 2}, "min_nodes (3) is larger than max_nodes (2)"),
    ],
)
def test_invalid_provisioning_is_refused(
    ws: Workspace, settings: dict[str, Any], message: str
) -> None:
    config = AmlCompute.provisioning_configuration(**settings)
    with pytest.raises(ComputeTargetException) as info:
        ComputeTarget.create(ws, "bad", config)
    assert message in str(info.value)
    assert "bad" not in ws.compute_targets


def test_invalid_names_are_refused(ws: Workspace) -> None:
    config = AmlCompute.provisioning_configuration(max_nodes=1)
    for name in ("", "bad name!", "1st", "x" * 65):
        with pytest.raises(ComputeTargetException, match="is invalid"):
            ComputeTarget.create(ws, name, config)
    with pytest.raises(ComputeTargetException, match="reserved"):
        ComputeTarget.create(ws, "local", config)
    assert list(ws.compute_targets) == ["local"]


def test_type_mismatch_is_refused(ws: Workspace) -> None:
    cluster(ws)
    with pytest.raises(ComputeTargetException, match="of type AmlCompute, not LocalCompute"):
        LocalCompute(ws, "cpu")
    with pytest.raises(ComputeTargetException, match="not AmlCompute"):
        AmlCompute(ws, "local")


def spans(run: Any, names: list[str]) -> list[tuple[float, float]]:
    found = []
    for name in names:
        log = run.find_step_run(name)[0].get_stdout_log()
        m = re.search(r"start=([\d.]+) end=([\d.]+)", log)
        assert m, log
        found.append((float(m.group(1)), float(m.group(2))))
    return found


def overlap(first: tuple[float, float], second: tuple[float, float]) -> bool:
    return first[0] < second[1] and second[0] < first[1]


def test_max_nodes_limits_steps_running_at_once(ws: Workspace, tmp_path: Path) -> None:
    one = cluster(ws, "one-node", max_nodes=1)
    two = cluster(ws, "two-nodes", max_nodes=2)

    def pipeline(target: str) -> Pipeline:
        steps = [
            shapes.step(tmp_path, f"{target}-{i}", sleep=0.8, compute_target=target) for i in (1, 2)
        ]
        return Pipeline(ws, steps)

    serial = Experiment(ws, "nodes").submit(pipeline("one-node"))
    parallel = Experiment(ws, "nodes").submit(pipeline("two-nodes"))
    seen_one: set[int] = set()
    seen_two: set[int] = set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = one.get_status().serialize()
        seen_one.add(status["nodeStateCounts"]["runningNodeCount"])
        assert status["currentNodeCount"] == status["nodeStateCounts"]["runningNodeCount"]
        seen_two.add(two.get_status().serialize()["nodeStateCounts"]["runningNodeCount"])
        if serial.get_status() in ("Finished", "Failed") and parallel.get_status() in (
            "Finished",
            "Failed",
        ):
            break
        time.sleep(0.05)
    assert serial.wait_for_completion(show_output=False) == "Finished"
    assert parallel.wait_for_completion(show_output=False) == "Finished"
    assert max(seen_one) == 1, seen_one
    assert 1 in seen_one
    assert max(seen_two) <= 2
    a, b = spans(serial, ["one-node-1", "one-node-2"])
    assert not overlap(a, b), f"steps on a 1-node target overlapped: {a} {b}"
    c, d = spans(parallel, ["two-nodes-1", "two-nodes-2"])
    assert overlap(c, d), f"steps on a 2-node target did not overlap: {c} {d}"
    # Idle again once the runs are over.
    after = one.get_status().serialize()
    assert after["nodeStateCounts"]["runningNodeCount"] == 0
    assert after["nodeStateCounts"]["idleNodeCount"] == 1
