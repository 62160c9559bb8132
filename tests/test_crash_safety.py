"""Crash safety: a SIGKILLed agent's run is resumed by the next agent; concurrent submits from
several processes lose nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from headrace import Experiment, Pipeline, PipelineData, PythonScriptStep, Workspace
from headrace.engine.launcher import agent_alive

SLOW_STEP = textwrap.dedent(
    """
    import os, subprocess, sys, time
    counter, pids, out = sys.argv[1], sys.argv[2], sys.argv[3]
    attempt = int(open(counter).read()) + 1 if os.path.exists(counter) else 1
    open(counter, "w").write(str(attempt))
    os.makedirs(out, exist_ok=True)
    open(os.path.join(out, "b.txt"), "w").write(f"attempt {attempt}")
    if attempt == 1:
        child = subprocess.Popen(["sleep", "300"])
        open(pids, "w").write(f"{os.getpid()} {child.pid}")
        time.sleep(120)
    print("B finished on attempt", attempt)
    """
)
QUICK_STEP = textwrap.dedent(
    """
    import os, sys
    if len(sys.argv) > 1:
        os.makedirs(sys.argv[1], exist_ok=True)
        open(os.path.join(sys.argv[1], "x.txt"), "w").write("x")
    print("quick step done")
    """
)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait_for(predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def test_killed_agent_and_step_run_is_resumed_without_losing_or_repeating_work(
    ws: Workspace, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "slow.py").write_text(SLOW_STEP)
    (src / "quick.py").write_text(QUICK_STEP)
    counter, pids = tmp_path / "counter.txt", tmp_path / "pids.txt"
    a_out, b_out = PipelineData("a_out"), PipelineData("b_out")
    a = PythonScriptStep(
        "quick.py", name="A", arguments=[a_out], outputs=[a_out], source_directory=str(src)
    )
    b = PythonScriptStep(
        "slow.py",
        name="B",
        arguments=[str(counter), str(pids), b_out],
        inputs=[a_out],
        outputs=[b_out],
        source_directory=str(src),
    )
    c = PythonScriptStep("quick.py", name="C", inputs=[b_out], source_directory=str(src))
    run = Experiment(ws, "crash").submit(Pipeline(ws, steps=[a, b, c]))
    _wait_for(pids.exists)
    step_pid, child_pid = map(int, pids.read_text().split())
    a_before = run.find_step_run("A")[0]
    assert a_before.get_status() == "Finished"

    agent_pid = int((Path(ws.path) / "agent" / "agent.lock").read_text())
    os.kill(agent_pid, signal.SIGKILL)
    _wait_for(lambda: not agent_alive(Path(ws.path)))
    assert _alive(step_pid) and _alive(child_pid), (
        "the orphaned step should still run until recovery"
    )
    # Its process group (its reaper, the script and its child) goes too, as when a service
    # manager stops the agent with everything it started: the step never finished, so it
    # runs again. (A step that outlives its agent is adopted instead: test_adoption.py.)
    os.killpg(os.getpgid(step_pid), signal.SIGKILL)

    # Any later SDK or CLI call starts a new agent; waiting on the run is one.
    assert run.wait_for_completion(show_output=False, timeout_seconds=90) == "Finished"

    steps = run.get_steps()
    assert sorted(s.name for s in steps) == ["A", "B", "C"], "each step recorded once"
    a_after = run.find_step_run("A")[0]
    assert (
        a_after.id == a_before.id
        and a_after.get_details()["endTimeUtc"] == a_before.get_details()["endTimeUtc"]
    )
    b_step = run.find_step_run("B")[0]
    assert b_step.get_details()["runDefinition"]["attempt"] == 1
    assert counter.read_text() == "2", "the interrupted step ran once more, not more"
    assert "B finished on attempt 2" in b_step.get_stdout_log()
    _wait_for(lambda: not _alive(step_pid) and not _alive(child_pid), timeout=10)
    # The output committed is the second attempt's.
    b_data = b_step.get_output_data("b_out").download(tmp_path / "dl", show_progress=False)
    assert (Path(b_data) / "b.txt").read_text() == "attempt 2"
    kinds = [e.kind for e in ws.backend.list_events(run.id)]
    assert "run.resumed" in kinds and "step.interrupted" in kinds


SUBMITTER = textwrap.dedent(
    """
    import sys
    from headrace import Workspace, Experiment, Pipeline, PythonScriptStep, PipelineParameter
    ws = Workspace(path=sys.argv[1])
    worker, count, src = sys.argv[2], int(sys.argv[3]), sys.argv[4]
    p = PipelineParameter("n", default_value=0)
    ids = []
    for i in range(count):
        s1 = PythonScriptStep("quick.py", name="one", arguments=["--n", p], source_directory=src)
        s2 = PythonScriptStep("quick.py", name="two", source_directory=src)
        s2.run_after(s1)
        run = Experiment(ws, "concurrent").submit(Pipeline(ws, [s2]), pipeline_parameters={"n": i})
        ids.append(run.id)
    print("IDS", " ".join(ids))
    """
)


def test_concurrent_submits_from_several_processes_lose_nothing(
    any_ws: Workspace, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "quick.py").write_text("print('hi')\n")
    script = tmp_path / "submitter.py"
    script.write_text(SUBMITTER)
    workers, per_worker = 4, 4
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(any_ws.path), str(w), str(per_worker), str(src)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(workers)
    ]
    ids: list[str] = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        ids += next(line for line in out.splitlines() if line.startswith("IDS ")).split()[1:]
    assert len(ids) == workers * per_worker == len(set(ids))
    runs = list(Experiment(any_ws, "concurrent").get_runs())
    assert {r.id for r in runs} == set(ids)
    for run in runs:
        assert run.wait_for_completion(show_output=False, timeout_seconds=120) == "Finished"
        names = sorted(s.name for s in run.get_steps())
        assert names == ["one", "two"], f"run {run.id} has steps {names}"


def test_a_submit_wakes_an_idle_agent_instead_of_waiting_for_its_poll(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agent looks for new runs every poll interval; a submit also wakes it at once."""
    monkeypatch.setenv("HEADRACE_AGENT_POLL_SECONDS", "60")
    src = tmp_path / "src"
    src.mkdir()
    (src / "quick.py").write_text(QUICK_STEP)

    def submit(token: str) -> float:
        step = PythonScriptStep(
            "quick.py", name="q", arguments=[token], source_directory=str(src), allow_reuse=False
        )
        start = time.monotonic()
        run = Experiment(ws, "wake").submit(Pipeline(ws, steps=[step]))
        assert run.wait_for_completion(show_output=False, timeout_seconds=50) == "Finished"
        return time.monotonic() - start

    submit(str(tmp_path / "first"))  # starts the agent, which claims at once
    time.sleep(0.5)  # the agent is now between two polls a minute apart
    assert submit(str(tmp_path / "second")) < 20, "the second run waited for the agent's poll"
