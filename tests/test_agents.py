"""Several agents on one workspace, and a server that drains its agents on SIGTERM.

Agents are real processes (`python -m headrace.engine.agent --slot N`, and `headrace server`
as a subprocess); steps record which agent ran them (their parent process) in files, so
"exactly once" is checked on what actually ran, not only on the records.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from headrace import (
    Experiment,
    Pipeline,
    PipelineData,
    PipelineParameter,
    PythonScriptStep,
    Workspace,
)
from headrace.engine.launcher import agent_alive, agent_lock_path, hold_agent_lock
from headrace.sdk.published import submit_url
from headrace.store.records import Status

# The agent that started a step: the parent of its reaper (engine/reaper.py), the step's
# parent.
AGENT_PID = "int(open(f'/proc/{os.getppid()}/stat').read().rsplit(')', 1)[1].split()[1])"
# Appends "<n> <agent pid>" to the ledger: one line per execution of the step.
LEDGER_STEP = textwrap.dedent(
    """
    import os, sys, time
    ledger, n = sys.argv[1], sys.argv[2]
    time.sleep(0.2)
    with open(ledger, "a") as fh:
        fh.write(f"{n} {AGENT_PID}\\n")
    """
).replace("AGENT_PID", AGENT_PID)
# Attempt 1 writes its pid and sleeps until killed; later attempts end at once.
SLEEPY_STEP = textwrap.dedent(
    """
    import os, sys, time
    counter, pids, out, sleep = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    attempt = int(open(counter).read()) + 1 if os.path.exists(counter) else 1
    open(counter, "w").write(str(attempt))
    open(pids, "a").write(f"{os.getpid()} {AGENT_PID}\\n")
    os.makedirs(out, exist_ok=True)
    open(os.path.join(out, "result.txt"), "w").write(f"attempt {attempt}")
    if attempt == 1:
        time.sleep(sleep)
    print("done on attempt", attempt)
    """
).replace("AGENT_PID", AGENT_PID)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Agents:
    """Agent processes started by a test, one per slot; stopped (SIGTERM) at the end."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    def start(self, slot: int) -> subprocess.Popen[bytes]:
        argv = [sys.executable, "-m", "headrace.engine.agent", "--workspace", str(self.root)]
        # --wait-for-slot: a probe of the lock (`agent_alive`) must not make the agent give up.
        argv += ["--slot", str(slot), "--idle-seconds", "inf", "--wait-for-slot"]
        log = self.root / "agent" / "agent.log"
        with log.open("ab") as out:
            process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        self.processes[slot] = process

        def started() -> bool:
            assert process.poll() is None, log.read_text()[-3000:]
            return agent_alive(self.root, slot)

        wait_for(started, f"agent slot {slot} to start")
        return process

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[Agents]:
    started = Agents(tmp_path / "ws")
    yield started
    started.stop()


def source(tmp_path: Path, name: str, text: str) -> Path:
    folder = tmp_path / "src"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text)
    return folder


def status_of(ws: Workspace, run_id: str) -> str:
    return ws.backend.meta.get_pipeline_run(run_id).status  # type: ignore[attr-defined, no-any-return]


# -- several agents ------------------------------------------------------------------------
@pytest.mark.postgres
def test_two_agents_on_postgres_drain_queued_runs_each_exactly_once(
    postgres_url: str, tmp_path: Path, agents: Agents
) -> None:
    ws = Workspace.create(
        "test-ws", path=tmp_path / "ws", database_url=postgres_url, show_output=False
    )
    root = Path(str(ws.path))
    src = source(tmp_path, "ledger.py", LEDGER_STEP)
    ledger = tmp_path / "ledger.txt"
    n = PipelineParameter("n", default_value=0)
    step = PythonScriptStep(
        "ledger.py",
        name="ledger",
        arguments=[str(ledger), n],
        source_directory=str(src),
        allow_reuse=False,
    )
    pipeline = Pipeline(ws, steps=[step])
    # Queue every run first (holding slot 0 keeps submit from starting an agent), so both
    # agents find the whole queue when they start.
    with hold_agent_lock(root) as held:
        assert held
        ids = [
            Experiment(ws, "many").submit(pipeline, pipeline_parameters={"n": i}).id
            for i in range(40)
        ]
    first, second = agents.start(0), agents.start(1)
    try:
        wait_for(lambda: all(status_of(ws, i) == Status.FINISHED for i in ids), "40 runs")
        lines = ledger.read_text().split()
        numbers, pids = lines[0::2], {int(p) for p in lines[1::2]}
        assert sorted(numbers, key=int) == [str(i) for i in range(40)], "each run ran once"
        assert pids == {first.pid, second.pid}, "both agents did work"
        for run_id in ids:
            (step_run,) = ws.backend.list_step_runs(run_id)
            assert step_run.status == Status.FINISHED and step_run.attempt == 0
    finally:
        agents.stop()
        ws.backend.store.close()  # type: ignore[attr-defined]


def test_a_killed_agents_run_is_resumed_by_the_other_agent(
    any_ws: Workspace, tmp_path: Path, agents: Agents
) -> None:
    """The other agent adopts the step the dead one started (engine/reaper.py): it is not
    run again, and its end is recorded as the dead agent would have."""
    src = source(tmp_path, "sleepy.py", SLEEPY_STEP)
    counter, pids, out = tmp_path / "counter", tmp_path / "pids", tmp_path / "out"
    step = PythonScriptStep(
        "sleepy.py",
        name="sleepy",
        arguments=[str(counter), str(pids), str(out), "4"],
        source_directory=str(src),
        allow_reuse=False,
    )
    processes = {agents.start(0).pid, agents.start(1).pid}
    run = Experiment(any_ws, "kill").submit(Pipeline(any_ws, steps=[step]))
    # The step creates the file, then writes its line: wait for the line.
    wait_for(lambda: pids.exists() and pids.read_text().endswith("\n"), "the step to start")
    step_pid, holder = map(int, pids.read_text().split())
    assert holder in processes
    os.kill(holder, signal.SIGKILL)
    assert alive(step_pid), "the step outlives its agent"
    # Only the surviving agent can take the run over: no SDK call here starts an agent.
    wait_for(lambda: status_of(any_ws, run.id) == Status.FINISHED, "the run to be resumed")
    assert len(pids.read_text().splitlines()) == 1 and counter.read_text() == "1", (
        "the step ran once"
    )
    (step_run,) = any_ws.backend.list_step_runs(run.id)
    assert step_run.attempt == 0 and step_run.exit_code == 0
    assert (out / "result.txt").read_text() == "attempt 1"
    kinds = [e.kind for e in any_ws.backend.list_events(run.id)]
    assert "run.resumed" in kinds and "step.adopted" in kinds
    assert "step.interrupted" not in kinds


# -- a server draining its agents ----------------------------------------------------------
class Server:
    """`headrace server --no-auth` as a subprocess on a free loopback port."""

    def __init__(self, root: Path, *options: str) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        exe = str(Path(sys.executable).parent / "headrace")
        argv = [exe, "server", "-w", str(root), "--port", str(self.port), "--no-auth", *options]
        self.process = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )

    def wait_up(self) -> None:
        def up() -> bool:
            assert self.process.poll() is None, self.process.communicate()[1]
            try:
                return httpx.get(f"{self.url}/health", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(up, "the server to start")

    def stop(self, timeout: float = 40) -> str:
        """SIGTERM, wait for the exit; returns stderr."""
        self.process.send_signal(signal.SIGTERM)
        _, stderr = self.process.communicate(timeout=timeout)
        assert self.process.returncode in (0, -signal.SIGTERM), stderr
        return str(stderr)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.communicate()


def two_step_pipeline(ws: Workspace, tmp_path: Path, sleep: float) -> tuple[str, Path]:
    """Publish `sleepy` -> `after`; returns the published id and the files folder."""
    src = source(tmp_path, "sleepy.py", SLEEPY_STEP)
    (src / "after.py").write_text("print('after ran')\n")
    files = tmp_path / "files"
    files.mkdir()
    out = PipelineData("out")
    first = PythonScriptStep(
        "sleepy.py",
        name="sleepy",
        arguments=[str(files / "counter"), str(files / "pids"), out, str(sleep)],
        outputs=[out],
        source_directory=str(src),
        allow_reuse=False,
    )
    after = PythonScriptStep("after.py", name="after", source_directory=str(src))
    after.run_after(first)
    published = Pipeline(ws, steps=[after]).publish(name="sleepy")
    return published.id, files


def submit_over_http(server: Server, ws: Workspace, pipeline_id: str) -> str:
    url = submit_url(
        server.url,
        f"PipelineRuns/PipelineSubmit/{pipeline_id}",
        subscription_id="local",
        resource_group="local",
        workspace_name=ws.name,
    )
    response = httpx.post(url, json={"ExperimentName": "graceful"}, timeout=30)
    assert response.status_code == 200, response.text
    return str(response.json()["Id"])


def steps_by_name(ws: Workspace, run_id: str) -> dict[str, object]:
    return {s.name: s for s in ws.backend.list_step_runs(run_id)}


@pytest.mark.parametrize(
    ("sleep", "grace", "workers", "attempts"),
    [
        pytest.param(2.0, "30", "1", "1", id="step-finishes-within-grace"),
        # Two uvicorn workers: the agents run once, in the master, and drain the same way.
        pytest.param(120.0, "1", "2", "2", id="step-killed-and-rerun-two-workers"),
    ],
)
def test_sigterm_drains_the_server_and_the_next_start_finishes_the_run_once(
    ws: Workspace, tmp_path: Path, sleep: float, grace: str, workers: str, attempts: str
) -> None:
    root = Path(str(ws.path))
    pipeline_id, files = two_step_pipeline(ws, tmp_path, sleep)
    options = ("--agents", "2", "--grace-seconds", grace, "--workers", workers)
    server = Server(root, *options)
    try:
        server.wait_up()
        run_id = submit_over_http(server, ws, pipeline_id)
        wait_for((files / "pids").exists, "the step to start")
        server.stop()
        # The server and its agents are gone; the run waits for the next agent.
        step_pid = int((files / "pids").read_text().split()[0])
        assert not alive(step_pid)
        assert not agent_alive(root, 0) and not agent_alive(root, 1)
        record = ws.backend.meta.get_pipeline_run(run_id)  # type: ignore[attr-defined]
        assert record.status == Status.RUNNING and record.agent_id is None
        steps = steps_by_name(ws, run_id)
        assert "after" not in steps, "no new step starts while draining"
        results = list(root.rglob("result.txt"))
        if attempts == "1":
            assert steps["sleepy"].status == Status.FINISHED  # type: ignore[attr-defined]
            assert [r.read_text() for r in results] == ["attempt 1"]
        else:
            assert results == [], "a killed attempt leaves no output behind"

        server = Server(root, *options)
        server.wait_up()
        wait_for(lambda: status_of(ws, run_id) == Status.FINISHED, "the run to finish")
        server.stop()
    finally:
        server.kill()
    steps = steps_by_name(ws, run_id)
    assert sorted(steps) == ["after", "sleepy"], "each step recorded once"
    assert (files / "counter").read_text() == attempts
    assert steps["sleepy"].attempt == int(attempts) - 1  # type: ignore[attr-defined]
    (result,) = root.rglob("result.txt")
    assert result.parent.parent.name == steps["sleepy"].id  # type: ignore[attr-defined]
    assert result.read_text() == f"attempt {attempts}"
    runs = ws.backend.list_pipeline_runs(experiment_name="graceful")
    assert [r.id for r in runs] == [run_id]


def test_the_server_restarts_an_agent_that_dies(ws: Workspace, tmp_path: Path) -> None:
    root = Path(str(ws.path))
    pipeline_id, files = two_step_pipeline(ws, tmp_path, 0.0)
    server = Server(root, "--agents", "2")
    try:
        server.wait_up()
        lock = agent_lock_path(root, 1)
        wait_for(lambda: agent_alive(root, 1) and lock.read_text().strip() != "", "agent 1")
        first = int(lock.read_text())
        os.kill(first, signal.SIGKILL)

        def replaced() -> bool:
            text = lock.read_text().strip()
            return agent_alive(root, 1) and text != "" and int(text) != first

        wait_for(replaced, "the server to start a new agent in slot 1")
        run_id = submit_over_http(server, ws, pipeline_id)
        wait_for(lambda: status_of(ws, run_id) == Status.FINISHED, "the run to finish")
        server.stop()
    finally:
        server.kill()
    assert (files / "counter").read_text() == "1"


def _catches_sigterm(pid: int) -> bool:
    """Whether process `pid` has a handler for SIGTERM (its SigCgt mask in /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    return False


def test_an_agent_stopped_while_it_starts_exits_instead_of_serving(ws: Workspace) -> None:
    """A server stopped right after it came up once waited out its agents' grace period,
    then killed them: the SIGTERM came while the agent opened the workspace, and it went
    on to serve for ever. Sent as soon as the agent holds its slot (before it serves)."""
    root = Path(str(ws.path))
    argv = [sys.executable, "-m", "headrace.engine.agent", "--workspace", str(root)]
    agent = subprocess.Popen(
        [*argv, "--idle-seconds", "inf", "--grace-seconds", "30", "--step-isolation", "off"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # The agent holds its slot (its pid in the lock file), then opens the workspace.
        lock = agent_lock_path(root, 0)
        deadline = time.monotonic() + 40
        while agent.poll() is None and not (
            lock.exists() and lock.read_text().strip() == str(agent.pid)
        ):  # no sleep: the window is short
            assert time.monotonic() < deadline, "the agent never took its slot"
        assert _catches_sigterm(agent.pid)
        agent.send_signal(signal.SIGTERM)
        _, stderr = agent.communicate(timeout=25)
        assert agent.returncode == 0, stderr
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.communicate()


@pytest.mark.parametrize(("options", "lower_by"), [((), 10), (("--step-nice", "0"), 0)])
def test_served_steps_run_at_lower_cpu_priority_than_the_server(
    ws: Workspace, tmp_path: Path, options: tuple[str, ...], lower_by: int
) -> None:
    """So the API answers quickly while steps keep the cores busy (`--step-nice`)."""
    src = source(tmp_path, "nice.py", "import os\nprint('niceness', os.nice(0))\n")
    step = PythonScriptStep("nice.py", name="nice", source_directory=str(src), allow_reuse=False)
    published = Pipeline(ws, steps=[step]).publish(name="nice")
    server = Server(Path(str(ws.path)), *options)
    try:
        server.wait_up()
        run_id = submit_over_http(server, ws, published.id)
        wait_for(lambda: status_of(ws, run_id) == Status.FINISHED, "the run to finish")
        server.stop()
    finally:
        server.kill()
    (step_run,) = ws.backend.list_step_runs(run_id)
    said = ws.backend.read_run_file(step_run.id, "user_logs/stdout.txt").decode()
    assert f"niceness {min(19, os.nice(0) + lower_by)}" in said


def test_headrace_agent_runs_one_more_agent_until_idle(ws: Workspace) -> None:
    root = Path(str(ws.path))
    exe = str(Path(sys.executable).parent / "headrace")
    agent = subprocess.Popen(
        [exe, "agent", "-w", str(root), "--slot", "2", "--idle-seconds", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lock = agent_lock_path(root, 2)
        wait_for(lambda: lock.exists() and lock.read_text().strip() == str(agent.pid), "slot 2")
        _, stderr = agent.communicate(timeout=30)  # idle for 1 s: it exits by itself
    finally:
        if agent.poll() is None:
            agent.kill()
    assert agent.returncode == 0, stderr
    assert "Agent slot 2 serving workspace" in stderr
