"""The Python a step without an environment runs in: its submitter's.

Real virtual environments, real agents: a second project's environment (with a module only
it has, as another project's venv has numpy) submits to an agent that another Python
started; spellings of one interpreter (`bin/python`, `bin/python3`) are one interpreter;
the interpreter a step ran in is shown by `step show` and the portal; a confined step gets
the submitter's interpreter, or a clear answer why it cannot run it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from headrace import Experiment, Pipeline, PipelineRun, PythonScriptStep, Workspace
from headrace.cli.main import app as cli_app
from headrace.engine import landlock
from tests.conftest import stop_agents
from tests.servers import RUNNER, LiveServer
from tests.test_step_isolation import needs_step_user, open_folder, shared_python

__all__ = ["open_folder", "shared_python"]  # fixtures used here

SHOW = """
    import sys
    print("prefix", sys.prefix)
    try:
        import only_in_other
        print("found", only_in_other.WHERE)
    except ImportError as exc:
        print("missing", exc)
"""

SUBMIT = """
    import sys
    from headrace import Experiment, Pipeline, PipelineRun, PythonScriptStep, Workspace
    ws = Workspace.get(None, path=sys.argv[1])
    step = PythonScriptStep("show.py", source_directory=sys.argv[2])
    run = Experiment(ws, "python").submit(Pipeline(ws, steps=[step]))
    print("RUN", run.id, flush=True)
    print("STATUS", run.wait_for_completion(show_output=False, raise_on_error=False))
"""


def _other_environment(folder: Path, base: str = sys.executable) -> Path:
    """A virtual environment made from `base` that sees this checkout's packages (a .pth
    file) and has a module of its own, `only_in_other`."""
    uv = Path(sys.executable).with_name("uv")
    subprocess.run([str(uv), "venv", "-q", "--python", base, str(folder)], check=True)
    site = next((folder / "lib").glob("python3*/site-packages"))
    ours = sysconfig.get_paths()["purelib"]
    (site / "headrace_checkout.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    (site / "only_in_other.py").write_text(f"WHERE = {str(folder)!r}\n")
    return folder


def _source(tmp_path: Path) -> Path:
    folder = tmp_path / "src"
    folder.mkdir(exist_ok=True)
    (folder / "show.py").write_text(textwrap.dedent(SHOW))
    (tmp_path / "submit.py").write_text(textwrap.dedent(SUBMIT))
    return folder


def _submit_from(python: str, ws: Workspace, tmp_path: Path) -> str:
    """Submit the `show.py` pipeline from `python`; the pipeline run's id once it ended."""
    done = subprocess.run(
        [python, str(tmp_path / "submit.py"), str(ws.path), str(_source(tmp_path))],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert "STATUS" in done.stdout, done.stdout + done.stderr
    return done.stdout.split("RUN ", 1)[1].split()[0]


@pytest.fixture
def agent_of_another_python(ws: Workspace) -> Iterator[None]:
    """The workspace's agent, started by this test's Python and left running."""
    assert ws.path is not None
    agent = _start_agent(sys.executable, ws.path)
    yield
    stop_agents(ws.path)
    agent.wait(timeout=30)


def _wait_for_agent(root: Path, agent: subprocess.Popen[bytes]) -> None:
    """Until the agent holds its lock (which names its pid). Not by trying the lock: an
    agent starting at that instant would find it taken and leave."""
    lock = root / "agent" / "agent.lock"
    deadline = time.monotonic() + 60
    while not (lock.exists() and lock.read_text().strip() == str(agent.pid)):
        assert agent.poll() is None, "the agent exited"
        assert time.monotonic() < deadline, "the agent did not start"
        time.sleep(0.05)


def test_a_step_runs_in_the_submitters_python_not_the_agents(
    ws: Workspace, tmp_path: Path, agent_of_another_python: None
) -> None:
    other = _other_environment(tmp_path / "other")
    run_id = _submit_from(str(other / "bin" / "python"), ws, tmp_path)
    step = PipelineRun.get(ws, run_id).find_step_run("show.py")[0]
    out = step.get_stdout_log()
    assert f"prefix {other}" in out
    assert f"found {other}" in out  # what only the submitter's environment has
    assert step.get_status() == "Finished"

    # `step show` says which Python ran it.
    shown = RUNNER.invoke(cli_app, ["step", "show", step.id, "-w", str(ws.path)])
    assert shown.exit_code == 0, shown.output
    python_row = next(line for line in shown.output.splitlines() if line.startswith("Python"))
    assert str(other) in python_row and ".".join(map(str, sys.version_info[:3])) in python_row

    # So does the portal's step page, and its JSON twin.
    assert ws.path is not None
    with LiveServer(Path(ws.path), auth=False) as live:
        twin = httpx.get(f"{live.url}/ui/steps/{step.id}.json").json()
        page = httpx.get(f"{live.url}/ui/steps/{step.id}").text
    assert str(other) in twin["environment"]["python"]
    shown_on_page = page.split('id="step-python">', 1)[1].split("</dd>", 1)[0]
    assert str(other) in shown_on_page and "Python 3." in shown_on_page


def test_two_spellings_of_one_interpreter_reuse_and_another_environment_reruns(
    ws: Workspace, tmp_path: Path
) -> None:
    other = _other_environment(tmp_path / "other")
    assert (other / "bin" / "python3").resolve() == (other / "bin" / "python").resolve()
    first = _submit_from(str(other / "bin" / "python"), ws, tmp_path)
    stop_agents(ws.path)  # type: ignore[arg-type]  # the next agent starts from bin/python3
    second = _submit_from(str(other / "bin" / "python3"), ws, tmp_path)
    first_step = PipelineRun.get(ws, first).find_step_run("show.py")[0]
    second_step = PipelineRun.get(ws, second).find_step_run("show.py")[0]
    assert second_step.reused_run_id == first_step.id

    # This test's own environment is another Python: the step runs again, and says why.
    run = Experiment(ws, "python").submit(
        Pipeline(ws, steps=[PythonScriptStep("show.py", source_directory=str(tmp_path / "src"))])
    )
    assert run.wait_for_completion(show_output=False) == "Finished"
    step = run.find_step_run("show.py")[0]
    assert step.reused_run_id is None
    summary = str(step.run_reason.get("summary"))
    assert "environment changed: Python" in summary, summary
    assert f"environment {other.resolve()}" in summary
    assert f"environment {Path(sys.prefix).resolve()}" in summary
    assert f"prefix {sys.prefix}" in step.get_stdout_log()


def _start_agent(python: str, root: Path, *isolation: str) -> subprocess.Popen[bytes]:
    agent = subprocess.Popen(
        [python, "-m", "headrace.engine.agent", "--workspace", str(root), *isolation],
        env={**os.environ, "HEADRACE_AGENT_IDLE_SECONDS": "120"},
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_for_agent(root, agent)
    return agent


def _submit_here(ws: Workspace, tmp_path: Path) -> PipelineRun:
    step = PythonScriptStep("show.py", source_directory=str(_source(tmp_path)))
    run = Experiment(ws, "python").submit(Pipeline(ws, steps=[step]))
    run.wait_for_completion(show_output=False, raise_on_error=False)
    return run


@pytest.mark.skipif(landlock.abi_version() < 2, reason="needs Landlock ABI 2 or later")
def test_a_confined_step_may_read_and_run_the_submitters_python_in_the_agents_home(
    ws: Workspace, tmp_path: Path, shared_python: str
) -> None:
    """Landlock keeps steps out of the agent user's home, where this test's Python lives
    (pyenv under /root): the submitter's interpreter folders are let in, nothing else."""
    assert ws.path is not None
    agent = _start_agent(shared_python, ws.path, "--step-isolation", "landlock")
    try:
        run = _submit_here(ws, tmp_path)
    finally:
        stop_agents(ws.path)
        agent.wait(timeout=30)
    step = run.find_step_run("show.py")[0]
    assert step.get_status() == "Finished", step.get_stderr_log()
    assert f"prefix {sys.prefix}" in step.get_stdout_log()


@needs_step_user
def test_a_step_user_who_cannot_run_the_submitters_python_is_said_so(
    open_folder: Path, tmp_path: Path, shared_python: str
) -> None:
    """This test's Python is under /root (mode 0700): user nobody cannot run it, and the
    step's error says so, naming the user, the interpreter and the fix."""
    root = open_folder / "submitters-python"
    ws = Workspace.create("nobody", path=root, show_output=False)
    agent = _start_agent(
        shared_python, root, "--step-isolation", "landlock", "--step-user", "nobody"
    )
    try:
        run = _submit_here(ws, tmp_path)
    finally:
        stop_agents(root)
        agent.wait(timeout=30)
    step = run.find_step_run("show.py")[0]
    assert step.get_status() == "Failed"
    message = run.get_details()["error"]["error"]["message"]
    assert "user nobody cannot start the submitter's Python" in message, message
    assert sys.executable in message and "/opt" in message and "environment" in message
    assert "Traceback" not in message
