"""The shared log server (engine/logreader.py, executors/logserver.py) and the scripts the
agent compiles for its steps (executors/scriptcode.py), met as a step's process meets them:
real processes, real pipes, the server's real socket. Each test has a server of its own
(`HEADRACE_STEP_LOG_SERVER_NAME`), so killing one disturbs no other test's steps.

The logs' contents through either logger are tested in tests/test_step_logs.py.
"""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from headrace import Experiment, Pipeline, PythonScriptStep, Workspace
from headrace.engine.executors.local import STEPLOG, open_log, wait_for_logger
from headrace.engine.executors.logserver import hand_over, server_name
from headrace.engine.executors.scriptcode import compiled_script
from headrace.store.steplogs import split_line
from tests.conftest import python_as_nobody, stop_agents


@pytest.fixture(autouse=True)
def own_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("HEADRACE_STEP_LOG_SERVER_NAME", uuid.uuid4().hex[:12])
    monkeypatch.setenv("HEADRACE_STEP_LOG_SERVER", "1")
    name = server_name()
    yield name
    pid = server_pid(name)
    if pid is not None:
        os.kill(pid, signal.SIGKILL)


def server_pid(name: str) -> int | None:
    """The pid of the server listening at `name` (its credentials on a connection)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as sock:
        try:
            sock.connect("\0" + name)
        except OSError:
            return None
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
    return int.from_bytes(creds[:4], sys.byteorder)


def start_step(
    folder: Path, script: str, code_fd: int | None = None
) -> tuple[subprocess.Popen[bytes], Path]:
    """Start `script` (in `folder`) as LocalExecutor does with the server: its output handed
    over first, the agent's copies of the pipes closed after the start."""
    logs = folder / "logs"
    logs.mkdir(exist_ok=True)
    with (
        open_log(logs / "stdout.txt") as out,
        open_log(logs / "stderr.txt") as err,
        open_log(logs / "std_log.txt") as combined,
    ):
        # Locked as LocalExecutor locks it: held by whoever holds the open file, the server
        # last, which is what `wait_for_logger` waits out.
        fcntl.flock(combined.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        pipes = hand_over((out.fileno(), err.fileno(), combined.fileno()), framed=True)
        assert pipes is not None, "no log server could be had"
        code = -1 if code_fd is None else code_fd
        argv = [sys.executable, "-c", STEPLOG, "attached", str(pipes.channel), str(folder)]
        argv += ["-", str(code), "--", script]
        passed = (pipes.channel,) if code_fd is None else (pipes.channel, code_fd)
        try:
            process = subprocess.Popen(
                argv, cwd=folder, stdout=pipes.out, stderr=pipes.err, pass_fds=passed
            )
        finally:
            pipes.close()
            if code_fd is not None:
                os.close(code_fd)
    return process, logs


def test_the_server_writes_a_steps_logs_and_outlives_it(tmp_path: Path, own_server: str) -> None:
    (tmp_path / "job.py").write_text(
        "import subprocess, sys\nprint('from python')\nprint('an error', file=sys.stderr)\n"
        "subprocess.run(['echo', 'from a child'], check=True)\n"
    )
    process, logs = start_step(tmp_path, "job.py")
    assert process.wait(timeout=30) == 0
    assert wait_for_logger(logs / "std_log.txt", 10.0)  # the server let go of the lock
    assert (logs / "stdout.txt").read_text() == "from python\nfrom a child\n"
    assert (logs / "stderr.txt").read_text() == "an error\n"
    lines = (logs / "std_log.txt").read_text().splitlines()
    assert [split_line(line)[1:] for line in lines] == [
        ("stdout", "from python"),
        ("stderr", "an error"),
        ("stdout", "from a child"),
    ]
    pid = server_pid(own_server)
    assert pid is not None and pid != process.pid  # not the step's, and still there
    again, _ = start_step(tmp_path, "job.py")
    assert again.wait(timeout=30) == 0
    assert server_pid(own_server) == pid  # one server for every step


def test_a_line_without_end_is_written_in_pieces(tmp_path: Path) -> None:
    """The server holds every step's unfinished line: one of 300 KB without a newline
    goes to the combined log in 64 KB pieces, and whole to stdout.txt."""
    (tmp_path / "job.py").write_text("import sys\nsys.stdout.write('x' * 300_000)\n")
    process, logs = start_step(tmp_path, "job.py")
    assert process.wait(timeout=30) == 0
    assert wait_for_logger(logs / "std_log.txt", 10.0)
    assert (logs / "stdout.txt").read_text() == "x" * 300_000
    pieces = [split_line(line)[2] for line in (logs / "std_log.txt").read_text().splitlines()]
    assert "".join(pieces) == "x" * 300_000
    assert max(map(len, pieces)) == 64 * 1024 and len(pieces) == 5


def test_a_step_runs_the_code_the_agent_compiled_for_it(tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text("print('compiled by the agent')\n")
    code_fd = compiled_script([sys.executable, "job.py"], tmp_path, {})
    assert code_fd is not None
    script.write_text("print('compiled by the step')\n")  # what the step would compile
    process, logs = start_step(tmp_path, "job.py", code_fd)
    assert process.wait(timeout=30) == 0
    assert wait_for_logger(logs / "std_log.txt", 10.0)
    assert (logs / "stdout.txt").read_text() == "compiled by the agent\n"


def test_code_compiled_for_another_file_is_not_run(tmp_path: Path) -> None:
    (tmp_path / "other.py").write_text("print('the other script')\n")
    code_fd = compiled_script([sys.executable, "other.py"], tmp_path, {})
    assert code_fd is not None
    (tmp_path / "job.py").write_text("print('the script asked for')\n")
    process, logs = start_step(tmp_path, "job.py", code_fd)
    assert process.wait(timeout=30) == 0
    assert wait_for_logger(logs / "std_log.txt", 10.0)
    assert (logs / "stdout.txt").read_text() == "the script asked for\n"


def test_no_code_for_another_python_or_an_optimizing_one(tmp_path: Path) -> None:
    (tmp_path / "job.py").write_text("assert False\n")
    assert compiled_script(["/usr/bin/python3", "job.py"], tmp_path, {}) is None or (
        os.path.realpath("/usr/bin/python3") == os.path.realpath(sys.executable)
    )
    assert compiled_script([sys.executable, "job.py"], tmp_path, {"PYTHONOPTIMIZE": "1"}) is None
    assert compiled_script([sys.executable, "-m", "job"], tmp_path, {}) is None
    (tmp_path / "bad.py").write_text("def broken(:\n")
    assert compiled_script([sys.executable, "bad.py"], tmp_path, {}) is None


def test_steps_go_on_logging_when_the_server_is_killed(tmp_path: Path, own_server: str) -> None:
    """A killed server: the agent's next hand-over fails, and its steps log through loggers
    of their own until a new server is had."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "job.py").write_text("import sys\nprint('out', sys.argv[1])\n")
    ws = Workspace.create("killed", path=tmp_path / "ws", show_output=False)

    def run(tag: str) -> list[str]:
        steps = [
            PythonScriptStep("job.py", name=f"{tag}{i}", arguments=[tag], source_directory=str(src))
            for i in range(2)
        ]
        steps[1].run_after(steps[0])
        pipeline_run = Experiment(ws, "killed").submit(Pipeline(ws, steps))
        assert pipeline_run.wait_for_completion(show_output=False) == "Finished"
        return [pipeline_run.find_step_run(s.name)[0].get_stdout_log() for s in steps]

    try:
        assert run("before") == ["out before\n"] * 2
        pid = server_pid(own_server)
        assert pid is not None  # the agent started it
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while server_pid(own_server) == pid and time.monotonic() < deadline:
            time.sleep(0.01)
        assert run("after") == ["out after\n"] * 2
    finally:
        ws.close()
        stop_agents(tmp_path / "ws")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a client as another user")
def test_the_server_takes_nothing_from_another_user(tmp_path: Path, own_server: str) -> None:
    (tmp_path / "job.py").write_text("print('up')\n")
    process, _ = start_step(tmp_path, "job.py")  # the server runs
    assert process.wait(timeout=30) == 0
    address = "\0" + own_server
    # Another user's process hands over a "step" whose logs are a pipe it reads itself.
    client = textwrap.dedent(
        f"""
        import array, os, socket, time
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.connect({address!r})
        r, w = os.pipe()
        logs_r, logs_w = os.pipe()
        fds = array.array("i", [r, r, logs_w, logs_w, logs_w])
        try:
            s.sendmsg([b"step-output 1"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
        except OSError:
            pass
        os.close(r); os.close(logs_w)
        try:
            os.write(w, b"written through the server\\n")
        except BrokenPipeError:
            pass  # no reader left: the server did not keep the pipe
        os.close(w)
        s.settimeout(10)
        try:
            print("closed" if s.recv(16) == b"" else "answered")
        except ConnectionResetError:
            print("closed")
        time.sleep(0.3)
        os.set_blocking(logs_r, False)
        try:
            print(repr(os.read(logs_r, 4096)))
        except BlockingIOError:
            print("nothing")
        """
    )
    done = python_as_nobody(client)
    assert done.returncode == 0, done.stderr
    closed, logged = done.stdout.splitlines()
    assert closed == "closed"  # the server closed the connection at once
    assert logged in ("b''", "nothing")  # and wrote nothing for it
