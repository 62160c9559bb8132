"""The submit path through a warm agent's request socket (issue 18): a fresh `python
pipeline.py` submits and waits without importing SQLAlchemy; whatever goes wrong with the
socket (no listener of ours, another headrace, another user, garbage) falls back to, or is
refused in favour of, the path that opens the store."""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from headrace import Workspace
from headrace.engine.agentsocket import AgentConnection, identity, request_address
from headrace.engine.launcher import ensure_agent
from headrace.errors import ParameterError
from headrace.store.records import Status
from tests.conftest import python_as_nobody, stop_agents

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from headrace import Workspace, Pipeline, PythonScriptStep, PipelineData

    ws = Workspace.create("fast", path=sys.argv[1], exist_ok=True, show_output=False)
    data = PipelineData("value")
    make = PythonScriptStep(
        name="make", script_name="make.py", source_directory=sys.argv[2],
        arguments=["--out", data], outputs=[data], allow_reuse=False,
    )
    show = PythonScriptStep(
        name="show", script_name="show.py", source_directory=sys.argv[2],
        arguments=["--inp", data], inputs=[data], allow_reuse=False,
    )
    run = Pipeline(ws, [make, show]).submit("fast")
    status = run.wait_for_completion(show_output=True)
    print(json.dumps({"status": status, "run": run.id,
                      "sqlalchemy": "sqlalchemy" in sys.modules}))
    """
)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("src")
    (folder / "make.py").write_text(
        "import argparse, os\np = argparse.ArgumentParser(); p.add_argument('--out')\n"
        "a = p.parse_args(); os.makedirs(a.out, exist_ok=True)\n"
        "open(os.path.join(a.out, 'v.txt'), 'w').write('forty-two')\n"
    )
    (folder / "show.py").write_text(
        "import argparse, os\np = argparse.ArgumentParser(); p.add_argument('--inp')\n"
        "a = p.parse_args(); print('got', open(os.path.join(a.inp, 'v.txt')).read())\n"
    )
    (folder / "pipeline.py").write_text(SCRIPT)
    return folder


@pytest.fixture(scope="module")
def warm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A workspace folder whose agent stays warm for the module."""
    root = tmp_path_factory.mktemp("warm") / "ws"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HEADRACE_HOME", str(root.parent / "home"))
        env.setenv("HEADRACE_AGENT_IDLE_SECONDS", "120")
        Workspace.create("fast", path=root, show_output=False).close()
        ensure_agent(root)
        AgentConnection(root, connect_seconds=60).close()  # listening: warm from here on
    yield root
    stop_agents(root)


def submit_in_fresh_process(root: Path, source: Path, **env: str) -> tuple[dict, str]:
    done = subprocess.run(
        [sys.executable, str(source / "pipeline.py"), str(root), str(source)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stdout


def raw_request(root: Path, payload: bytes) -> dict:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(request_address(root))
        sock.sendall(payload)
        (size,) = struct.unpack(">I", sock.recv(4, socket.MSG_WAITALL))
        answer = json.loads(sock.recv(size, socket.MSG_WAITALL))
        try:
            rest = sock.recv(1)
        except ConnectionResetError:  # closed with our unread bytes in its buffer
            rest = b""
        assert rest == b""  # refused: the agent closed the connection
        return answer


def framed(message: dict) -> bytes:
    body = json.dumps(message).encode()
    return struct.pack(">I", len(body)) + body


def test_warm_agent_takes_the_submit_and_the_wait(warm: Path, source: Path) -> None:
    result, out = submit_in_fresh_process(warm, source)
    assert result["status"] == Status.FINISHED
    assert result["sqlalchemy"] is False  # neither the submit nor the wait opened the store
    assert "Created step make" in out and "(This step will run and generate new outputs)" in out
    assert f"Submitted PipelineRun {result['run']}" in out
    assert "[show] got forty-two" in out  # the logs still stream
    record = Workspace(path=warm).backend.get_pipeline_run(result["run"])
    # The steps run in the submitter's Python, not the agent's.
    assert record.interpreter is not None and record.interpreter["path"] == sys.executable


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_a_cold_agent_is_started_and_then_takes_the_submit(
    tmp_path: Path, source: Path, database: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("postgres_url") if database == "postgres" else None
    root = tmp_path / "cold"
    Workspace.create("fast", path=root, database_url=url, show_output=False).close()
    try:
        result, _ = submit_in_fresh_process(root, source)
    finally:
        stop_agents(root)
    assert result["status"] == Status.FINISHED
    assert result["sqlalchemy"] is False


def test_turned_off_it_opens_the_store_as_before(warm: Path, source: Path) -> None:
    result, out = submit_in_fresh_process(warm, source, HEADRACE_AGENT_REQUESTS="0")
    assert result["status"] == Status.FINISHED
    assert result["sqlalchemy"] is True
    assert "[show] got forty-two" in out


def test_errors_of_a_submit_arrive_as_the_same_exception(warm: Path, source: Path) -> None:
    from headrace import Pipeline, PythonScriptStep

    ws = Workspace(path=warm)
    step = PythonScriptStep(name="make", script_name="make.py", source_directory=str(source))
    with pytest.raises(ParameterError, match="nope"):
        Pipeline(ws, [step]).submit("fast", pipeline_parameters={"nope": 1})
    assert ws.backend._conn is not None  # answered by the agent, not by a fallback
    ws.close()


def test_an_agent_of_another_headrace_is_not_used(tmp_path: Path, source: Path) -> None:
    """A listener answering 'version' (another install): the SDK opens the store itself,
    and the run still runs (the real agent it starts polls instead of listening)."""
    root = tmp_path / "other"
    Workspace.create("fast", path=root, show_output=False).close()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(request_address(root))
    listener.listen(8)
    seen: list[dict] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                (size,) = struct.unpack(">I", conn.recv(4, socket.MSG_WAITALL))
                seen.append(json.loads(conn.recv(size, socket.MSG_WAITALL)))
                conn.sendall(framed({"ok": False, "code": "version", "message": "0.0.1"}))

    threading.Thread(target=serve, daemon=True).start()
    try:
        result, _ = submit_in_fresh_process(root, source)
    finally:
        listener.close()
        stop_agents(root)
    assert result["status"] == Status.FINISHED
    assert result["sqlalchemy"] is True
    assert seen and seen[0]["identity"] == identity()


def test_the_agent_refuses_another_version(warm: Path) -> None:
    other = {**identity(), "version": "0.0.1"}
    answer = raw_request(warm, framed({"op": "compute_targets", "identity": other}))
    assert answer["code"] == "version"


def test_the_agent_refuses_garbage_and_serves_on(warm: Path) -> None:
    answer = raw_request(warm, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer["ok"] is False and answer["code"] == "bad_request"
    answer = raw_request(warm, struct.pack(">I", 5) + b"nope!")
    assert answer["code"] == "bad_request"
    targets = Workspace(path=warm).backend.list_compute_targets()
    assert [t.name for t in targets] == ["local"]


def test_the_agent_refuses_another_user(warm: Path) -> None:
    client = textwrap.dedent(
        f"""
        import json, socket, struct
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect({request_address(warm)!r})
        body = json.dumps({{"op": "compute_targets", "identity": {identity()!r}}}).encode()
        try:
            s.sendall(struct.pack(">I", len(body)) + body)
        except OSError:
            pass  # refused before it read anything: the answer is there all the same
        (size,) = struct.unpack(">I", s.recv(4, socket.MSG_WAITALL))
        print(s.recv(size, socket.MSG_WAITALL).decode())
        """
    )
    done = python_as_nobody(client)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["ok"] is False and answer["code"] == "refused"
    assert "items" not in answer


def test_another_users_listener_at_the_agents_address_gets_nothing(
    tmp_path: Path, source: Path
) -> None:
    """An abstract address has no permissions: a process of another user listening there
    first would read every submit. The SDK checks who listens and opens the store instead."""
    root = tmp_path / "taken"
    Workspace.create("fast", path=root, show_output=False).close()
    impostor = textwrap.dedent(
        f"""
        import socket, sys
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind({request_address(root)!r}); s.listen(8)
        print("listening", flush=True)
        got = b""
        while not sys.stdin.readline().startswith("stop"):
            pass
        s.setblocking(False)
        while True:
            try:
                conn, _ = s.accept()
            except BlockingIOError:
                break
            conn.settimeout(2)
            try:
                got += conn.recv(65536)
            except OSError:
                pass
        print(repr(got), flush=True)
        """
    )
    listener = subprocess.Popen(
        ["/usr/bin/python3", "-c", impostor],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        user="nobody",
        cwd="/",
        env={"PATH": "/usr/bin:/bin"},
    )
    assert listener.stdout is not None and listener.stdin is not None
    try:
        assert listener.stdout.readline().strip() == "listening"
        result, _ = submit_in_fresh_process(root, source)
    finally:
        out, _ = listener.communicate("stop\n", timeout=30)
        stop_agents(root)
    assert result["status"] == Status.FINISHED
    assert out.strip() == "b''"  # connected (perhaps), told nothing


@pytest.mark.parametrize("committed", [True, False], ids=["queued-then-died", "died-first"])
def test_an_agent_dying_during_a_submit_queues_the_run_once(
    tmp_path: Path, source: Path, committed: bool
) -> None:
    """The agent read the submit and died before answering, after or before queueing the
    run: the SDK looks for the run by the id it chose and queues it itself only if absent."""
    from headrace.engine.submission import submit_graph
    from headrace.graph.model import Graph

    root = tmp_path / "dying"
    ws = Workspace.create("fast", path=root, show_output=False)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(request_address(root))
    listener.listen(8)

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                (size,) = struct.unpack(">I", conn.recv(4, socket.MSG_WAITALL))
                request = json.loads(conn.recv(size, socket.MSG_WAITALL))
                if request["op"] == "compute_targets":
                    items = [{"name": "local", "type": "local", "config": {}, "created_at": None}]
                    conn.sendall(framed({"ok": True, "items": items}))
                elif request["op"] == "submit" and committed:
                    graph = Graph.from_dict(request.pop("graph"))
                    keep = ("experiment_name", "parameters", "tags", "description", "run_id")
                    submit_graph(ws.backend.store, graph, **{k: request[k] for k in keep})
                # ...and closes without an answer

    threading.Thread(target=serve, daemon=True).start()
    try:
        result, _ = submit_in_fresh_process(root, source)
    finally:
        listener.close()
        stop_agents(root)
    assert result["status"] == Status.FINISHED
    runs = ws.backend.list_pipeline_runs(experiment_name="fast")
    assert [r.id for r in runs] == [result["run"]]
    ws.close()


def test_a_long_lived_workspace_outlives_its_agent(tmp_path: Path, source: Path) -> None:
    """A notebook's Workspace: its agent exits (idle, or stopped); the next submit starts a
    new one and goes through it, without opening the store in the notebook."""
    from headrace import Pipeline, PythonScriptStep

    root = tmp_path / "notebook"
    Workspace.create("fast", path=root, show_output=False).close()
    ws = Workspace(path=root)
    try:
        for _ in range(2):
            step = PythonScriptStep(
                name="make",
                script_name="make.py",
                source_directory=str(source),
                arguments=["--out", str(tmp_path / "out")],
                allow_reuse=False,
            )
            run = Pipeline(ws, [step]).submit("fast")
            assert run.wait_for_completion(show_output=False) == Status.FINISHED
            stop_agents(root)
        assert ws.backend._local is None  # never opened here: both went through an agent
    finally:
        ws.close()
        stop_agents(root)


def test_a_wait_on_a_run_another_agent_drives_sees_its_end(warm: Path, source: Path) -> None:
    """The run is driven elsewhere (another agent's, by the store): the listening agent looks
    at it now and then, so the wait returns with the end rather than at its timeout."""
    import signal
    from datetime import datetime, timedelta, timezone

    from headrace import Pipeline, PythonScriptStep
    from headrace.engine.submission import submit_graph

    ws = Workspace(path=warm)
    step = PythonScriptStep(name="make", script_name="make.py", source_directory=str(source))
    graph = Pipeline(ws, [step])._frozen_graph()
    store = ws.backend.store  # this test process opens the store to play the other agent
    listening = int((warm / "agent" / "agent.lock").read_text())
    os.kill(listening, signal.SIGSTOP)  # so that the other agent, not it, claims the run
    try:
        run = submit_graph(store, graph, experiment_name="fast", parameters=None).run
        long_ago = datetime.now(timezone.utc) - timedelta(days=1)
        claimed = store.meta.claim_runs(
            "elsewhere:1:1", limit=10, stale_before=long_ago, dead_agents=[]
        )
        assert run.id in [r.id for r in claimed]
    finally:
        os.kill(listening, signal.SIGCONT)
    backend = ws.backend
    record, _, token = backend.watch_run(run.id, None, 0.0, steps=False)
    assert record.status == Status.RUNNING and token
    timer = threading.Timer(0.3, store.meta.finish_pipeline_run, (run.id, Status.CANCELED))
    timer.start()
    try:
        record, _, _ = backend.watch_run(run.id, token, 20.0, steps=False)
    finally:
        timer.join()
    assert record.status == Status.CANCELED  # at its timeout it would still be Running
    ws.close()
