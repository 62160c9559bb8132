"""The README's and the user guide's code blocks, run or checked, so the docs cannot drift.

The README's Python runs as written, in a copy of `examples/readme` (its scripts) with its own
`HEADRACE_HOME`. The user guide's Python blocks are reference fragments (they use `ws`,
`pipeline` and `...` as placeholders), so each is checked rather than run: it is valid Python
once its `...` placeholders are, and every `import` line in it runs.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import stop_agents

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


def test_the_readme_pipeline_runs_as_written(tmp_path: Path) -> None:
    code = "\n".join(body for _line, body in blocks(REPO / "README.md", "python"))
    assert "Workspace.create(" in code and "publish(" in code, "the README lost its example"
    folder = tmp_path / "readme"
    shutil.copytree(REPO / "examples" / "readme", folder)
    home = tmp_path / "home"
    env = {**os.environ, "HEADRACE_HOME": str(home)}
    env.pop("HEADRACE_WORKSPACE", None)
    try:
        done = subprocess.run(
            [sys.executable, "-c", code],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    finally:
        stop_agents(home / "workspaces" / "my-workspace")
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    # The live logs of both steps, then train's metrics with the submitted parameter.
    assert "wrote 50 rows" in out, out
    assert "trained on 50 rows with 200 estimators" in out, out
    assert "'n_estimators': 200" in out and "'accuracy': 0.995" in out, out
    # The published pipeline's SDK v1 REST route.
    assert re.search(r"^http://127\.0\.0\.1:8765/\S+/PipelineRuns/\S+", out, re.M), out


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
