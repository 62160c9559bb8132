"""The README's and the user guide's code blocks, run or checked, so the docs cannot drift.

The README's Python runs as written, in a copy of `examples/readme` (its scripts) with its own
`HEADRACE_HOME`, then its shell lines (a token, curl to the published pipeline) against a real
`headrace server`. The user guide's Python blocks are reference fragments (they use `ws`,
`pipeline` and `...` as placeholders), so each is checked rather than run: it is valid Python
once its `...` placeholders are, and every `import` line in it runs.
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
