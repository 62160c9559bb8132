"""`headrace environment list|show`: registered environments (`Environment.register(ws)`,
`Environment.list(ws)`, `Environment.get(ws, name, version)`), with what a step using one
runs in."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from headrace.cli.common import JsonOption, WorkspaceOption, open_workspace
from headrace.cli.output import console, details_table, format_time, new_table, print_json
from headrace.engine.environments import describe_environment
from headrace.errors import UserError
from headrace.sdk.environment import Environment

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True, help="List and show registered environments.")


def _document(env: Environment) -> dict[str, Any]:
    try:
        spec = env.spec()
        runs_in = describe_environment(spec) if spec else "the Python that submits the run"
    except UserError as exc:  # registered before a rule refused it: say why
        spec, runs_in = None, f"cannot be built: {exc}"
    return {
        "name": env.name,
        "version": env.version,
        "runs_in": runs_in,
        "spec": spec,
        "definition": env._definition(),
    }


@app.command("list")
def list_(workspace: WorkspaceOption = None, json_: JsonOption = False) -> None:
    """The latest version of every registered environment."""
    found = Environment.list(open_workspace(workspace))
    documents = [_document(env) for env in found.values()]
    if json_:
        print_json(documents)
        return
    table = new_table("NAME", "VERSION", "RUNS IN")
    for doc in documents:
        table.add_row(doc["name"], str(doc["version"]), doc["runs_in"])
    console().print(table)


@app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="The environment's name.")],
    version: Annotated[int | None, typer.Option(help="A version (default: the latest).")] = None,
    workspace: WorkspaceOption = None,
    json_: JsonOption = False,
) -> None:
    """One registered environment: its packages, and what a step using it runs in."""
    ws = open_workspace(workspace)
    env = Environment.get(ws, name, version)
    doc = _document(env)
    record = ws.backend.get_environment(name, int(env.version or 0) or None)
    doc["created_at"] = record.created_at
    if json_:
        print_json(doc)
        return
    deps = env.python.conda_dependencies
    rows = [
        ("Environment", f"{env.name} (version {env.version})"),
        ("Registered", format_time(record.created_at)),
        ("Runs in", doc["runs_in"]),
        ("Pip packages", ", ".join(deps.pip_packages) or "-"),
        ("Conda packages", ", ".join(deps.conda_packages) or "-"),
        ("Python", deps.python_version or "-"),
        ("User-managed", str(env.python.user_managed_dependencies)),
    ]
    if env.environment_variables:
        variables = ", ".join(f"{k}={v}" for k, v in env.environment_variables.items())
        rows.append(("Variables", variables))
    console().print(details_table(rows))
