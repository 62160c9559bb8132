"""A step whose agent is SIGKILLed is adopted by the next agent, never run twice (issue 13.3).

Real detached agents are killed with SIGKILL. Each step appends a line to a ledger file every
time its script starts, so "ran once" is counted on what actually ran. The step waits for a
"go" file, so the test decides whether it ends while no agent watches, while a new agent
watches, or not at all (its process killed with the agent).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from headrace import Experiment, Pipeline, PipelineData, PythonScriptStep, Workspace
from headrace.engine import landlock
from headrace.engine.launcher import agent_alive, ensure_agent
from headrace.engine.reaper import exit_record_path
from headrace.store.records import Status

STEP = textwrap.dedent(
    """
    import os, sys, time
    from headrace import Run
    ledger, go, out = sys.argv[1], sys.argv[2], sys.argv[3]
    if ledger != "-":  # "-": a confined step, which may write only its own folders
        with open(ledger, "a") as fh:
            fh.write(f"{os.getpid()}\\n")
    run = Run.get_context()
    run.log("loss", 0.5)
    print("step started", flush=True)
    while not os.path.exists(go):
        time.sleep(0.02)
    run.log("accuracy", 0.9)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "result.txt"), "w") as fh:
        fh.write("made once")
    print("step done", flush=True)
    sys.exit(int(os.environ.get("STEP_EXIT", "0")))
    """
)
AFTER = textwrap.dedent(
    """
    import os, sys
    print("after read", open(os.path.join(sys.argv[1], "result.txt")).read())
    """
)


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


class Scene:
    """A two-step pipeline (`work` -> `after`) whose `work` step is held by a go file."""

    def __init__(
        self,
        ws: Workspace,
        tmp_path: Path,
        confined: bool = False,
        timeout_seconds: float | None = None,
    ) -> None:
        self.ws = ws
        self.root = Path(str(ws.path))
        self.meta = ws.backend.meta  # type: ignore[attr-defined]
        src = tmp_path / "src"
        src.mkdir()
        (src / "work.py").write_text(STEP)
        (src / "after.py").write_text(AFTER)
        self.ledger, self.go = tmp_path / "ledger.txt", tmp_path / "go"
        self.confined = confined
        out = PipelineData("out")
        work = PythonScriptStep(
            "work.py",
            name="work",
            arguments=["-" if confined else str(self.ledger), str(self.go), out],
            outputs=[out],
            source_directory=str(src),
            allow_reuse=False,
            timeout_seconds=timeout_seconds,
        )
        after = PythonScriptStep(
            "after.py",
            name="after",
            arguments=[out],
            inputs=[out],
            source_directory=str(src),
            allow_reuse=False,
        )
        self.run = Experiment(ws, "adopt").submit(Pipeline(ws, steps=[work, after]))
        wait_for(lambda: bool(self.meta.list_step_runs(self.run.id)), "the step's record")
        self.step_id = self.step().id
        wait_for(lambda: self.executions() == 1, "the step to start")
        wait_for(lambda: self.metric_names() == ["loss"], "the first metric to be recorded")

    def step(self, name: str = "work"):  # type: ignore[no-untyped-def]
        # The store itself: an SDK call would start an agent.
        return next(s for s in self.meta.list_step_runs(self.run.id) if s.name == name)

    def metric_names(self) -> list[str]:
        return [m.name for m in self.meta.list_metrics([self.step_id])]

    def exit_record(self, attempt: int = 0) -> Path:
        return exit_record_path(self.root / "artifacts" / "runs" / self.step_id, attempt)

    def kill_agent(self) -> None:
        pid = int((self.root / "agent" / "agent.lock").read_text())
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not agent_alive(self.root), "the agent to die")

    def executions(self) -> int:
        if self.confined:  # its log counts its starts
            log = self.root / "artifacts" / "runs" / self.step_id / "user_logs" / "stdout.txt"
            return log.read_text().count("step started") if log.exists() else 0
        return len(self.ledger.read_text().splitlines()) if self.ledger.exists() else 0

    def finish(self) -> str:
        return str(
            self.run.wait_for_completion(
                show_output=False, timeout_seconds=120, raise_on_error=False
            )
        )

    def events(self, kind: str) -> list[dict[str, object]]:
        return [e.payload for e in self.meta.list_events(self.run.id) if e.kind == kind]

    def assert_adopted_and_kept(self, tmp_path: Path) -> None:
        """One execution, attempt 0, its log, metrics once each, its output read downstream."""
        assert self.finish() == "Finished"
        assert self.executions() == 1, "the step's script ran twice"
        record = self.step()
        assert record.status == Status.FINISHED and record.attempt == 0
        assert record.exit_code == 0
        assert sorted(self.metric_names()) == ["accuracy", "loss"], "a metric recorded twice"
        (work,) = self.run.find_step_run("work")
        stdout = work.get_stdout_log()
        assert "step started" in stdout and "step done" in stdout
        assert "attempt 2" not in stdout
        data = work.get_output_data("out").download(tmp_path / "dl", show_progress=False)
        assert (Path(data) / "result.txt").read_text() == "made once"
        (after,) = self.run.find_step_run("after")
        assert "after read made once" in after.get_stdout_log()
        assert self.events("step.adopted"), "the new agent says it adopted the attempt"
        assert not self.events("step.interrupted")


def test_a_step_that_finished_while_its_agent_was_dead_is_adopted_not_rerun(
    ws: Workspace, tmp_path: Path
) -> None:
    scene = Scene(ws, tmp_path)
    scene.kill_agent()
    scene.go.touch()
    # The step ends with no agent alive; its reaper records how.
    wait_for(scene.exit_record().exists, "the orphaned step to end")
    assert scene.step().status == Status.RUNNING
    scene.assert_adopted_and_kept(tmp_path)
    (payload,) = scene.events("step.adopted")
    assert payload["process"] == "ended"
    # The end time is when the step ended, not when the new agent looked.
    ended = scene.step().ended_at.timestamp()
    assert abs(ended - scene.exit_record().stat().st_mtime) < 1.0


@pytest.mark.skipif(landlock.abi_version() < 2, reason="needs Landlock ABI 2 or later")
def test_a_step_confined_by_landlock_is_adopted_too(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reaper runs confined with its step, and writes its exit record all the same."""
    monkeypatch.setenv("HEADRACE_STEP_ISOLATION", "on")
    scene = Scene(ws, tmp_path, confined=True)
    scene.kill_agent()
    scene.go.touch()
    wait_for(scene.exit_record().exists, "the orphaned step to end")
    scene.assert_adopted_and_kept(tmp_path)


def test_a_failed_orphan_fails_as_it_would_have_with_its_agent(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STEP_EXIT", "3")
    scene = Scene(ws, tmp_path)
    scene.kill_agent()
    scene.go.touch()
    wait_for(scene.exit_record().exists, "the orphaned step to end")
    assert scene.finish() == "Failed"
    assert scene.executions() == 1
    record = scene.step()
    assert record.status == Status.FAILED and record.exit_code == 3
    assert "exited with code 3" in (record.error or {})["message"]


def test_a_step_still_running_when_the_new_agent_starts_is_waited_for(
    ws: Workspace, tmp_path: Path
) -> None:
    scene = Scene(ws, tmp_path)
    scene.kill_agent()
    assert ensure_agent(scene.root)
    wait_for(lambda: bool(scene.events("step.adopted")), "the new agent to adopt the step")
    (payload,) = scene.events("step.adopted")
    assert payload["process"] == "running"
    assert not scene.exit_record().exists()
    scene.go.touch()
    scene.assert_adopted_and_kept(tmp_path)


def test_a_step_killed_with_its_agent_runs_again_and_says_why(
    ws: Workspace, tmp_path: Path
) -> None:
    scene = Scene(ws, tmp_path)
    wait_for(lambda: bool(scene.step().pid), "the step's process to be recorded")
    reaper = scene.step().pid or 0
    scene.kill_agent()
    os.killpg(reaper, signal.SIGKILL)  # the step's whole group: as a service manager would
    scene.go.touch()
    assert scene.finish() == "Finished"
    assert scene.executions() == 2, "the killed step runs once more, not more"
    record = scene.step()
    assert record.attempt == 1, "attempts count from 0: the second one"
    (payload,) = scene.events("step.interrupted")
    assert payload["requeued_as"] == 1
    assert "stopped with the agent that ran it" in str(payload["reason"])
    (work,) = scene.run.find_step_run("work")
    assert "attempt 1 did not finish: its process was stopped with the agent" in (
        work.get_stderr_log()
    )
    assert not scene.events("step.adopted")


def test_an_agent_killed_after_committing_outputs_before_recording_them_ends_right(
    ws: Workspace, tmp_path: Path
) -> None:
    """The agent is killed between the output commit and its record: the next agent
    finalizes the same attempt again (the commit kept, nothing run or recorded twice)."""
    scene = Scene(ws, tmp_path)
    run_id = scene.run.id

    def heartbeat() -> object:
        return scene.meta.get_pipeline_run(run_id).heartbeat_at

    # Right after a heartbeat the agent writes nothing for seconds unless a step ends:
    # holding the database's write lock then stops it just after it committed the outputs.
    beat = heartbeat()
    wait_for(lambda: heartbeat() != beat, "a heartbeat", timeout=20)
    lock = sqlite3.connect(scene.root / "headrace.db", timeout=30, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")
    try:
        scene.go.touch()

        def committed() -> bool:
            return any(scene.root.rglob(f"azureml/{scene.step_id}/out/result.txt"))

        wait_for(committed, "the outputs to be committed", timeout=30)
        time.sleep(0.2)  # the agent now waits for the lock to record the end
        scene.kill_agent()
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert scene.step().status == Status.RUNNING, "the end was not recorded"
    scene.assert_adopted_and_kept(tmp_path)


def test_an_adopted_step_keeps_its_timeout_counted_from_its_start(
    ws: Workspace, tmp_path: Path
) -> None:
    scene = Scene(ws, tmp_path, timeout_seconds=6)
    scene.kill_agent()
    assert scene.finish() == "Failed"  # the go file never comes
    assert scene.executions() == 1
    record = scene.step()
    assert record.status == Status.FAILED and record.attempt == 0
    assert "timed out after 6 s" in (record.error or {})["message"]
    assert record.ended_at is not None and record.started_at is not None
    assert (record.ended_at - record.started_at).total_seconds() < 30


def test_a_run_canceled_while_its_agent_was_dead_stops_its_adopted_step(
    ws: Workspace, tmp_path: Path
) -> None:
    scene = Scene(ws, tmp_path)
    scene.kill_agent()
    pid = scene.step().pid or 0
    scene.run.cancel()  # recorded; the agent this starts adopts the step, then stops it
    assert scene.finish() == "Canceled"
    assert scene.executions() == 1
    assert scene.step().status == Status.CANCELED
    wait_for(lambda: not os.path.exists(f"/proc/{pid}") or pid == 0, "the step to stop")


def test_a_record_the_step_wrote_itself_does_not_end_it_early(
    ws: Workspace, tmp_path: Path
) -> None:
    """The step may write its run folder: an exit record there while its reaper still runs
    is not believed; the new agent waits for the reaper."""
    scene = Scene(ws, tmp_path)
    wait_for(lambda: bool(scene.step().pid), "the step's process to be recorded")
    scene.kill_agent()
    scene.exit_record().write_text("0\n")  # what a step could write
    assert ensure_agent(scene.root)
    wait_for(lambda: bool(scene.events("step.adopted")), "the new agent to adopt the step")
    (payload,) = scene.events("step.adopted")
    assert payload["process"] == "running"
    time.sleep(0.5)
    assert scene.step().status == Status.RUNNING
    scene.go.touch()
    scene.assert_adopted_and_kept(tmp_path)
