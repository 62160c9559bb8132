"""The canonical shapes (tests/shapes.py) run end to end on every executor, on SQLite and
PostgreSQL.

`EXECUTORS` names each executor and how a test gets a compute target on it: the local pool,
and a Ray cluster on 127.0.0.1 (one per module, started only when a Ray test runs). A new
executor is covered by adding it there.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from headrace import ComputeTarget, Experiment, RayCompute, Workspace
from tests import shapes
from tests.rayclusters import local_cluster


@dataclass(frozen=True)
class On:
    """An executor in a test: the compute target name its steps record, and `attach`, which
    gives a workspace a target on it (None: no target, the local pool)."""

    name: str
    attach: Callable[[Workspace], object]

    def __call__(self, ws: Workspace) -> object:
        return self.attach(ws)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Any]:
    with local_cluster(num_cpus=2) as cluster:
        yield cluster


def _local(request: pytest.FixtureRequest) -> On:
    return On("local", lambda ws: None)


def _ray(request: pytest.FixtureRequest) -> On:
    address = request.getfixturevalue("ray_cluster").address
    config = RayCompute.attach_configuration(address=address)
    return On("ray", lambda ws: ComputeTarget.attach(ws, "ray", config))


EXECUTORS: dict[str, Callable[[pytest.FixtureRequest], On]] = {
    "local": _local,
    "ray": _ray,
}


@pytest.fixture(params=list(EXECUTORS))
def on(request: pytest.FixtureRequest) -> On:
    """The executor a test runs its shape on; `on(ws)` is the shapes' `target`."""
    return EXECUTORS[request.param](request)


def ran_on(run: Any) -> set[str]:
    """The compute targets the run's steps ran on, as each step's details name them."""
    return {step.get_details()["target"] for step in run.get_steps()}


def final_text(run: Any, step_name: str, port: str, tmp_path: Path) -> str:
    step = run.find_step_run(step_name)[0]
    target = step.get_output_data(port).download(
        tmp_path / "dl", overwrite=True, show_progress=False
    )
    return (Path(target) / "data.txt").read_text()


def test_linear_chain_passes_data_in_order(any_ws: Workspace, on: On, tmp_path: Path) -> None:
    pipeline = shapes.linear(any_ws, tmp_path, n=3, target=on(any_ws))
    run = Experiment(any_ws, "shapes").submit(pipeline)
    assert run.wait_for_completion(show_output=False) == "Finished"
    assert ran_on(run) == {on.name}
    assert final_text(run, "s3", "d3", tmp_path) == "s1;s2;s3;"
    assert sorted(s.name for s in run.get_steps()) == ["s1", "s2", "s3"]


def test_diamond_runs_branches_and_joins(any_ws: Workspace, on: On, tmp_path: Path) -> None:
    run = Experiment(any_ws, "shapes").submit(shapes.diamond(any_ws, tmp_path, target=on(any_ws)))
    assert run.wait_for_completion(show_output=False) == "Finished"
    assert ran_on(run) == {on.name}
    # d reads b and c (sorted by path), each of which read a.
    text = final_text(run, "d", "dd", tmp_path)
    assert text.endswith("d;") and text.count("a;") == 2


def test_fan_out_steps_overlap_in_time(ws: Workspace, on: On, tmp_path: Path) -> None:
    pipeline = shapes.fan_out_fan_in(ws, tmp_path, width=2, sleep=1.0, target=on(ws))
    run = Experiment(ws, "shapes").submit(pipeline)
    assert run.wait_for_completion(show_output=False) == "Finished"
    assert ran_on(run) == {on.name}
    spans = []
    for i in range(2):
        log = run.find_step_run(f"worker{i}")[0].get_stdout_log()
        m = re.search(r"start=([\d.]+) end=([\d.]+)", log)
        assert m, log
        spans.append((float(m.group(1)), float(m.group(2))))
    (s0, e0), (s1, e1) = spans
    assert s0 < e1 and s1 < e0, f"workers did not overlap: {spans}"
    assert final_text(run, "join", "final", tmp_path).endswith("join;")
