"""The compare-models demo (`make demo`): the real scikit-learn pipeline runs, logs its
metrics, writes its report, and is reused when resubmitted; `run_demo.py` works end to end."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from headrace import Experiment, PipelineRun, StepRun, Workspace
from tests.conftest import stop_agents

pytest.importorskip("sklearn", reason="the demo needs scikit-learn: pip install 'headrace[demo]'")

DEMO = Path(__file__).resolve().parents[1] / "examples" / "compare_models"
TRAINERS = ("train_logreg", "train_forest", "train_svm")
ALL_STEPS = {"prepare", *TRAINERS, "compare", "report"}

pytestmark = pytest.mark.slow


def demo_pipeline_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("compare_models_pipeline", DEMO / "pipeline.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def step(run: PipelineRun, name: str) -> StepRun:
    found = run.find_step_run(name)
    assert len(found) == 1, f"{name}: {found}"
    return found[0]


def run_demo(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(DEMO / "run_demo.py"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_make_demo_runs_logs_metrics_reports_and_is_reused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # One test, because the real pipeline takes seconds: run_demo.py on a fresh workspace
    # (what `make demo` does), then the SDK's view of what it did, then a parameter change.
    workspace = tmp_path / "demo-ws"
    try:
        done = run_demo("--workspace", str(workspace))
        out = done.stdout
        assert done.returncode == 0, out + done.stderr
        assert "PipelineRun Status: Finished" in out and "6 steps (0 reused)" in out
        assert "Best model:" in out
        for command in ("headrace run show", "headrace run logs", "headrace step show"):
            assert f"{command} " in out
        assert f"--workspace {workspace}" in out
        assert out.count("(This step is eligible to reuse a previous run's output)") == 6
        assert "6 of 6 steps reused" in out
        assert "**Best model:" in (tmp_path / "report.md").read_text()

        ws = Workspace.get("compare-models", path=workspace)
        second, first = Experiment(ws, "compare-models").get_runs()
        assert first.get_status() == second.get_status() == "Finished"
        assert {s.name for s in first.get_steps()} == ALL_STEPS

        accuracies = {}
        for name in TRAINERS:
            metrics = step(first, name).get_metrics()
            assert 0.8 < metrics["accuracy"] <= 1.0, (name, metrics)
            assert len(metrics["recall_per_digit"]) == 10
            assert metrics["per_digit"]["digit"] == list(range(10))  # log_row once per class
            matrix = metrics["confusion_matrix"]
            assert matrix["true_digit"] == list(range(10)) and len(matrix) == 11
            assert step(first, name).get_tags()["model"] == name.removeprefix("train_")
            accuracies[name.removeprefix("train_")] = metrics["accuracy"]
        assert step(first, "prepare").get_metrics()["test_rows"] == 450  # 0.25 of 1797

        best = max(accuracies, key=lambda m: accuracies[m])
        assert first.get_metrics()["best_accuracy"] == pytest.approx(accuracies[best], abs=1e-4)
        assert first.get_tags()["best_model"] == best
        assert f"Best model:  {best}, accuracy" in out
        table = step(first, "compare").get_metrics()["model_comparison"]
        assert sorted(table["model"]) == sorted(accuracies)

        output = first.get_pipeline_output("comparison").download(tmp_path / "dl", overwrite=True)
        assert json.loads((Path(output) / "comparison.json").read_text())["best_model"] == best
        assert (Path(output) / "best_model.joblib").stat().st_size > 0

        report = step(first, "report")
        assert "outputs/report.md" in report.get_file_names()
        report.download_file("outputs/report.md", str(tmp_path / "from-run.md"))
        text = (tmp_path / "from-run.md").read_text()
        assert f"**Best model: {best}**" in text and "test_size=0.25" in text

        # The resubmit reused every step, each pointing at the run that did the work.
        first_ids = {s.name: s.id for s in first.get_steps()}
        assert {s.name: s.reused_run_id for s in second.get_steps()} == first_ids

        # The builder, imported: n_estimators only reaches the forest, so prepare and the
        # other trainers are reused.
        demo = demo_pipeline_module()
        assert demo.build_pipeline(ws).validate() == []
        capsys.readouterr()
        third = Experiment(ws, "compare-models").submit(
            demo.build_pipeline(ws), pipeline_parameters={"n_estimators": 10}
        )
        assert third.wait_for_completion(show_output=False) == "Finished"
        assert capsys.readouterr().out.count("eligible to reuse") == 3
        ran = {s.name for s in third.get_steps() if s.reused_run_id is None}
        assert ran == {"train_forest", "compare", "report"}
        assert "n_estimators" in step(third, "train_forest").run_reason["summary"]
    finally:
        stop_agents(workspace)


def test_run_demo_refuses_to_delete_a_folder_that_is_not_a_workspace(tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    done = run_demo("--workspace", str(precious), timeout=60)
    assert done.returncode != 0
    assert "not a headrace workspace" in done.stderr and "refusing to delete" in done.stderr
    assert (precious / "notes.txt").read_text() == "keep me"
