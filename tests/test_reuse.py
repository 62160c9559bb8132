"""Reuse as SDK v1 users expect it (acceptance scenario 4), explained, and aware of data.

A -> B over PipelineData, each step in its own folder. Every submission checks which step ran,
which was reused, and the recorded reason.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from headrace import (
    AmlCompute,
    ComputeTarget,
    DataReference,
    Experiment,
    Pipeline,
    PipelineData,
    PipelineParameter,
    PipelineRun,
    PythonScriptStep,
    Workspace,
)

A_SCRIPT = textwrap.dedent(
    """
    import os, sys
    raw, out, factor = sys.argv[1], sys.argv[2], sys.argv[3]
    os.makedirs(out, exist_ok=True)
    text = open(raw).read().strip()
    open(os.path.join(out, "a.txt"), "w").write(f"{text}*{factor}")
    """
)
B_SCRIPT = textwrap.dedent(
    """
    import os, sys
    print("B saw", open(os.path.join(sys.argv[1], "a.txt")).read())
    """
)


class Matrix:
    """Builds the A -> B pipeline with knobs, submits it and reports what ran."""

    def __init__(self, ws: Workspace, root: Path) -> None:
        self.ws = ws
        self.a_dir = root / "a"
        self.b_dir = root / "b"
        self.a_dir.mkdir(parents=True)
        self.b_dir.mkdir(parents=True)
        (self.a_dir / "a.py").write_text(A_SCRIPT)
        (self.b_dir / "b.py").write_text(B_SCRIPT)
        (self.a_dir / ".amlignore").write_text("scratch/\n")
        raw = root / "raw.txt"
        raw.write_text("raw-v1\n")
        self.store = ws.get_default_datastore()
        self.store.upload_files([str(raw)], target_path="inputs", show_progress=False)
        self.factor = PipelineParameter("factor", default_value=2)

    def pipeline(self, *, a_target: str = "local", b_reuse: bool = True) -> Pipeline:
        raw = DataReference(self.store, "raw", "inputs/raw.txt")
        mid = PipelineData("mid")
        a = PythonScriptStep(
            "a.py",
            arguments=[raw, mid, self.factor],
            inputs=[raw],
            outputs=[mid],
            source_directory=str(self.a_dir),
            compute_target=a_target,
        )
        b = PythonScriptStep(
            "b.py",
            arguments=[mid],
            inputs=[mid],
            source_directory=str(self.b_dir),
            allow_reuse=b_reuse,
        )
        return Pipeline(self.ws, steps=[a, b])

    def submit(self, pipeline: Pipeline | None = None, **kwargs: object) -> PipelineRun:
        run = Experiment(self.ws, "reuse").submit(pipeline or self.pipeline(), **kwargs)
        assert run.wait_for_completion(show_output=False) == "Finished"
        return run

    @staticmethod
    def ran(run: PipelineRun) -> dict[str, bool]:
        """{step name: True if it ran, False if reused}."""
        return {s.name: s.reused_run_id is None for s in run.get_steps()}

    @staticmethod
    def reason(run: PipelineRun, name: str) -> str:
        return str(run.find_step_run(name)[0].run_reason.get("summary", ""))


@pytest.fixture
def matrix(ws: Workspace, tmp_path: Path) -> Matrix:
    return Matrix(ws, tmp_path / "src")


def test_unchanged_pipeline_is_reused_and_points_to_the_original(
    matrix: Matrix, capsys: pytest.CaptureFixture[str]
) -> None:
    first = matrix.submit()
    assert matrix.ran(first) == {"a.py": True, "b.py": True}
    assert "first run of step 'a.py'" in matrix.reason(first, "a.py")
    out = capsys.readouterr().out
    assert "Created step a.py [" in out and "(This step will run and generate new outputs)" in out

    second = matrix.submit()
    assert matrix.ran(second) == {"a.py": False, "b.py": False}
    out = capsys.readouterr().out
    assert out.count("(This step is eligible to reuse a previous run's output)") == 2
    a1, a2 = first.find_step_run("a.py")[0], second.find_step_run("a.py")[0]
    assert a2.reused_run_id == a1.id
    assert a2.properties["azureml.reusedrunid"] == a1.id
    assert a2.get_status() == "Finished"
    # The reused step's output is the original data.
    assert a2.get_output_data("mid").path_on_datastore == f"azureml/{a1.id}/mid"
    assert "B saw raw-v1*2" in first.find_step_run("b.py")[0].get_stdout_log()
    # A reused step shows what the run it reused printed and wrote.
    b2 = second.find_step_run("b.py")[0]
    assert "B saw raw-v1*2" in b2.get_stdout_log()
    assert "user_logs/stdout.txt" in b2.get_file_names()


def test_editing_a_script_reruns_that_step_and_its_dependents(matrix: Matrix) -> None:
    matrix.submit()
    (matrix.b_dir / "b.py").write_text(B_SCRIPT + "\nprint('b v2')\n")
    run = matrix.submit()
    assert matrix.ran(run) == {"a.py": False, "b.py": True}
    assert "source changed: b.py modified" in matrix.reason(run, "b.py")

    (matrix.a_dir / "a.py").write_text(A_SCRIPT + "\n# a v2\n")
    run = matrix.submit()
    assert matrix.ran(run) == {"a.py": True, "b.py": True}
    assert "a.py modified" in matrix.reason(run, "a.py")
    assert "producing step ran again" in matrix.reason(run, "b.py")


def test_ignored_files_do_not_break_reuse(matrix: Matrix) -> None:
    matrix.submit()
    (matrix.a_dir / "scratch").mkdir()
    (matrix.a_dir / "scratch" / "notes.txt").write_text("not part of the step")
    assert matrix.ran(matrix.submit()) == {"a.py": False, "b.py": False}


def test_parameter_value_and_compute_target_are_part_of_the_fingerprint(matrix: Matrix) -> None:
    matrix.submit()
    run = matrix.submit(pipeline_parameters={"factor": 3})
    assert matrix.ran(run) == {"a.py": True, "b.py": True}
    assert "parameter factor changed: 2 -> 3" in matrix.reason(run, "a.py")
    assert "B saw raw-v1*3" in run.find_step_run("b.py")[0].get_stdout_log()

    ComputeTarget.create(matrix.ws, "pool", AmlCompute.provisioning_configuration(max_nodes=1))
    run = matrix.submit(matrix.pipeline(a_target="pool"))
    assert matrix.ran(run)["a.py"] is True
    assert "compute_target" in matrix.reason(run, "a.py")


def test_allow_reuse_false_always_runs(matrix: Matrix) -> None:
    matrix.submit(matrix.pipeline(b_reuse=False))
    run = matrix.submit(matrix.pipeline(b_reuse=False))
    assert matrix.ran(run) == {"a.py": False, "b.py": True}
    assert "allow_reuse=False" in matrix.reason(run, "b.py")


def test_regenerate_outputs_reruns_all_and_later_runs_reuse_them(matrix: Matrix) -> None:
    matrix.submit()
    regenerated = matrix.submit(regenerate_outputs=True)
    assert matrix.ran(regenerated) == {"a.py": True, "b.py": True}
    assert "regenerate_outputs=True" in matrix.reason(regenerated, "a.py")
    after = matrix.submit()
    assert matrix.ran(after) == {"a.py": False, "b.py": False}
    assert after.find_step_run("a.py")[0].reused_run_id == regenerated.find_step_run("a.py")[0].id


def test_changed_data_behind_a_datareference_is_noticed(matrix: Matrix, tmp_path: Path) -> None:
    """SDK v1 reused the step here (MLN#298); headrace reruns it and says why."""
    matrix.submit()
    raw = tmp_path / "raw.txt"
    raw.write_text("raw-v2 with more text\n")
    matrix.store.upload_files([str(raw)], target_path="inputs", overwrite=True, show_progress=False)
    run = matrix.submit()
    assert matrix.ran(run) == {"a.py": True, "b.py": True}
    assert "input raw changed: the data under" in matrix.reason(run, "a.py")
    assert "B saw raw-v2 with more text*2" in run.find_step_run("b.py")[0].get_stdout_log()


def test_deleted_outputs_are_not_reused(matrix: Matrix) -> None:
    import shutil

    first = matrix.submit()
    a1 = first.find_step_run("a.py")[0]
    shutil.rmtree(Path(matrix.store.root) / "azureml" / a1.id)
    run = matrix.submit()
    assert matrix.ran(run)["a.py"] is True
    assert "no longer exist" in matrix.reason(run, "a.py")
