"""Object-store datastores: S3 (any S3-compatible endpoint), Azure Blob and GCS over fsspec.

`ObjectDatastoreFiles` implements the `DatastoreFiles` seam (store/datastores.py) with s3fs,
adlfs or gcsfs, each imported only when such a datastore is first used. It has no local
path, so steps get their inputs downloaded and their outputs uploaded, unless the step
reads object storage itself (a SqlStep): then it gets the data's URI and a handle
(`ObjectDatastoreFiles.handle`, the datastore's registration without any secret) to open
the same filesystem in its process (`open_object_datastore`).

Credentials never enter the metadata store. A datastore's config names where each one is:
`"env:NAME"` (read from the environment of whoever opens the datastore: the SDK, the agent)
or `"workspace"` (kept in `<workspace>/secrets/datastores.json`, mode 0600, written by
`save_secrets`). They are never put in a repr, an error message or a step's environment.
GCS is tested against gcp-storage-emulator (`register_gcs(endpoint_url=..., anonymous=True)`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import posixpath
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from headrace.errors import (
    ConfigError,
    DatastorePathError,
    HeadraceError,
    MissingDependencyError,
    NotFoundError,
    UserError,
)
from headrace.store.datastores import clean_relative_path
from headrace.store.transfer_progress import Advance, fsspec_callback

__all__ = [
    "OBJECT_STORE_TYPES",
    "ObjectDatastoreFiles",
    "load_secrets",
    "object_datastore_files",
    "open_object_datastore",
    "save_secrets",
]

# datastore type -> (fsspec package, extra to install, what its root is called)
OBJECT_STORE_TYPES = {
    "s3": ("s3fs", "s3", "bucket"),
    "azure_blob": ("adlfs", "azure", "container"),
    "gcs": ("gcsfs", "gcs", "bucket"),
}
SECRETS_FILE = "secrets/datastores.json"
# Error names and codes meaning "these credentials were refused" (S3, Azure).
_REFUSED = re.compile(
    r"AuthenticationError|AuthorizationFailure|AuthenticationFailed|AccessDenied|"
    r"InvalidAccessKeyId|SignatureDoesNotMatch|Forbidden"
)


def _secrets_path(workspace_root: Path, file: str = SECRETS_FILE) -> Path:
    return Path(workspace_root) / file


def load_secrets(workspace_root: Path, datastore: str, file: str = SECRETS_FILE) -> dict[str, str]:
    """The credentials kept for `datastore` in the workspace's secrets file ({} if none);
    `file`: another file of the secrets folder (notifications keep theirs apart)."""
    path = _secrets_path(workspace_root, file)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"Cannot read the workspace secrets file {path}: {exc}.") from exc
    found = data.get(datastore, {}) if isinstance(data, dict) else {}
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def save_secrets(
    workspace_root: Path, datastore: str, secrets: dict[str, str], file: str = SECRETS_FILE
) -> None:
    """Keep (or, with {}, drop) `datastore`'s credentials in the workspace's secrets file.

    The folder is mode 0700 and the file 0600 from the moment it exists (written to a
    temporary file made 0600, then renamed).
    """
    path = _secrets_path(workspace_root, file)
    if not secrets and not path.exists():
        return
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    if secrets:
        data[datastore] = secrets
    else:
        data.pop(datastore, None)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".datastores-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(data, out)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _credential(datastore: str, field: str, ref: Any, stored: dict[str, str]) -> str | None:
    """Resolve one credential reference of a datastore config to its value."""
    if ref is None:
        return None
    ref = str(ref)
    if ref.startswith("env:"):
        var = ref[4:]
        value = os.environ.get(var)
        if not value:
            raise ConfigError(
                f"Datastore {datastore!r} reads its {field} from the environment variable "
                f"{var}, which is not set here; set it where the SDK, the agent and the steps' "
                "compute nodes run."
            )
        return value
    if ref == "workspace":
        if field not in stored:
            raise ConfigError(
                f"Datastore {datastore!r} keeps its {field} in the workspace secrets file "
                f"({SECRETS_FILE}), which has none; register the datastore again with "
                "overwrite=True."
            )
        return stored[field]
    raise ConfigError(
        f"Datastore {datastore!r} has an unknown reference for its {field}; register it "
        "again with overwrite=True."
    )


# -- object stores ------------------------------------------------------------------------
def _import(module: str, extra: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"This datastore needs the package {module}, which is not installed; install it "
            f"with: pip install 'headrace[{extra}]'"
        ) from exc


def _filesystem(
    name: str, type_: str, config: dict[str, Any], stored: dict[str, str]
) -> tuple[Any, list[str]]:
    """An fsspec filesystem for the datastore and the secret values it was made with."""
    refs = config.get("credentials") or {}
    creds = {f: _credential(name, f, r, stored) for f, r in refs.items()}
    secrets = [v for v in creds.values() if v]
    module, extra, _root = OBJECT_STORE_TYPES[type_]
    lib = _import(module, extra)
    if type_ == "s3":
        client_kwargs = {"region_name": config["region"]} if config.get("region") else {}
        fs = lib.S3FileSystem(
            key=creds.get("access_key_id"),
            secret=creds.get("secret_access_key"),
            endpoint_url=config.get("endpoint_url"),
            client_kwargs=client_kwargs,
            skip_instance_cache=True,
            use_listings_cache=False,
        )
    elif type_ == "azure_blob":
        account = config["account_name"]
        endpoint = str(config.get("endpoint") or "core.windows.net")
        kwargs: dict[str, Any] = {"skip_instance_cache": True}
        if endpoint.startswith(("http://", "https://")):
            # A full blob endpoint (an emulator such as Azurite, or a private endpoint).
            parts = [f"AccountName={account}", f"BlobEndpoint={endpoint}"]
            key, sas = creds.get("account_key"), creds.get("sas_token")
            if key:
                parts.append(f"AccountKey={key}")
            if sas:
                parts.append(f"SharedAccessSignature={sas.lstrip('?')}")
            kwargs["connection_string"] = ";".join(parts)
        else:
            kwargs.update(
                account_name=account,
                account_key=creds.get("account_key"),
                sas_token=creds.get("sas_token"),
                account_host=f"{account}.blob.{endpoint}",
            )
        fs = lib.AzureBlobFileSystem(**kwargs)
    else:
        token = "anon" if config.get("anonymous") else config.get("credentials_file")
        # gcsfs's default class asks a bucket's layout over gRPC (zonal and hierarchical
        # buckets), which only Google's own endpoint answers: an emulator or private
        # endpoint gets the JSON-API filesystem.
        gcs_class = lib.core.GCSFileSystem if config.get("endpoint_url") else lib.GCSFileSystem
        fs = gcs_class(
            project=config.get("project"),
            token=creds.get("token") or token or None,
            endpoint_url=config.get("endpoint_url"),
            skip_instance_cache=True,
        )
    return fs, secrets


def object_datastore_files(
    name: str, type_: str, config: dict[str, Any], workspace_root: Path
) -> ObjectDatastoreFiles:
    """File access to a registered object-store datastore (nothing is contacted yet)."""
    _module, _extra, root_key = OBJECT_STORE_TYPES[type_]
    root = str(config[root_key]).strip("/")
    scheme = {"s3": "s3", "azure_blob": "az", "gcs": "gs"}[type_]

    def make() -> tuple[Any, list[str]]:
        return _filesystem(name, type_, config, load_secrets(workspace_root, name))

    handle = json.dumps({"name": name, "type": type_, "config": config}, sort_keys=True)
    return ObjectDatastoreFiles(name, root, f"{scheme}://{root}", make, handle=handle)


def open_object_datastore(handle: str, workspace_root: Path) -> ObjectDatastoreFiles:
    """The datastore an `ObjectDatastoreFiles.handle` describes, opened in another process
    (a step's) with the credentials the workspace keeps or the environment holds."""
    try:
        found = json.loads(handle)
        name, type_, config = found["name"], found["type"], found["config"]
    except (ValueError, TypeError, KeyError) as exc:
        raise ConfigError(f"Not a datastore handle: {handle[:80]!r}.") from exc
    if type_ not in OBJECT_STORE_TYPES or not isinstance(config, dict):
        raise ConfigError(
            f"Datastore {name!r} in a handle has type {type_!r}, not an object store."
        )
    return object_datastore_files(str(name), str(type_), config, Path(workspace_root))


class ObjectDatastoreFiles:
    """A datastore in an object store (S3, Azure Blob, GCS), reached through fsspec.

    Paths are keys under the bucket or container; "folders" are key prefixes. Many files go
    in one batched call (fsspec runs them concurrently).
    """

    is_local = False

    def __init__(
        self,
        name: str,
        root: str,
        url: str,
        make: Callable[[], tuple[Any, list[str]]],
        *,
        handle: str = "",
    ) -> None:
        self.name = name
        self._root = root
        self.url = url
        self._make = make
        # The registration (credential references, never values) `open_object_datastore`
        # opens again in a step's process.
        self.handle = handle
        self._fs: Any = None
        self._secrets: list[str] = []

    def __repr__(self) -> str:
        return f"ObjectDatastoreFiles({self.name!r}, {self.url!r})"

    def describe(self) -> str:
        return self.url

    @property
    def opens_anywhere(self) -> bool:
        """Whether another machine (a Ray node) can open this datastore from its handle: its
        credentials come from that machine's environment, or it needs none; not when they
        are kept in this workspace's secrets file."""
        if not self.handle:
            return False
        refs = (json.loads(self.handle).get("config") or {}).get("credentials") or {}
        return "workspace" not in refs.values()

    @property
    def fs(self) -> Any:
        if self._fs is None:
            self._fs, self._secrets = self._make()
        return self._fs

    def _key(self, path: str) -> str:
        rel = clean_relative_path(path)
        return f"{self._root}/{rel}" if rel else self._root

    def uri(self, path: str) -> str:
        """`path` as a URI of this store (`s3://bucket/path`), as its filesystem reads it."""
        rel = clean_relative_path(path)
        return f"{self.url}/{rel}" if rel else self.url

    @contextlib.contextmanager
    def _access(self, what: str) -> Iterator[Any]:
        """The filesystem, with its errors turned into one line naming the datastore."""
        fs = self.fs
        try:
            yield fs
        except HeadraceError:
            raise  # ours already (a path refused on the way): it says what is wrong
        except FileNotFoundError as exc:
            raise NotFoundError(
                f"{what} on datastore {self.name!r} ({self.url}): not found ({self._scrub(exc)})."
            ) from exc
        except Exception as exc:
            # s3fs raises PermissionError for refused keys; botocore and azure-core raise
            # their own types. Either way the user gets one line, never a secret.
            foreign = type(exc).__module__.split(".")[0] in ("botocore", "aiobotocore", "azure")
            if not isinstance(exc, (OSError, ValueError)) and not foreign:
                raise
            text = self._scrub(exc)
            if isinstance(exc, PermissionError) or _REFUSED.search(f"{type(exc).__name__} {exc}"):
                raise ConfigError(
                    f"{what} on datastore {self.name!r} ({self.url}) was refused: {text} Check "
                    "the datastore's credentials (register it again with overwrite=True to "
                    "change them)."
                ) from exc
            raise ConfigError(
                f"{what} on datastore {self.name!r} ({self.url}) failed: {text}"
            ) from exc

    def _scrub(self, exc: BaseException) -> str:
        """The first line of an error's text (Azure appends the response's XML), with any
        secret this datastore was opened with masked."""
        lines = str(exc).strip().splitlines()
        return self.redact(" ".join(lines[0].split()) if lines else type(exc).__name__)

    def redact(self, text: str) -> str:
        """`text` with every secret this datastore was opened with masked."""
        for secret in self._secrets:
            if len(secret) >= 4:
                text = text.replace(secret, "***")
        return text

    def ensure_root(self) -> None:
        """Create the bucket or container when it does not exist."""
        with self._access("Creating the bucket or container") as fs:
            if not fs.exists(self._root):
                fs.mkdir(self._root)

    def local_path(self, path: str) -> Path:
        raise UserError(
            f"Datastore {self.name!r} is in object storage ({self.url}); it has no local "
            "path. Download its data with Datastore.download or use it as a step input."
        )

    def exists(self, path: str) -> bool:
        key = self._key(path)
        with self._access(f"Checking {path!r}") as fs:
            return bool(fs.exists(key))

    def _find(self, prefix: str) -> dict[str, dict[str, Any]]:
        """Every file under `prefix` (a file itself or a folder), by datastore path."""
        rel = clean_relative_path(prefix)
        key = self._key(rel)
        with self._access(f"Listing {prefix!r}") as fs:
            found = fs.find(key, detail=True) if rel else fs.find(key + "/", detail=True)
            if isinstance(found, list):  # adlfs answers a file's path with a list
                found = {info["name"]: info for info in found if isinstance(info, dict)}
            if rel and not found and fs.isfile(key):
                found = {key: fs.info(key)}
        result: dict[str, dict[str, Any]] = {}
        start = len(self._root) + 1
        for full, info in found.items():
            path = full.strip("/")[start:]
            if info.get("type") == "directory" or not path:
                continue
            if not rel or path == rel or path.startswith(rel + "/"):
                result[path] = info
        return dict(sorted(result.items()))

    def list_files(self, prefix: str) -> list[tuple[str, int]]:
        return [(p, int(info.get("size") or 0)) for p, info in self._find(prefix).items()]

    def object_tags(self, prefix: str) -> dict[str, str]:
        """Each object's ETag (or, without one, its modification time) under `prefix`."""
        return {p: _tag(info) for p, info in self._find(prefix).items()}

    def iter_object_tags(self, prefix: str) -> Iterator[tuple[str, str]]:
        """(datastore path, tag) of each object under `prefix`, as `object_tags` gives
        them. On S3 the listing is streamed a page (1,000 keys) at a time, so a trigger
        over 100,000 objects never holds their details at once; other stores list whole."""
        fs = self.fs
        if type(fs).__name__ != "S3FileSystem":
            yield from self.object_tags(prefix).items()
            return
        from fsspec.asyn import sync

        rel = clean_relative_path(prefix)
        bucket, _, inside = self._key(rel).partition("/")
        start = len(self._root) + 1
        pages = fs._iterdir(bucket, delimiter="", prefix=inside)

        async def next_page() -> list[tuple[str, str]]:
            got: list[tuple[str, str]] = []
            async for info in pages:
                path = str(info.get("name", "")).strip("/")[start:]
                if info.get("type") == "directory" or not path or info["Key"].endswith("/"):
                    continue
                if not rel or path == rel or path.startswith(rel + "/"):
                    got.append((path, _tag(info)))
                if len(got) >= 1000:
                    break
            return got

        try:
            while True:
                with self._access(f"Listing {prefix!r}"):
                    page = sync(fs.loop, next_page)
                if not page:
                    return
                yield from page
        finally:
            with contextlib.suppress(Exception):
                sync(fs.loop, pages.aclose)

    def upload_file(self, source: Path, path: str, *, overwrite: bool) -> bool:
        return self.upload_many([(source, path)], overwrite=overwrite)[0]

    def upload_many(
        self,
        pairs: list[tuple[Path, str]],
        *,
        overwrite: bool,
        advance: Advance | None = None,
    ) -> list[bool]:
        """Upload files (each one object write: a reader never sees half a file); an
        existing target is kept (False) unless `overwrite`. `advance` hears the bytes sent."""
        keys = [clean_relative_path(p, what="target path") for _src, p in pairs]
        existing: set[str] = set()
        if not overwrite and keys:
            common = posixpath.commonpath([posixpath.dirname(k) for k in keys])
            existing = {p for p, _size in self.list_files(common)}
        todo = [
            (str(src), self._key(k))
            for (src, _p), k in zip(pairs, keys, strict=True)
            if k not in existing
        ]
        if todo:
            with self._access(f"Uploading {len(todo)} file(s)") as fs:
                extra = {} if advance is None else {"callback": fsspec_callback(advance)}
                fs.put([s for s, _k in todo], [k for _s, k in todo], **extra)
        return [k not in existing for k in keys]

    def download_file(self, path: str, destination: Path) -> None:
        self.download_many([(path, destination)])

    @contextlib.contextmanager
    def open_read(self, path: str) -> Iterator[IO[bytes]]:
        """The object `path` opened for reading: ranged reads, nothing downloaded whole."""
        key = self._key(path)
        with self._access(f"Reading {path!r}") as fs, fs.open(key, "rb") as fh:
            yield fh

    def download_many(
        self, pairs: list[tuple[str, Path]], *, advance: Advance | None = None
    ) -> None:
        """Download objects to local files; `advance` hears the bytes received."""
        if not pairs:
            return
        keys = [self._key(p) for p, _d in pairs]  # each path checked before any transfer
        for _path, destination in pairs:
            destination.parent.mkdir(parents=True, exist_ok=True)
        with self._access(f"Downloading {len(pairs)} file(s)") as fs:
            extra = {} if advance is None else {"callback": fsspec_callback(advance)}
            fs.get(keys, [str(d) for _p, d in pairs], **extra)

    def replace_tree(self, source: Path, path: str) -> None:
        """Upload the folder `source` to `path`, after removing what was under `path`."""
        rel = clean_relative_path(path, what="output path")
        self.remove_tree(rel)
        pairs = [
            (full, posixpath.join(rel, full.relative_to(source).as_posix()))
            for full in sorted(source.rglob("*"))
            if full.is_file()
        ]
        self.upload_many(pairs, overwrite=True)

    def remove_tree(self, path: str) -> None:
        """Remove every object under `path` (never the whole bucket or container)."""
        rel = clean_relative_path(path)
        if not rel:
            raise DatastorePathError("Refusing to remove the whole datastore.")
        old = self.list_files(rel)
        if old:
            with self._access(f"Removing {path!r}") as fs:
                fs.rm([self._key(p) for p, _size in old])

    def fingerprint(self, path: str) -> str:
        """Identity of the data under `path`: each object's path, size and ETag (or
        modification time)."""
        digest = hashlib.sha256()
        found = self._find(path)
        for rel, info in found.items():
            digest.update(f"{rel}\0{info.get('size')}\0{_tag(info)}\n".encode())
        if not found:
            digest.update(b"<missing>")
        return digest.hexdigest()


def _tag(info: dict[str, Any]) -> str:
    """An object's ETag, or its modification time when the store gives no ETag."""
    tag = info.get("ETag") or info.get("etag") or info.get("LastModified") or ""
    tag = tag or info.get("last_modified") or info.get("mtime") or info.get("updated")
    return str(tag or "")
