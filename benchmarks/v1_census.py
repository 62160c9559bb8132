"""How far the official SDK v1 pipeline notebooks run on headrace with only the azureml alias.

    .venv/bin/python benchmarks/v1_census.py                      # every notebook
    .venv/bin/python benchmarks/v1_census.py --limit 240 getting-started publish
    .venv/bin/python benchmarks/v1_census.py --markdown docs-table.md

Each notebook of `how-to-use-azureml/machine-learning-pipelines/` in the mirrored
Azure/MachineLearningNotebooks repository is copied with its folder (the step scripts beside
it) into a scratch folder and executed, unmodified, in a Jupyter kernel (nbclient): one cell
`%load_ext headrace.v1` is put first, the way a user turns the alias on, and the folder gets
an `.azureml/config.json` naming a fresh local workspace, so `Workspace.from_config()` finds
it. Beside it runs `headrace server` for that workspace (on a free loopback port, named by
`HEADRACE_SERVER_URL`, with a submitter token in `HEADRACE_TOKEN`), as for a user who calls
a published pipeline's REST endpoint. Every code cell runs, in order; nothing is skipped,
also not the cells that need real Azure resources: those count as failures, with the error
they raise. A notebook that runs
longer than `--limit` seconds is stopped and reported as a timeout at the cell it was in.

The table printed says, per notebook, whether it ran to the end or which cell failed first
and with what error; then the errors by how many notebooks they stop. Not part of `make test`
or `make bench`: a report to run by hand (docs/porting.md has its latest table).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
MIRROR = Path(
    os.environ.get("HEADRACE_MLN_MIRROR", "/work/.mirror/Azure+MachineLearningNotebooks/repo")
)
ROOT = "how-to-use-azureml/machine-learning-pipelines"
FIRST_CELL = "%load_ext headrace.v1"


def git(*args: str) -> bytes:
    return subprocess.run(["git", "-C", str(MIRROR), *args], check=True, capture_output=True).stdout


def notebooks() -> list[str]:
    names = git("ls-tree", "-r", "--name-only", "HEAD", ROOT).decode().splitlines()
    return sorted(n for n in names if n.endswith(".ipynb") and "/.ipynb_checkpoints/" not in n)


def copy_folder(notebook: str, into: Path) -> Path:
    """The notebook's folder (its step scripts, data files) as it is in the mirror."""
    folder = str(Path(notebook).parent)
    for name in git("ls-tree", "-r", "--name-only", "HEAD", folder).decode().splitlines():
        target = into / Path(name).relative_to(folder)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            target.write_bytes(git("show", f"HEAD:{name}"))
        except subprocess.CalledProcessError:
            continue  # a file the mirror holds only as a pointer (large data)
    return into / Path(notebook).name


def run_one(path: Path, limit: float, result_file: Path) -> None:
    """Execute one notebook (in this process, which its parent kills at the limit)."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    from headrace import Workspace

    workspace = Workspace.create("census", path=str(path.parent / "census-ws"), show_output=False)
    workspace.write_config(str(path.parent))
    server = _start_server(path.parent / "census-ws")
    notebook = nbformat.read(str(path), as_version=4)
    notebook.cells.insert(0, nbformat.v4.new_code_cell(FIRST_CELL))
    code_cells = [i for i, c in enumerate(notebook.cells) if c.cell_type == "code"]
    client = NotebookClient(
        notebook,
        timeout=limit,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    state: dict[str, Any] = {"cells": len(code_cells) - 1, "cell": None}

    def started(cell: Any, cell_index: int, **_: Any) -> None:
        # Numbered as the notebook's own code cells (the alias cell is 0).
        state["cell"] = code_cells.index(cell_index)
        state["source"] = cell.source.strip().splitlines()[:1]
        result_file.write_text(json.dumps({"status": "running", **state}))

    client.on_cell_execute = started

    def out_of_time(*_: Any) -> None:
        raise TimeoutError(f"timeout: still running after {limit:.0f} s")

    # The whole notebook's limit; nbclient then shuts its kernel down on the way out.
    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(int(limit))
    try:
        client.execute()
    except CellExecutionError as exc:
        # The first two lines: a PipelineValidationError's first problem is on its second.
        error = " ".join(f"{exc.ename}: {exc.evalue}".strip().splitlines()[:2])
        state.update(status="failed", error=error[:300] or "?")
    except Exception as exc:  # a kernel that died, a timeout of nbclient's own
        state.update(status="failed", error=f"{type(exc).__name__}: {exc}".splitlines()[0][:300])
    else:
        state.update(status="ran to the end")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait()
    result_file.write_text(json.dumps(state))


def _start_server(workspace: Path) -> subprocess.Popen[bytes]:
    """`headrace server` for the workspace; its URL and a token go to the kernel's environment."""
    import socket
    import urllib.request

    headrace = str(Path(sys.executable).with_name("headrace"))
    created = subprocess.run(
        [headrace, "token", "create", "--name", "census", "--workspace", str(workspace), "--json"],
        check=True,
        capture_output=True,
        text=True,
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    os.environ["HEADRACE_SERVER_URL"] = url
    os.environ["HEADRACE_TOKEN"] = json.loads(created.stdout)["token"]
    import pwd

    me = pwd.getpwuid(os.getuid()).pw_name  # steps run as the census's own user
    server = subprocess.Popen(
        [headrace, "server", "--workspace", str(workspace), "--port", str(port), "--step-user", me],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return server
        except OSError:
            time.sleep(0.2)
    return server  # not up: the notebook's REST calls will say so


def census(names: list[str], limit: float) -> list[dict[str, Any]]:
    results = []
    scratch = Path(tempfile.mkdtemp(prefix="headrace-census-"))
    env = {**os.environ, "HEADRACE_HOME": str(scratch / "home"), "PYTHONUNBUFFERED": "1"}
    for name in names:
        folder = scratch / Path(name).stem
        path = copy_folder(name, folder)
        result_file = folder / "census-result.json"
        start = time.monotonic()
        child = subprocess.Popen(
            [sys.executable, __file__, "--run-one", str(path), "--limit", str(limit)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            child.wait(timeout=limit + 60)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
        _stop_agent(folder / "census-ws")
        try:
            state = json.loads(result_file.read_text())
        except (OSError, ValueError):
            state = {"status": "failed", "error": "the kernel did not start", "cell": None}
        if state["status"] == "running":
            state.update(status="failed", error=f"timeout: still running after {limit:.0f} s")
        state["notebook"] = name.removeprefix(ROOT + "/")
        state["seconds"] = time.monotonic() - start
        results.append(state)
        print(_line(state), flush=True)
    shutil.rmtree(scratch, ignore_errors=True)
    return results


def _stop_agent(workspace: Path) -> None:
    lock = workspace / "agent" / "agent.lock"
    try:
        pid = int(lock.read_text().strip() or 0)
    except (OSError, ValueError):
        return
    if pid:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass


def _line(state: dict[str, Any]) -> str:
    if state["status"] == "ran to the end":
        return f"{state['notebook']}: ran to the end ({state['cells']} cells)"
    where = f"cell {state['cell']} of {state.get('cells', '?')}" if state["cell"] else "start"
    return f"{state['notebook']}: {where}: {state['error']}"


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| Notebook | Result | First failing cell | Error |",
        "|---|---|---|---|",
    ]
    for r in results:
        if r["status"] == "ran to the end":
            lines.append(f"| {r['notebook']} | ran to the end ({r['cells']} cells) | | |")
        else:
            cell = f"{r['cell']} of {r.get('cells', '?')}" if r["cell"] else "-"
            error = str(r["error"]).replace("|", "\\|")
            lines.append(f"| {r['notebook']} | failed | {cell} | `{error}` |")
    ended = sum(r["status"] == "ran to the end" for r in results)
    lines += ["", f"{ended} of {len(results)} ran to the end.", ""]
    kinds: dict[str, list[str]] = {}
    for r in results:
        if r["status"] != "ran to the end":
            kinds.setdefault(_kind(str(r["error"])), []).append(Path(r["notebook"]).stem)
    lines += ["| What stopped it | Notebooks | Which |", "|---|---|---|"]
    for kind, stopped in sorted(kinds.items(), key=lambda kv: -len(kv[1])):
        lines.append(f"| {kind} | {len(stopped)} | {', '.join(stopped)} |")
    return "\n".join(lines)


NETWORK = ("ConnectionError", "URLError", "Name or service not known", "NameResolutionError")
AZURE = ("DefaultAzureCredential", "<my-", "No module named 'msrest'", "azure_data_lake")


def _kind(error: str) -> str:
    """What kind of thing stopped a notebook, to count notebooks stopped alike."""
    name = error.split(":", 1)[0]
    if any(marker in error for marker in NETWORK):
        return "data from the internet (this machine has none)"
    if any(marker in error for marker in AZURE):
        return "real Azure resources or credentials (placeholders, Azure clients, ADLS)"
    if name == "NotInHeadraceError":
        return "a name that is not part of headrace (the message says what instead)"
    if name == "NotYetImplementedError":
        return "a name headrace plans (Schedule, ...)"
    if name == "ModuleNotFoundError":
        return "a package the notebook needs is not installed"
    if error.startswith("timeout"):
        return "the time limit"
    return f"`{error[:90]}`".replace("|", "\\|")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("match", nargs="*", help="only notebooks whose path contains one")
    parser.add_argument("--limit", type=float, default=240, help="seconds per notebook")
    parser.add_argument("--markdown", help="also write the table to this file")
    parser.add_argument("--run-one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_one:
        path = Path(args.run_one)
        run_one(path, args.limit, path.parent / "census-result.json")
        return 0
    names = [n for n in notebooks() if not args.match or any(m in n for m in args.match)]
    results = census(names, args.limit)
    report = table(results)
    print("\n" + report)
    if args.markdown:
        Path(args.markdown).write_text(report + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
