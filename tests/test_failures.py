"""Failing, killed, timed-out, retried and canceled steps, as a user sees them.

SDK v1 reference §6 and acceptance scenario 10: a failed step cancels the rest unless
`continue_on_step_failure`; the cause (exit code, signal, traceback, stderr tail) is recorded
and raised by `wait_for_completion`. Retries and timeouts are headrace extensions.
"""

from __future__ import annotations

import os
import textwrap
import time
from pathlib import Path

import pytest

from headrace import (
    ActivityFailedException,
    Experiment,
    Pipeline,
    PipelineRun,
    PythonScriptStep,
    Workspace,
)
from tests import shapes


def script_step(
    tmp_path: Path, name: str, body: str, arguments: list[object] | None = None, **kw: object
) -> PythonScriptStep:
    folder = tmp_path / f"src_{name}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "job.py").write_text(textwrap.dedent(body))
    return PythonScriptStep(
        "job.py",
        name=name,
        arguments=arguments or [],
        source_directory=str(folder),
        **kw,  # type: ignore[arg-type]
    )


def run_one(ws: Workspace, step: PythonScriptStep) -> PipelineRun:
    run: PipelineRun = Experiment(ws, "failures").submit(Pipeline(ws, steps=[step]))
    run.wait_for_completion(show_output=False, raise_on_error=False)
    assert_consistent(ws, run)
    return run


def assert_consistent(ws: Workspace, run: PipelineRun) -> None:
    """An ended run leaves no step running, no working folder and no staged output."""
    assert run.get_details()["endTimeUtc"] is not None
    for step in run.get_steps():
        details = step.get_details()
        assert details["status"] in ("Completed", "Failed", "Canceled"), details
        assert details["endTimeUtc"] is not None, details
    assert list((Path(ws.backend.location) / "work").glob("*")) == []
    staging = Path(ws.get_default_datastore().root) / ".headrace" / "staging"
    assert list(staging.glob("*")) == []  # an absent folder globs to nothing too


def process_gone(pid: int) -> bool:
    """True when `pid` no longer runs (a zombie waiting to be reaped counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return True
    return state in ("Z", "X")


def wait_gone(pids: list[int], seconds: float = 10.0) -> list[int]:
    """The pids still alive after waiting up to `seconds`."""
    deadline = time.monotonic() + seconds
    alive = [p for p in pids if not process_gone(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [p for p in alive if not process_gone(p)]
    return alive


def wait_for_file(path: Path, seconds: float = 30.0) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if path.exists():
            text = path.read_text()
            if text.endswith("\n"):
                return text
        time.sleep(0.05)
    raise AssertionError(f"{path} did not appear within {seconds} s")


# -- scenario 10: a failing step in a pipeline ------------------------------------------------
def test_a_failure_cancels_running_steps_and_skips_dependents(
    any_ws: Workspace, tmp_path: Path
) -> None:
    run = Experiment(any_ws, "failing").submit(shapes.failing(any_ws, tmp_path, slow=60))
    started = time.monotonic()
    assert run.wait_for_completion(show_output=False, raise_on_error=False) == "Failed"
    # B sleeps 60 s; it must have been stopped, not waited for.
    assert time.monotonic() - started < 40
    statuses = {s.name: s.get_status() for s in run.get_steps()}
    assert statuses == {"A": "Failed", "B": "Canceled"}, statuses  # C never started
    assert_consistent(any_ws, run)
    assert run.get_status() == "Failed"

    a = run.find_step_run("A")[0]
    assert "step A start=" in a.get_stdout_log()
    assert "step A is failing on purpose" in a.get_stderr_log()
    error = a.get_details()["error"]["error"]
    assert "exited with code 3" in error["message"]
    assert "failing on purpose" in error["stderr_tail"]
    assert run.get_details()["status"] == "Failed"
    assert run.get_details()["error"]["error"]["step"] == "A"

    with pytest.raises(ActivityFailedException) as caught:
        run.wait_for_completion(show_output=False)
    text = str(caught.value)
    assert "'A'" in text and "exited with code 3" in text
    assert "step A is failing on purpose" in text  # the tail of A's stderr
    assert caught.value.status == "Failed"
    assert caught.value.error_details["step"] == "A"


def test_continue_on_step_failure_lets_independent_steps_finish(
    ws: Workspace, tmp_path: Path
) -> None:
    run = Experiment(ws, "failing").submit(
        shapes.failing(ws, tmp_path, slow=1.0), continue_on_step_failure=True
    )
    assert run.wait_for_completion(show_output=False, raise_on_error=False) == "Failed"
    statuses = {s.name: s.get_status() for s in run.get_steps()}
    assert statuses == {"A": "Failed", "B": "Finished"}, statuses  # C skipped: A failed
    assert "step B start=" in run.find_step_run("B")[0].get_stdout_log()


# -- how a script can fail ----------------------------------------------------------------------
def test_a_raising_script_records_its_traceback(ws: Workspace, tmp_path: Path) -> None:
    step = script_step(
        tmp_path,
        "raiser",
        """
        def load(n):
            raise ValueError(f"bad input {n}")
        load(42)
        """,
    )
    run = run_one(ws, step)
    assert run.get_status() == "Failed"
    error = run.find_step_run("raiser")[0].get_details()["error"]["error"]
    assert error["traceback"].startswith("Traceback (most recent call last):")
    assert "in load" in error["traceback"]
    assert "ValueError: bad input 42" in error["traceback"]
    assert "exited with code 1" in error["message"]
    with pytest.raises(ActivityFailedException, match="ValueError: bad input 42"):
        run.wait_for_completion(show_output=False)


def test_a_non_zero_exit_code_is_in_the_message(ws: Workspace, tmp_path: Path) -> None:
    step = script_step(tmp_path, "quitter", "import sys; sys.exit(7)")
    run = run_one(ws, step)
    error = run.find_step_run("quitter")[0].get_details()["error"]["error"]
    assert error["exit_code"] == 7
    assert "'quitter'" in error["message"] and "exited with code 7" in error["message"]


def test_a_killed_script_names_the_signal(ws: Workspace, tmp_path: Path) -> None:
    step = script_step(
        tmp_path, "victim", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    )
    run = run_one(ws, step)
    assert run.get_status() == "Failed"
    error = run.find_step_run("victim")[0].get_details()["error"]["error"]
    assert "SIGKILL" in error["message"]
    with pytest.raises(ActivityFailedException, match="SIGKILL"):
        run.wait_for_completion(show_output=False)


def test_a_step_past_its_timeout_is_stopped_and_failed(ws: Workspace, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid.txt"
    step = script_step(
        tmp_path,
        "sleeper",
        """
        import os, sys, time
        with open(sys.argv[1], "w") as fh:
            fh.write(f"{os.getpid()}\\n")
        time.sleep(120)
        """,
        arguments=[str(pid_file)],
        timeout_seconds=2.5,
    )
    started = time.monotonic()
    run = run_one(ws, step)
    assert time.monotonic() - started < 60
    assert run.get_status() == "Failed"
    error = run.find_step_run("sleeper")[0].get_details()["error"]["error"]
    assert "timed out" in error["message"] and "timeout_seconds=2.5" in error["message"]
    pid = int(pid_file.read_text())
    assert wait_gone([pid]) == []


# -- retries ------------------------------------------------------------------------------------
FLAKY = """
import sys
counter = sys.argv[1]
try:
    seen = int(open(counter).read())
except FileNotFoundError:
    seen = 0
with open(counter, "w") as fh:
    fh.write(str(seen + 1))
print(f"attempt number {seen + 1}", flush=True)
from headrace import Run
Run.get_context().log("attempt", seen + 1)
if seen < int(sys.argv[2]):
    raise SystemExit(f"flaky failure {seen + 1}")
"""


def test_max_retries_runs_a_flaky_step_until_it_succeeds(ws: Workspace, tmp_path: Path) -> None:
    counter = tmp_path / "counter.txt"  # outside the snapshot, so it survives attempts
    step = script_step(tmp_path, "flaky", FLAKY, arguments=[str(counter), "2"], max_retries=2)
    run = run_one(ws, step)
    assert run.get_status() == "Finished"
    assert counter.read_text() == "3"
    flaky = run.find_step_run("flaky")[0]
    assert flaky.get_status() == "Finished"
    assert flaky.get_details()["runDefinition"]["attempt"] == 2  # the third attempt, from 0
    log = flaky.get_stdout_log()
    assert "attempt number 1" in log and "attempt number 3" in log
    assert "flaky failure 2" in flaky.get_stderr_log()
    # What each attempt logged is recorded once.
    assert flaky.get_metrics()["attempt"] == [1, 2, 3]


def test_retries_exhausted_fail_the_step(ws: Workspace, tmp_path: Path) -> None:
    counter = tmp_path / "counter.txt"
    step = script_step(tmp_path, "flaky", FLAKY, arguments=[str(counter), "5"], max_retries=2)
    run = run_one(ws, step)
    assert run.get_status() == "Failed"
    assert counter.read_text() == "3"  # one try and two retries
    error = run.find_step_run("flaky")[0].get_details()["error"]["error"]
    assert "flaky failure 3" in error["stderr_tail"]


# -- cancel -------------------------------------------------------------------------------------
SPAWNER = """
import os, subprocess, sys, time
children = [subprocess.Popen(["sleep", "300"]) for _ in range(2)]
# A child that leaves the step's process group (a daemon, a server) is stopped too.
children.append(subprocess.Popen(["sleep", "300"], start_new_session=True))
with open(sys.argv[1], "w") as fh:
    fh.write(" ".join(str(p) for p in [os.getpid()] + [c.pid for c in children]) + "\\n")
time.sleep(300)
"""


def test_cancel_stops_the_running_step_and_its_child_processes(
    any_ws: Workspace, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pids.txt"
    step = script_step(tmp_path, "spawner", SPAWNER, arguments=[str(pid_file)])
    run = Experiment(any_ws, "cancel").submit(Pipeline(any_ws, steps=[step]))
    pids = [int(p) for p in wait_for_file(pid_file).split()]
    assert len(pids) == 4 and wait_gone(pids, 0) == pids

    run.cancel()
    assert run.wait_for_completion(show_output=False, raise_on_error=False) == "Canceled"
    assert run.get_status() == "Canceled"
    assert run.find_step_run("spawner")[0].get_status() == "Canceled"
    assert_consistent(any_ws, run)
    assert wait_gone(pids) == [], "the step's processes outlived the cancel"
    with pytest.raises(ActivityFailedException, match="canceled"):
        run.wait_for_completion(show_output=False)


def test_cancel_of_a_queued_run_means_it_never_starts(ws: Workspace, tmp_path: Path) -> None:
    from headrace.engine.launcher import hold_agent_lock

    marker = tmp_path / "ran.txt"
    step = script_step(
        tmp_path, "never", "import sys; open(sys.argv[1], 'w').write('ran')", [str(marker)]
    )
    # While the agent lock is held no agent can start, so the run stays queued.
    with hold_agent_lock(tmp_path / "ws") as held:
        assert held
        run = Experiment(ws, "cancel").submit(Pipeline(ws, steps=[step]))
        assert run.get_status() == "NotStarted"
        run.cancel()
        assert run.get_status() == "Canceled"
    # An agent that starts later (for another run) does not run the canceled one.
    later = script_step(tmp_path, "later", "print('later ran')")
    other = Experiment(ws, "cancel").submit(Pipeline(ws, steps=[later]))
    assert other.wait_for_completion(show_output=False) == "Finished"
    assert run.get_status() == "Canceled" and run.get_steps() == []
    assert not marker.exists()
    assert run.wait_for_completion(show_output=False, raise_on_error=False) == "Canceled"


def test_cancel_of_a_run_waiting_for_a_free_node(ws: Workspace, tmp_path: Path) -> None:
    from headrace import AmlCompute, ComputeTarget

    config = AmlCompute.provisioning_configuration(vm_size="STANDARD_D2_V2", max_nodes=1)
    ComputeTarget.create(ws, "one-node", config)
    marker = tmp_path / "ran.txt"
    waiting = script_step(
        tmp_path,
        "waiting",
        "import sys; open(sys.argv[1], 'w').write('ran')",
        [str(marker)],
        compute_target="one-node",
    )
    blocker = script_step(
        tmp_path,
        "blocker",
        "import time; time.sleep(60)",
        compute_target="one-node",
    )
    # The one node is busy with the first run, so the second run's step waits for it.
    first = Experiment(ws, "cancel").submit(Pipeline(ws, steps=[blocker]))
    second = Experiment(ws, "cancel").submit(Pipeline(ws, steps=[waiting]))
    second.cancel()
    assert second.wait_for_completion(show_output=False, raise_on_error=False) == "Canceled"
    first.cancel()
    assert first.wait_for_completion(show_output=False, raise_on_error=False) == "Canceled"
    assert not marker.exists()
    assert [s.get_status() for s in second.get_steps()] in ([], ["Canceled"])


def test_canceling_a_finished_run_changes_nothing(ws: Workspace, tmp_path: Path) -> None:
    step = script_step(tmp_path, "quick", "print('done')")
    run = run_one(ws, step)
    assert run.get_status() == "Finished"
    run.cancel()
    assert run.get_status() == "Finished"
    assert run.find_step_run("quick")[0].get_status() == "Finished"


def test_pids_helper_sees_live_processes() -> None:
    # The cancel and timeout tests rely on process_gone; make sure it can say "alive".
    assert not process_gone(os.getpid())
    assert wait_gone([os.getpid()], 0.1) == [os.getpid()]
