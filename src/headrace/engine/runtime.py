"""The step runtime contract: what a step's script sees, and how its results are kept.

`prepare` builds one attempt of a step: a working folder materialized from the source
snapshot (the script's cwd), inputs resolved to absolute paths (a datastore folder on this
machine is handed over by path, no copy; download mode copies), output folders created in a
staging place, placeholders in the arguments replaced by paths and parameter values, and the
environment variables SDK v1 scripts read. `finalize` runs after the process ends: on success
the staged outputs are renamed into place (so a failed or killed step never leaves output a
later step could take as valid), `./outputs` and `./logs` become run files, and the working
folder is removed.

A datastore in object storage (S3, Azure Blob, GCS) has no local path: its inputs are
downloaded into the working folder in mount and download mode (by the node, for an executor
that runs steps elsewhere and a datastore that machine can open: `fetch_remotely`). In
"direct" mode (the inputs of a step that reads object storage itself, a SqlStep) nothing is
downloaded: the input is its URI (`s3://bucket/path`) and `HEADRACE_DATASTORE_<port>` holds
the datastore's handle (its registration, credential references but never values) for the
step's process to open it with `open_object_datastore`. On a local datastore "direct" is
mount. Its outputs are staged in a local folder next to the working folder and uploaded to their
datastore path by `finalize`, only on success. Uploading happens in `finalize`, so a big
output holds up the caller (the agent's loop) while it transfers.

Executors call these two functions around whatever actually runs the process.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from headrace.engine.environments import step_argv
from headrace.engine.workfolders import FileStamps, WorkFolders
from headrace.graph import placeholders
from headrace.graph.model import StepNode
from headrace.store.artifacts import STDERR_LOG, STDOUT_LOG
from headrace.store.journal import JOURNAL_NAME
from headrace.store.objectstores import ObjectDatastoreFiles
from headrace.store.workspace_store import WorkspaceStore

__all__ = [
    "PreparedStep",
    "ResolvedData",
    "StepTask",
    "discard",
    "discard_run",
    "env_name",
    "finalize",
    "parameter_text",
    "pipeline_data_path",
    "prepare",
]

STAGING = ".headrace/staging"
RUN_TOKEN_SECONDS = 24 * 3600  # a step's token outlives it by an hour; 24 h without a timeout


def _work_dir(ws: WorkspaceStore, task: StepTask) -> Path:
    """The attempt's working folder, under its pipeline run's (see `discard_run`)."""
    return ws.layout.work_dir / task.pipeline_run_id / f"{task.step_run_id}-{task.attempt}"


def _staging(task: StepTask, port: str) -> str:
    """Where the attempt stages output `port` on its datastore, under its pipeline run's
    staging folder: one folder per output, so staging one makes one directory."""
    return f"{STAGING}/{task.pipeline_run_id}/{task.step_run_id}-{task.attempt}-{port}"


def _object_staging(ws: WorkspaceStore, task: StepTask, port: str) -> Path:
    """Where an attempt stages an output bound for an object store: on this machine, under
    its pipeline run's working folder (so `discard_run` removes it too)."""
    return _work_dir(ws, task).with_name(f"{task.step_run_id}-{task.attempt}.out") / port


def pipeline_data_path(step_run_id: str, output_name: str) -> str:
    """Where a step's output lives on its datastore (SDK v1's PortDataReference path)."""
    return f"azureml/{step_run_id}/{output_name}"


def parameter_text(value: Any) -> str:
    """A parameter value as a script receives it (SDK v1 passes `str(value)`)."""
    if isinstance(value, dict) and "datastore" in value:
        return str(value.get("path") or "")
    return str(value)


@dataclass(frozen=True)
class ResolvedData:
    """An input or output of one step run, placed on a datastore."""

    port: str
    data_name: str
    datastore: str
    path_on_datastore: str
    mode: str = "mount"
    path_on_compute: str | None = None
    overwrite: bool = False


@dataclass(frozen=True)
class StepTask:
    """Everything needed to run one attempt of a step."""

    step_run_id: str
    pipeline_run_id: str
    attempt: int
    experiment_name: str
    node: StepNode
    parameters: dict[str, Any]
    inputs: tuple[ResolvedData, ...]
    outputs: tuple[ResolvedData, ...]


@dataclass
class Fetch:
    """An object-store input the step's node downloads itself (`prepare(fetch_remotely=True)`,
    Ray): the datastore's handle (credential references, never values), the input's URI,
    the folder it lands in, and (datastore path, destination) pairs listed by the agent."""

    port: str
    handle: str
    uri: str
    folder: Path
    pairs: list[tuple[str, Path]]


@dataclass
class PreparedStep:
    task: StepTask
    argv: list[str]
    display_argv: list[str]
    cwd: Path
    env: dict[str, str]
    stdout_path: Path
    stderr_path: Path
    staged_outputs: dict[str, Path] = field(default_factory=dict)
    snapshot_files: FileStamps = field(default_factory=dict)  # what `cwd` was made with
    input_paths: dict[str, str] = field(default_factory=dict)  # port -> where the step reads it
    fetches: list[Fetch] = field(default_factory=list)  # inputs left for the node to download


def env_name(name: str) -> str:
    """`name` as part of an environment variable's name (AML_PARAMETER_<name>)."""
    return "".join(c if c.isalnum() or c == "_" else "_" for c in name)


def prepare(
    ws: WorkspaceStore,
    task: StepTask,
    folders: WorkFolders | None = None,
    python: str = sys.executable,
    *,
    fetch_remotely: bool = False,
) -> PreparedStep:
    """Set up one attempt of a step and return how to start its process.

    With `fetch_remotely` (an executor whose steps run on another machine), inputs on an
    object store that any machine can open (credentials from the environment or none) are
    listed here but not downloaded: the executor's node downloads them (`fetches`).
    """
    node = task.node
    folders = folders or WorkFolders(_remove_now)
    cwd = _work_dir(ws, task)
    if cwd.exists():
        shutil.rmtree(cwd)
    cwd.parent.mkdir(parents=True, exist_ok=True)
    stamps: FileStamps = {}
    if node.snapshot_id:
        stamps = folders.make(ws.artifacts, task.pipeline_run_id, node.snapshot_id, cwd)
    else:
        cwd.mkdir()

    paths: dict[str, str] = {}
    env_paths: dict[str, str] = {}
    handles: dict[str, str] = {}
    fetches: list[Fetch] = []
    for item in task.inputs:
        files = ws.datastore_files(item.datastore)
        if item.mode == "direct" and isinstance(files, ObjectDatastoreFiles):
            path = files.uri(item.path_on_datastore)
            handles[item.port] = handles[item.data_name] = files.handle
        else:
            path, fetch = _resolve_input(ws, item, cwd, fetch_remotely)
            if fetch is not None:
                fetches.append(fetch)
        paths[item.port] = path
        env_paths[item.port] = env_paths[item.data_name] = path
    staged: dict[str, Path] = {}
    for item in task.outputs:
        files = ws.datastore_files(item.datastore)
        if item.mode == "upload":
            target = cwd / (item.path_on_compute or item.port)
        else:
            target = (
                files.local_path(_staging(task, item.port))
                if files.is_local
                else _object_staging(ws, task, item.port)
            )
            if target.exists():
                shutil.rmtree(target)
        target.mkdir(parents=True, exist_ok=True)
        staged[item.port] = target
        paths[item.port] = str(target)
        env_paths[item.port] = env_paths[item.data_name] = str(target)

    values = {name: parameter_text(v) for name, v in task.parameters.items()}
    args = [placeholders.expand(a, paths, values) for a in node.arguments]

    run_dir = ws.artifacts.run_dir(task.step_run_id)
    _make_dirs(run_dir, run_dir / "user_logs")
    journal = run_dir / JOURNAL_NAME
    if journal.exists():
        # An earlier attempt's entries were recorded when it ended (or died with its agent);
        # each attempt writes a journal of its own, so none is recorded twice.
        os.replace(journal, journal.with_name(f"journal.attempt-{task.attempt - 1}.jsonl"))
    env = _environment(ws, task, env_paths, values, python, run_dir)
    for name, handle in handles.items():
        env[f"HEADRACE_DATASTORE_{env_name(name)}"] = handle
    if node.kind == "command":
        command = placeholders.expand(node.command or "", paths, values)
        argv = ["/bin/sh", "-c", command]
        display = [command]
    else:
        script_argv = [node.script_name or "", *args]
        argv = step_argv(node.environment, python, script_argv, run_dir / STDERR_LOG, task.attempt)
        display = ["python", node.script_name or "", *args]
    return PreparedStep(
        task=task,
        argv=argv,
        display_argv=display,
        cwd=cwd,
        env=env,
        stdout_path=run_dir / STDOUT_LOG,
        stderr_path=run_dir / STDERR_LOG,
        staged_outputs=staged,
        snapshot_files=stamps,
        input_paths={item.port: paths[item.port] for item in task.inputs},
        fetches=fetches,
    )


def _resolve_input(
    ws: WorkspaceStore, item: ResolvedData, cwd: Path, fetch_remotely: bool = False
) -> tuple[str, Fetch | None]:
    """Where the step reads an input, after downloading it if it must be (or, with
    `fetch_remotely` and an object store any machine can open, what its node downloads)."""
    files = ws.datastore_files(item.datastore)
    if item.mode != "download" and files.is_local:
        return str(files.local_path(item.path_on_datastore)), None
    base = cwd / (item.path_on_compute or item.port)
    listing = files.list_files(item.path_on_datastore)
    prefix = item.path_on_datastore.strip("/")
    if files.is_local:
        is_file = files.local_path(item.path_on_datastore).is_file()
    else:
        is_file = len(listing) == 1 and listing[0][0] == prefix
    if is_file:
        target = base / posixpath.basename(prefix)
        pairs = [(item.path_on_datastore, target)]
    else:
        target = base
        pairs = [
            (rel, base / (rel[len(prefix) :].lstrip("/") if prefix else rel)) for rel, _ in listing
        ]
    if fetch_remotely and isinstance(files, ObjectDatastoreFiles) and files.opens_anywhere:
        uri = files.uri(item.path_on_datastore)
        return str(target), Fetch(item.port, files.handle, uri, base, pairs)
    files.download_many(pairs)
    base.mkdir(parents=True, exist_ok=True)
    return str(target), None


def _environment(
    ws: WorkspaceStore,
    task: StepTask,
    data_paths: dict[str, str],
    values: dict[str, str],
    python: str,
    run_dir: Path,
) -> dict[str, str]:
    node = task.node
    env = dict(os.environ)
    # `python` in a CommandStep means the interpreter headrace runs steps with.
    env["PATH"] = os.path.dirname(python) + os.pathsep + env.get("PATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    for name, value in values.items():
        env[f"AML_PARAMETER_{env_name(name)}"] = value
    for name, path in data_paths.items():
        env[f"AZUREML_DATAREFERENCE_{env_name(name)}"] = path
    for key, raw in node.params:
        env[f"AML_PARAMETER_{env_name(key)}"] = placeholders.expand(raw, data_paths, values)
    for key, raw in node.environment_variables:
        env[key] = placeholders.expand(raw, data_paths, values)
    cfg = ws.config
    env.update(
        {
            "AZUREML_RUN_ID": task.step_run_id,
            "AZUREML_ARM_WORKSPACE_NAME": ws.name,
            "AZUREML_ARM_PROJECT_NAME": task.experiment_name,
            "AZUREML_ARM_SUBSCRIPTION": cfg.get("subscription_id") or "",
            "AZUREML_ARM_RESOURCEGROUP": cfg.get("resource_group") or "",
            "HEADRACE_RUN_ID": task.step_run_id,
            "HEADRACE_PIPELINE_RUN_ID": task.pipeline_run_id,
            "HEADRACE_EXPERIMENT": task.experiment_name,
            "HEADRACE_STEP_NAME": node.name,
            "HEADRACE_ATTEMPT": str(task.attempt),
            "HEADRACE_WORKSPACE": str(ws.root),
            "HEADRACE_RUN_DIR": str(run_dir),
            "HEADRACE_PIPELINE_RUN_DIR": str(ws.artifacts.run_dir(task.pipeline_run_id)),
        }
    )
    server_url = os.environ.get("HEADRACE_SERVER_URL")
    if server_url:
        # Served by `headrace server`: the script may log through it with a token that is
        # good only on this step run's routes (a script on another machine cannot reach
        # HEADRACE_RUN_DIR). No server, no token row.
        env["HEADRACE_SERVER_URL"] = server_url
        env["HEADRACE_RUN_TOKEN"] = _run_token(ws, task)
    return env


def _run_token(ws: WorkspaceStore, task: StepTask) -> str:
    import uuid
    from datetime import datetime, timedelta, timezone

    from headrace.store.tokens import hash_secret, new_secret

    lifetime = task.node.timeout_seconds or RUN_TOKEN_SECONDS
    secret = new_secret(ws.meta.workspace_info())
    ws.meta.create_token(
        name=f"run-{task.step_run_id}-{task.attempt}-{uuid.uuid4().hex[:8]}",
        role="submitter",
        token_hash=hash_secret(secret),
        expires_at=datetime.now(timezone.utc) + timedelta(seconds=lifetime + 3600),
        scope_run_id=task.step_run_id,
    )
    return secret


def _make_dirs(*paths: Path) -> None:
    """Make each folder in turn (each the parent of the next); one mkdir each when new
    (`mkdir(parents=True)` first fails on the missing parent, then retries)."""
    for path in paths:
        try:
            path.mkdir()
        except FileExistsError:
            continue
        except FileNotFoundError:
            path.mkdir(parents=True, exist_ok=True)


def _remove_now(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def finalize(
    ws: WorkspaceStore,
    prepared: PreparedStep,
    succeeded: bool,
    folders: WorkFolders | None = None,
) -> None:
    """Keep the attempt's results.

    On success each staged output is renamed to its final datastore path. On failure staged
    outputs are deleted. Either way `./outputs` and `./logs` become run files and the working
    folder is removed or kept for the next attempt (by `folders`, which removes in the
    agent's idle moments). Both folders are named after the attempt, so nothing reads them
    once this returns.
    """
    task = prepared.task
    folders = folders or WorkFolders(_remove_now)
    try:
        if succeeded:
            _commit_outputs(ws, prepared)
        for folder in ("outputs", "logs"):
            source = prepared.cwd / folder
            if source.is_dir():
                ws.artifacts.move_tree(task.step_run_id, source, folder)
                if folder not in prepared.snapshot_files:
                    with contextlib.suppress(OSError):
                        source.rmdir()  # emptied: the working folder may be reused
    finally:
        for item in task.outputs:
            staged = prepared.staged_outputs[item.port]
            if item.mode != "upload" and staged.exists():  # failed, or uploaded
                folders.remove(staged)
        folders.release(
            task.pipeline_run_id, task.node.snapshot_id, prepared.cwd, prepared.snapshot_files
        )


def _commit_outputs(ws: WorkspaceStore, prepared: PreparedStep) -> None:
    """Put each staged output at its datastore path, replacing what an earlier attempt that
    died between commit and record left: on a local datastore a rename on the same
    filesystem (never a copy), on an object store an upload. All or none: when one cannot
    be kept, those already committed are removed again before the error goes on."""
    committed: list[ResolvedData] = []
    try:
        for item in prepared.task.outputs:
            files = ws.datastore_files(item.datastore)
            files.replace_tree(prepared.staged_outputs[item.port], item.path_on_datastore)
            committed.append(item)
    except BaseException:
        for item in committed:
            with contextlib.suppress(Exception):
                ws.datastore_files(item.datastore).remove_tree(item.path_on_datastore)
        raise


def discard(ws: WorkspaceStore, task: StepTask) -> None:
    """Remove what an interrupted attempt left: its working folder and staged outputs."""
    shutil.rmtree(_work_dir(ws, task), ignore_errors=True)
    shutil.rmtree(_object_staging(ws, task, "x").parent, ignore_errors=True)
    for item in task.outputs:
        try:
            files = ws.datastore_files(item.datastore)
            if files.is_local:
                shutil.rmtree(files.local_path(_staging(task, item.port)), ignore_errors=True)
        except Exception:  # noqa: S112  # best effort cleanup of a datastore that may be gone
            continue


def discard_run(ws: WorkspaceStore, pipeline_run_id: str, datastores: set[str]) -> None:
    """Remove every working folder and staged output of a pipeline run.

    After an agent died this also catches attempts it started but never recorded; after a
    run ends it removes the run's (by then empty) folders.
    """
    shutil.rmtree(ws.layout.work_dir / pipeline_run_id, ignore_errors=True)
    for name in datastores:
        try:
            files = ws.datastore_files(name)
            if files.is_local:
                shutil.rmtree(files.local_path(f"{STAGING}/{pipeline_run_id}"), ignore_errors=True)
        except Exception:  # noqa: S112  # best effort cleanup of a datastore that may be gone
            continue
