"""The CLI's read path without SQLAlchemy (store/fastread.py, backend/local_reads.py) and its
start-up.

The contract: over the same workspace (runs with steps, every kind of metric, files, tags,
reused steps, a failed step with its error), the fast reader and the ORM store give equal
records for every read the CLI makes, so the two cannot drift. A database at another schema
revision is left to the ORM path, which migrates it. From a fresh shell, `headrace run show`
and friends never import SQLAlchemy (nor pydantic), and `headrace --version` imports no
command module. What replaces typer's pydantic conversion and rich's piped printing gives
what they gave.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from headrace import Experiment, Pipeline, PipelineData, PythonScriptStep, Workspace
from headrace.backend.local_reads import LocalReads, open_local_reads
from headrace.cli.main import app
from headrace.errors import HeadraceError
from headrace.store.database import HEAD_REVISION
from headrace.store.fastread import FastReader, open_fast_reader
from tests.conftest import stop_agents

TRAIN = """
import argparse, os
from headrace import Run
p = argparse.ArgumentParser()
p.add_argument("--out")
a = p.parse_args()
run = Run.get_context()
for i, loss in enumerate((0.5, 0.25, 0.125)):
    run.log("loss", loss, step=i)
run.log("accuracy", 0.93, description="held-out accuracy")
run.log("epochs", 3)
run.log("note", "a text value")
run.log("ceiling", float("inf"))
run.log_list("folds", [1, 2.5, 3])
run.log_row("per_class", cls="a", precision=0.9)
run.log_table("confusion", {"pred": [0, 1], "true": [1, 1]})
with open("curve.png", "wb") as fh:
    fh.write(b"not really a png")
run.log_image("curve", path="curve.png")
run.tag("stage", "train")
run.tag("flag")
run.parent.log("best_accuracy", 0.93)
with open("report.txt", "w") as fh:
    fh.write("fine")
run.upload_file("extra/report.txt", "report.txt")
os.makedirs("outputs", exist_ok=True)
with open("outputs/model.txt", "w") as fh:
    fh.write("weights")
os.makedirs(a.out, exist_ok=True)
with open(os.path.join(a.out, "model.txt"), "w") as fh:
    fh.write("weights")
"""

EVALUATE = """
import argparse
from headrace import Run
p = argparse.ArgumentParser()
p.add_argument("--inp")
a = p.parse_args()
Run.get_context().log("score", 0.5)
"""

BROKEN = """
import sys
print("about to fail", file=sys.stderr)
raise SystemExit(3)
"""


class Content:
    def __init__(self, root: Path, run_ids: list[str]) -> None:
        self.root = root
        self.run_ids = run_ids


def _submit(ws: Workspace, src: Path, description: str) -> str:
    model = PipelineData("model")
    PythonScriptStep(  # reached through `model`, evaluate's input
        "train.py",
        name="train",
        source_directory=str(src),
        outputs=[model],
        arguments=["--out", model],
    )
    evaluate = PythonScriptStep(
        "evaluate.py",
        name="evaluate",
        source_directory=str(src),
        inputs=[model],
        arguments=["--inp", model],
    )
    broken = PythonScriptStep(
        "broken.py", name="broken", source_directory=str(src), allow_reuse=False
    )
    pipeline = Pipeline(ws, steps=[evaluate, broken], description=description)
    run = Experiment(ws, "fast").submit(
        pipeline, tags={"team": "vision", "empty": ""}, continue_on_step_failure=True
    )
    run.wait_for_completion(show_output=False, raise_on_error=False)
    return str(run.id)


@pytest.fixture(scope="module")
def content(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Content]:
    """Two runs of a three-step pipeline: the second reuses train and evaluate; broken fails
    in both (continue_on_step_failure, so the others finish)."""
    base = tmp_path_factory.mktemp("fastreads")
    mp = pytest.MonkeyPatch()
    mp.setenv("HEADRACE_HOME", str(base / "home"))
    mp.delenv("HEADRACE_WORKSPACE", raising=False)
    mp.delenv("HEADRACE_SERVER_URL", raising=False)
    root = base / "ws"
    src = base / "src"
    src.mkdir()
    for name, text in (("train", TRAIN), ("evaluate", EVALUATE), ("broken", BROKEN)):
        (src / f"{name}.py").write_text(textwrap.dedent(text))
    ws = Workspace.create("fast-ws", path=root, show_output=False)
    run_ids = [_submit(ws, src, "first"), _submit(ws, src, "second")]
    ws.close()
    stop_agents(root)
    yield Content(root, run_ids)
    mp.undo()


@pytest.fixture
def readers(content: Content) -> Iterator[tuple[Any, FastReader]]:
    ws = Workspace(path=content.root)
    fast = open_fast_reader(content.root / "headrace.db")
    assert fast is not None
    yield ws.backend.meta, fast  # type: ignore[attr-defined]
    fast.close()
    ws.close()


def _same(readers: tuple[Any, FastReader], method: str, *args: Any, **kwargs: Any) -> Any:
    """Both readers' answer to `method(*args, **kwargs)`, or both readers' error (same
    class, same message)."""
    results = []
    for reader in readers:
        try:
            results.append(getattr(reader, method)(*args, **kwargs))
        except HeadraceError as exc:
            results.append((type(exc), str(exc)))
    assert results[0] == results[1], method
    return results[0]


def test_the_workspace_has_what_the_contract_needs(
    content: Content, readers: tuple[Any, FastReader]
) -> None:
    meta, _ = readers
    first, second = (meta.get_pipeline_run(i) for i in content.run_ids)
    assert first.status == second.status == "Failed" and first.error and first.tags
    steps = {s.name: s for s in meta.list_step_runs(second.id)}
    assert steps["train"].reused_run_id and steps["evaluate"].reused_run_id
    assert steps["broken"].error and steps["broken"].exit_code == 3
    kinds = {m.kind for m in meta.list_metrics([s.data_run_id for s in steps.values()])}
    assert kinds == {"scalar", "list", "row", "table", "image"}
    assert meta.list_metrics([first.id])  # run.parent.log
    trained = meta.get_step_run(steps["train"].reused_run_id)
    assert trained.tags == {"stage": "train", "flag": ""}


def test_both_readers_give_equal_records(content: Content, readers: tuple[Any, FastReader]) -> None:
    run_ids = content.run_ids
    step_ids: list[str] = []
    for run_id in [*run_ids, "no-such-run"]:
        _same(readers, "find_pipeline_run", run_id)
        _same(readers, "get_pipeline_run", run_id)
        step_ids += [s.id for s in _same(readers, "list_step_runs", run_id)]
    assert len(step_ids) == 6
    for step_id in [*step_ids, "no-such-step"]:
        _same(readers, "find_step_run", step_id)
        _same(readers, "get_step_run", step_id)
    assert len(_same(readers, "list_metrics", [*run_ids, *step_ids])) > 10
    _same(readers, "list_metrics", [])
    for query in (
        {},
        {"limit": 1},
        {"limit": 1, "offset": 1},
        {"experiment_name": "fast"},
        {"experiment_name": "other"},
        {"statuses": ["Failed", "Running"]},
        {"statuses": ["Finished"]},
    ):
        _same(readers, "list_pipeline_runs", **query)
    for prefix in (run_ids[0][:8], run_ids[1].upper()[:6], step_ids[0][:5], "", "zzz", "%"):
        _same(readers, "resolve_run_id", prefix)
    graph_id = readers[0].get_pipeline_run(run_ids[0]).graph_id
    for graph in (graph_id, "no-such-graph"):
        _same(readers, "get_graph", graph)
    _same(readers, "list_datastores")
    for name in ("workspaceblobstore", "nope"):
        _same(readers, "find_datastore", name)


def test_local_reads_answer_as_the_local_backend(content: Content) -> None:
    ws = Workspace(path=content.root)
    config = json.loads((content.root / "workspace.json").read_text())
    reads = open_local_reads(content.root, config, lambda: ws.backend)
    assert isinstance(reads, LocalReads)
    try:
        backend = ws.backend
        record = reads.get_pipeline_run(content.run_ids[1])
        assert reads.get_graph(record.graph_id) == backend.get_graph(record.graph_id)
        for step in reads.list_step_runs(record.id):
            files = reads.list_run_files(step.data_run_id)
            assert files == backend.list_run_files(step.data_run_id)
        train = next(s for s in reads.list_step_runs(record.id) if s.name == "train")
        names = {f.name for f in reads.list_run_files(train.data_run_id)}
        assert {"outputs/model.txt", "extra/report.txt", "user_logs/stdout.txt"} <= names
        assert reads.datastore_root("workspaceblobstore") == backend.datastore_root(
            "workspaceblobstore"
        )
        # What it does not answer itself, the workspace's backend does.
        assert reads.workspace_info()["name"] == "fast-ws"
    finally:
        reads.close()
        ws.close()
    # PostgreSQL workspaces keep the SQLAlchemy path.
    postgres = {**config, "database_url": "postgresql+psycopg://u@127.0.0.1:5432/x"}
    assert open_local_reads(content.root, postgres, lambda: None) is None


def test_a_database_at_another_revision_goes_to_the_store_which_migrates_it(
    content: Content, tmp_path: Path
) -> None:
    from alembic import command
    from alembic.config import Config

    import headrace.store.database as database

    copy = tmp_path / "ws"
    shutil.copytree(content.root, copy, ignore=shutil.ignore_patterns("agent"))
    ws = Workspace(path=copy)
    config = Config()
    config.set_main_option("script_location", str(Path(database.__file__).parent / "migrations"))
    store = ws.backend.store  # type: ignore[attr-defined]
    with store.database.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "-1")
    ws.close()
    assert open_fast_reader(copy / "headrace.db") is None

    runner = CliRunner()
    shown = runner.invoke(app, ["run", "show", content.run_ids[1], "-w", str(copy), "--json"])
    assert shown.exit_code == 0, shown.output
    expected = runner.invoke(
        app, ["run", "show", content.run_ids[1], "-w", str(content.root), "--json"]
    )
    assert json.loads(shown.stdout)["steps"] == json.loads(expected.stdout)["steps"]
    reader = open_fast_reader(copy / "headrace.db")
    assert reader is not None  # migrated to this headrace's revision by the store
    reader.close()
    assert HEAD_REVISION


PROBE = """
import sys
from headrace.cli.main import main
sys.argv = ["headrace", *sys.argv[1:]]
try:
    main()
except SystemExit as exc:
    code = exc.code
print("LOADED", " ".join(sorted(
    m for m in ("sqlalchemy", "alembic", "pydantic", "headrace.cli.runs", "headrace.cli.server")
    if m in sys.modules
)), file=sys.stderr)
"""


def _fresh(*args: str) -> tuple[str, set[str]]:
    """`headrace ARGS` in a new interpreter: its stdout, and which heavy modules it loaded."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120
    )
    lines = done.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("LOADED"), done.stderr
    assert len(lines) == 1, done.stderr
    return done.stdout, set(lines[-1].split()[1:])


def test_read_commands_from_a_fresh_shell_do_not_import_sqlalchemy(content: Content) -> None:
    run_id = content.run_ids[1]
    workspace = ["-w", str(content.root)]
    shown, loaded = _fresh("run", "show", content.run_ids[0][:8], *workspace)
    assert loaded == {"headrace.cli.runs"}
    assert "train" in shown and "broken" in shown and "best_accuracy" in shown
    assert "about to fail" in shown  # the failed step's stderr tail
    listed, loaded = _fresh("run", "list", *workspace, "--json")
    assert loaded == {"headrace.cli.runs"}
    assert [r["id"] for r in json.loads(listed)["runs"]] == content.run_ids[::-1]
    metrics, loaded = _fresh("run", "metrics", run_id, *workspace, "--json")
    assert loaded == {"headrace.cli.runs"}
    assert {m["name"] for m in json.loads(metrics)["metrics"]} >= {"loss", "confusion", "score"}
    steps = json.loads(_fresh("run", "show", run_id, *workspace, "--json")[0])["steps"]
    broken = next(s for s in steps if s["name"] == "broken")
    step, loaded = _fresh("step", "show", broken["id"], *workspace)
    assert "headrace.cli.runs" not in loaded and "sqlalchemy" not in loaded
    assert "about to fail" in step and "Exit code" in step

    version, loaded = _fresh("--version")
    assert version.startswith("headrace ") and loaded == set()
    _, loaded = _fresh("--help")
    assert loaded == set()


def test_piped_output_without_rich_prints_what_rich_printed() -> None:
    """Piped, `console()` writes plain text itself; what it writes is what rich printed
    (trailing spaces aside), and whatever it cannot write plainly goes to rich."""
    import contextlib
    import io

    from rich.text import Text

    from headrace.cli.output import PlainTable, _rich_console, console, details_table, text

    def printed(make_console: Any, objects: list[Any]) -> str:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            for item in objects:
                make_console().print(item)
        return "\n".join(line.rstrip() for line in out.getvalue().split("\n"))

    lines = ["No runs.", "ratio 3:1 [bold]not markup[/bold] :smile:", "tab\there"]
    texts = [
        "Error: a [red] bracket and :smile: as written",
        "bell\x07 and\rcarriage",
        "two\nlines",
        "x" * 250,
        "é ✓",
    ]
    with contextlib.redirect_stdout(io.StringIO()):  # piped: text() gives PlainText
        plain_texts = [text(t) for t in texts]
        table = PlainTable("A", "B")
        table.add_row(text("one"), "two")
        grid = details_table([("Run", "abc"), ("Error", text("first\nsecond"))])
    assert printed(console, [*lines, *plain_texts, table]) == printed(
        _rich_console, [*lines, *[Text(t) for t in texts], table]
    )
    assert printed(console, [grid]) == "Run    abc\nError  first\n       second\n"


def test_quick_conversion_gives_what_typers_own_gives() -> None:
    """Every parameter of every command: where cli/params.py converts a value itself, typer's
    own (pydantic) conversion gives the same value; where it does not, typer's is used."""
    import typer
    from typer._coercion import build_runtime_param

    from headrace.cli.params import _UNKNOWN, _quick

    samples: list[Any] = [None, "5", "0", "007", "-1", "abc", "", 3, 0, -2, 2.5, True]
    samples += [("a", "b"), ["x"], (), ("a", 1)]
    root = typer.main.get_command(app)
    groups, checked = [root], 0
    while groups:
        group = groups.pop()
        ctx = typer.Context(group)
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            groups += [command] if hasattr(command, "list_commands") else []
            for param in command.params:
                if not hasattr(param, "type_descriptor"):
                    continue
                own = build_runtime_param(param.type_descriptor)
                for value in samples:
                    quick = _quick(param, value)
                    if quick is _UNKNOWN:
                        continue
                    expected = own.coerce(value, param=param, ctx=ctx)
                    assert (type(quick), quick) == (type(expected), expected), (name, value)
                    checked += 1
    assert checked > 500
