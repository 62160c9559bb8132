"""What a run produced, from the terminal: metrics and files in `run show` / `step show` (and
their --json), `headrace run metrics`, `step files` and `step download`; tables plain when
piped; help without typer's `<str>` / `<bool>` metavars.

A small pipeline (one step logging a series, a scalar, a list, writing outputs/ and logging
on the pipeline run) is run once per module on a workspace folder, and its results read
locally and through a served workspace.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner, Result

from headrace import Workspace
from headrace.cli.main import app
from tests.conftest import stop_agents
from tests.servers import LiveServer, make_token

RUNNER = CliRunner()

TRAIN = """
import os
from headrace import Run
run = Run.get_context()
for loss in (0.5, 0.25, 0.125):
    run.log("loss", loss)
run.log("accuracy", 0.93)
run.log_list("folds", [1, 2, 3])
run.parent.log("best_accuracy", 0.93)
os.makedirs("outputs", exist_ok=True)
with open("outputs/model.txt", "w") as fh:
    fh.write("weights")
print("trained")
"""

PIPELINE = """
from headrace import Pipeline, PythonScriptStep, Workspace
ws = Workspace.from_config()
train = PythonScriptStep("train.py", name="train", source_directory="src")
pipeline = Pipeline(ws, steps=[train])
"""


def hr(*args: object, code: int = 0) -> Result:
    result = RUNNER.invoke(app, [str(a) for a in args])
    assert result.exit_code == code, (
        f"exit {result.exit_code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return result


def hr_json(*args: object) -> Any:
    return json.loads(hr(*args, "--json").stdout)


class Ran:
    def __init__(self, root: Path, run_id: str, step_id: str) -> None:
        self.root = root
        self.run_id = run_id
        self.step_id = step_id


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ran]:
    """A workspace folder holding one finished run of the pipeline above."""
    base = tmp_path_factory.mktemp("results")
    mp = pytest.MonkeyPatch()
    mp.setenv("HEADRACE_HOME", str(base / "home"))
    mp.delenv("HEADRACE_WORKSPACE", raising=False)
    mp.delenv("HEADRACE_SERVER_URL", raising=False)
    root = base / "ws"
    Workspace.create("test-ws", path=root, show_output=False).close()
    project = base / "project"
    (project / "src").mkdir(parents=True)
    (project / "src" / "train.py").write_text(textwrap.dedent(TRAIN))
    (project / "pipeline.py").write_text(textwrap.dedent(PIPELINE))
    document = hr_json("run", "submit", project / "pipeline.py", "-e", "cli", "-w", root, "--wait")
    assert document["status"] == "Finished", document
    (step,) = document["steps"]
    yield Ran(root, document["id"], step["id"])
    stop_agents(root)
    mp.undo()


def test_run_show_has_pipeline_and_step_metrics_and_files(ran: Ran) -> None:
    document = hr_json("run", "show", ran.run_id[:8], "-w", ran.root)
    assert document["metrics"]["best_accuracy"]["last"] == 0.93
    (step,) = document["steps"]
    loss = step["metrics"]["loss"]
    assert (loss["count"], loss["last"], loss["min"], loss["max"]) == (3, 0.125, 0.125, 0.5)
    assert step["metrics"]["accuracy"]["count"] == 1
    assert step["metrics"]["folds"]["last"] == [1, 2, 3]
    assert document["files"] == []  # the pipeline run wrote none; its step did

    text = hr("run", "show", ran.run_id, "-w", ran.root).stdout
    assert "Metrics:" in text
    best = next(line for line in text.splitlines() if "best_accuracy" in line)
    assert "(pipeline)" in best and "0.93" in best
    loss_line = next(line for line in text.splitlines() if " loss " in line)
    assert loss_line.split() == ["train", "loss", "0.125", "0.125", "0.5", "3"]
    # Piped (not a terminal): plain columns, no box drawing.
    assert not set("│┃─━┏┡└╭") & set(text)


def test_run_metrics_table_summarises_series_and_json_has_every_value(ran: Ran) -> None:
    table = hr("run", "metrics", ran.run_id[:8], "-w", ran.root).stdout.splitlines()
    assert table[0].split() == ["STEP", "METRIC", "LAST", "MIN", "MAX", "COUNT"]
    rows = {tuple(line.split()[:2]): line.split()[2:] for line in table[1:]}
    assert rows[("(pipeline)", "best_accuracy")] == ["0.93", "1"]
    assert rows[("train", "loss")] == ["0.125", "0.125", "0.5", "3"]
    assert rows[("train", "accuracy")] == ["0.93", "1"]

    document = hr_json("run", "metrics", ran.run_id, "-w", ran.root)
    assert document["run_id"] == ran.run_id
    loss = next(m for m in document["metrics"] if m["name"] == "loss")
    assert loss["values"] == [0.5, 0.25, 0.125]
    assert loss["step"] == "train" and loss["step_run_id"] == ran.step_id
    best = next(m for m in document["metrics"] if m["name"] == "best_accuracy")
    assert best["step"] is None and best["values"] == [0.93]
    # A step run id: that step's metrics only.
    only = hr_json("run", "metrics", ran.step_id[:8], "-w", ran.root)
    assert {m["name"] for m in only["metrics"]} == {"loss", "accuracy", "folds"}


def test_step_show_files_and_download(ran: Ran, tmp_path: Path) -> None:
    details = hr_json("step", "show", ran.step_id[:8], "-w", ran.root)
    names = [f["name"] for f in details["files"]]
    assert "outputs/model.txt" in names and "user_logs/stdout.txt" in names
    assert details["metrics"]["loss"]["count"] == 3
    text = hr("step", "show", ran.step_id, "-w", ran.root).stdout
    assert "outputs/model.txt" in text and "loss" in text

    listed = hr_json("step", "files", ran.step_id, "-w", ran.root)["files"]
    assert {"name": "outputs/model.txt", "size": 7} in listed
    assert "outputs/model.txt" in hr("step", "files", ran.step_id, "-w", ran.root).stdout

    target = tmp_path / "got"
    result = hr_json("step", "download", ran.step_id, "--to", target, "-w", ran.root)
    assert "outputs/model.txt" in result["downloaded"] and result["skipped"] == []
    assert (target / "outputs" / "model.txt").read_text() == "weights"
    assert "trained" in (target / "user_logs" / "stdout.txt").read_text()

    (target / "outputs" / "model.txt").write_text("local")
    again = hr("step", "download", ran.step_id, "outputs/model.txt", "--to", target, "-w", ran.root)
    assert "1 already there, kept (pass --overwrite" in again.stdout
    assert (target / "outputs" / "model.txt").read_text() == "local"
    hr(
        "step",
        "download",
        ran.step_id,
        "--prefix",
        "outputs/",
        "--to",
        target,
        "--overwrite",
        "-w",
        ran.root,
    )
    assert (target / "outputs" / "model.txt").read_text() == "weights"

    wrong = hr("step", "download", ran.step_id, "outputs/modle.txt", "-w", ran.root, code=1)
    line = wrong.stderr.strip()
    assert line.startswith("error: ") and "'outputs/modle.txt'" in line
    assert "did you mean 'outputs/model.txt'" in line.lower()


def test_results_through_a_served_workspace(ran: Ran, tmp_path: Path) -> None:
    token = make_token(ran.root, "reader", "cli-reader")
    with LiveServer(ran.root) as live:
        remote = ("--server", live.url, "--token", token)
        document = hr_json(*remote, "run", "show", ran.run_id[:8])
        assert document["steps"][0]["metrics"]["loss"]["count"] == 3
        assert document["metrics"]["best_accuracy"]["last"] == 0.93
        metrics = hr_json(*remote, "run", "metrics", ran.run_id)["metrics"]
        assert next(m for m in metrics if m["name"] == "loss")["values"] == [0.5, 0.25, 0.125]
        hr(*remote, "step", "download", ran.step_id, "--to", tmp_path / "remote")
        assert (tmp_path / "remote" / "outputs" / "model.txt").read_text() == "weights"


def _commands(group: Any, path: list[str]) -> Iterator[list[str]]:
    yield path
    if not hasattr(group, "list_commands"):
        return
    ctx = typer.Context(group)
    for name in group.list_commands(ctx):
        sub = group.get_command(ctx, name)  # the root imports a command's module on demand
        if not sub.hidden:
            yield from _commands(sub, [*path, name])


def test_help_has_plain_metavars_and_completion() -> None:
    root = typer.main.get_command(app)
    seen = 0
    for path in _commands(root, []):
        text = hr(*path, "--help").stdout
        seen += 1
        typed = re.search(r"<(str|bool|int|float|list\[\w+\]|Path|\w+ range)>", text)
        assert typed is None, f"headrace {' '.join(path)} --help shows {typed.group()}:\n{text}"
    assert seen > 40
    assert "TEXT" in hr("run", "list", "--help").stdout  # values still say what they take
    assert "--install-completion" in hr("--help").stdout


def _complete(words: str) -> list[str]:
    """What the shell's tab completion offers after `words` (bash protocol)."""
    script = Path(sys.executable).with_name("headrace")
    env = {"_HEADRACE_COMPLETE": "complete_bash", "COMP_WORDS": words}
    env["COMP_CWORD"] = str(len(words.split()) - 1)
    done = subprocess.run(
        [str(script)], env={**os.environ, **env}, capture_output=True, text=True, timeout=60
    )
    return done.stdout.split()


def test_shell_completion_reaches_commands_not_imported_yet() -> None:
    assert _complete("headrace ru") == ["run-v1", "run"]
    assert _complete("headrace run sh") == ["show"]
    assert "--limit" in _complete("headrace run list --l")


def test_help_lists_each_command_as_its_own_help_says() -> None:
    """`headrace --help` and `headrace NOUN --help` list commands from stand-ins (nothing
    imported or built); each says what the command's own help says, hidden where it is."""
    root = typer.main.get_command(app)
    groups = [root]
    checked = 0
    while groups:
        group = groups.pop()
        ctx = typer.Context(group)
        for name, stand_in in list(group.commands.items()):
            listing = (stand_in.get_short_help_str(200), stand_in.hidden)
            real = group.get_command(ctx, name)
            assert real is not stand_in and real.name == name
            assert (real.get_short_help_str(200), real.hidden) == listing, name
            groups += [real] if hasattr(real, "list_commands") else []
            checked += 1
    assert checked > 60


def test_errors_speak_the_cli_words(ran: Ran, tmp_path: Path) -> None:
    hr("workspace", "create", "lab", "--path", tmp_path / "lab", "--no-write-config")
    again = hr("workspace", "create", "lab", "--path", tmp_path / "lab", code=1).stderr
    assert "pass --exist-ok to use it" in again and "exist_ok=True" not in again
    with LiveServer(ran.root) as live:
        denied = hr("--server", live.url, "run", "list", code=1).stderr
    assert "pass --token hr_..." in denied and "TokenAuthentication" not in denied
    assert len(denied.strip().splitlines()) == 1


def test_pipeline_file_loading_shows_their_traceback_and_passes_the_workspace(
    ran: Ran, tmp_path: Path
) -> None:
    project = tmp_path / "proj"
    (project / "src").mkdir(parents=True)
    (project / "src" / "train.py").write_text("print('ok')\n")
    (project / "settings.py").write_text(
        "def load():\n    return {}['learning_rate']\n\nCONFIG = load()\n"
    )
    (project / "broken.py").write_text("import settings\n" + textwrap.dedent(PIPELINE))
    args = ("-e", "cli", "-w", ran.root)
    error = hr("run", "submit", project / "broken.py", *args, code=1).stderr
    first, *trace = error.strip().splitlines()
    assert first == "error: broken.py (line 1) raised KeyError while being loaded: 'learning_rate'"
    assert trace[0] == "Traceback (most recent call last; your code only):"
    text = "\n".join(trace)
    assert f'File "{project / "settings.py"}", line 4, in <module>' in text
    assert "return {}['learning_rate']" in text and "import settings" in text
    assert "headrace" not in text.replace(str(tmp_path), "")  # none of our frames

    (project / "build.py").write_text(
        "from headrace import Pipeline, PythonScriptStep, Workspace\n"
        "def build_pipeline(ws: Workspace, *, name: str = 'hello') -> Pipeline:\n"
        "    step = PythonScriptStep('train.py', name=name, source_directory='src')\n"
        "    return Pipeline(ws, steps=[step])\n"
    )
    run = hr_json("run", "submit", f"{project / 'build.py'}:build_pipeline", *args, "--wait")
    assert run["status"] == "Finished" and [s["name"] for s in run["steps"]] == ["hello"]
    (project / "two.py").write_text("def build(ws, size):\n    pass\n")
    error = hr("run", "submit", f"{project / 'two.py'}:build", *args, code=1).stderr
    assert "needs arguments (ws, size)" in error


def test_ui_says_what_is_wrong_before_printing_a_url(ran: Ran) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        busy = hr("ui", "-w", ran.root, "--port", port, code=1)
    assert busy.stderr.strip() == (
        f"error: Port {port} on 127.0.0.1 is already in use (another `headrace ui` or "
        "server?); choose another with --port N, or stop what listens there."
    )
    assert "http://" not in busy.output

    # As on an install without the server extra: FastAPI cannot be imported.
    start = "import sys; sys.modules['fastapi'] = None; from headrace.cli.main import main; main()"
    bare = subprocess.run(
        [sys.executable, "-c", start, "ui", "-w", str(ran.root)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bare.returncode == 1
    assert bare.stderr.strip() == (
        "error: The server needs FastAPI and uvicorn (fastapi is missing); install them "
        "with: pip install 'headrace[server]'"
    )
    assert "http://" not in bare.stdout + bare.stderr
