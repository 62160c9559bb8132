"""What an attempt leaves behind: its outputs kept when it succeeded (`finalize`), or removed
with its working folders (`discard` for one attempt, `discard_run` for a whole run).

`engine/runtime.py` prepares an attempt; the agent calls these when it ends, when it is
adopted after its agent died (engine/reaper.py: `finalize` may run twice), and when a run
ends.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from pathlib import Path

from headrace.engine.runtime import (
    STAGING,
    PreparedStep,
    ResolvedData,
    StepTask,
    _object_staging,
    _staging,
    _work_dir,
    scratch_dir,
)
from headrace.engine.workfolders import WorkFolders
from headrace.store.workspace_store import WorkspaceStore

log = logging.getLogger("headrace.agent")

__all__ = ["discard", "discard_run", "finalize", "keep_snapshot_files"]


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
        scratch = scratch_dir(ws, task)
        if scratch in prepared.writable:
            folders.remove(scratch)


def keep_snapshot_files(ws: WorkspaceStore, task: StepTask, stderr_text: str) -> None:
    """A failed attempt whose traceback names its snapshot's files (engine/steplog.py):
    make them, so the names lead to files after the working folder is gone."""
    snapshot_id = task.node.snapshot_id
    if not snapshot_id or str(ws.artifacts.snapshot_files(snapshot_id)) not in stderr_text:
        return
    from headrace.engine.snapshots import keep_snapshot_files as keep

    try:
        keep(ws.artifacts, snapshot_id)
    except Exception:  # a traceback naming missing files is no reason to lose the ending
        log.warning("cannot keep the files of snapshot %s", snapshot_id, exc_info=True)


def _commit_outputs(ws: WorkspaceStore, prepared: PreparedStep) -> None:
    """Put each staged output at its datastore path, replacing what an earlier attempt that
    died between commit and record left: on a local datastore a rename on the same
    filesystem (never a copy), on an object store an upload. An output whose staged folder
    is gone while its final path exists was committed by this attempt before its agent
    died, and is kept as it is (finalizing an adopted attempt again). All or none: when
    one cannot be kept, those already committed are removed again before the error goes
    on."""
    committed: list[ResolvedData] = []
    try:
        for item in prepared.task.outputs:
            files = ws.datastore_files(item.datastore)
            staged = prepared.staged_outputs[item.port]
            if staged.exists() or not files.exists(item.path_on_datastore):
                files.replace_tree(staged, item.path_on_datastore)
            # else: committed already, by an agent that died before recording the attempt's
            # end: finalizing again (after adoption) keeps it as it is.
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
    shutil.rmtree(scratch_dir(ws, task), ignore_errors=True)
    for item in task.outputs:
        try:
            files = ws.datastore_files(item.datastore)
            if files.is_local:
                shutil.rmtree(files.local_path(_staging(task, item.port)), ignore_errors=True)
        except Exception:  # noqa: S112  # best effort cleanup of a datastore that may be gone
            continue


def discard_run(
    ws: WorkspaceStore,
    pipeline_run_id: str,
    datastores: set[str],
    keep: tuple[StepTask, ...] = (),
) -> None:
    """Remove every working folder and staged output of a pipeline run but those of the
    attempts in `keep` (adopted after their agent died: engine/reaper.py).

    After an agent died this also catches attempts it started but never recorded; after a
    run ends it removes the run's (by then empty) folders.
    """
    names = [f"{task.step_run_id}-{task.attempt}" for task in keep]
    kept = (*names, *(f"{n}." for n in names), *(f"{n}-" for n in names))

    def remove(folder: Path) -> None:
        if not kept:
            shutil.rmtree(folder, ignore_errors=True)
            return
        with contextlib.suppress(OSError):
            for entry in os.scandir(folder):
                if entry.name not in names and not entry.name.startswith(kept):
                    shutil.rmtree(entry.path, ignore_errors=True)

    remove(ws.layout.work_dir / pipeline_run_id)
    for name in datastores:
        try:
            files = ws.datastore_files(name)
            if files.is_local:
                remove(files.local_path(f"{STAGING}/{pipeline_run_id}"))
        except Exception:  # noqa: S112  # best effort cleanup of a datastore that may be gone
            continue
