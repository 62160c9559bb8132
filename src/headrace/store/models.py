"""The model registry: registered model versions in the metadata store, their files in the
artifact store.

    artifacts/models/<name>/<version>/<root>          the registered file, or folder
    artifacts/models/.staging/<uuid>/<root>           a registration being copied

`register_model_files` copies (and hashes) the files into a staging folder without holding
any lock, then, in one short write transaction, takes the next version number, inserts the
row and renames the staging folder into place; a failed commit removes the folder again, so
a version's row and its files appear together. `ModelQueries` (inherited by
`SqlMetadataStore`) reads and changes the rows. Nothing here checks who may register or
whether a run may register models: that is the backend's business.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from headrace.errors import ModelNotFoundError, StoreError, UserError
from headrace.limits import MODEL_NAME
from headrace.store.orm import ModelRow
from headrace.store.records import ModelRecord

if TYPE_CHECKING:
    from headrace.store.artifacts import LocalArtifactStore
    from headrace.store.database import Database

__all__ = [
    "ModelQueries",
    "check_model_name",
    "filter_pairs",
    "matches_filters",
    "model_document",
    "model_files_of",
    "model_folder",
    "model_record",
    "register_model_files",
    "remove_model_files",
    "step_run_ids",
]

_REGISTER_TRIES = 5  # concurrent registrations of one name race for its next version


def check_model_name(name: str) -> str:
    if not isinstance(name, str) or not MODEL_NAME.match(name):
        raise UserError(
            f"Model name {str(name)[:80]!r} is not valid: use 1 to 255 letters, digits, '-', "
            "'_' and '.', starting with a letter or digit (for example 'sklearn-mnist')."
        )
    return name


def model_record(row: ModelRow) -> ModelRecord:
    return ModelRecord(
        name=row.name,
        version=row.version,
        description=row.description,
        tags=dict(row.tags or {}),
        properties=dict(row.properties or {}),
        datasets=list(row.datasets or []),
        run_id=row.run_id,
        experiment_name=row.experiment_name,
        root=row.root,
        is_folder=row.is_folder,
        files=[list(f) for f in row.files or []],
        size=row.size,
        content_hash=row.content_hash,
        created_at=row.created_at,
    )


def model_document(record: ModelRecord) -> dict[str, Any]:
    """A model version as the CLI's --json and the portal's JSON twins show it."""
    return {
        "id": record.id,
        "name": record.name,
        "version": record.version,
        "description": record.description,
        "tags": record.tags,
        "properties": record.properties,
        "run_id": record.run_id,
        "experiment": record.experiment_name,
        "datasets": record.datasets,
        "root": record.root,
        "is_folder": record.is_folder,
        "files": [{"path": f[0], "size": f[1], "sha256": f[2]} for f in record.files],
        "size": record.size,
        "content_hash": record.content_hash,
        "created_at": record.created_at.isoformat(),
    }


def step_run_ids(db: Database, ids: Iterable[str]) -> set[str]:
    """Which of `ids` are step runs (the others are pipeline runs); one query."""
    from headrace.store.orm import StepRunRow

    wanted = list(set(ids))
    if not wanted:
        return set()
    with db.read() as s:
        return set(s.scalars(select(StepRunRow.id).where(StepRunRow.id.in_(wanted))).all())


def model_folder(artifacts: LocalArtifactStore, name: str, version: int) -> Path:
    """The folder holding version `version` of model `name` (its `root` is inside)."""
    return artifacts.models_dir() / check_model_name(name) / str(int(version))


def filter_pairs(filters: Any) -> list[tuple[str, Any]]:
    """SDK v1 filters (`['key', ['key2', 'value']]`, or a dict) as (key, value-or-...)."""
    if filters is None:
        return []
    if isinstance(filters, dict):
        return [(str(k), v) for k, v in filters.items()]
    if isinstance(filters, str):
        return [(filters, ...)]
    found: list[tuple[str, Any]] = []
    for item in filters:
        if isinstance(item, str):
            found.append((item, ...))
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            found.append((str(item[0]), item[1]))
        else:
            raise UserError(
                f"Filter {item!r} is not 'key' or ['key', 'value']; for example "
                "tags=['stage', ['framework', 'sklearn']]."
            )
    return found


def matches_filters(values: dict[str, Any], filters: Any) -> bool:
    """Whether `values` (tags or properties) has every key, and value, `filters` asks for."""
    return all(
        key in values and (wanted is ... or str(values[key]) == str(wanted))
        for key, wanted in filter_pairs(filters)
    )


class ModelQueries:
    db: Database

    def _latest_version(self, session: Any, name: str) -> int:
        return int(
            session.scalar(select(func.max(ModelRow.version)).where(ModelRow.name == name)) or 0
        )

    def find_model(self, name: str, version: int | None = None) -> ModelRecord | None:
        """Version `version` of model `name` (None: the newest), or None."""
        with self.db.read() as s:
            query = select(ModelRow).where(ModelRow.name == name)
            if version is not None:
                query = query.where(ModelRow.version == int(version))
            row = s.scalars(query.order_by(ModelRow.version.desc()).limit(1)).first()
            return None if row is None else model_record(row)

    def get_model(self, name: str, version: int | None = None) -> ModelRecord:
        """Like `find_model`, but a missing model or version raises ModelNotFoundError
        naming what the workspace has."""
        record = self.find_model(name, version)
        if record is not None:
            return record
        with self.db.read() as s:
            versions = s.scalars(
                select(ModelRow.version).where(ModelRow.name == name).order_by(ModelRow.version)
            ).all()
            if versions:
                listed = ", ".join(str(v) for v in versions)
                raise ModelNotFoundError(
                    f"Model {name!r} has no version {version}; its versions are {listed}. "
                    f"Model(ws, {name!r}) gives the newest."
                )
            names = s.scalars(select(ModelRow.name).distinct().order_by(ModelRow.name)).all()
        known = ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")
        raise ModelNotFoundError(
            f"No model named {name!r} is registered in this workspace; "
            + (f"the registered models are: {known}." if names else "no model is registered yet.")
            + " Register one with Model.register(ws, model_path, model_name)."
        )

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
        """Registered model versions, by name then newest first; `latest`: only the newest
        version of each name that matches."""
        query = select(ModelRow).order_by(ModelRow.name, ModelRow.version.desc())
        if name is not None:
            query = query.where(ModelRow.name == name)
        if run_id is not None:
            query = query.where(ModelRow.run_id == run_id)
        with self.db.read() as s:
            records = [model_record(r) for r in s.scalars(query).all()]
        records = [
            r
            for r in records
            if matches_filters(r.tags, tags)
            and matches_filters(r.properties, properties)
            and (dataset_id is None or any(d.get("id") == dataset_id for d in r.datasets))
        ]
        if latest:
            newest: dict[str, ModelRecord] = {}
            for record in records:
                newest.setdefault(record.name, record)  # sorted newest first
            records = list(newest.values())
        return records

    def update_model(
        self,
        name: str,
        version: int,
        *,
        tags: dict[str, Any] | None = None,
        properties: dict[str, Any] | None = None,
        description: str | None = None,
    ) -> ModelRecord:
        """Set the given fields (each replaces what was there; None leaves it)."""
        with self.db.write() as s:
            row = s.get(ModelRow, (name, int(version)))
            if row is None:
                raise ModelNotFoundError(f"No version {version} of model {name!r}.")
            if tags is not None:
                row.tags = dict(tags)
            if properties is not None:
                row.properties = dict(properties)
            if description is not None:
                row.description = description
            s.flush()
            return model_record(row)

    def delete_model_row(
        self, name: str, version: int, in_transaction: Callable[[], None] | None = None
    ) -> None:
        """Delete the row; `in_transaction` runs before the commit (it moves the files
        away, so a folder never outlives its row)."""
        with self.db.write() as s:
            row = s.get(ModelRow, (name, int(version)))
            if row is None:
                raise ModelNotFoundError(f"No version {version} of model {name!r} to delete.")
            s.delete(row)
            s.flush()
            if in_transaction is not None:
                in_transaction()


def _open_inside(source: Path, guard: Path | None) -> int:
    """An open file descriptor of regular file `source`; with `guard`, only if the file
    opened is inside that folder. What a step left among its run's files may be a link (or
    become one while it still runs): the check is on the file opened, not on the name."""
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK  # a fifo must not block the server
    fd = os.open(source, flags)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UserError(f"{source.name!r} is not a regular file; a model holds files only.")
        if guard is not None:
            opened = os.path.realpath(f"/proc/self/fd/{fd}")
            if not opened.startswith(os.path.realpath(guard) + os.sep):
                raise UserError(
                    f"{source.name!r} is a link that leads outside the run's files; a model "
                    "is registered from files the run wrote, so copy the file there instead."
                )
    except BaseException:
        os.close(fd)
        raise
    return fd


def _copy_hashed(source: Path, target: Path, guard: Path | None = None) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = _open_inside(source, guard)
    with os.fdopen(fd, "rb") as src, target.open("wb") as dst:
        executable = os.fstat(src.fileno()).st_mode & 0o100
        for block in iter(lambda: src.read(1 << 20), b""):
            digest.update(block)
            dst.write(block)
            size += len(block)
    # Readable by a server's step user (Model.get_model_path reads it in place), whatever
    # mode the source had; executable bits are kept.
    os.chmod(target, 0o755 if executable else 0o644)
    return size, digest.hexdigest()


def content_hash(files: Sequence[Sequence[Any]]) -> str:
    """The identity of a model version's content: the hash of its sorted file list."""
    text = json.dumps(sorted([list(f) for f in files]), separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def register_model_files(
    artifacts: LocalArtifactStore,
    meta: ModelQueries,
    *,
    name: str,
    root: str,
    is_folder: bool,
    sources: Iterable[tuple[str, Path]],
    description: str | None = None,
    tags: dict[str, Any] | None = None,
    properties: dict[str, Any] | None = None,
    datasets: list[dict[str, Any]] | None = None,
    run_id: str | None = None,
    experiment_name: str | None = None,
    guard: Path | None = None,
) -> ModelRecord:
    """Copy `sources` ((path below `root`, local file) pairs; `("", file)` for a file model)
    into the registry as the next version of `name`, and record it. `guard`: a folder every
    file read must really be in (a run's files, which its step may have filled with links)."""
    check_model_name(name)
    if not root or root in (".", "..") or "/" in root or len(root) > 255:
        raise UserError(f"{root!r} cannot name a model's file or folder.")
    staging = artifacts.models_dir() / ".staging" / uuid.uuid4().hex
    try:
        files: list[list[Any]] = []
        for rel, source in sources:
            path = f"{root}/{rel}" if rel else root
            size, sha = _copy_hashed(source, staging / path, guard)
            files.append([path, size, sha])
        if is_folder:
            (staging / root).mkdir(parents=True, exist_ok=True)  # an empty folder is a model
        files.sort()
        row_values = {
            "name": name,
            "description": description,
            "tags": dict(tags or {}),
            "properties": dict(properties or {}),
            "datasets": list(datasets or []),
            "run_id": run_id,
            "experiment_name": experiment_name,
            "root": root,
            "is_folder": is_folder,
            "files": files,
            "size": sum(f[1] for f in files),
            "content_hash": content_hash(files),
        }
        for _ in range(_REGISTER_TRIES):
            placed: Path | None = None
            try:
                with meta.db.write() as s:
                    if not meta.db.is_sqlite:
                        # Registrations of one name take turns (SQLite's writes already
                        # do): the next number, and the folder it names, are this one's.
                        key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")
                        s.execute(
                            text("SELECT pg_advisory_xact_lock(:key)"), {"key": key - (1 << 63)}
                        )
                    version = meta._latest_version(s, name) + 1
                    row = ModelRow(version=version, **row_values)
                    s.add(row)
                    s.flush()
                    placed = model_folder(artifacts, name, version)
                    if placed.exists():  # left by a registration whose commit failed
                        shutil.rmtree(placed)
                    placed.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(staging, placed)
                    record = model_record(row)
                return record
            except BaseException as exc:
                if placed is not None and placed.exists():
                    # Not committed: no folder without its row (get_model_path reads them).
                    os.replace(placed, staging)
                if isinstance(exc, IntegrityError):
                    continue  # another registration took the number: the next try
                raise
        raise StoreError(
            f"Could not register model {name!r}: other registrations of it kept taking the "
            "next version; try again."
        )
    finally:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(staging)


def remove_model_files(
    artifacts: LocalArtifactStore, meta: ModelQueries, name: str, version: int
) -> None:
    """Delete a version: its row, and its files (moved aside in the same transaction,
    removed after the commit; put back if the commit fails)."""
    folder = model_folder(artifacts, name, version)
    trash = artifacts.models_dir() / ".staging" / f"deleted-{uuid.uuid4().hex}"

    def move_aside() -> None:
        if folder.exists():
            trash.parent.mkdir(parents=True, exist_ok=True)
            os.replace(folder, trash)

    try:
        meta.delete_model_row(name, version, move_aside)
    except BaseException:
        if trash.exists() and not folder.exists():
            os.replace(trash, folder)
        raise
    shutil.rmtree(trash, ignore_errors=True)
    with contextlib.suppress(OSError):
        folder.parent.rmdir()  # the name's folder, once its last version is gone


def model_files_of(path: Path) -> list[tuple[str, Path]]:
    """(path below the model's root, file) of a file or folder being registered."""
    if path.is_file():
        return [("", path)]
    found: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames.sort()
        for filename in sorted(filenames):
            full = Path(dirpath) / filename
            if full.is_file():
                found.append((full.relative_to(path).as_posix(), full))
    return found
