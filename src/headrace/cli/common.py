"""What every CLI command shares: the `--workspace` and `--json` options, opening the workspace
they name (a local folder or name, or a workspace served by a headrace server), and finding a
run by a prefix of its id.

Opening a local workspace that has unfinished runs makes sure an agent serves it, so a run
whose agent was killed is resumed by any later CLI call (DESIGN.md, crash safety). A remote
workspace's runs are the server's business.

Commands that only read ask `read_backend(ws)`: on a local SQLite workspace that answers from
`backend.local_reads` (stdlib sqlite3) without importing SQLAlchemy or opening the store.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from headrace.cli.env import SERVER_ENV, TOKEN_ENV, WORKSPACE_ENV
from headrace.errors import RunNotFoundError, UserError, WorkspaceNotFoundError
from headrace.sdk.workspace import Workspace
from headrace.store.records import PipelineRunRecord, Status, StepRunRecord

if TYPE_CHECKING:
    from headrace.backend.protocol import Backend

__all__ = [
    "SERVER_ENV",
    "TOKEN_ENV",
    "BearerToken",
    "JsonOption",
    "WorkspaceOption",
    "close_workspaces",
    "find_run",
    "get_pipeline_run",
    "get_step_run",
    "open_workspace",
    "read_backend",
    "remember_workspace",
    "resume_unfinished",
    "set_remote",
]


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
    """Close `workspace` when the command ends. With `--server`, a local workspace (one that a
    pipeline file opened) is refused: the command would silently act on it instead."""
    if _remote and workspace.path is not None:
        workspace.close()
        raise UserError(
            f"--server {_remote[0].url} is given, but the pipeline file builds its pipeline on "
            f"the local workspace at {workspace.path}; let the file open the served workspace "
            '(Workspace.from_config() with "server_url" in .azureml/config.json, or '
            "Workspace.get(name, url=...)), or drop --server."
        )
    _opened.append(workspace)
    return workspace


def close_workspaces() -> None:
    """Close the database connections of the workspaces opened by the command."""
    while _readers:
        _readers.popitem()[1][1].close()
    while _opened:
        _opened.pop().close()


# The fast readers of the command's workspaces: {id(workspace): (workspace, reads)}.
_readers: dict[int, tuple[Workspace, Any]] = {}


def read_backend(workspace: Workspace) -> Any:
    """What a command that only reads should ask: the workspace's backend, or, for a local
    workspace on SQLite, `LocalReads` (the same records, no SQLAlchemy; anything it does not
    answer itself goes to the backend)."""
    if workspace.path is None:
        return workspace.backend
    known = _readers.get(id(workspace))
    if known is not None and known[0] is workspace:
        return known[1]
    from headrace.backend.local_reads import open_local_reads
    from headrace.store.layout import WorkspaceLayout

    config = WorkspaceLayout(workspace.path).read_config()
    reads = open_local_reads(workspace.path, config, lambda: workspace.backend)
    if reads is None:
        return workspace.backend
    _readers[id(workspace)] = (workspace, reads)
    return reads


@dataclass(frozen=True)
class BearerToken:
    """The `auth` of a remote workspace: an API token sent as `Authorization: Bearer`."""

    token: str

    def get_authentication_header(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass(frozen=True)
class _Remote:
    url: str
    token: str | None


# The server named by the root `--server` option (or $HEADRACE_SERVER_URL) for this command.
_remote: list[_Remote] = []


def set_remote(url: str | None, token: str | None) -> None:
    """Make the command's workspaces the one served at `url` (None: local workspaces)."""
    _remote.clear()
    if url:
        _remote.append(_Remote(url.rstrip("/"), token or None))


def _open_remote(spec: str | None, remote: _Remote) -> Workspace:
    if spec and _looks_like_path(spec):
        if spec != os.environ.get(WORKSPACE_ENV):
            raise UserError(
                f"--workspace {spec} is a folder, but the command goes to the server at "
                f"{remote.url}; with --server give the served workspace's name (or nothing), or "
                "drop --server to use the folder."
            )
        spec = None  # a folder left in $HEADRACE_WORKSPACE says nothing about the server
    auth = BearerToken(remote.token) if remote.token else None
    # No name: the workspace the server serves, whatever its name (Workspace.get checks a
    # given name against the server's).
    return Workspace.get(spec, url=remote.url, auth=auth)


def _looks_like_path(spec: str) -> bool:
    return os.sep in spec or "/" in spec or spec.startswith((".", "~"))


def open_workspace(spec: str | None, *, resume: bool = True) -> Workspace:
    """The workspace named by `--workspace` (a folder, else a name), else by the config file.

    With `--workspace`, `HEADRACE_WORKSPACE` is set to its folder so that a pipeline file
    calling `Workspace.from_config()` gets the same workspace. With `--server`, the workspace
    (named by `spec`, default "default") is the one that server serves.
    """
    if _remote:
        return remember_workspace(_open_remote(spec, _remote[0]))
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
    backend = read_backend(workspace)
    if backend.list_pipeline_runs(statuses=[Status.NOT_STARTED, Status.RUNNING], limit=1):
        backend.ensure_agent()


def find_run(workspace: Workspace, run_id: str) -> PipelineRunRecord | StepRunRecord:
    """The pipeline run or step run whose id is or starts with `run_id`."""
    backend: Backend = read_backend(workspace)
    full = backend.resolve_run_id(run_id.strip())
    step = backend.find_step_run(full)
    if step is not None:
        return step
    return backend.get_pipeline_run(full)


def get_pipeline_run(workspace: Workspace, run_id: str) -> PipelineRunRecord:
    """The pipeline run `run_id` (a prefix will do); a step run id names its pipeline run."""
    found = find_run(workspace, run_id)
    if isinstance(found, StepRunRecord):
        backend: Backend = read_backend(workspace)
        return backend.get_pipeline_run(found.pipeline_run_id)
    return found


def get_step_run(workspace: Workspace, run_id: str) -> StepRunRecord:
    """The step run `run_id` (a prefix will do); a pipeline run id is refused with its steps."""
    found = find_run(workspace, run_id)
    if isinstance(found, StepRunRecord):
        return found
    steps = read_backend(workspace).list_step_runs(found.id)
    listing = ", ".join(f"{s.name} ({s.id[:8]})" for s in steps) or "none yet"
    raise RunNotFoundError(
        f"{run_id!r} is pipeline run {found.id}, not a step run; its steps: {listing}. "
        f"Use `headrace run show {found.id[:8]}` for the whole run."
    )
