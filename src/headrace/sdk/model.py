"""`Model`: the model registry as SDK v1 shows it (`azureml.core.Model`).

A model is a named, versioned file or folder copied into the workspace, with the run that
produced it and the datasets it was trained on. `Model.register(ws, path, name)` registers a
file or folder from this machine, `run.register_model(name, 'outputs/model.pkl')` one of a
run's files, `Model(ws, name)` is the newest version, and `Model.get_model_path(name)` is
where a step (batch scoring's `init()`) reads one: in place when the workspace's files are
on this machine (a confined step may read the registry, nothing else of the workspace),
else downloaded once into `./azureml-models/<name>/<version>/`, SDK v1's cache.

Every call goes through the workspace's backend, so the same code works on a workspace
folder and on a server. Inside a step with no workspace at hand, `get_model_path` first
reads the registry folder of the step's workspace (no database: a scoring script starts
fast), then asks the step's own backend (`sdk.context.step_backend`).
"""

from __future__ import annotations

import builtins
import os
import shutil
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headrace.errors import ModelNotFoundError, UserError
from headrace.limits import MODEL_NAME
from headrace.store.records import ModelRecord

if TYPE_CHECKING:
    from headrace.backend.protocol import Backend
    from headrace.sdk.workspace import Workspace

__all__ = [
    "DatasetReference",
    "Model",
    "check_extra_arguments",
    "dataset_lineage",
    "framework_properties",
    "parse_model_id",
]

_CACHE = "azureml-models"
_FRAMEWORK = "model_framework"
_FRAMEWORK_VERSION = "model_framework_version"
# Arguments of SDK v1 for deploying models (profiling, web services), which headrace does
# not do: accepted, and said to be ignored, so registering code ports unchanged.
_DEPLOYMENT_ONLY = ("sample_input_dataset", "sample_output_dataset", "resource_configuration")


class DatasetReference:
    """A dataset a model was trained on, as recorded: `scenario`, `id`, `name`, `version`."""

    def __init__(self, entry: dict[str, Any]) -> None:
        self.scenario = str(entry.get("scenario") or "training")
        self.id = entry.get("id")
        self.name = entry.get("name")
        self.version = entry.get("version")

    def __repr__(self) -> str:
        return f"DatasetReference(name={self.name!r}, version={self.version!r}, id={self.id!r})"


def dataset_lineage(datasets: Any) -> list[dict[str, Any]]:
    """SDK v1's `datasets=[('training', ds), ...]` (or bare datasets) as lineage entries."""
    entries: list[dict[str, Any]] = []
    for given in datasets or []:
        scenario, item = "training", given
        if isinstance(given, (tuple, list)) and len(given) == 2 and isinstance(given[0], str):
            scenario, item = given
        if not (hasattr(item, "name") or hasattr(item, "id")):
            raise UserError(
                f"datasets= takes datasets or ('scenario', dataset) pairs; got {item!r}."
            )
        if getattr(item, "name", None) is None and getattr(item, "id", None) is None:
            raise UserError(
                "A dataset in datasets= is not registered, so a model cannot name it; "
                "register it first: dataset = dataset.register(ws, name)."
            )
        version = getattr(item, "version", None)
        entries.append(
            {
                "scenario": scenario,
                "id": None if getattr(item, "id", None) is None else str(item.id),
                "name": getattr(item, "name", None),
                "version": version if isinstance(version, (int, str, type(None))) else str(version),
            }
        )
    return entries


def check_extra_arguments(kwargs: dict[str, Any], call: str) -> None:
    used = [k for k in _DEPLOYMENT_ONLY if kwargs.get(k) is not None]
    if used:
        warnings.warn(
            f"{call}: {', '.join(used)} ignored; headrace registers models but does not "
            "deploy or profile them.",
            UserWarning,
            stacklevel=3,
        )
    unknown = sorted(set(kwargs) - set(_DEPLOYMENT_ONLY))
    if unknown:
        raise UserError(f"{call} got unexpected arguments: {', '.join(unknown)}.")


def framework_properties(
    properties: dict[str, Any] | None, framework: str | None, version: str | None
) -> dict[str, Any]:
    merged = dict(properties or {})
    if framework is not None:
        merged[_FRAMEWORK] = str(framework)
    if version is not None:
        merged[_FRAMEWORK_VERSION] = str(version)
    return merged


def parse_model_id(model_id: str) -> tuple[str, int | None]:
    name, sep, version = str(model_id).rpartition(":")
    if not sep:
        return str(model_id), None
    if not version.isdigit():
        raise UserError(f"Model id {model_id!r} is not 'name:version' (e.g. 'mnist:3').")
    return name, int(version)


class Model:
    """A registered model version. `Model(ws, name)` is the newest version of `name`;
    `Model(ws, name, version=2)` or `Model(ws, id='name:2')` a given one."""

    def __init__(
        self,
        workspace: Workspace,
        name: str | None = None,
        id: str | None = None,
        tags: Any = None,
        properties: Any = None,
        version: int | None = None,
        run_id: str | None = None,
        model_framework: str | None = None,
        expand: bool = True,
        **kwargs: Any,
    ) -> None:
        self.workspace = workspace
        if "_record" in kwargs:
            self._record: ModelRecord = kwargs.pop("_record")
            return
        if kwargs:
            raise UserError(f"Model(...) got unexpected arguments: {', '.join(sorted(kwargs))}.")
        if id is not None:
            name, version = parse_model_id(id)
        if name is None:
            raise UserError("Model(ws, ...) needs a name or an id ('name:version').")
        backend = workspace.backend
        if tags is None and properties is None and run_id is None and model_framework is None:
            self._record = backend.get_model(name, None if version is None else int(version))
            return
        wanted = framework_properties(None, model_framework, None)
        found = [
            r
            for r in backend.list_models(name=name, tags=tags, properties=properties, run_id=run_id)
            if (version is None or r.version == int(version))
            and all(r.properties.get(k) == v for k, v in wanted.items())
        ]
        if not found:
            backend.get_model(name, version)  # says what exists when the name is unknown
            raise ModelNotFoundError(
                f"No version of model {name!r} matches tags={tags!r}, properties="
                f"{properties!r}, run_id={run_id!r}; Model.list(ws, name={name!r}) lists them."
            )
        self._record = found[0]

    @classmethod
    def _from_record(cls, workspace: Workspace, record: ModelRecord) -> Model:
        return cls(workspace, _record=record)

    # -- registering -----------------------------------------------------------------------
    @staticmethod
    def register(
        workspace: Workspace,
        model_path: str | os.PathLike[str],
        model_name: str,
        tags: dict[str, Any] | None = None,
        properties: dict[str, Any] | None = None,
        description: str | None = None,
        datasets: Any = None,
        model_framework: str | None = None,
        model_framework_version: str | None = None,
        child_paths: list[str] | None = None,
        **kwargs: Any,
    ) -> Model:
        """Copy the file or folder `model_path` into the workspace as the next version of
        `model_name`. Inside a step, the step's run is recorded as the one that produced it."""
        check_extra_arguments(kwargs, "Model.register")
        from headrace.sdk.context import ScriptRun, current_step_run_id, get_context

        run_id = current_step_run_id(workspace)
        context = get_context()
        if datasets is None and run_id is not None and isinstance(context, ScriptRun):
            datasets = context._input_lineage()  # what the registering step read
        record = workspace.backend.register_model(
            model_name,
            Path(model_path),
            child_paths=child_paths,
            description=description,
            tags=dict(tags or {}),
            properties=framework_properties(properties, model_framework, model_framework_version),
            datasets=dataset_lineage(datasets),
            run_id=run_id,
        )
        print(f"Registering model {record.name}")  # noqa: T201  (SDK v1 prints this line)
        return Model._from_record(workspace, record)

    @staticmethod
    def list(
        workspace: Workspace,
        name: str | None = None,
        tags: Any = None,
        properties: Any = None,
        run_id: str | None = None,
        latest: bool = False,
        dataset_id: str | None = None,
        **kwargs: Any,
    ) -> list[Model]:
        """Registered model versions (by name, newest first), filtered as SDK v1 does:
        `tags=['key', ['key2', 'value']]`; `latest`: the newest version of each name."""
        check_extra_arguments(
            {k: v for k, v in kwargs.items() if k not in ("expand", "page_count")}, "Model.list"
        )
        records = workspace.backend.list_models(
            name=name,
            tags=tags,
            properties=properties,
            run_id=run_id,
            dataset_id=dataset_id,
            latest=latest,
        )
        return [Model._from_record(workspace, r) for r in records]

    # -- reading in a step -----------------------------------------------------------------
    @staticmethod
    def get_model_path(
        model_name: str, version: int | None = None, _workspace: Workspace | None = None
    ) -> str:
        """The local path of a registered model's file or folder: what a scoring script's
        `init()` loads. In a step (or with `_workspace`) it asks the workspace; otherwise
        it looks in `./azureml-models/<name>/<version>/` as SDK v1 does."""
        from headrace.sdk.context import step_backend

        if _workspace is None:
            registered = _registry_path(model_name, version)
            if registered is not None:
                return registered
        backend: Backend | None = _workspace.backend if _workspace is not None else None
        if backend is None:
            backend = step_backend()
        if backend is None:
            return _cached_path(model_name, version)
        record = backend.get_model(model_name, None if version is None else int(version))
        in_place = backend.model_local_path(record)
        if in_place is not None:
            return str(in_place)
        cached = Path(_CACHE) / record.name / str(record.version)
        if not (cached / record.root).exists():
            partial = Path(_CACHE) / record.name / f".{record.version}.{os.getpid()}.partial"
            shutil.rmtree(partial, ignore_errors=True)
            backend.download_model(record, partial)
            cached.parent.mkdir(parents=True, exist_ok=True)
            os.replace(partial, cached)
        return str((cached / record.root).absolute())

    def download(
        self, target_dir: str = ".", exist_ok: bool = False, exists_ok: bool | None = None
    ) -> str:
        """Copy the model's file or folder into `target_dir`; the path of the copy."""
        exist_ok = exist_ok or bool(exists_ok)
        target = Path(target_dir) / self._record.root
        if target.exists():
            if not exist_ok:
                raise UserError(
                    f"{target} already exists; pass exist_ok=True to replace it, or "
                    "download into another target_dir."
                ).in_cli_words(
                    f"{target} already exists; pass --exist-ok to replace it, or download "
                    "into another TARGET_DIR."
                )
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            else:
                target.unlink()
        return str(self.workspace.backend.download_model(self._record, Path(target_dir)))

    # -- what a model is -------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._record.name

    @property
    def version(self) -> int:
        return self._record.version

    @property
    def id(self) -> str:
        return self._record.id

    @property
    def description(self) -> str | None:
        return self._record.description

    @property
    def tags(self) -> dict[str, Any]:
        return dict(self._record.tags)

    @property
    def properties(self) -> dict[str, Any]:
        return dict(self._record.properties)

    @property
    def created_time(self) -> Any:
        return self._record.created_at

    @property
    def run_id(self) -> str | None:
        return self._record.run_id

    @property
    def experiment_name(self) -> str | None:
        return self._record.experiment_name

    @property
    def run(self) -> Any:
        """The run that produced this version (a step run or a pipeline run), if any."""
        if self._record.run_id is None:
            return None
        from headrace.sdk.runs import PipelineRun, StepRun

        backend = self.workspace.backend
        if backend.find_step_run(self._record.run_id) is not None:
            return StepRun.get(self.workspace, self._record.run_id)
        return PipelineRun.get(self.workspace, self._record.run_id)

    @property
    def datasets(self) -> dict[str, builtins.list[Any]]:
        """The datasets it was trained on, by scenario (SDK v1: {'training': [dataset]}):
        the registered dataset versions, or a `DatasetReference` (id, name, version) for
        one no longer in the workspace."""
        found: dict[str, builtins.list[Any]] = {}
        for entry in self._record.datasets:
            reference = DatasetReference(entry)
            found.setdefault(reference.scenario, []).append(self._dataset(reference))
        return found

    def _dataset(self, reference: DatasetReference) -> Any:
        from headrace.errors import NotFoundError
        from headrace.sdk.dataset_factory import Dataset

        try:
            if reference.id is not None:
                return Dataset.get_by_id(self.workspace, str(reference.id))
            version = "latest" if reference.version is None else reference.version
            return Dataset.get_by_name(self.workspace, str(reference.name), version)
        except NotFoundError:
            return reference

    @property
    def model_framework(self) -> str | None:
        value = self._record.properties.get(_FRAMEWORK)
        return None if value is None else str(value)

    @property
    def model_framework_version(self) -> str | None:
        value = self._record.properties.get(_FRAMEWORK_VERSION)
        return None if value is None else str(value)

    @property
    def content_hash(self) -> str:
        """sha256 of the version's file list (paths, sizes, sha256 of each file)."""
        return self._record.content_hash

    @property
    def url(self) -> str:
        return f"headrace://models/{self.name}/{self.version}/{self._record.root}"

    # -- changing it -----------------------------------------------------------------------
    def _update(self, **fields: Any) -> None:
        self._record = self.workspace.backend.update_model(self.name, self.version, **fields)

    def add_tags(self, tags: dict[str, Any]) -> None:
        """Add tags (a key that exists gets the new value)."""
        self._update(tags={**self._record.tags, **dict(tags)})

    def remove_tags(self, tags: Any) -> None:
        """Remove the tags with these keys (a list of keys, or one key)."""
        keys = {tags} if isinstance(tags, str) else set(tags)
        self._update(tags={k: v for k, v in self._record.tags.items() if k not in keys})

    def add_properties(self, properties: dict[str, Any]) -> None:
        """Add properties; as in SDK v1, an existing property cannot change its value."""
        changed = sorted(
            k
            for k, v in properties.items()
            if k in self._record.properties and self._record.properties[k] != v
        )
        if changed:
            raise UserError(
                f"Properties of a model cannot be changed, only added: {', '.join(changed)} "
                f"already set on {self.id}; use tags for values that change."
            )
        self._update(properties={**self._record.properties, **dict(properties)})

    def update(
        self, tags: dict[str, Any] | None = None, description: str | None = None, **kwargs: Any
    ) -> None:
        """Replace the tags and/or the description."""
        check_extra_arguments(kwargs, "Model.update")
        self._update(tags=None if tags is None else dict(tags), description=description)

    def update_tags_properties(
        self,
        add_tags: dict[str, Any] | None = None,
        remove_tags: Any = None,
        add_properties: dict[str, Any] | None = None,
    ) -> None:
        if add_tags:
            self.add_tags(add_tags)
        if remove_tags:
            self.remove_tags(remove_tags)
        if add_properties:
            self.add_properties(add_properties)

    def delete(self) -> None:
        """Delete this version and its files from the workspace."""
        self.workspace.backend.delete_model(self.name, self.version)

    def serialize(self) -> dict[str, Any]:
        """The model as a JSON-ready dict (SDK v1's keys); `Model.deserialize` reads it."""
        r = self._record
        return {
            "id": r.id,
            "name": r.name,
            "version": r.version,
            "description": r.description,
            "tags": dict(r.tags),
            "properties": dict(r.properties),
            "createdTime": r.created_at.isoformat(),
            "experimentName": r.experiment_name,
            "runId": r.run_id,
            "datasets": [dict(d) for d in r.datasets],
            "framework": self.model_framework,
            "frameworkVersion": self.model_framework_version,
            "url": self.url,
            "contentHash": r.content_hash,
        }

    @staticmethod
    def deserialize(workspace: Workspace, model_payload: dict[str, Any]) -> Model:
        """The registered model a `serialize()` dict names, read afresh from the workspace."""
        try:
            name, version = str(model_payload["name"]), int(model_payload["version"])
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(
                "Model.deserialize needs the dict Model.serialize() returns (with name and "
                "version)."
            ) from exc
        return Model(workspace, name, version=version)

    # -- deploying: not part of headrace -------------------------------------------------
    @staticmethod
    def _not_deployed(call: str) -> UserError:
        return UserError(
            f"{call} deploys models to Azure web services, which headrace does not do: it "
            "registers models. Serve the files of model.download(target_dir) (or "
            "Model.get_model_path(name) in a step) with a web framework of your choice."
        )

    @staticmethod
    def deploy(*args: Any, **kwargs: Any) -> None:
        raise Model._not_deployed("Model.deploy")

    @staticmethod
    def package(*args: Any, **kwargs: Any) -> None:
        raise Model._not_deployed("Model.package")

    @staticmethod
    def profile(*args: Any, **kwargs: Any) -> None:
        raise Model._not_deployed("Model.profile")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Model) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return (
            f"Model(workspace={self.workspace!r}, name={self.name}, id={self.id}, "
            f"version={self.version}, tags={self.tags}, properties={self.properties})"
        )


def _registry_path(name: str, version: int | None) -> str | None:
    """In a step that can read its workspace's model registry (a workspace folder, or a
    server's confined step, which may read the registry and nothing else of it): the
    model's file or folder there, found without opening the database (which costs a
    scoring script's start more than the lookup itself). None: ask the backend."""
    workspace = os.environ.get("HEADRACE_WORKSPACE")
    if not os.environ.get("HEADRACE_RUN_ID") or not workspace or not MODEL_NAME.match(name):
        return None
    base = Path(workspace) / "artifacts" / "models" / name
    try:
        versions = [int(v) for v in os.listdir(base) if v.isdigit()]
        chosen = int(version) if version is not None else max(versions, default=0)
        if chosen not in versions:
            return None
        entries = [e for e in os.listdir(base / str(chosen)) if not e.startswith(".")]
    except (OSError, ValueError):
        return None
    return str(base / str(chosen) / entries[0]) if len(entries) == 1 else None


def _cached_path(name: str, version: int | None) -> str:
    """Outside a run and without a workspace: SDK v1's local cache, or `./<name>`."""
    base = Path(_CACHE) / name
    versions = (
        sorted(int(p.name) for p in base.iterdir() if p.name.isdigit()) if base.is_dir() else []
    )
    chosen = version if version is not None else (versions[-1] if versions else None)
    if chosen is not None and (base / str(chosen)).is_dir():
        entries = [p for p in (base / str(chosen)).iterdir() if not p.name.startswith(".")]
        if len(entries) == 1:
            return str(entries[0].absolute())
        return str((base / str(chosen)).absolute())
    if version is None and Path(name).exists():
        return str(Path(name).absolute())
    raise ModelNotFoundError(
        f"Model.get_model_path({name!r}) found no model: outside a pipeline step it looks in "
        f"./{_CACHE}/{name}/<version>/ and ./{name}; pass _workspace=ws to fetch it from a "
        "workspace."
    )
