"""The canonical shapes run end to end on the local executor, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from pathlib import Path

from headrace import Experiment, Workspace
from tests import shapes


def final_text(run, step_name: str, port: str, tmp_path: Path) -> str:
    step = run.find_step_run(step_name)[0]
    target = step.get_output_data(port).download(
        tmp_path / "dl", overwrite=True, show_progress=False
    )
    return (Path(target) / "data.txt").read_text()


def test_linear_chain_passes_data_in_order(any_ws: Workspace, tmp_path: Path) -> None:
    run = Experiment(any_ws, "shapes").submit(shapes.linear(any_ws, tmp_path, n=3))
    assert run.wait_for_completion(show_output=False) == "Finished"
    assert final_text(run, "s3", "d3", tmp_path) == "s1;s2;s3;"
    assert sorted(s.name for s in run.get_steps()) == ["s1", "s2", "s3"]


def test_diamond_runs_branches_and_joins(any_ws: Workspace, tmp_path: Path) -> None:
    run = Experiment(any_ws, "shapes").submit(shapes.diamond(any_ws, tmp_path))
    assert run.wait_for_completion(show_output=False) == "Finished"
    # d reads b and c (sorted by path), each of which read a.
    text = final_text(run, "d", "dd", tmp_path)
    assert text.endswith("d;") and text.count("a;") == 2


def test_fan_out_steps_overlap_in_time(ws: Workspace, tmp_path: Path) -> None:
    run = Experiment(ws, "shapes").submit(shapes.fan_out_fan_in(ws, tmp_path, width=2, sleep=1.0))
    assert run.wait_for_completion(show_output=False) == "Finished"
    spans = []
    for i in range(2):
        log = run.find_step_run(f"worker{i}")[0].get_stdout_log()
        m = re.search(r"start=([\d.]+) end=([\d.]+)", log)
        assert m, log
        spans.append((float(m.group(1)), float(m.group(2))))
    (s0, e0), (s1, e1) = spans
    assert s0 < e1 and s1 < e0, f"workers did not overlap: {spans}"
    assert final_text(run, "join", "final", tmp_path).endswith("join;")
