"""Dataset definitions as plain data, and the files they match.

A dataset (SDK v1 `FileDataset` / `TabularDataset`) is a definition, not a copy of data:

    {"kind": "file" | "tabular",
     "sources": [{"datastore": "<name>", "path": "<path or glob>"},
                 {"url": "https://..."}, {"local": "/abs/path or glob"}],
     "format": {"type": "delimited", "separator": ",", "header": true, ...} | None,
     "column_types": {"<column>": "int" | "float" | "str" | "bool" | "datetime"},
     "transforms": [["take", 10], ["skip", 5], ["keep_columns", [...]], ...]}

This module turns the sources into the files they match (`match_files`, with a lister of
whatever holds the files, so the SDK, the engine and a step use the same rules) and works
out a content identity (every file's relative path, size and checksum or ETag). Reading
tables is `store/tables.py`. Nothing here imports above the store.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from headrace.errors import DatasetPathError, UserError
from headrace.store.datastores import clean_relative_path

__all__ = [
    "TYPE_NAMES",
    "DatasetAccess",
    "DatasetFile",
    "check_definition",
    "content_identity",
    "copy_folder",
    "definition_hash",
    "describe_version",
    "direct_path",
    "file_checksum",
    "file_transforms",
    "glob_base",
    "link_folder",
    "local_files",
    "local_source_files",
    "match_files",
    "source_label",
    "url_size",
    "url_tag",
]

TYPE_NAMES = ("str", "int", "float", "bool", "datetime")
FORMATS = ("delimited", "parquet", "json_lines")
TRANSFORMS = ("take", "skip", "keep_columns", "drop_columns", "split", "take_sample")
_GLOB = re.compile(r"[*?\[]")

# What lists the files of a datastore: (datastore, prefix) -> [(datastore path, size)].
Lister = Callable[[str, str], list[tuple[str, int]]]


@dataclass(frozen=True)
class DatasetFile:
    """One file a dataset matched: which source, its path relative to the source's base
    (what a mount shows), where it is (datastore path, URL or local path) and its size."""

    source: int
    relative: str
    location: str
    size: int


def source_label(source: dict[str, Any]) -> str:
    """A source as a user wrote it, for messages."""
    if "datastore" in source:
        return f"{source['datastore']}/{source.get('path', '')}"
    return str(source.get("url") or source.get("local"))


def describe_version(record: Any) -> dict[str, Any]:
    """A registered dataset version (a store.records.DatasetRecord) as the CLI and the
    portal show it."""
    definition = record.definition
    content = record.content
    return {
        "id": record.id,
        "name": record.name,
        "version": record.version,
        "kind": record.kind,
        "description": record.description,
        "tags": record.tags,
        "sources": [source_label(s) for s in definition.get("sources") or []],
        "format": definition.get("format"),
        "column_types": definition.get("column_types") or {},
        "transforms": definition.get("transforms") or [],
        "content": content,
        "file_count": content.get("file_count"),
        "total_bytes": content.get("total_bytes"),
        "content_hash": content.get("hash"),
        "produced_by": record.produced_by,
        "created_at": record.created_at.isoformat(),
    }


def check_definition(definition: Any) -> dict[str, Any]:
    """`definition` if it is a well-formed dataset definition, else UserError saying what
    is wrong (definitions may come over REST)."""
    if not isinstance(definition, dict):
        raise UserError("A dataset definition must be an object with kind and sources.")
    kind = definition.get("kind")
    if kind not in ("file", "tabular"):
        raise UserError(f"A dataset's kind must be 'file' or 'tabular', not {kind!r}.")
    sources = definition.get("sources")
    if not isinstance(sources, list) or not sources:
        raise UserError("A dataset needs at least one source (a datastore path, URL or path).")
    for source in sources:
        if not isinstance(source, dict) or not (
            (isinstance(source.get("datastore"), str) and isinstance(source.get("path"), str))
            or isinstance(source.get("url"), str)
            or isinstance(source.get("local"), str)
        ):
            raise UserError(
                f"A dataset source must be {{'datastore': name, 'path': path}}, {{'url': url}} "
                f"or {{'local': path}}, not {source!r:.80}."
            )
        if "datastore" in source:
            # `..`, absolute paths and over-long ones are refused (DatastorePathError).
            clean_relative_path(source["path"], what="dataset path")
        if "url" in source and not str(source["url"]).startswith(("http://", "https://")):
            raise UserError(f"A dataset URL must be http(s), not {source['url']!r:.80}.")
    fmt = definition.get("format")
    if kind == "tabular":
        if not isinstance(fmt, dict) or fmt.get("type") not in FORMATS:
            raise UserError(f"A tabular dataset's format type must be one of {FORMATS}.")
    types = definition.get("column_types") or {}
    if not isinstance(types, dict) or any(t not in TYPE_NAMES for t in types.values()):
        raise UserError(f"column_types must map column names to one of {TYPE_NAMES}.")
    if fmt is not None:
        _check_format(fmt)
    if definition.get("partition_format") is not None:
        from headrace.store.partitions import PartitionFormat

        PartitionFormat(definition["partition_format"])  # UserError saying what is wrong
    transforms = definition.get("transforms") or []
    if not isinstance(transforms, list):
        raise UserError("A dataset's transforms must be a list.")
    for step in transforms:
        if not isinstance(step, list) or not step or step[0] not in TRANSFORMS:
            raise UserError(f"Unknown dataset transform {step!r:.60}.")
        if not _TRANSFORM_ARGS[step[0]](step[1:]):
            raise UserError(f"Dataset transform {step!r:.60} has arguments of the wrong kind.")
    return definition


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _fraction_ok(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1


_TRANSFORM_ARGS: dict[str, Callable[[list[Any]], bool]] = {
    "take": lambda a: len(a) == 1 and _count(a[0]),
    "skip": lambda a: len(a) == 1 and _count(a[0]),
    "keep_columns": lambda a: (
        len(a) == 1 and isinstance(a[0], list) and all(isinstance(c, str) for c in a[0])
    ),
    "drop_columns": lambda a: (
        len(a) == 1 and isinstance(a[0], list) and all(isinstance(c, str) for c in a[0])
    ),
    "split": lambda a: (
        len(a) == 3 and _fraction_ok(a[0]) and _count(a[1]) and isinstance(a[2], bool)
    ),
    "take_sample": lambda a: len(a) == 2 and _fraction_ok(a[0]) and _count(a[1]),
}


def _check_format(fmt: Any) -> None:
    """A format's fields have the types the readers take."""
    if not isinstance(fmt, dict) or fmt.get("type") not in FORMATS:
        raise UserError(f"A dataset's format must be an object whose type is one of {FORMATS}.")
    separator = fmt.get("separator", ",")
    if not isinstance(separator, str) or len(separator) != 1:
        raise UserError(f"A dataset's separator must be one character, not {separator!r:.20}.")
    for key in ("header", "empty_as_null", "multi_line", "infer_column_types"):
        if key in fmt and not isinstance(fmt[key], bool):
            raise UserError(f"A dataset format's {key} must be true or false.")
    if not isinstance(fmt.get("encoding", "utf8"), str):
        raise UserError("A dataset format's encoding must be text.")


def definition_hash(definition: dict[str, Any]) -> str:
    """A stable hash of a definition (what it reads and how), for reuse and versions."""
    keep = {k: definition.get(k) for k in ("kind", "sources", "format", "column_types")}
    keep["transforms"] = definition.get("transforms") or []
    text = json.dumps(keep, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def glob_base(pattern: str) -> tuple[str, str | None]:
    """Split a path pattern into the folder before its first glob component and the rest
    (`('data/raw', '**/*.csv')`); the rest is None for a plain path."""
    parts = [p for p in pattern.replace("\\", "/").split("/") if p not in ("", ".")]
    for i, part in enumerate(parts):
        if _GLOB.search(part):
            return "/".join(parts[:i]), "/".join(parts[i:])
    return "/".join(parts), None


def _glob_regex(glob: str) -> re.Pattern[str]:
    """A regex for a glob relative to its base: `**` spans folders, `*` and `?` do not."""
    out = []
    i = 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif glob[i] == "*":
            out.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            out.append("[^/]")
            i += 1
        elif glob[i] == "[":
            end = glob.find("]", i + 1)
            if end == -1:
                out.append(re.escape(glob[i]))
                i += 1
            else:
                body = glob[i + 1 : end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = end + 1
        else:
            out.append(re.escape(glob[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def _matched(pattern: str, listing: Iterable[tuple[str, int]], source: int) -> list[DatasetFile]:
    """The files of `listing` (paths relative to the same root as `pattern`) it matches."""
    base, glob = glob_base(pattern)
    found = []
    if glob is None:
        for path, size in listing:
            if path == base:  # the pattern is one file: its base is the folder holding it
                found.append(DatasetFile(source, posixpath.basename(path), path, size))
            elif not base or path.startswith(base + "/"):
                found.append(DatasetFile(source, path[len(base) :].lstrip("/"), path, size))
        return found
    regex = _glob_regex(glob)
    for path, size in listing:
        if base and not path.startswith(base + "/"):
            continue
        relative = path[len(base) :].lstrip("/")
        if regex.match(relative):
            found.append(DatasetFile(source, relative, path, size))
    return found


def local_source_files(pattern: str) -> list[tuple[str, int]]:
    """The files under the base of a local path pattern, as (absolute path, size)."""
    base, _glob = glob_base(pattern)
    root = "/" + base if pattern.startswith("/") else base
    top = Path(root or ".")
    if top.is_file():
        return [(str(top).lstrip("/"), top.stat().st_size)]
    found = []
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            try:
                found.append((full.lstrip("/"), os.stat(full).st_size))
            except OSError:
                continue
    return found


def match_files(
    definition: dict[str, Any],
    lister: Lister,
    *,
    url_size: Callable[[str], int] | None = None,
) -> list[DatasetFile]:
    """Every file the definition's sources match, in order; DatasetPathError naming the
    first source (its pattern) that matches nothing."""
    files: list[DatasetFile] = []
    for index, source in enumerate(definition["sources"]):
        if "url" in source:
            url = source["url"]
            name = posixpath.basename(url.split("?", 1)[0]) or "data"
            size = url_size(url) if url_size is not None else -1
            files.append(DatasetFile(index, name, url, size))
            continue
        if "local" in source:
            pattern = source["local"]
            absolute = pattern.startswith("/")
            matched = _matched(pattern.lstrip("/"), local_source_files(pattern), index)
            if absolute:
                matched = [
                    DatasetFile(f.source, f.relative, "/" + f.location, f.size) for f in matched
                ]
            where = f"the path {pattern!r} on this machine"
        else:
            pattern = source["path"]
            base, _glob = glob_base(pattern)
            matched = _matched(pattern, lister(source["datastore"], base), index)
            where = f"the path {pattern!r} on datastore {source['datastore']!r}"
        if not matched:
            raise DatasetPathError(
                f"Dataset: {where} matches no file. Check the path and pattern "
                "(`**` matches any folders, `*` any name within one folder); "
                "validate=False defers this check to when the data is read."
            )
        files.extend(matched)
    return files


def file_checksum(path: Path) -> str:
    """The SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def content_identity(entries: Iterable[tuple[str, int, str]]) -> dict[str, Any]:
    """What a dataset version's data was: every (relative path, size, checksum or ETag),
    their count, total size and one hash over all of them."""
    files: list[list[Any]] = sorted([list(e) for e in entries])
    digest = hashlib.sha256()
    for rel, size, tag in files:
        digest.update(f"{rel}\0{size}\0{tag}\n".encode())
    return {
        "hash": digest.hexdigest(),
        "file_count": len(files),
        "total_bytes": sum(int(f[1]) for f in files if int(f[1]) > 0),
        "files": files,
    }


class DatasetAccess(Protocol):
    """How a dataset's datastore files are reached from where it is read: the SDK goes
    through its Backend, the engine through the workspace's DatastoreFiles."""

    def list_files(self, datastore: str, prefix: str) -> list[tuple[str, int]]: ...

    def local_root(self, datastore: str) -> Path | None:
        """The datastore's folder when it is on this machine, else None."""
        ...

    def download(self, datastore: str, pairs: list[tuple[str, Path]]) -> None: ...


def file_transforms(files: list[DatasetFile], transforms: Sequence[Any]) -> list[DatasetFile]:
    """A FileDataset's take / skip / random split, applied to its list of files."""
    import random

    for step in transforms or []:
        name, args = step[0], step[1:]
        if name == "take":
            files = files[: int(args[0])]
        elif name == "skip":
            files = files[int(args[0]) :]
        elif name in ("split", "take_sample"):
            rng = random.Random(int(args[1]))
            first = args[2] if name == "split" else True
            files = [f for f in files if (rng.random() < float(args[0])) == bool(first)]
    return files


def direct_path(definition: dict[str, Any], access: DatasetAccess) -> Path | None:
    """The one folder or file a dataset is, when it can be handed over as it is (no links,
    no copy): one plain path (no glob) on a datastore on this machine, or on this machine,
    and no transforms of its files."""
    sources = definition["sources"]
    if len(sources) != 1 or (definition["kind"] == "file" and definition.get("transforms")):
        return None
    source = sources[0]
    if "local" in source:
        base, glob = glob_base(source["local"])
        return (
            Path("/" + base if source["local"].startswith("/") else base) if glob is None else None
        )
    if "datastore" not in source:
        return None
    base, glob = glob_base(source["path"])
    root = access.local_root(source["datastore"])
    if glob is not None or root is None:
        return None
    return root / base if base else root


def url_tag(url: str) -> tuple[int, str]:
    """A URL's size and ETag (or Last-Modified) from a HEAD request; DatasetPathError when
    it cannot be reached or answers an error."""
    import httpx

    try:
        response = httpx.head(url, follow_redirects=True, timeout=30)
    except httpx.HTTPError as exc:
        raise DatasetPathError(f"Dataset: the URL {url} cannot be reached ({exc}).") from exc
    if response.status_code >= 400:
        raise DatasetPathError(
            f"Dataset: the URL {url} answered {response.status_code}; check the URL."
        )
    size = int(response.headers.get("content-length") or -1)
    tag = response.headers.get("etag") or response.headers.get("last-modified") or ""
    return size, tag


def url_size(url: str) -> int:
    return url_tag(url)[0]


def _fetch_url(url: str, destination: Path) -> None:
    import httpx

    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".partial")
    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=60) as response:
            if response.status_code >= 400:
                raise DatasetPathError(
                    f"Dataset: the URL {url} answered {response.status_code}; check the URL."
                )
            with open(partial, "wb") as out:
                for chunk in response.iter_bytes(1 << 20):
                    out.write(chunk)
        os.replace(partial, destination)
    except httpx.HTTPError as exc:
        raise DatasetPathError(f"Dataset: the URL {url} cannot be read ({exc}).") from exc
    finally:
        partial.unlink(missing_ok=True)


def local_files(
    definition: dict[str, Any],
    files: list[DatasetFile],
    access: DatasetAccess,
    cache: Path,
) -> list[tuple[str, Path]]:
    """Each file as (relative path, a path on this machine): datastore files on this
    machine and local files as they are, the rest downloaded under `cache`."""
    out: list[tuple[str, Path]] = []
    pending: dict[str, list[tuple[str, Path]]] = {}
    for f in files:
        source = definition["sources"][f.source]
        if "local" in source:
            out.append((f.relative, Path(f.location)))
        elif "url" in source:
            # Fetched on every read: a URL says nothing cheap about whether it changed.
            target = cache / f"url{f.source}" / f.relative
            _fetch_url(f.location, target)
            out.append((f.relative, target))
        else:
            root = access.local_root(source["datastore"])
            if root is not None:
                out.append((f.relative, root / f.location))
            else:
                # Downloaded on every read: a size alone cannot tell a changed object.
                target = cache / source["datastore"] / f.location
                pending.setdefault(source["datastore"], []).append((f.location, target))
                out.append((f.relative, target))
    for datastore, pairs in pending.items():
        access.download(datastore, pairs)
    return out


def link_folder(pairs: list[tuple[str, Path]], folder: Path) -> None:
    """A folder showing each file at its relative path, as a symbolic link (no copy)."""
    folder.mkdir(parents=True, exist_ok=True)
    made: set[Path] = {folder}
    for relative, source in pairs:
        target = folder / relative
        if target.parent not in made:
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(target.parent)
        os.symlink(source, target)


def copy_folder(pairs: list[tuple[str, Path]], folder: Path) -> None:
    """A folder with a copy of each file at its relative path."""
    import shutil

    for relative, source in pairs:
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    folder.mkdir(parents=True, exist_ok=True)
