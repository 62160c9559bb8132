"""The data of one step attempt as the engine passes it around: where its inputs and outputs
are (`ResolvedData`), what to run (`StepTask`), what its node downloads itself (`Fetch`), and
the attempt as prepared to start (`PreparedStep`, made by engine/runtime.py)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from headrace.engine.reaper import exit_record_path
from headrace.engine.workfolders import FileStamps
from headrace.graph.model import StepNode
from headrace.store.steplogs import COMBINED_LOG, combined_lines

__all__ = ["Fetch", "PreparedStep", "ResolvedData", "StepTask"]


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
    # A dataset input: its definition (store/datasets.py); `datastore` is then "".
    dataset: dict[str, Any] | None = None
    # Intermediate data read as a dataset (`Run.input_datasets`): {"kind": "file"} or a
    # tabular definition without sources.
    read_as: dict[str, Any] | None = None


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
    # The Python of a step without an environment (and `python` in a CommandStep): the
    # submitter's (engine/interpreters.py).
    python: str = sys.executable
    # How the attempt before this one ended ("attempt 1 failed: exit code 1"), for the
    # heading of this one's logs; "" for a first attempt.
    previous: str = ""


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
    # The folders the step writes (an isolated step writes nowhere else), and files of its
    # own the agent made for it (with a step user, both become that user's).
    writable: tuple[Path, ...] = ()
    private_files: tuple[Path, ...] = ()
    # What an isolated step reads of the workspace besides its inputs: the model registry
    # (`Model.get_model_path` reads a model in place; the rows come from the server), and
    # the folders its dataset inputs' links point into.
    readable: tuple[Path, ...] = ()
    python: str = sys.executable  # the interpreter `argv` starts (task.python)
    notes: tuple[str, ...] = ()  # lines its stderr log starts with (environment_notes)
    # A Python script run by the submitter's Python: its logger runs it in-process
    # (engine/steplog.py), and a traceback it ends with names files in `snapshot_dir`.
    in_process: bool = False
    snapshot_dir: str | None = None

    @property
    def combined_path(self) -> Path:
        """The attempt's combined log, `user_logs/std_log.txt` (store/steplogs.py)."""
        return self.stdout_path.with_name(COMBINED_LOG.rsplit("/", 1)[1])

    def heading(self) -> str:
        """`===== attempt 2 of 3 (attempt 1 failed: exit code 1) =====` at the head of an
        attempt's logs, for a step that may run more than once ("" otherwise)."""
        task = self.task
        total = max(task.node.max_retries + 1, task.attempt + 1)
        if total == 1:
            return ""
        why = f" ({task.previous})" if task.previous else ""
        return f"===== attempt {task.attempt + 1} of {total}{why} ====="

    def log_header(self) -> tuple[bytes, bytes, bytes]:
        """What the executor writes first to the attempt's stdout, stderr and combined
        logs: which attempt it is (for a step with retries), and the notes."""
        heading = self.heading()
        header = f"{heading}\n" if heading else ""
        notes = "".join(f"headrace: {note}\n" for note in self.notes)
        combined = b""
        if heading or notes:
            combined = combined_lines("headrace", heading) + combined_lines("stderr", notes)
        return header.encode(), (header + notes).encode(), combined

    @property
    def exit_record(self) -> Path:
        """Where the attempt's reaper writes how it ended (engine/reaper.py)."""
        return exit_record_path(self.stdout_path.parent.parent, self.task.attempt)
