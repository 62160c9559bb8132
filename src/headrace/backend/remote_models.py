"""The model registry over HTTP: the `Backend` model methods of `RemoteBackend`.

`Model.register` hashes the files here and uploads the contents the server lacks as
snapshot blobs (the same chunked, deduplicated path a source snapshot takes), then names
them in one `POST /api/v1/models`. A step registering through its run token cannot upload
blobs; it puts the files among its own run's files (`.headrace/models/<id>/`, removed once
registered) and registers them from there, which is what its token may do. Reading a model
in place works when the server's folder is on this machine and readable (a step of the
server); otherwise the files are downloaded.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headrace.backend.local_models import STAGED_MODELS, model_source_files
from headrace.backend.wire import from_wire, url_path, url_segment
from headrace.store.datastores import clean_relative_path
from headrace.store.models import check_model_name, filter_pairs
from headrace.store.records import ModelRecord

__all__ = ["RemoteModelMethods"]


def _filters(name: str, filters: Any) -> list[tuple[str, str]]:
    return [
        (name, key if wanted is ... else f"{key}={wanted}") for key, wanted in filter_pairs(filters)
    ]


class RemoteModelMethods:
    if TYPE_CHECKING:  # provided by RemoteBackend

        def _json(self, method: str, path: str, **kwargs: Any) -> Any: ...

        def _upload(self, path: str, source: Path, params: dict[str, Any] | None = None) -> Any: ...

        def _download(self, path: str, destination: Path) -> None: ...

    def _record(self, method: str, path: str, **kwargs: Any) -> ModelRecord:
        return from_wire(ModelRecord, self._json(method, path, **kwargs))

    def _model_path(self, name: str, version: int) -> str:
        return f"/models/{url_segment(name)}/versions/{int(version)}"

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
        from headrace.engine.snapshots import _hash_file

        check_model_name(name)  # before any byte is sent
        root, is_folder, files = model_source_files(Path(source), child_paths)
        if run_id is not None:
            staged = f"{STAGED_MODELS}/{uuid.uuid4().hex}/{root}"
            for rel, path in files:
                name_in_run = f"{staged}/{rel}" if rel else staged
                self._upload(f"/runs/{url_segment(run_id)}/files/{url_path(name_in_run)}", path)
            return self.register_run_model(
                run_id,
                name,
                staged,
                description=description,
                tags=tags,
                properties=properties,
                datasets=datasets,
            )
        shas = {rel: _hash_file(path) for rel, path in files}
        paths = {shas[rel]: path for rel, path in files}
        missing = self._json("POST", "/snapshots/missing-blobs", body={"shas": list(paths)})
        for sha in missing["missing"]:
            self._upload(f"/snapshots/blobs/{sha}", paths[sha])
        body = {
            "name": name,
            "description": description,
            "tags": tags or {},
            "properties": properties or {},
            "datasets": datasets or [],
            "root": root,
            "is_folder": is_folder,
            "files": shas,
        }
        return self._record("POST", "/models", body=body)

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
        body = {
            "name": name,
            "path": path,
            "description": description,
            "tags": tags or {},
            "properties": properties or {},
            "datasets": datasets or [],
        }
        return from_wire(
            ModelRecord, self._json("POST", f"/runs/{url_segment(run_id)}/models", body=body)
        )

    def get_model(self, name: str, version: int | None = None) -> ModelRecord:
        path = (
            f"/models/{url_segment(name)}" if version is None else self._model_path(name, version)
        )
        return from_wire(ModelRecord, self._json("GET", path))

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
        params: list[tuple[str, str]] = [*_filters("tag", tags), *_filters("property", properties)]
        for key, value in (("name", name), ("runId", run_id), ("datasetId", dataset_id)):
            if value is not None:
                params.append((key, value))
        if latest:
            params.append(("latest", "true"))
        return [from_wire(ModelRecord, m) for m in self._json("GET", "/models", params=params)]

    def update_model(
        self,
        name: str,
        version: int,
        *,
        tags: dict[str, Any] | None = None,
        properties: dict[str, Any] | None = None,
        description: str | None = None,
    ) -> ModelRecord:
        body = {"tags": tags, "properties": properties, "description": description}
        return from_wire(
            ModelRecord, self._json("PATCH", self._model_path(name, version), body=body)
        )

    def delete_model(self, name: str, version: int) -> None:
        self._json("DELETE", self._model_path(name, version))

    def model_local_path(self, record: ModelRecord) -> Path | None:
        found = self._json("GET", self._model_path(record.name, record.version) + "/location")
        path = found.get("path")
        if not path or not os.access(path, os.R_OK):
            return None
        return Path(path)

    def download_model(self, record: ModelRecord, target_dir: Path) -> Path:
        base = self._model_path(record.name, record.version)
        target_dir = Path(target_dir)
        if record.is_folder:
            (target_dir / record.root).mkdir(parents=True, exist_ok=True)
        for entry in record.files:
            rel = clean_relative_path(str(entry[0]), what="model file name")
            self._download(f"{base}/files/{url_path(rel)}", target_dir / rel)
        return target_dir / record.root
