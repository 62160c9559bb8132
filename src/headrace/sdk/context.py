"""`Run.get_context()`: the run a step script belongs to, as seen from inside the script.

Inside a step (headrace sets `HEADRACE_RUN_ID` and `HEADRACE_RUN_DIR`) the context appends
metrics and tags to the run journal and writes uploaded files straight into the run's files;
the agent records them while the step runs and when it ends. Nothing here opens the database,
so `from headrace.compat.azureml.core import Run` costs a script milliseconds.

A step of a workspace served by `headrace server` also gets `HEADRACE_SERVER_URL` and
`HEADRACE_RUN_TOKEN`, a token good only on its own run (an isolated step gets
`HEADRACE_RUN_TOKEN_FILE` instead, a file only it can read: see engine/isolation.py).
When the run folder cannot be written (the script runs where the workspace folder is not),
metrics, tags and files go through the server with that token instead.

Outside a pipeline (`python train.py`) it is an offline run: logging prints and never fails,
so the same script runs both ways, as with SDK v1.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from headrace.errors import UserError
from headrace.sdk.runs import Run, metrics_dict
from headrace.store.journal import JOURNAL_NAME, read_journal
from headrace.store.records import MetricRecord

__all__ = [
    "OfflineRun",
    "ScriptRun",
    "current_step_run_id",
    "get_context",
    "step_backend",
    "step_workspace",
]


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def _safe_file_name(name: str) -> str:
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise UserError(f"Run file name {name!r} is not a relative path inside the run's files.")
    return "/".join(parts)


class _JournalWriter:
    """Appends entries to the run journal of one run folder."""

    def __init__(self, run_dir: Path, target: str) -> None:
        self.run_dir = run_dir
        self.target = target
        self.path = run_dir / JOURNAL_NAME

    def write(
        self,
        kind: str,
        name: str,
        value: Any,
        description: str | None = None,
        step: int | None = None,
    ) -> None:
        entry = {"target": self.target, "kind": kind, "name": name, "value": value}
        if description:
            entry["description"] = description
        if step is not None:
            entry["step"] = step
        line = json.dumps(entry, default=_jsonable, separators=(",", ":")) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(line)


class _ServerWriter:
    """Sends entries and files of one run to the server (a step's run-scoped token)."""

    def __init__(self, url: str, token: str, run_id: str) -> None:
        from headrace.backend.remote import RemoteBackend

        self.backend = RemoteBackend(url, {"Authorization": f"Bearer {token}"})
        self.run_id = run_id

    def write(
        self,
        kind: str,
        name: str,
        value: Any,
        description: str | None = None,
        step: int | None = None,
    ) -> None:
        value = json.loads(json.dumps(value, default=_jsonable))
        if kind == "tag":
            self.backend.tag_run(self.run_id, {name: value})
            return
        metric = MetricRecord(self.run_id, name, kind, value, step, description or None)
        self.backend.log_metrics([metric])

    def put_file(self, name: str, source: Path) -> None:
        self.backend.upload_run_file(self.run_id, name, source)


class _LoggingMixin:
    """The logging API shared by a step's run and its parent (both write the journal)."""

    _journal: _JournalWriter | _ServerWriter
    _files_dir: Path

    def _put_file(self, name: str, source: Any) -> None:
        """Keep `source` (a path or a binary stream) as run file `name`."""
        if isinstance(self._journal, _ServerWriter):
            if isinstance(source, (str, os.PathLike)):
                self._journal.put_file(name, Path(source))
                return
            import tempfile

            with tempfile.TemporaryDirectory() as scratch:
                staged = Path(scratch) / "file"
                with staged.open("wb") as fh:
                    shutil.copyfileobj(source, fh)
                self._journal.put_file(name, staged)
            return
        target = self._files_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(source, (str, os.PathLike)):
            shutil.copyfile(source, target)
        else:
            with target.open("wb") as fh:
                shutil.copyfileobj(source, fh)

    def log(self, name: str, value: Any, description: str = "", step: int | None = None) -> None:
        if isinstance(value, (list, tuple, dict, set)):
            raise UserError(
                f"run.log({name!r}, ...) takes a single value; use log_list for lists and "
                "log_table or log_row for tables."
            )
        self._journal.write("scalar", name, value, description, step)

    def log_list(self, name: str, value: Any, description: str = "") -> None:
        self._journal.write("list", name, list(value), description)

    def log_row(self, name: str, description: str | None = None, **kwargs: Any) -> None:
        self._journal.write("row", name, dict(kwargs), description)

    def log_table(self, name: str, value: dict[str, Any], description: str = "") -> None:
        if not isinstance(value, dict):
            raise UserError(f"run.log_table({name!r}, ...) takes a dict of column name to values.")
        self._journal.write("table", name, {str(k): list(v) for k, v in value.items()}, description)

    def log_image(
        self, name: str, path: str | None = None, plot: Any = None, description: str = ""
    ) -> None:
        if (path is None) == (plot is None):
            raise UserError(f"run.log_image({name!r}, ...) needs exactly one of path= or plot=.")
        file_name = f"images/{_safe_file_name(name)}.png"
        if path is not None:
            self._put_file(file_name, path)
        else:
            import io

            buffer = io.BytesIO()
            plot.savefig(buffer, format="png")
            buffer.seek(0)
            self._put_file(file_name, buffer)
        self._journal.write("image", name, file_name, description)

    def tag(self, key: str, value: Any = None) -> None:
        self._journal.write("tag", key, "" if value is None else value)

    def set_tags(self, tags: dict[str, Any]) -> None:
        for key, value in tags.items():
            self.tag(key, value)

    def upload_file(
        self, name: str, path_or_stream: Any, datastore_name: str | None = None
    ) -> None:
        self._put_file(_safe_file_name(name), path_or_stream)

    def upload_folder(self, name: str, path: str, datastore_name: str | None = None) -> None:
        source = Path(path)
        for item in sorted(source.rglob("*")):
            if item.is_file():
                self.upload_file(f"{name}/{item.relative_to(source).as_posix()}", str(item))

    def complete(self, *args: Any, **kwargs: Any) -> None:
        """A step run completes when its script exits; nothing to do."""

    def flush(self, *args: Any, **kwargs: Any) -> None:
        """Entries are written as they are logged; nothing to do."""


def _check_reachable(step_dir: Path) -> None:
    if not _writable(step_dir):
        # The step's server token is scoped to the step run; it cannot write the pipeline run.
        raise UserError(
            "run.parent cannot be logged to from a step whose run folder is not reachable "
            f"({step_dir}); log on the step's own run (run.log) instead."
        )


class _ParentJournal(_JournalWriter):
    def write(
        self,
        kind: str,
        name: str,
        value: Any,
        description: str | None = None,
        step: int | None = None,
    ) -> None:
        _check_reachable(self.run_dir)
        super().write(kind, name, value, description, step)


class _ParentRun(_LoggingMixin):
    """The pipeline run, seen from one of its steps: `run.parent.log(...)`."""

    def __init__(self, run_id: str, step_dir: Path, pipeline_dir: Path) -> None:
        self.id = run_id
        self._step_dir = step_dir
        self._journal = _ParentJournal(step_dir, "parent")
        self._files_dir = pipeline_dir

    def _put_file(self, name: str, source: Any) -> None:
        _check_reachable(self._step_dir)
        super()._put_file(name, source)

    def __repr__(self) -> str:
        return f"PipelineRun(id={self.id!r})"


def _writable(folder: Path) -> bool:
    return folder.is_dir() and os.access(folder, os.W_OK)


class ScriptRun(_LoggingMixin, Run):
    """The step run of the script that is running."""

    def __init__(self, env: os._Environ[str] | dict[str, str]) -> None:
        self._id = env["HEADRACE_RUN_ID"]
        self._run_dir = Path(env.get("HEADRACE_RUN_DIR") or ".headrace-unreachable")
        self._files_dir = self._run_dir
        self._journal = _JournalWriter(self._run_dir, "self")
        if not _writable(self._run_dir) and _server_env(env):
            self._journal = _ServerWriter(env["HEADRACE_SERVER_URL"], _run_token(env), self._id)
        self._experiment_name = env.get("HEADRACE_EXPERIMENT", "")
        self._workspace_path = env.get("HEADRACE_WORKSPACE")
        self._parent = _ParentRun(
            env.get("HEADRACE_PIPELINE_RUN_ID", ""),
            self._run_dir,
            Path(env.get("HEADRACE_PIPELINE_RUN_DIR") or self._run_dir),
        )
        self._experiment: Any = None
        self._input_datasets_json = env.get("HEADRACE_INPUT_DATASETS") or "{}"

    @property
    def id(self) -> str:
        return self._id

    @property
    def input_datasets(self) -> dict[str, Any]:
        """The step's dataset inputs by name, as SDK v1's `run.input_datasets`: a FileDataset
        consumed `as_mount()` / `as_download()` is the path of its files (a folder, or the
        file of a one-file dataset); a TabularDataset, or a FileDataset consumed directly
        (`as_named_input(name)` alone), is a dataset object over the step's copy or links."""
        from headrace.sdk.datasets import dataset_from_definition

        found: dict[str, Any] = {}
        for port, item in json.loads(self._input_datasets_json).items():
            if "definition" in item:  # a TabularDataset, or a FileDataset in direct mode
                found[port] = dataset_from_definition(item["definition"])
            else:
                found[port] = item["path"]
        return found

    def _input_lineage(self) -> list[tuple[str, Any]]:
        """The registered datasets this step reads, as ('training', dataset) lineage: what
        a model it registers without `datasets=` was trained on."""
        from types import SimpleNamespace

        found = []
        for item in json.loads(self._input_datasets_json).values():
            registration = item.get("registration")
            if isinstance(registration, dict) and registration.get("name"):
                found.append(("training", SimpleNamespace(**registration)))
        return found

    @property
    def experiment(self) -> Any:  # type: ignore[override]
        """The experiment (and through it the workspace: the server's, when the step has
        one, since a confined step cannot open the workspace folder); opened on first use."""
        if self._experiment is None:
            from headrace.sdk.experiment import Experiment

            workspace = step_workspace()
            assert workspace is not None  # a ScriptRun exists only inside a step
            self._experiment = Experiment(workspace, self._experiment_name)
        return self._experiment

    def register_model(
        self,
        model_name: str,
        model_path: str | None = None,
        tags: dict[str, Any] | None = None,
        properties: dict[str, Any] | None = None,
        model_framework: str | None = None,
        model_framework_version: str | None = None,
        description: str | None = None,
        datasets: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Register file or folder `model_path` of this run (e.g. 'outputs/model.pkl') as
        the next version of `model_name`. What the script wrote there and did not upload
        yet (./outputs is kept when the step ends) is uploaded first, as SDK v1 did."""
        from headrace.store.datastores import clean_relative_path
        from headrace.store.models import model_files_of

        if datasets is None:
            datasets = self._input_lineage()
        rel = clean_relative_path(model_path or model_name, what="model path")
        local = Path(rel)
        if rel and local.exists():
            for below, source in model_files_of(local):
                self._put_file(f"{rel}/{below}" if below else rel, source)
        return self._register_run_model(
            self._id,
            model_name,
            rel,
            tags=tags,
            properties=properties,
            model_framework=model_framework,
            model_framework_version=model_framework_version,
            description=description,
            datasets=datasets,
            **kwargs,
        )

    @property
    def parent(self) -> _ParentRun:
        return self._parent

    def get_status(self) -> str:
        return "Running"

    def get_metrics(
        self,
        name: str | None = None,
        recursive: bool = False,
        run_type: str | None = None,
        populate: bool = False,
    ) -> dict[str, Any]:
        """What this run has logged so far."""
        if isinstance(self._journal, _ServerWriter):
            records = self._journal.backend.list_metrics([self._id])
        else:
            entries, _ = read_journal(self._journal.path, 0)
            records = [
                MetricRecord(self._id, e.name, e.kind, e.value)
                for e in entries
                if e.target == "self" and e.kind != "tag"
            ]
        metrics = metrics_dict(records)
        if name is not None:
            return {name: metrics[name]} if name in metrics else {}
        return metrics

    def __repr__(self) -> str:
        return f"Run(id={self._id!r}, experiment={self._experiment_name!r})"


class OfflineRun:
    """A run outside any pipeline: logging prints, nothing fails.

    What is logged is also kept in memory, so a script that reads its own metrics back
    (`run.get_metrics()`) behaves the same inside and outside a pipeline.
    """

    def __init__(self) -> None:
        self.id = f"OfflineRun_{uuid.uuid4()}"
        self._metrics: list[MetricRecord] = []
        self._tags: dict[str, Any] = {}
        self._parent: OfflineRun | None = None

    @property
    def parent(self) -> OfflineRun:
        if self._parent is None:
            self._parent = OfflineRun()
        return self._parent

    @property
    def experiment(self) -> None:
        return None

    @property
    def input_datasets(self) -> dict[str, Any]:
        return {}

    @property
    def tags(self) -> dict[str, Any]:
        return dict(self._tags)

    def get_tags(self) -> dict[str, Any]:
        return dict(self._tags)

    def _say(self, text: str) -> None:
        print(text, flush=True)  # noqa: T201

    def _keep(self, kind: str, name: str, value: Any, step: int | None = None) -> None:
        self._metrics.append(MetricRecord(self.id, name, kind, value, step))

    def log(self, name: str, value: Any, description: str = "", step: int | None = None) -> None:
        self._say(f"Attempted to log scalar metric {name}:\n{value}")
        self._keep("scalar", name, value, step)

    def log_list(self, name: str, value: Any, description: str = "") -> None:
        self._say(f"Attempted to log list metric {name}:\n{list(value)}")
        self._keep("list", name, list(value))

    def log_row(self, name: str, description: str | None = None, **kwargs: Any) -> None:
        self._say(f"Attempted to log row metric {name}:\n{kwargs}")
        self._keep("row", name, dict(kwargs))

    def log_table(self, name: str, value: Any, description: str = "") -> None:
        self._say(f"Attempted to log table metric {name}:\n{value}")
        self._keep("table", name, value)

    def log_image(
        self, name: str, path: str | None = None, plot: Any = None, description: str = ""
    ) -> None:
        self._say(f"Attempted to log image metric {name}:\n{path or plot}")
        self._keep("image", name, str(path) if path is not None else None)

    def tag(self, key: str, value: Any = None) -> None:
        self._say(f"Attempted to tag {key}: {value}")
        self._tags[key] = "" if value is None else value

    def set_tags(self, tags: dict[str, Any]) -> None:
        self._say(f"Attempted to set tags {tags}")
        self._tags.update(tags)

    def upload_file(
        self, name: str, path_or_stream: Any, datastore_name: str | None = None
    ) -> None:
        self._say(f"Attempted to upload file {name}")

    def upload_folder(self, name: str, path: str, datastore_name: str | None = None) -> None:
        self._say(f"Attempted to upload folder {name}")

    def register_model(self, model_name: str, *args: Any, **kwargs: Any) -> None:
        raise UserError(
            f"run.register_model({model_name!r}, ...) needs a run: this script runs outside a "
            "pipeline step. Register the file with Model.register(ws, model_path, model_name)."
        )

    def get_metrics(self, name: str | None = None, *args: Any, **kwargs: Any) -> dict[str, Any]:
        metrics = metrics_dict(self._metrics)
        if name is not None:
            return {name: metrics[name]} if name in metrics else {}
        return metrics

    def get_status(self) -> str:
        return "Running"

    def complete(self, *args: Any, **kwargs: Any) -> None:
        pass

    def flush(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __repr__(self) -> str:
        return f"OfflineRun(id={self.id!r})"


def _server_env(env: os._Environ[str] | dict[str, str]) -> bool:
    token = env.get("HEADRACE_RUN_TOKEN") or env.get("HEADRACE_RUN_TOKEN_FILE")
    return bool(env.get("HEADRACE_SERVER_URL") and token)


def _run_token(env: os._Environ[str] | dict[str, str]) -> str:
    """The step's run token: in its environment, or (isolated) in a file of its own."""
    if env.get("HEADRACE_RUN_TOKEN"):
        return env["HEADRACE_RUN_TOKEN"]
    return Path(env["HEADRACE_RUN_TOKEN_FILE"]).read_text().strip()


def get_context(allow_offline: bool = True) -> ScriptRun | OfflineRun:
    env = os.environ
    if env.get("HEADRACE_RUN_ID") and (env.get("HEADRACE_RUN_DIR") or _server_env(env)):
        return ScriptRun(env)
    if not allow_offline:
        raise UserError(
            "Run.get_context(allow_offline=False) was called outside a headrace pipeline step."
        )
    return OfflineRun()


_STEP_WORKSPACE: dict[str, Any] = {}


def step_workspace() -> Any:
    """The workspace of the step this process runs in (None outside a step): the server,
    through the step's run token, when it has one; else the workspace folder. Opened once."""
    env = os.environ
    run_id = env.get("HEADRACE_RUN_ID")
    if not run_id:
        return None
    if run_id not in _STEP_WORKSPACE:
        from headrace.sdk.workspace import Workspace

        if _server_env(env):
            from headrace.backend.remote import RemoteBackend

            header = {"Authorization": f"Bearer {_run_token(env)}"}
            backend = RemoteBackend(env["HEADRACE_SERVER_URL"], header)
            _STEP_WORKSPACE[run_id] = Workspace(_backend=backend)
        elif env.get("HEADRACE_WORKSPACE"):
            _STEP_WORKSPACE[run_id] = Workspace(path=env["HEADRACE_WORKSPACE"])
        else:
            return None
    return _STEP_WORKSPACE[run_id]


def step_backend() -> Any:
    """The backend of `step_workspace()`, or None outside a step."""
    workspace = step_workspace()
    return None if workspace is None else workspace.backend


def current_step_run_id(workspace: Any) -> str | None:
    """The step run this process runs as, when `workspace` is that step's workspace (what
    it registers is then the step's lineage); None otherwise."""
    env = os.environ
    run_id = env.get("HEADRACE_RUN_ID")
    if not run_id:
        return None
    location = str(workspace.backend.location)
    mine = {env.get("HEADRACE_SERVER_URL", "").rstrip("/")}
    if env.get("HEADRACE_WORKSPACE"):
        mine.add(os.path.realpath(env["HEADRACE_WORKSPACE"]))
    found = location.rstrip("/") if location.startswith("http") else os.path.realpath(location)
    return run_id if found in mine - {""} else None
