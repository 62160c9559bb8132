"""Steps cannot escalate: a submitter's step, run by a real `headrace server` as root with
its defaults (steps as user nobody, confined by Landlock), tries every way to the
workspace's database, keys, secrets, agent files, other runs and the server's processes,
and is refused; ordinary steps of every kind still work so confined.

The server runs on Debian's /usr/bin/python3.11 in a virtual environment that sees this
checkout's packages (a .pth file), as a deployment would install headrace where every user
can run it: this machine's own Python is under /root (mode 0700), which user nobody cannot
enter, and that case is checked too (the server refuses to start, in one line).
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import pwd
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from headrace import (
    CommandStep,
    CondaDependencies,
    DataReference,
    Datastore,
    DataTransferStep,
    Environment,
    Experiment,
    Model,
    Pipeline,
    PipelineData,
    PipelineParameter,
    PipelineRun,
    PythonScriptStep,
    RunConfiguration,
    TokenAuthentication,
    Workspace,
)
from headrace.engine import landlock
from headrace.engine.isolation import inherited_environment
from headrace.kinds.sql import SqlStep
from tests.servers import ServerProcess, bearer, make_token

BASE_PYTHON = "/usr/bin/python3.11"
SECRETS = {  # in the server's environment; no step may see any of these values
    "HEADRACE_TEST_DB_PASSWORD": "pw-5b1f0c",
    "AWS_SECRET_ACCESS_KEY": "aws-77d2e1",
    "ARCHIVE_KEY_VALUE": "env-ref-93ac4d",  # named by a datastore's credential reference
}


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "steps run as user nobody: the server must run as root"
    if landlock.abi_version() < 2:
        return "needs a kernel with Landlock ABI 2 or later"
    if sys.version_info[:2] != (3, 11) or not os.access(BASE_PYTHON, os.X_OK):
        return f"needs {BASE_PYTHON} (the same minor version as this interpreter)"
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        return "needs user nobody"
    for folder in (sysconfig.get_paths()["purelib"], str(Path(__file__).resolve().parents[1])):
        if not _others_can_read(Path(folder)):
            return f"user nobody cannot read this checkout ({folder}: a folder above lacks o+rx)"
    return None


def _others_can_read(folder: Path) -> bool:
    """Whether a user with no special rights can enter every folder down to `folder` and
    read it (steps run as nobody import headrace from this checkout)."""
    for part in [*reversed(folder.parents), folder]:
        if part.exists() and not part.stat().st_mode & 0o001:
            return False
    return bool(folder.stat().st_mode & 0o004)


needs_step_user = pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))
needs_landlock = pytest.mark.skipif(
    landlock.abi_version() < 2, reason="needs a kernel with Landlock ABI 2 or later"
)


@pytest.fixture(scope="module")
def shared_python() -> str:
    """A Python every user can run, seeing this checkout's packages."""
    ours = sysconfig.get_paths()["purelib"]
    tag = hashlib.sha256(ours.encode()).hexdigest()[:10]
    folder = Path(tempfile.gettempdir()) / f"headrace-test-python-{tag}"
    python = folder / "bin" / "python"
    if not python.exists():
        building = Path(tempfile.mkdtemp(prefix=f"{folder.name}.", dir=folder.parent))
        subprocess.run([BASE_PYTHON, "-m", "venv", "--without-pip", str(building)], check=True)
        site = building / "lib" / "python3.11" / "site-packages"
        (site / "headrace_checkout.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
        (building / "bin" / "uv").symlink_to(Path(sys.executable).parent / "uv")
        building.chmod(0o755)
        try:
            building.rename(folder)
        except OSError:
            shutil.rmtree(building)  # another session made it first
    return str(python)


@pytest.fixture(scope="module")
def open_folder() -> Iterator[Path]:
    """A folder user nobody can traverse (pytest's own temporary folders are 0700)."""
    folder = Path(tempfile.mkdtemp(prefix="headrace-isolation-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


class Served:
    def __init__(self, root: Path, server: ServerProcess, submitter: str) -> None:
        self.root = root
        self.server = server
        self.submitter = submitter
        self.ws = Workspace.get("iso", url=server.url, auth=TokenAuthentication(submitter))


@pytest.fixture(scope="module")
def served(shared_python: str, open_folder: Path) -> Iterator[Served]:
    root = open_folder / "ws"
    ws = Workspace.create("iso", path=root, show_output=False)
    # An admin's datastores: one keeping its keys in the workspace's secrets file, one
    # naming an environment variable of the server.
    Datastore.register_s3(
        ws, "vault", "bucket", access_key_id="AKIAVAULT", secret_access_key="vault-2c9e"
    )
    Datastore.register_s3(
        ws,
        "archive",
        "bucket2",
        access_key_id_env="AWS_ACCESS_KEY_ID",
        secret_access_key_env="ARCHIVE_KEY_VALUE",
    )
    (open_folder / "outside").mkdir()
    Datastore.register_local(ws, "outside", str(open_folder / "outside"))
    submitter = make_token(root, "submitter", "alice")
    make_token(root, "admin", "boss")
    env = {**SECRETS, "HEADRACE_AGENT_POLL_SECONDS": "0.05"}
    with ServerProcess(root, python=shared_python, env=env) as server:
        served = Served(root, server, submitter)
        yield served
        served.ws.close()


def _source(folder: Path, name: str, text: str) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(textwrap.dedent(text))
    return str(folder)


def _wait_for_line(run: PipelineRun, step: str, prefix: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = run.find_step_run(step)
        if found:
            for line in found[0].get_stdout_log().splitlines():
                if line.startswith(prefix):
                    return line[len(prefix) :]
        time.sleep(0.2)
    raise AssertionError(f"{step} printed no {prefix!r} line in {timeout} s")


VICTIM = """
    import json, os, time
    from headrace import Run
    open("secret.txt", "w").write("victim's working file")
    open("victim-file.txt", "w").write("victim's run file")
    Run.get_context().upload_file("victim-file.txt", "victim-file.txt")
    print("VICTIM " + json.dumps({
        "pid": os.getpid(),
        "cwd": os.getcwd(),
        "run_dir": os.environ["HEADRACE_RUN_DIR"],
        "token_file": os.environ.get("HEADRACE_RUN_TOKEN_FILE"),
        "environ_token": os.environ.get("HEADRACE_RUN_TOKEN"),
    }), flush=True)
    time.sleep(120)
"""

ATTACKER = """
    import json, os, socket, sys
    targets = json.loads(sys.argv[1])
    ws = os.environ["HEADRACE_WORKSPACE"]
    victim = targets["victim"]
    report = {}

    def attempt(name, action):
        try:
            report[name] = "got " + repr(action())[:80]
        except FileNotFoundError:
            report[name] = "missing"
        except OSError as exc:
            report[name] = "refused " + type(exc).__name__

    def read(path):
        with open(path, "rb") as fh:
            return fh.read(64)

    def write(path, mode="w"):
        with open(path, mode) as fh:
            return fh.write("x" if "b" not in mode else b"x")

    for rel in ("headrace.db", "headrace.db-wal", "headrace.db-shm", "workspace.json",
                "portal.key", "secrets/datastores.json", "agent/agent.log",
                "agent/agent.lock"):
        attempt("read " + rel, lambda rel=rel: read(os.path.join(ws, rel)))
    for rel in ("", "agent", "secrets", "artifacts/runs", "artifacts/snapshots", "work"):
        attempt("list " + (rel or "the workspace"), lambda rel=rel: os.listdir(os.path.join(ws, rel)))
    attempt("read another run's working file", lambda: read(os.path.join(victim["cwd"], "secret.txt")))
    attempt("read another run's token file", lambda: read(victim["token_file"]))
    attempt("read another run's files", lambda: read(os.path.join(victim["run_dir"], "victim-file.txt")))
    attempt("write another run's working folder", lambda: write(os.path.join(victim["cwd"], "x")))
    attempt("write the workspace folder", lambda: write(os.path.join(ws, "planted.txt")))
    attempt("write the database", lambda: write(os.path.join(ws, "headrace.db"), "ab"))
    # The agent is the parent of the step's reaper (engine/reaper.py).
    reaper = open(f"/proc/{os.getppid()}/stat").read().rsplit(")", 1)[1].split()
    for who, pid in (("agent", int(reaper[1])), ("server", targets["server_pid"])):
        attempt(f"read the {who}'s environment", lambda pid=pid: read(f"/proc/{pid}/environ"))
        attempt(f"list the {who}'s open files", lambda pid=pid: os.listdir(f"/proc/{pid}/fd"))
        attempt(f"read the {who}'s memory map", lambda pid=pid: read(f"/proc/{pid}/maps"))
        attempt(f"signal the {who}", lambda pid=pid: os.kill(pid, 0))
    try:
        seen = open(f"/proc/{victim['pid']}/environ", "rb").read().decode(errors="replace")
    except OSError:
        seen = ""
    secrets = targets["secrets"]
    report["secrets in my environment"] = sorted(  # but the parameter that lists them
        k for k, v in os.environ.items()
        if any(s in v for s in secrets) and k != "AML_PARAMETER_targets"
    )
    report["secrets in another step's environment"] = [s for s in secrets if s in seen]
    report["run token in another step's environment"] = "HEADRACE_RUN_TOKEN=" in seen
    # A link in the step's run files to the portal key, for the server to follow later.
    os.makedirs("outputs", exist_ok=True)
    os.symlink(os.path.join(ws, "portal.key"), "outputs/portal-key")
    print("REPORT " + json.dumps(report), flush=True)
"""


@needs_step_user
def test_a_submitters_step_reaches_nothing_of_the_workspace_nor_other_runs(
    served: Served, tmp_path: Path
) -> None:
    ws, root = served.ws, served.root
    victim_run = Experiment(ws, "victim").submit(
        Pipeline(
            ws,
            steps=[
                PythonScriptStep(
                    "victim.py",
                    name="victim",
                    source_directory=_source(tmp_path / "v", "victim.py", VICTIM),
                )
            ],
        )
    )
    victim = json.loads(_wait_for_line(victim_run, "victim", "VICTIM "))
    assert victim["environ_token"] is None and victim["token_file"]  # a file, not a variable
    targets = PipelineParameter("targets", default_value="{}")
    attacker = PythonScriptStep(
        "attack.py",
        name="attacker",
        arguments=[targets],
        source_directory=_source(tmp_path / "a", "attack.py", ATTACKER),
        allow_reuse=False,
    )
    values = {"victim": victim, "server_pid": served.server.pid, "secrets": list(SECRETS.values())}
    run = Experiment(ws, "attack").submit(
        Pipeline(ws, steps=[attacker]), pipeline_parameters={"targets": json.dumps(values)}
    )
    try:
        assert run.wait_for_completion(show_output=False, raise_on_error=False) == "Finished"
        report = json.loads(_wait_for_line(run, "attacker", "REPORT "))
    finally:
        victim_run.cancel()
    on_disk = {name: (root / name).exists() for name in report}
    assert (root / "portal.key").exists() and (root / "secrets" / "datastores.json").exists()
    for attempt, outcome in report.items():
        if attempt.startswith(("read ", "list ", "write ", "signal ")):
            missing_ok = attempt.endswith(("-wal", "-shm")) and not on_disk.get(attempt)
            assert outcome.startswith("refused") or (missing_ok and outcome == "missing"), (
                attempt,
                outcome,
            )
    assert report["secrets in my environment"] == []
    assert report["secrets in another step's environment"] == []
    assert report["run token in another step's environment"] is False
    # The link it left among its run files is not followed by the server.
    step = run.find_step_run("attacker")[0]
    url = f"{served.server.url}/api/v1/runs/{step.id}/content/outputs/portal-key"
    answer = httpx.get(url, headers=bearer(served.submitter))
    assert answer.status_code >= 400 and (root / "portal.key").read_bytes() not in answer.content


ORDINARY = """
    import os, sys, tempfile
    from headrace import Run
    rows, mid = sys.argv[1], sys.argv[2]
    run = Run.get_context()
    count = sum(1 for _ in open(rows))
    run.log("rows", count)
    run.parent.log("from_step", 1)
    with tempfile.NamedTemporaryFile("w", delete=False) as fh:
        fh.write("scratch")
    os.makedirs(mid, exist_ok=True)
    open(os.path.join(mid, "count.txt"), "w").write(str(count))
    open("made.txt", "w").write("uploaded")
    run.upload_file("uploaded/made.txt", "made.txt")
    run.parent.upload_file("parent-file.txt", "made.txt")
    print("uid", os.getuid(), "tmp", os.path.dirname(fh.name) == os.environ["TMPDIR"])
"""
READER = """
    import os, sys
    from headrace import Run
    print("count", open(os.path.join(sys.argv[1], "count.txt")).read())
    Run.get_context().log("read", 1)
"""


@needs_step_user
def test_ordinary_steps_of_every_kind_work_confined(served: Served, tmp_path: Path) -> None:
    ws = served.ws
    data = tmp_path / "data"
    data.mkdir()
    (data / "rows.csv").write_text("city,amount\nOslo,1\nBergen,2\nOslo,3\n")
    store = ws.get_default_datastore()
    store.upload(str(data), target_path="raw", show_progress=False)
    rows = DataReference(store, "rows", "raw/rows.csv")
    mid = PipelineData("mid", datastore=store)
    src = _source(tmp_path / "src", "ordinary.py", ORDINARY)
    _source(tmp_path / "src", "reader.py", READER)
    producer = PythonScriptStep(
        "ordinary.py",
        name="producer",
        arguments=[rows, mid],
        inputs=[rows],
        outputs=[mid],
        source_directory=src,
    )
    reader = PythonScriptStep(
        "reader.py", name="reader", arguments=[mid], inputs=[mid], source_directory=src
    )
    who = PipelineData("who", datastore=store)
    command = CommandStep(
        name="command",
        command=f"id -un > {who}/who.txt && wc -l < {rows} >> {who}/who.txt && cat {who}/who.txt",
        inputs=[rows],
        outputs=[who],
    )
    totals = PipelineData("totals", datastore=store)
    sql = SqlStep(
        "totals.sql",
        name="sql",
        source_directory=_source(
            tmp_path / "sql",
            "totals.sql",
            "CREATE TABLE totals AS SELECT city, sum(amount) AS total FROM rows GROUP BY city;",
        ),
        inputs=[rows],
        outputs=[totals],
    )
    outside = Datastore.get(ws, "outside")
    transfer = DataTransferStep(
        "transfer",
        source_data_reference=DataReference(store, "raw", "raw"),
        destination_data_reference=DataReference(outside, "copy", "copies/raw"),
    )
    env = Environment("bare")  # a uv environment, no packages: built by the step itself
    env.python.conda_dependencies = CondaDependencies.create(python_version="3.11")
    environment = PythonScriptStep(
        "reader.py",
        name="in-environment",
        arguments=[mid],
        inputs=[mid],
        source_directory=src,
        runconfig=RunConfiguration(environment=env),
    )
    run = Experiment(ws, "ordinary").submit(
        Pipeline(ws, steps=[producer, reader, command, sql, transfer, environment])
    )
    status = run.wait_for_completion(show_output=False, raise_on_error=False)
    logs = {s.name: s.get_stdout_log() + s.get_stderr_log() for s in run.get_steps()}
    assert status == "Finished", logs
    assert "uid 65534 tmp True" in logs["producer"]
    producer_run = run.find_step_run("producer")[0]
    assert producer_run.get_metrics()["rows"] == 4
    assert "uploaded/made.txt" in producer_run.get_file_names()
    assert run.get_metrics()["from_step"] == 1
    assert "parent-file.txt" in run.get_file_names()
    assert "count 4" in logs["reader"] and "count 4" in logs["in-environment"]
    assert "nobody\n4" in logs["command"]
    assert (served.root.parent / "outside" / "copies" / "raw" / "rows.csv").is_file()


SCORER = """
    import json, os, pickle
    from headrace.compat.azureml.core import Model, Run

    path = Model.get_model_path("iso-model")  # what batch scoring's init() calls
    weights = pickle.load(open(path, "rb"))
    try:
        open(os.path.join(os.environ["HEADRACE_WORKSPACE"], "headrace.db"), "rb").read(1)
        database = "read"
    except OSError as exc:
        database = "refused " + type(exc).__name__
    run = Run.get_context()
    os.makedirs("outputs", exist_ok=True)
    pickle.dump(weights + [3], open("outputs/retrained.pkl", "wb"))
    trained = run.register_model("iso-trained", model_path="outputs/retrained.pkl")
    os.makedirs("folder", exist_ok=True)
    open("folder/notes.txt", "w").write("notes")
    folder = Model.register(run.experiment.workspace, "folder", "iso-folder")
    print("SCORER " + json.dumps({
        "path": path, "weights": weights, "database": database,
        "trained": trained.id, "folder": folder.id, "uid": os.getuid(),
    }), flush=True)
"""


@needs_step_user
def test_a_confined_step_reads_models_in_place_and_registers_through_its_token(
    served: Served, tmp_path: Path
) -> None:
    ws = served.ws
    (tmp_path / "w.pkl").write_bytes(pickle.dumps([1, 2]))
    Model.register(ws, str(tmp_path / "w.pkl"), "iso-model")
    src = _source(tmp_path / "src", "score.py", SCORER)
    run = Experiment(ws, "models").submit(
        Pipeline(ws, steps=[PythonScriptStep("score.py", source_directory=src)])
    )
    status = run.wait_for_completion(show_output=False, raise_on_error=False)
    step = run.find_step_run("score.py")[0]
    assert status == "Finished", step.get_stdout_log() + step.get_stderr_log()
    report = json.loads(_wait_for_line(run, "score.py", "SCORER "))
    # Read where the registry keeps it (no copy), by user nobody, who cannot open the db.
    registry = os.path.realpath(served.root / "artifacts" / "models")
    assert report["path"] == os.path.join(registry, "iso-model", "1", "w.pkl")
    assert report["weights"] == [1, 2] and report["uid"] == pwd.getpwnam("nobody").pw_uid
    assert report["database"].startswith("refused")
    assert (report["trained"], report["folder"]) == ("iso-trained:1", "iso-folder:1")
    assert Model(ws, "iso-trained").run_id == step.id == Model(ws, "iso-folder").run_id
    folder = Path(Model(ws, "iso-folder").download(str(tmp_path / "dl")))
    assert (folder / "notes.txt").read_text() == "notes"
    # The step's staging of the folder among its run files is gone once registered.
    assert not [n for n in step.get_file_names() if n.startswith(".headrace")]


@needs_step_user
def test_a_server_as_root_refuses_to_start_when_its_step_user_cannot_run_python(
    open_folder: Path,
) -> None:
    root = open_folder / "refused"
    Workspace.create("refused", path=root, show_output=False)
    # This interpreter is under /root, which user nobody cannot enter.
    process = subprocess.run(
        [str(Path(sys.executable).parent / "headrace"), "server", "-w", str(root), "--port", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert process.returncode != 0
    error = [line for line in process.stderr.splitlines() if "nobody" in line]
    assert len(error) == 1, process.stderr
    assert "cannot start headrace's step side" in error[0]
    assert "--step-user" in error[0] and "Traceback" not in process.stderr


CONFINED = """
    import os, pwd, tempfile
    ws = os.environ["HEADRACE_WORKSPACE"]
    for name, action in (
        ("database", lambda: open(os.path.join(ws, "headrace.db"), "rb").read(1)),
        ("tmp", lambda: open("/tmp/headrace-isolation-probe", "w")),
        ("home", lambda: open(os.path.join(pwd.getpwuid(os.getuid()).pw_dir, ".probe"), "w")),
    ):
        try:
            action()
            print(name, "reached")
        except OSError as exc:
            print(name, "refused", type(exc).__name__)
    with tempfile.TemporaryFile() as fh:
        print("tempfile works", bool(fh.write(b"x")))
"""


@needs_landlock
def test_an_embedded_agent_confines_its_steps_when_asked(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEADRACE_STEP_ISOLATION", "on")  # read by the agent the submit starts
    step = PythonScriptStep(
        "confined.py", source_directory=_source(tmp_path / "src", "confined.py", CONFINED)
    )
    run = Experiment(ws, "confined").submit(Pipeline(ws, steps=[step]))
    assert run.wait_for_completion(show_output=False, raise_on_error=False) == "Finished"
    out = run.find_step_run("confined.py")[0].get_stdout_log()
    assert "database refused PermissionError" in out
    assert "tmp refused PermissionError" in out and "home refused" in out
    assert "tempfile works True" in out


LINKER = """
    import os, sys
    logs = os.path.join(os.environ["HEADRACE_RUN_DIR"], "user_logs")
    if os.environ["HEADRACE_ATTEMPT"] == "0":
        # Leave links where the agent opens the next attempt's logs, then fail.
        for name in ("stdout.txt", "stderr.txt"):
            os.unlink(os.path.join(logs, name))
            os.symlink(sys.argv[1], os.path.join(logs, name))
        sys.exit(1)
    print("second attempt writes into", sys.argv[1])
"""


@needs_landlock
def test_a_link_a_step_leaves_for_its_next_attempts_logs_is_not_followed(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEADRACE_STEP_ISOLATION", "on")
    canary = tmp_path / "canary.txt"  # stands for the database a link would point at
    canary.write_text("")
    step = PythonScriptStep(
        "linker.py",
        arguments=[str(canary)],
        source_directory=_source(tmp_path / "src", "linker.py", LINKER),
        max_retries=1,
    )
    run = Experiment(ws, "linker").submit(Pipeline(ws, steps=[step]))
    assert run.wait_for_completion(show_output=False, raise_on_error=False) == "Failed"
    assert canary.read_text() == ""
    assert "could not be started" in str(run.get_details()["error"])


FIFO = """
    import os
    from headrace import Run
    Run.get_context().log("before", 1)
    journal = os.path.join(os.environ["HEADRACE_RUN_DIR"], ".headrace", "journal.jsonl")
    os.unlink(journal)
    os.mkfifo(journal)  # an agent that opened this to read it would wait forever
"""


def test_a_fifo_left_as_the_journal_does_not_stop_the_agent(ws: Workspace, tmp_path: Path) -> None:
    step = PythonScriptStep("fifo.py", source_directory=_source(tmp_path / "src", "fifo.py", FIFO))
    run = Experiment(ws, "fifo").submit(Pipeline(ws, steps=[step]))
    status = run.wait_for_completion(show_output=False, raise_on_error=False, timeout_seconds=60)
    assert status == "Finished"
    later = Experiment(ws, "fifo").submit(Pipeline(ws, steps=[step]))  # the agent still works
    assert later.wait_for_completion(show_output=False, raise_on_error=False) == "Finished"


PLANTER = """
    import os, sys
    outputs = os.path.join(os.environ["HEADRACE_RUN_DIR"], "outputs")
    os.makedirs(outputs, exist_ok=True)
    os.symlink(sys.argv[1], os.path.join(outputs, "b"))  # where the agent keeps ./outputs/b
    os.makedirs("outputs", exist_ok=True)
    open("outputs/b", "w").write("written by the step")
"""


@needs_landlock
def test_a_link_a_step_plants_among_its_run_files_is_not_followed(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEADRACE_STEP_ISOLATION", "on")
    elsewhere = tmp_path / "elsewhere"  # stands for a folder of the workspace, say agent/
    elsewhere.mkdir()
    step = PythonScriptStep(
        "planter.py",
        arguments=[str(elsewhere)],
        source_directory=_source(tmp_path / "src", "planter.py", PLANTER),
    )
    run = Experiment(ws, "planter").submit(Pipeline(ws, steps=[step]))
    assert run.wait_for_completion(show_output=False, raise_on_error=False) == "Failed"
    assert list(elsewhere.iterdir()) == []
    assert "leads outside the run's files" in str(run.get_details()["error"])


def test_an_isolated_step_inherits_no_secret_of_the_agents_environment() -> None:
    environ = {
        "PATH": "/usr/bin:/bin",
        "TOKENIZERS_PARALLELISM": "false",  # "TOKEN" inside a word is no secret
        "HF_TOKEN": "hf-1",
        "PGPASSWORD": "pg-2",
        "AZURE_STORAGE_CONNECTION_STRING": "az-3",
        "APP_DB": "postgresql+psycopg://app:pw-4@db/app",
        "S3_FOR_ARCHIVE": "s3-5",  # a datastore's `env:` reference names it
        "HEADRACE_SERVER_WORKER_SETTINGS": '{"database_url": "..."}',
    }
    confined = inherited_environment(
        environ,
        isolated=True,
        also=["S3_FOR_ARCHIVE"],
        database_url="postgresql+psycopg://app:pw-4@db/app",
    )
    assert confined == {"PATH": "/usr/bin:/bin", "TOKENIZERS_PARALLELISM": "false"}
    # Unconfined (a laptop) keeps the owner's variables, but never the server's settings.
    laptop = inherited_environment(environ, isolated=False)
    assert "HF_TOKEN" in laptop and "HEADRACE_SERVER_WORKER_SETTINGS" not in laptop
