"""The model registry of a workspace folder: the `Backend` model methods of `LocalBackend`.

Registering copies a file or folder (from anywhere on this machine, or from a run's files)
into the artifact store (`store.models`). A model is registered from a run only while the
run runs or after it succeeded: a failed or canceled run's files are not a model.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headrace.errors import ConflictError, UserError
from headrace.store.datastores import clean_relative_path
from headrace.store.models import (
    model_files_of,
    model_folder,
    register_model_files,
    remove_model_files,
)
from headrace.store.records import ModelRecord, Status

if TYPE_CHECKING:
    from headrace.store.workspace_store import WorkspaceStore

__all__ = ["STAGED_MODELS", "LocalModelMethods", "model_source_files"]

_REFUSED = (Status.FAILED, Status.CANCELED)
# Where a step on another machine (or confined) puts a model's files among its run's files
# before `Model.register` through the server registers them (then they are removed).
STAGED_MODELS = ".headrace/models"


def model_source_files(
    path: Path, child_paths: list[str] | None = None
) -> tuple[str, bool, list[tuple[str, Path]]]:
    """The root name, whether it is a folder, and the files of a model at local `path`."""
    if not path.exists():
        raise UserError(
            f"The model path {str(path)!r} does not exist (looked for {path.absolute()}); "
            "pass the file or folder the model was saved to."
        )
    resolved = path.resolve()
    root = resolved.name
    if path.is_file():
        return root, False, [("", path)]
    files = model_files_of(path)
    if child_paths:
        wanted = {clean_relative_path(c, what="child path") for c in child_paths}
        files = [(rel, f) for rel, f in files if rel in wanted]
        missing = sorted(wanted - {rel for rel, _ in files})
        if missing:
            raise UserError(
                f"child_paths names files that are not in {str(path)!r}: "
                f"{', '.join(missing[:10])}; paths are relative to the model folder."
            )
    return root, True, files


class LocalModelMethods:
    store: WorkspaceStore

    def register_model(
        self,
        name: str,
        source: Path,
        *,
        child_paths: list[str] | None = None,
        description: str | None = None,
        tags: dict[str, Any] | None = None,
        properties: dict[str, Any] | None = None,
        datasets: list[dict[str, Any]] | None = None,
        run_id: str | None = None,
    ) -> ModelRecord:
        """Register the file or folder at `source` (on this machine) as the next version
        of model `name`; `run_id`: the run registering it, if any (recorded as lineage)."""
        root, is_folder, files = model_source_files(Path(source), child_paths)
        experiment = self._run_for_model(run_id) if run_id else None
        return register_model_files(
            self.store.artifacts,
            self.store.meta,
            name=name,
            root=root,
            is_folder=is_folder,
            sources=files,
            description=description,
            tags=tags,
            properties=properties,
            datasets=datasets,
            run_id=run_id,
            experiment_name=experiment,
        )

    def register_run_model(
        self,
        run_id: str,
        name: str,
        path: str,
        *,
        description: str | None = None,
        tags: dict[str, Any] | None = None,
        properties: dict[str, Any] | None = None,
        datasets: list[dict[str, Any]] | None = None,
    ) -> ModelRecord:
        """Register file or folder `path` of the run's files (e.g. 'outputs/model.pkl')."""
        experiment = self._run_for_model(run_id)
        rel = clean_relative_path(path, what="model path")
        artifacts = self.store.artifacts
        if not rel:
            raise UserError(
                "A model path inside a run names a file or folder of its files, for example "
                "'outputs/model.pkl'; got an empty path."
            )
        target = artifacts.file_path(run_id, rel)
        staged = rel.startswith(STAGED_MODELS + "/") and rel.count("/") == 3
        hidden = rel.startswith(".headrace") and not staged  # the run's own bookkeeping
        if target.is_file() and not hidden:
            sources: list[tuple[str, Path]] = [("", target)]
        elif target.is_dir() and not hidden:
            sources = model_files_of(target)
        else:
            names = [n for n, _ in artifacts.list_files(run_id)]
            shown = ", ".join(names[:15]) + (
                f" and {len(names) - 15} more" if len(names) > 15 else ""
            )
            raise UserError(
                f"The run {run_id} has no file or folder {path!r}"
                + (f"; its files are: {shown}." if names else "; it has no files yet.")
                + " A step keeps what it writes to ./outputs (or uploads with run.upload_file)."
            )
        try:
            return register_model_files(
                artifacts,
                self.store.meta,
                name=name,
                root=rel.rsplit("/", 1)[-1],
                is_folder=target.is_dir(),
                sources=sources,
                description=description,
                tags=tags,
                properties=properties,
                datasets=datasets,
                run_id=run_id,
                experiment_name=experiment,
                guard=artifacts.run_dir(run_id),
            )
        finally:
            if staged:
                shutil.rmtree(target.parent, ignore_errors=True)

    def register_model_blobs(
        self,
        name: str,
        *,
        root: str,
        is_folder: bool,
        files: dict[str, str],
        description: str | None = None,
        tags: dict[str, Any] | None = None,
        properties: dict[str, Any] | None = None,
        datasets: list[dict[str, Any]] | None = None,
    ) -> ModelRecord:
        """Register a model whose files (path below `root` -> sha256; `""` for a file
        model) were uploaded as content-addressed blobs (a remote `Model.register`)."""
        artifacts = self.store.artifacts
        sources: list[tuple[str, Path]] = []
        missing: list[str] = []
        for rel, sha in sorted(files.items()):
            clean = clean_relative_path(rel, what="model file name")
            if clean != rel or (not is_folder and rel) or (is_folder and not rel):
                raise UserError(
                    f"Model file name {rel!r} is not valid here: a file model has one file "
                    "named '', a folder model relative paths inside the folder."
                )
            blob = artifacts.blob_path(sha)
            if not blob.is_file():
                missing.append(rel or root)
            sources.append((rel, blob))
        if missing:
            raise UserError(
                f"The model names files whose contents were not uploaded: "
                f"{', '.join(missing[:5])}; upload their blobs first "
                "(PUT /api/v1/snapshots/blobs/{sha})."
            )
        if not is_folder and len(sources) != 1:
            raise UserError("A file model has exactly one file.")
        return register_model_files(
            artifacts,
            self.store.meta,
            name=name,
            root=root,
            is_folder=is_folder,
            sources=sources,
            description=description,
            tags=tags,
            properties=properties,
            datasets=datasets,
        )

    def _run_for_model(self, run_id: str) -> str:
        """The experiment of run `run_id`, which may register models (else an error)."""
        meta = self.store.meta
        step = meta.find_step_run(run_id)
        pipeline = meta.get_pipeline_run(step.pipeline_run_id if step else run_id)
        status = step.status if step else pipeline.status
        if status in _REFUSED:
            kind = f"step run {step.name!r}" if step else "pipeline run"
            raise ConflictError(
                f"The {kind} {run_id} ended {status}; a model is registered only from a run "
                "that is running or finished. Fix the run and register from one that "
                "finished, or register the file itself with Model.register(ws, model_path, "
                "model_name)."
            )
        return pipeline.experiment_name

    def get_model(self, name: str, version: int | None = None) -> ModelRecord:
        return self.store.meta.get_model(name, version)

    def list_models(
        self,
        *,
        name: str | None = None,
        tags: Any = None,
        properties: Any = None,
        run_id: str | None = None,
        dataset_id: str | None = None,
        latest: bool = False,
    ) -> list[ModelRecord]:
        return self.store.meta.list_models(
            name=name,
            tags=tags,
            properties=properties,
            run_id=run_id,
            dataset_id=dataset_id,
            latest=latest,
        )

    def update_model(
        self,
        name: str,
        version: int,
        *,
        tags: dict[str, Any] | None = None,
        properties: dict[str, Any] | None = None,
        description: str | None = None,
    ) -> ModelRecord:
        return self.store.meta.update_model(
            name, version, tags=tags, properties=properties, description=description
        )

    def delete_model(self, name: str, version: int) -> None:
        remove_model_files(self.store.artifacts, self.store.meta, name, version)

    def model_local_path(self, record: ModelRecord) -> Path | None:
        """Where this machine reads the model's file or folder in place."""
        path = model_folder(self.store.artifacts, record.name, record.version) / record.root
        return path if path.exists() else None

    def download_model(self, record: ModelRecord, target_dir: Path) -> Path:
        """Copy the model's file or folder into `target_dir` (what is there is replaced)."""
        source = self.model_local_path(record)
        if source is None:
            raise UserError(
                f"The files of model {record.id} are missing from the workspace's artifact "
                "store; register it again."
            )
        target = Path(target_dir) / record.root
        target.parent.mkdir(parents=True, exist_ok=True)
        if record.is_folder:
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            shutil.copyfile(source, target)
        return target
