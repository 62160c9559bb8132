"""A step's logs as a user reads them (issue 17 item 4): one chronological log per step
(`user_logs/std_log.txt`: every line with its time and stream, stdout and stderr in the
order they were written, a subprocess's output and a hard crash's included), retry attempts
in order under a heading each, why the step ran as the first line of its live stream, and
tracebacks naming files that still exist.

One pipeline of independent steps (continue_on_step_failure) runs once for each logger: the
shared log server (engine/logreader.py), and each step's own (`HEADRACE_STEP_LOG_SERVER=0`,
what steps fall back to when no server takes their output). Either way, a Python script
runs from the byte code the agent compiled for it (executors/scriptcode.py) and looks to
itself exactly as under `python script.py`.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from headrace import (
    CommandStep,
    Experiment,
    Pipeline,
    PipelineRun,
    PythonScriptStep,
    Workspace,
)
from headrace.cli.main import app
from headrace.sdk.runs import StepRun
from headrace.store.steplogs import split_line
from tests.conftest import stop_agents

LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (stdout|stderr|headrace) ")

SCRIPTS = {
    "alternate": """
        import subprocess, sys
        for i in range(40):  # as fast as it can: the order must hold anyway
            print(f"out {i}", flush=True)
            print(f"err {i}", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-c", "import sys; print('child out'); "
                        "print('child err', file=sys.stderr)"], check=True)
        print("after the child")
    """,
    "hard_exit": """
        import os, sys
        print("written before os._exit")
        sys.stderr.write("no newline at the end")
        os._exit(3)
    """,
    "killed": """
        import signal, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # only SIGKILL stops it
        print("started, ignoring SIGTERM", flush=True)
        print("still on stderr", file=sys.stderr, flush=True)
        time.sleep(60)
    """,
    "retried": """
        import os, sys
        attempt = int(os.environ["HEADRACE_ATTEMPT"])
        print(f"attempt {attempt + 1} output")
        sys.exit(1 if attempt < 2 else 0)
    """,
    "broken": """
        import helper
        print("calling the helper")
        helper.fail()
    """,
    # What a script sees of itself: its file as Python names it, in every code object.
    "itself": """
        import os, sys
        def nested():
            return sys._getframe().f_code.co_filename
        here = sys._getframe().f_code.co_filename
        assert here == __file__ == nested() == os.path.abspath(sys.argv[0]), (here, __file__)
        assert __name__ == "__main__" and sys.path[0] == os.path.dirname(__file__)
        print("caf\u00e9 as itself:", os.path.basename(__file__))
    """,
    "syntax": """
        print("never runs")
        def broken(:
            pass
    """,
}
# A command is started through the same logger (then exec'd): fd-level writes, in the order
# they arrive (a pause between them, as between the lines of a real program).
COMMAND = "echo one; sleep 0.2; echo two >&2; sleep 0.2; echo three"
HELPER = """
def fail():
    raise ValueError("the helper failed on purpose")
"""


@dataclass
class Ran:
    ws: Workspace
    run: PipelineRun
    shown: str  # what wait_for_completion(show_output=True) printed

    def step(self, name: str) -> StepRun:
        return self.run.find_step_run(name)[0]

    def combined(self, name: str) -> list[str]:
        text = bytes(self.ws.backend.read_run_file(self.step(name).id, "user_logs/std_log.txt"))
        return text.decode().splitlines()


@pytest.fixture(scope="module", params=["log server", "own logger"])
def ran(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ran]:
    with pytest.MonkeyPatch.context() as patch:
        # The detached agent the submit starts inherits this process's environment.
        patch.setenv("HEADRACE_STEP_LOG_SERVER", "1" if request.param == "log server" else "0")
        yield from _ran(tmp_path_factory)


def _ran(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ran]:
    root = tmp_path_factory.mktemp("steplogs")
    ws = Workspace.create("steplogs", path=root / "ws", show_output=False)
    steps: list[PythonScriptStep | CommandStep] = [CommandStep(name="command", command=COMMAND)]
    for name, body in SCRIPTS.items():
        folder = root / f"src_{name}"
        folder.mkdir()
        (folder / "job.py").write_text(textwrap.dedent(body))
        (folder / "helper.py").write_text(HELPER)
        settings: dict[str, object] = {}
        if name == "killed":
            settings["timeout_seconds"] = 1
        if name == "retried":
            settings["max_retries"] = 2
        step = PythonScriptStep("job.py", name=name, source_directory=str(folder))
        for key, value in settings.items():
            setattr(step, key, value)
        steps.append(step)
    run = Experiment(ws, "logs").submit(Pipeline(ws, steps=steps), continue_on_step_failure=True)
    shown = io.StringIO()
    with contextlib.redirect_stdout(shown):
        run.wait_for_completion(show_output=True, raise_on_error=False)
    yield Ran(ws, run, shown.getvalue())
    stop_agents(root / "ws")


def test_stdout_and_stderr_interleave_in_order_with_time_and_stream(ran: Ran) -> None:
    lines = ran.combined("alternate")
    assert all(LINE.match(line) for line in lines), lines
    texts = [split_line(line)[1:] for line in lines]
    expected = [
        pair for i in range(40) for pair in (("stdout", f"out {i}"), ("stderr", f"err {i}"))
    ]
    assert texts[:80] == expected
    # The child's output comes after the parent's loop and before what follows it.
    assert set(texts[80:82]) == {("stdout", "child out"), ("stderr", "child err")}
    assert texts[82:] == [("stdout", "after the child")]
    stamps = [split_line(line)[0] for line in lines]
    assert stamps == sorted(stamps)
    # The separate logs stay byte for byte what the step wrote.
    step = ran.step("alternate")
    outs = "".join(f"out {i}\n" for i in range(40))
    assert step.get_stdout_log() == outs + "child out\nafter the child\n"
    assert step.get_stderr_log() == "".join(f"err {i}\n" for i in range(40)) + "child err\n"
    assert "user_logs/std_log.txt" in step.get_details()["logFiles"]


def test_a_command_step_has_a_combined_log_too(ran: Ran) -> None:
    texts = [split_line(line)[1:] for line in ran.combined("command")]
    assert texts == [("stdout", "one"), ("stderr", "two"), ("stdout", "three")]
    assert ran.step("command").get_stdout_log() == "one\nthree\n"


def test_a_hard_exit_loses_nothing_already_written(ran: Ran) -> None:
    step = ran.step("hard_exit")
    assert step.get_status() == "Failed"
    assert step.get_details()["error"]["error"]["exit_code"] == 3
    texts = [split_line(line)[1:] for line in ran.combined("hard_exit")]
    assert texts == [("stdout", "written before os._exit"), ("stderr", "no newline at the end")]
    assert step.get_stderr_log() == "no newline at the end"


def test_a_step_killed_on_timeout_keeps_what_it_printed(ran: Ran) -> None:
    step = ran.step("killed")
    assert step.get_status() == "Failed"
    assert "timed out" in step.get_details()["error"]["error"]["message"]
    texts = [split_line(line)[1:] for line in ran.combined("killed")]
    assert texts == [("stdout", "started, ignoring SIGTERM"), ("stderr", "still on stderr")]


def test_retry_attempts_are_in_order_each_under_a_heading(ran: Ran) -> None:
    step = ran.step("retried")
    assert step.get_status() == "Finished"
    texts = [split_line(line)[1:] for line in ran.combined("retried")]
    assert texts == [
        ("headrace", "===== attempt 1 of 3 ====="),
        ("stdout", "attempt 1 output"),
        ("headrace", "===== attempt 2 of 3 (attempt 1 failed: exit code 1) ====="),
        ("stdout", "attempt 2 output"),
        ("headrace", "===== attempt 3 of 3 (attempt 2 failed: exit code 1) ====="),
        ("stdout", "attempt 3 output"),
    ]
    # wait_for_completion shows the same, in the same order.
    shown = [line for line in ran.shown.splitlines() if line.startswith("[retried] ")]
    assert shown[1:7] == [
        "[retried] ===== attempt 1 of 3 =====",
        "[retried] attempt 1 output",
        "[retried] ===== attempt 2 of 3 (attempt 1 failed: exit code 1) =====",
        "[retried] attempt 2 output",
        "[retried] ===== attempt 3 of 3 (attempt 2 failed: exit code 1) =====",
        "[retried] attempt 3 output",
    ]


def test_why_it_ran_is_the_first_line_of_each_step_in_the_live_stream(ran: Ran) -> None:
    for name in [*SCRIPTS, "command"]:
        first = next(line for line in ran.shown.splitlines() if line.startswith(f"[{name}] "))
        assert first.startswith(f"[{name}] running as step run "), first
        assert f": first run of step '{name}'" in first, first


def test_run_logs_prints_the_combined_log_and_each_stream(ran: Ran) -> None:
    runner = CliRunner()
    where = ["--workspace", str(ran.ws.backend.location)]
    result = runner.invoke(app, ["run", "logs", ran.run.id, "--step", "alternate", *where])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("[alternate] running as step run ")
    assert [line.split(" ", 1)[1] for line in lines[1:5]] == ran.combined("alternate")[:4]
    only = ["run", "logs", ran.run.id, "--step", "alternate", "--stream", "stderr", *where]
    result = runner.invoke(app, only)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[1:3] == ["[alternate] err 0", "[alternate] err 1"]
    shown = runner.invoke(app, ["step", "show", ran.step("alternate").id, *where])
    assert shown.exit_code == 0, shown.output
    assert "stdout after the child" in shown.output


def test_a_traceback_names_the_snapshot_files_which_exist(ran: Ran) -> None:
    error = ran.step("broken").get_details()["error"]["error"]
    files = re.findall(r'File "([^"]+)", line (\d+)', error["traceback"])
    assert [Path(f).name for f, _ in files] == ["job.py", "helper.py"], error["traceback"]
    for name, number in files:
        path = Path(name)
        assert path.is_file(), name  # the working folder is gone; these are not
        assert "/artifacts/snapshots/files/" in name
        assert path.read_text().splitlines()[int(number) - 1].strip() in (
            "helper.fail()",
            'raise ValueError("the helper failed on purpose")',
        )
    assert not os.access(files[0][0], os.W_OK) or os.geteuid() == 0  # read-only copies
    assert 'File "/' in ran.step("broken").get_stderr_log()


def test_a_script_sees_itself_as_under_python_script_py(ran: Ran) -> None:
    step = ran.step("itself")
    assert step.get_status() == "Finished", step.get_stderr_log()
    assert step.get_stdout_log() == "caf\u00e9 as itself: job.py\n"


def test_a_syntax_error_is_reported_as_python_reports_it(ran: Ran) -> None:
    step = ran.step("syntax")
    assert step.get_status() == "Failed"
    stderr = step.get_stderr_log()
    assert "SyntaxError" in stderr and "job.py" in stderr and "line 3" in stderr, stderr
    assert "never runs" not in step.get_stdout_log()
