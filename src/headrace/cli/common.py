"""What every CLI command shares: the `--workspace` and `--json` options, opening the workspace
they name, and finding a run by a prefix of its id.

Opening a workspace that has unfinished runs makes sure an agent serves it, so a run whose
agent was killed is resumed by any later CLI call (DESIGN.md, crash safety).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from headrace.errors import RunNotFoundError, WorkspaceNotFoundError
from headrace.sdk.workspace import Workspace
from headrace.store.records import PipelineRunRecord, Status, StepRunRecord

__all__ = [
    "JsonOption",
    "WorkspaceOption",
    "close_workspaces",
    "find_run",
    "get_pipeline_run",
    "get_step_run",
    "open_workspace",
    "remember_workspace",
    "resume_unfinished",
]

WORKSPACE_ENV = "HEADRACE_WORKSPACE"

WorkspaceOption = Annotated[
    str | None,
    typer.Option(
        "--workspace",
        "-w",
        envvar=WORKSPACE_ENV,
        show_envvar=True,
        help="Workspace folder or name (default: .azureml/config.json in this folder or above).",
    ),
]
JsonOption = Annotated[
    bool,
    typer.Option("--json", help="Print one JSON document (stable keys) instead of tables."),
]


# Workspaces a command opened; closed when it ends, so an in-process caller (tests, a
# notebook running the CLI) keeps no database connections open.
_opened: list[Workspace] = []


def remember_workspace(workspace: Workspace) -> Workspace:
    _opened.append(workspace)
    return workspace


def close_workspaces() -> None:
    """Close the database connections of the workspaces opened by the command."""
    while _opened:
        _opened.pop().close()


def _looks_like_path(spec: str) -> bool:
    return os.sep in spec or "/" in spec or spec.startswith((".", "~"))


def open_workspace(spec: str | None, *, resume: bool = True) -> Workspace:
    """The workspace named by `--workspace` (a folder, else a name), else by the config file.

    With `--workspace`, `HEADRACE_WORKSPACE` is set to its folder so that a pipeline file
    calling `Workspace.from_config()` gets the same workspace.
    """
    if spec:
        folder = Path(spec).expanduser()
        if folder.is_dir():
            workspace = Workspace(path=folder)
        elif _looks_like_path(spec):
            raise WorkspaceNotFoundError(
                f"No workspace folder at {folder.absolute()}; pass an existing workspace folder "
                "or name, or create one with `headrace workspace create NAME --path DIR`."
            )
        else:
            workspace = Workspace.get(spec)
        if workspace.path is not None:
            os.environ[WORKSPACE_ENV] = str(workspace.path)
    else:
        try:
            workspace = Workspace.from_config()
        except WorkspaceNotFoundError as exc:
            raise WorkspaceNotFoundError(
                f"{exc} Or pass --workspace PATH|NAME (or set {WORKSPACE_ENV})."
            ) from exc
    remember_workspace(workspace)
    if resume:
        resume_unfinished(workspace)
    return workspace


def resume_unfinished(workspace: Workspace) -> None:
    """Start an agent when runs wait for one (queued, or running with a dead agent)."""
    backend = workspace.backend
    if backend.list_pipeline_runs(statuses=[Status.NOT_STARTED, Status.RUNNING], limit=1):
        backend.ensure_agent()


def find_run(workspace: Workspace, run_id: str) -> PipelineRunRecord | StepRunRecord:
    """The pipeline run or step run whose id is or starts with `run_id`."""
    backend = workspace.backend
    full = backend.resolve_run_id(run_id.strip())
    step = backend.find_step_run(full)
    if step is not None:
        return step
    return backend.get_pipeline_run(full)


def get_pipeline_run(workspace: Workspace, run_id: str) -> PipelineRunRecord:
    """The pipeline run `run_id` (a prefix will do); a step run id names its pipeline run."""
    found = find_run(workspace, run_id)
    if isinstance(found, StepRunRecord):
        return workspace.backend.get_pipeline_run(found.pipeline_run_id)
    return found


def get_step_run(workspace: Workspace, run_id: str) -> StepRunRecord:
    """The step run `run_id` (a prefix will do); a pipeline run id is refused with its steps."""
    found = find_run(workspace, run_id)
    if isinstance(found, StepRunRecord):
        return found
    steps = workspace.backend.list_step_runs(found.id)
    listing = ", ".join(f"{s.name} ({s.id[:8]})" for s in steps) or "none yet"
    raise RunNotFoundError(
        f"{run_id!r} is pipeline run {found.id}, not a step run; its steps: {listing}. "
        f"Use `headrace run show {found.id[:8]}` for the whole run."
    )
