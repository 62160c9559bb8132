"""The README's and the user guide's code blocks, run or checked, so the docs cannot drift.

The README's Python runs as written, in a copy of `examples/readme` (its scripts) with its own
`HEADRACE_HOME`, then its shell lines (a token, curl to the published pipeline) against a real
`headrace server`. Every Python block of the user guide is valid Python (once its `...`
placeholders are) and its `import` lines run; the blocks that stand on their own run, in order,
in one interpreter, and those that continue the reader's own objects (a pipeline, a run, files,
a server elsewhere) are listed in FRAGMENTS with why.
"""

from __future__ import annotations

import ast
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
from pathlib import Path

import tomllib

from headrace import PipelineRun, Workspace
from tests.conftest import stop_agents
from tests.servers import ServerProcess

REPO = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def blocks(doc: Path, language: str) -> list[tuple[int, str]]:
    """The fenced code blocks of a Markdown file in `language`, with their first line number."""
    text = doc.read_text()
    return [
        (text[: m.start()].count("\n") + 2, m.group(2))
        for m in FENCE.finditer(text)
        if m.group(1) == language
    ]


def test_the_readme_pipeline_runs_as_written_and_its_published_pipeline_takes_curl(
    tmp_path: Path,
) -> None:
    code = "\n".join(body for _line, body in blocks(REPO / "README.md", "python"))
    assert "Workspace.create(" in code and "publish(" in code, "the README lost its example"
    (shell,) = [body for _line, body in blocks(REPO / "README.md", "bash") if "curl" in body]
    folder = tmp_path / "readme"
    shutil.copytree(REPO / "examples" / "readme", folder)
    home = tmp_path / "home"
    # The server the README starts in the background (`headrace server --workspace
    # my-workspace &`) is started here instead, on a free port and waited for; the endpoint
    # the README prints names that port through $HEADRACE_SERVER_URL.
    me = pwd.getpwuid(os.geteuid()).pw_name
    server = ServerProcess(
        Path("my-workspace"), "--step-user", me, env={"HEADRACE_HOME": str(home)}
    )
    env = {
        **os.environ,
        "HEADRACE_HOME": str(home),
        "HEADRACE_SERVER_URL": server.url,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.pop("HEADRACE_WORKSPACE", None)
    root = home / "workspaces" / "my-workspace"
    try:
        done = run_text([sys.executable, "-c", code], folder, env)
        out = done.stdout
        assert done.returncode == 0, out + done.stderr
        # The live logs of both steps, then train's metrics with the submitted parameter.
        assert "wrote 50 rows" in out, out
        assert "trained on 50 rows with 200 estimators" in out, out
        assert "'n_estimators': 200" in out and "'accuracy': 0.995" in out, out
        # The published pipeline's SDK v1 REST route, then the README's shell lines.
        endpoint = re.search(rf"^{re.escape(server.url)}/\S+/PipelineRuns/\S+", out, re.M)
        assert endpoint, out
        lines = [line for line in shell.splitlines() if not line.startswith("headrace server")]
        with server:
            posted = run_text(
                ["bash", "-euc", "\n".join(lines)], folder, {**env, "ENDPOINT": endpoint[0]}
            )
            assert posted.returncode == 0, posted.stdout + posted.stderr
            run_id = json.loads(posted.stdout)["Id"]
            run = PipelineRun.get(Workspace(path=root), run_id)
            assert run.wait_for_completion(show_output=False, timeout_seconds=120) == "Finished"
            (train,) = run.find_step_run("train.py")
            assert train.get_metrics()["n_estimators"] == 300
    finally:
        stop_agents(root)


def run_text(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=180, check=False
    )


def test_the_readme_and_the_demo_claim_different_workspace_names() -> None:
    readme = "\n".join(body for _line, body in blocks(REPO / "README.md", "python"))
    demo = (REPO / "examples" / "compare_models" / "run_demo.py").read_text()
    named = set(re.findall(r"Workspace\.create\(\"([^\"]+)\"", readme))
    assert named == {"my-workspace"}, named
    assert 'WORKSPACE_NAME = "compare-models"' in demo


def placeholders_filled(code: str) -> str:
    """`f(a, x=1, ...)` is how the guide says "and the other arguments"; as Python, `**{}`."""
    return re.sub(r",\s*\.\.\.\s*\)", ", **{})", code)


def test_every_user_guide_python_block_parses_and_its_imports_run() -> None:
    guide = blocks(REPO / "docs" / "user-guide.md", "python")
    assert len(guide) > 30, "the user guide lost its Python blocks"
    problems: list[str] = []
    imports: list[tuple[int, str]] = []
    for line, code in guide:
        try:
            tree = ast.parse(placeholders_filled(code))
        except SyntaxError as exc:
            problems.append(f"line {line + (exc.lineno or 1) - 1}: {exc.msg}")
            continue
        imports += [
            (line + node.lineno - 1, ast.unparse(node))
            for node in tree.body
            if isinstance(node, ast.Import | ast.ImportFrom)
            and imported_root(node) in {"headrace", "azureml"}
        ]
    assert len(imports) > 30, imports
    # One fresh interpreter for all of them; `azureml` spellings through the SDK v1 alias.
    program = "\n".join(
        [
            "import headrace.v1",
            "headrace.v1.install()",
            *(
                f"try:\n    {statement}\n"
                f"except Exception as exc:\n    print({line}, repr({statement!r}), exc)"
                for line, statement in imports
            ),
        ]
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    problems += [f"line {fail}" for fail in done.stdout.splitlines()]
    assert not problems, "docs/user-guide.md:\n" + "\n".join(problems)


def imported_root(node: ast.Import | ast.ImportFrom) -> str:
    name = node.module or "" if isinstance(node, ast.ImportFrom) else node.names[0].name
    return name.split(".")[0]


def test_the_all_extra_holds_every_user_extra() -> None:
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    (spec,) = extras["all"]
    found = re.fullmatch(r"headrace\[([\w,-]+)\]", spec)
    assert found, spec
    named = set(found.group(1).split(","))
    users = set(extras) - {"all", "dev"}
    assert named == users, f"the all extra misses {users - named}, or names {named - users}"


# The guide's blocks that continue the reader's own objects. Those in CONTINUED run after the
# self-standing blocks, in order, once tests/docs_reader.py has made the objects they name (with
# the reader's values in READER_VALUES); those in FRAGMENTS are only parsed and their imports
# run, each for the reason given. A new block must run, or be listed here.
CONTINUED = {
    'upload_files(["data/titanic.csv"]': "uploads the reader's files",
    '"mnist/**/*.png"': "reads the reader's image files",
    "images.mount()": "mounts the reader's dataset",
    "people.register(": "registers the reader's dataset",
    'PipelineParameter("lr"': "continues the reader's experiment (`exp`, `pipeline`)",
    "runconfig=run_config": "continues the reader's run configuration",
    "b.run_after(a)": "continues the reader's steps",
    'Experiment(ws, "titanic").submit(pipeline': "submits the reader's pipeline",
    'PipelineRun.get(ws, "909a6469")': "reads a run of the reader's",
    'model_path="models/"': "registers the reader's model files",
    "pipeline.publish(": "publishes the reader's pipeline",
    "PipelineEndpoint.publish(": "publishes the reader's pipeline",
    "ScheduleRecurrence(": "schedules the reader's published pipeline",
    "RunTrigger.create(": "chains the reader's published pipelines",
}
READER_VALUES = {  # the reader's values, from tests/docs_reader.py; `{...}`: "your values"
    '"909a6469"': "run.id[:8]",
    '"https://example.org/data/iris.csv"': "iris_url",
    '"/data/incoming/*.csv"': "incoming",
    'update(tags={...}, description="...")': 'update(tags={"stage": "dev"}, description="v2")',
}


def reader_values(code: str) -> str:
    for value, reader in READER_VALUES.items():
        code = code.replace(value, reader)
    return code


FRAGMENTS = {
    'url="http://server:8765"': "needs a headrace server at http://server:8765",
    'DataPath(ds, "raw/2024")': "submits the reader's pipeline with a DataPath parameter",
    'run.find_step_run("prepare")': "reads the output of a run of the reader's",
    'images.as_named_input("images")': "submits the reader's pipeline with a dataset parameter",
    "Run.get_context().input_datasets": "runs inside a step",
    "# jobs/totals.py": "a Spark job script, run by a SparkStep",
    "TransferCompute.provisioning_configuration": "copies between the reader's S3 datastores",
    "RayCompute.attach_configuration": "needs a Ray cluster at 10.0.0.5",
    "# train.py, a PythonScriptStep's script": "runs inside a step",
    "run.register_model(": "runs inside a step",
    'Schedule.create(ws, "on-new-data"': "watches the reader's S3 datastore s3data",
    "Notification.webhook(": "sends a test message to Slack",
}


def test_the_user_guide_python_blocks_run_unless_they_continue_the_readers_code(
    tmp_path: Path,
) -> None:
    guide = blocks(REPO / "docs" / "user-guide.md", "python")
    phrases = {**CONTINUED, **FRAGMENTS}
    used = {phrase for phrase in phrases if any(phrase in code for _line, code in guide)}
    assert used == set(phrases), f"no longer in the guide: {set(phrases) - used}"
    runnable = [(n, c) for n, c in guide if not any(p in c for p in phrases)]
    continued = [
        (line, reader_values(code))
        for line, code in guide
        if any(p in code for p in CONTINUED) and not any(p in code for p in FRAGMENTS)
    ]
    assert len(runnable) >= 10 and len(continued) >= len(CONTINUED), (runnable, continued)
    reader = (REPO / "tests" / "docs_reader.py").read_text()

    def attempt(code: str, where: str) -> str:
        return (
            f"try:\n    exec(compile({placeholders_filled(code)!r}, {where!r}, 'exec'))\n"
            "except Exception:\n    failed += 1; traceback.print_exc(limit=-1)"
        )

    program = "\n".join(
        [
            "import sys, traceback",
            "import headrace.v1",
            "headrace.v1.install()",
            "failed = 0",
            *(attempt(code, f"docs/user-guide.md:{line}") for line, code in runnable),
            f"exec(compile({reader!r}, 'tests/docs_reader.py', 'exec'))",
            *(attempt(code, f"docs/user-guide.md:{line}") for line, code in continued),
            "sys.exit(failed)",
        ]
    )
    env = {**os.environ, "HEADRACE_HOME": str(tmp_path / "home")}
    env.pop("HEADRACE_WORKSPACE", None)
    try:
        done = run_text([sys.executable, "-c", program], tmp_path, env)
    finally:
        stop_agents(tmp_path / "ws")
    assert done.returncode == 0, done.stderr[-6000:]
