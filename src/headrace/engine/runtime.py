"""The step runtime contract: what a step's script sees, and how its results are kept.

`prepare` builds one attempt of a step: a working folder materialized from the source
snapshot (the script's cwd), inputs resolved to absolute paths (a datastore folder on this
machine is handed over by path, no copy; download mode copies), output folders created in a
staging place, placeholders in the arguments replaced by paths and parameter values, and the
environment variables SDK v1 scripts read. `finalize` (engine/commit.py; the data it passes
around is in engine/steptask.py) runs after the process ends: on success
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

Executors call `prepare` and `finalize` around whatever actually runs the process.
"""

from __future__ import annotations

import json
import os
import posixpath
import shutil
from pathlib import Path
from typing import Any

from headrace.engine.environments import (
    FAILED_MARKER,
    environment_notes,
    runs_in_submitters_python,
    step_argv,
)
from headrace.engine.isolation import inherited_environment
from headrace.engine.reaper import exit_record_path
from headrace.engine.steptask import Fetch, PreparedStep, ResolvedData, StepTask
from headrace.engine.workfolders import FileStamps, WorkFolders
from headrace.errors import HeadraceError
from headrace.graph import placeholders
from headrace.graph.model import KIND_VARIABLE, SPEC_VARIABLE, StepNode
from headrace.store.artifacts import STDERR_LOG, STDOUT_LOG
from headrace.store.journal import JOURNAL_NAME
from headrace.store.objectstores import ObjectDatastoreFiles
from headrace.store.workspace_store import WorkspaceStore

__all__ = [
    "PreparedStep",
    "ResolvedData",
    "StepTask",
    "credential_variables",
    "env_name",
    "parameter_text",
    "pipeline_data_path",
    "prepare",
    "prepared_again",
    "scratch_dir",
]

STAGING = ".headrace/staging"
ALIAS_LAUNCHER = "headrace.v1"  # starts a script with `azureml.` imports aliased
RUN_TOKEN_SECONDS = 24 * 3600  # a step's token outlives it by an hour; 24 h without a timeout


def _work_dir(ws: WorkspaceStore, task: StepTask) -> Path:
    """The attempt's working folder, under its pipeline run's (see `discard_run`)."""
    return ws.layout.work_dir / task.pipeline_run_id / f"{task.step_run_id}-{task.attempt}"


def _staging(task: StepTask, port: str) -> str:
    """Where the attempt stages output `port` on its datastore, under its pipeline run's
    staging folder: one folder per output, so staging one makes one directory."""
    return f"{STAGING}/{task.pipeline_run_id}/{task.step_run_id}-{task.attempt}-{port}"


def scratch_dir(ws: WorkspaceStore, task: StepTask) -> Path:
    """An isolated attempt's own temporary folder (its TMPDIR and HOME), beside its working
    folder: an isolated step writes nowhere else but its own folders."""
    return _work_dir(ws, task).with_name(f"{task.step_run_id}-{task.attempt}.tmp")


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


def env_name(name: str) -> str:
    """`name` as part of an environment variable's name (AML_PARAMETER_<name>)."""
    return "".join(c if c.isalnum() or c == "_" else "_" for c in name)


def prepare(
    ws: WorkspaceStore,
    task: StepTask,
    folders: WorkFolders | None = None,
    *,
    fetch_remotely: bool = False,
    isolated: bool = False,
) -> PreparedStep:
    """Set up one attempt of a step and return how to start its process.

    With `fetch_remotely` (an executor whose steps run on another machine), inputs on an
    object store that any machine can open (credentials from the environment or none) are
    listed here but not downloaded: the executor's node downloads them (`fetches`).

    `isolated` (engine.isolation): the step gets no secret of the agent's environment and
    no datastore credentials (its "direct" object-store inputs are downloaded instead), a
    scratch folder as TMPDIR and HOME, and its run token in a file of its own rather than
    in its environment (other processes of the same user can read an environment).
    """
    node = task.node
    python = task.python
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
    datasets: dict[str, Any] = {}
    dataset_roots: list[Path] = []
    for item in task.inputs:
        if item.dataset is not None:
            path, roots = _dataset_input(ws, item, cwd, isolated)
            dataset_roots += roots
            paths[item.port] = path
            env_paths[item.port] = env_paths[item.data_name] = path
            direct = bool((item.read_as or {}).get("direct"))
            datasets[item.port] = _input_dataset(item.dataset, path, direct=direct)
            continue
        files = ws.datastore_files(item.datastore)
        if item.mode == "direct" and isinstance(files, ObjectDatastoreFiles) and not isolated:
            path = files.uri(item.path_on_datastore)
            handles[item.port] = handles[item.data_name] = files.handle
        else:
            path, fetch = _resolve_input(ws, item, cwd, fetch_remotely)
            if fetch is not None:
                fetches.append(fetch)
        paths[item.port] = path
        env_paths[item.port] = env_paths[item.data_name] = path
        if item.read_as is not None:
            datasets[item.port] = _input_dataset(item.read_as, path)
    staged: dict[str, Path] = {}
    for item in task.outputs:
        target = _staged_output(ws, task, item)
        if item.mode != "upload" and target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True, exist_ok=True)
        staged[item.port] = target
        paths[item.port] = str(target)
        env_paths[item.port] = env_paths[item.data_name] = str(target)

    values = {name: parameter_text(v) for name, v in task.parameters.items()}
    args = [placeholders.expand(a, paths, values) for a in node.arguments]

    run_dir = ws.artifacts.run_dir(task.step_run_id)
    journal = run_dir / JOURNAL_NAME
    _make_dirs(run_dir, run_dir / "user_logs", journal.parent)
    exit_record_path(run_dir, task.attempt).unlink(missing_ok=True)
    (run_dir / FAILED_MARKER).unlink(missing_ok=True)  # an earlier attempt's failed build
    if journal.exists():
        # An earlier attempt's entries were recorded when it ended (or died with its agent);
        # each attempt writes a journal of its own, so none is recorded twice.
        os.replace(journal, journal.with_name(f"journal.attempt-{task.attempt - 1}.jsonl"))
    scratch = scratch_dir(ws, task) if isolated else None
    readable: tuple[Path, ...] = ()
    if scratch is not None:
        if scratch.exists():
            shutil.rmtree(scratch)
        scratch.mkdir()
        readable = (ws.artifacts.models_dir(),)
    # The folders a dataset input's links point into (its files stay where they are).
    readable += tuple(dataset_roots)
    env = _environment(ws, task, env_paths, values, python, run_dir, scratch)
    private: tuple[Path, ...] = ()
    extra: list[Path] = []
    if scratch is not None:
        if "HEADRACE_RUN_TOKEN" in env:
            private = (_token_file(scratch, env.pop("HEADRACE_RUN_TOKEN")),)
            env["HEADRACE_RUN_TOKEN_FILE"] = str(private[0])
        destination = _transfer_destination(ws, task, values)
        if destination is not None:
            final, staging, root = destination
            # The folder the destination will be made in or, not there yet, the nearest
            # one above it on the datastore: nothing is made before the transfer succeeds.
            parent = next((p for p in final.parents if p.exists() and root in p.parents), root)
            extra, private = [parent, staging], (*private, final)
    for name, handle in handles.items():
        env[f"HEADRACE_DATASTORE_{env_name(name)}"] = handle
    if datasets:
        env["HEADRACE_INPUT_DATASETS"] = json.dumps(datasets, separators=(",", ":"))
    notes: tuple[str, ...] = ()
    in_process = False
    if node.kind == "command":
        command = placeholders.expand(node.command or "", paths, values)
        argv = ["/bin/sh", "-c", command]
        display = [command]
    else:
        script_argv = [node.script_name or "", *args]
        if node.azureml_alias:
            script_argv = ["-m", ALIAS_LAUNCHER, *script_argv]
        argv = step_argv(node.environment, python, script_argv, run_dir / STDERR_LOG, task.attempt)
        display = ["python", node.script_name or "", *args]
        notes = tuple(environment_notes(node.environment))
        in_process = runs_in_submitters_python(node.environment)
        if not (node.environment and "interpreter" in node.environment):
            python = argv[0]  # headrace's choice (a node on Ray starts its own instead)
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
        writable=(
            cwd,
            *([scratch] if scratch is not None else []),
            run_dir,
            journal.parent,
            ws.artifacts.run_dir(task.pipeline_run_id),
            # A staged output's folder and the one holding it: a step may remove the former
            # and make it again (Spark refuses to write into an existing folder).
            *staged.values(),
            *{p.parent for p in staged.values()},
            *extra,
        ),
        private_files=private,
        readable=readable,
        python=python,
        notes=notes,
        in_process=in_process,
        snapshot_dir=str(ws.artifacts.snapshot_files(node.snapshot_id))
        if node.snapshot_id
        else None,
    )


def _staged_output(ws: WorkspaceStore, task: StepTask, item: ResolvedData) -> Path:
    """Where the attempt writes output `item` before `finalize` keeps it."""
    if item.mode == "upload":
        return _work_dir(ws, task) / (item.path_on_compute or item.port)
    files = ws.datastore_files(item.datastore)
    if files.is_local:
        return files.local_path(_staging(task, item.port))
    return _object_staging(ws, task, item.port)


def prepared_again(ws: WorkspaceStore, task: StepTask) -> PreparedStep:
    """The `PreparedStep` of an attempt another agent prepared and started, rebuilt without
    making or changing anything: what `finalize` needs to keep the results of an attempt
    that is adopted (engine/reaper.py). Its working folder is not reused."""
    run_dir = ws.artifacts.run_dir(task.step_run_id)
    cwd = _work_dir(ws, task)
    scratch = scratch_dir(ws, task)
    return PreparedStep(
        task=task,
        argv=[],
        display_argv=[],
        cwd=cwd,
        env={},
        stdout_path=run_dir / STDOUT_LOG,
        stderr_path=run_dir / STDERR_LOG,
        staged_outputs={item.port: _staged_output(ws, task, item) for item in task.outputs},
        writable=(cwd, scratch) if scratch.exists() else (cwd,),
    )


def _transfer_destination(
    ws: WorkspaceStore, task: StepTask, values: dict[str, str]
) -> tuple[Path, Path, Path] | None:
    """Where a DataTransferStep publishes on a local datastore (the path, its staging
    folder, the datastore's root; headrace.kinds.transfer.program), which an isolated step may then
    write: the submitter may write datastores anyway (a submitter token uploads files)."""
    from headrace.store.datastores import clean_relative_path

    found = _transfer_target(task.node, values)
    if found is None:
        return None
    datastore, path = found
    try:
        files = ws.datastore_files(datastore)
        if not files.is_local or not clean_relative_path(path):
            return None
        final = files.local_path(path)
        root = files.local_path("")
    except HeadraceError:
        return None  # the step says what is wrong with its destination itself
    staging = f"{STAGING}/{task.pipeline_run_id}/{task.step_run_id}-{task.attempt}-transfer"
    return final, files.local_path(staging), root


def _transfer_target(node: StepNode, values: dict[str, str]) -> tuple[str, str] | None:
    """A DataTransferStep's fixed destination (datastore, path): from its settings (a
    TransferSpec, headrace.kinds.transfer), or from the argv of a step recorded before."""
    settings = node.settings or {}
    if node.step_kind == "transfer":
        datastore = settings.get("destination_datastore")
        parameter = settings.get("destination_parameter")
        path = values.get(parameter, "") if parameter else settings.get("destination_path")
        if not isinstance(datastore, str) or not isinstance(path, str):
            return None
        return datastore, path
    command = node.command or ""
    if node.kind != "command" or "headrace.engine.transferrun" not in command:
        return None
    import shlex

    words = shlex.split(command)

    def option(name: str) -> str | None:
        return words[words.index(name) + 1] if name in words[:-1] else None

    target = option("--destination")
    if target is not None:
        datastore, _, path = target.partition(":")
        return datastore, path
    parameter, store = option("--destination-parameter"), option("--destination-datastore")
    if parameter is None or store is None:
        return None
    return store, values.get(parameter, "")


def _token_file(scratch: Path, token: str) -> Path:
    """The run token in a file only its step (and the agent) can read."""
    path = scratch / ".run-token"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(token)
    return path


def _dataset_input(
    ws: WorkspaceStore, item: ResolvedData, cwd: Path, isolated: bool = False
) -> tuple[str, list[Path]]:
    """Where the step reads a dataset input (engine/datasets.py), and the folders its files
    are in (readable by an isolated step).

    An isolated step may not take a dataset of paths on this machine: granting it those
    paths would let a submitter read what the sandbox keeps from steps (the workspace's
    database, the server user's home)."""
    from headrace.engine.datasets import materialize
    from headrace.errors import UserError

    assert item.dataset is not None
    local = [s["local"] for s in item.dataset.get("sources", []) if "local" in s]
    if isolated and local:
        raise UserError(
            f"Dataset input {item.port!r} reads paths of the server's machine ({local[0]!r}); "
            "a confined step reads datasets on datastores or URLs: upload the files to a "
            "datastore and make the dataset from (datastore, 'path')."
        )
    folder = cwd / (item.path_on_compute or item.port)
    return materialize(ws, item.dataset, folder, item.mode)


def _input_dataset(
    definition: dict[str, Any], path: str, *, direct: bool = False
) -> dict[str, Any]:
    """What `Run.input_datasets[port]` is made from: the path, and for a tabular dataset
    (or any dataset consumed in SDK v1's direct mode) how to read the files there."""
    # A registered input's name and version: lineage of the models the step registers.
    registration = (
        {"registration": definition["registration"]} if definition.get("registration") else {}
    )
    if definition.get("kind") == "tabular" or direct:
        from headrace.engine.datasets import step_definition

        kind = definition.get("kind", "file")
        readable = step_definition(definition, path)
        return {"kind": kind, "path": path, "definition": readable, **registration}
    return {"kind": "file", "path": path, **registration}


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
    scratch: Path | None = None,
) -> dict[str, str]:
    node = task.node
    isolated = scratch is not None
    also = credential_variables(ws) if isolated else ()
    database = None if ws.database.is_sqlite else ws.database.url
    env = inherited_environment(os.environ, isolated=isolated, also=also, database_url=database)
    if scratch is not None:
        # Nothing outside its own folders is writable to an isolated step (and the agent's
        # home is out of its reach): temporary files and caches go to its scratch folder.
        for name in ("TMPDIR", "TMP", "TEMP", "HOME"):
            env[name] = str(scratch)
    # `python` in a CommandStep means the interpreter of steps without an environment.
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
    if node.step_kind is not None:
        # A step of a kind package: `python -m headrace.kinds` reads its kind and spec here.
        env[KIND_VARIABLE] = node.step_kind
        env[SPEC_VARIABLE] = json.dumps(node.settings, sort_keys=True, separators=(",", ":"))
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
    if not any(key == "MLFLOW_TRACKING_URI" for key, _raw in node.environment_variables):
        # MLflow calls in the script land in this step's run (sdk/mlflow_store.py), unless
        # the step's own environment variables point MLflow elsewhere.
        env["MLFLOW_TRACKING_URI"] = ws.root.absolute().as_uri().replace("file:", "headrace:", 1)
        env["MLFLOW_RUN_ID"] = task.step_run_id
        # MLflow's "View run at <URL>" lines would name a UI headrace does not serve.
        env.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        # Steps talk to no one outside: MLflow's usage telemetry stays off unless asked for.
        env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        for name in ("MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID"):
            env.pop(name, None)
    if _is_spark_step(node):
        env.update(_spark_settings(ws, node))
    server_url = os.environ.get("HEADRACE_SERVER_URL")
    if server_url:
        # Served by `headrace server`: the script may log through it with a token that is
        # good only for this step run (a script on another machine cannot reach
        # HEADRACE_RUN_DIR), and submit child runs of it; server/access.py says what else.
        # No server, no token row.
        env["HEADRACE_SERVER_URL"] = server_url
        env["HEADRACE_RUN_TOKEN"] = _run_token(ws, task)
    return env


_CREDENTIAL_VARIABLES: dict[Path, tuple[float, tuple[str, ...]]] = {}


def credential_variables(ws: WorkspaceStore) -> tuple[str, ...]:
    """The environment variables the workspace's datastores and notifications read
    credentials from (`"env:NAME"` references); looked up at most every 10 seconds."""
    import time

    now = time.monotonic()
    cached = _CREDENTIAL_VARIABLES.get(ws.root)
    if cached is not None and cached[0] > now:
        return cached[1]
    names = []
    for record in ws.meta.list_datastores():
        refs = (record.config or {}).get("credentials") or {}
        names += [str(r)[4:] for r in refs.values() if str(r).startswith("env:")]
    for notification in ws.meta.list_notifications():  # a webhook URL, an SMTP password
        refs = [notification.config.get("url"), notification.config.get("smtp_password")]
        names += [str(r)[4:] for r in refs if str(r).startswith("env:")]
    _CREDENTIAL_VARIABLES[ws.root] = (now + 10.0, tuple(names))
    return tuple(names)


def _is_spark_step(node: StepNode) -> bool:
    """A SparkStep: a step of the `spark` kind, or one recorded before kinds were packages
    (`python -m headrace.engine.sparkrun ...`)."""
    if node.step_kind is not None:
        return node.step_kind == "spark"
    return node.kind == "command" and "headrace.engine.sparkrun" in (node.command or "")


def _spark_settings(ws: WorkspaceStore, node: StepNode) -> dict[str, str]:
    """What a SparkStep's process reads about its master (kinds/spark/program.py), so that
    it needs neither workspace.json nor the database."""
    settings = {}
    master = ws.config.get("spark_master")
    if isinstance(master, str):
        settings["HEADRACE_SPARK_MASTER"] = master
    record = ws.meta.find_compute_target(node.compute_target)
    if record is not None:
        target = {"name": record.name, "type": record.type, "config": record.config}
        settings["HEADRACE_COMPUTE_TARGET"] = json.dumps(target, default=str)
    return settings


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
