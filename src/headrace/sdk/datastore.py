"""`Datastore`: a named storage location of a workspace, with SDK v1 upload/download semantics.

Every workspace has `workspaceblobstore` (the default) and `workspacefilestore`, folders in
the workspace; `Datastore.register_local` adds any folder. `register_s3` (any S3-compatible
endpoint), `register_azure_blob_container` and `register_gcs` add object stores. Every
datastore path is checked to stay inside the datastore (no absolute paths, no `..`, no
symlinks out).

Credentials of object stores are given either as values (kept in the workspace's secrets
file, mode 0600, never in the metadata store) or as `env:NAME` references read from the
environment of the process that uses the datastore (headrace's `*_env` arguments make
these). They never appear in a repr, an error, the API or the portal.

A step reads an object-store input by download, whatever its mode (`as_mount()` downloads
too: there is no FUSE mount here), and writes its outputs to a local folder that is uploaded
to `azureml/<step run id>/<output name>` only when the step succeeds.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headrace.errors import DatastoreNotFoundError, UserError
from headrace.sdk.data import DataReference
from headrace.store.datastores import clean_relative_path
from headrace.store.transfer_progress import bar_wanted, human_bytes, skip_summary

if TYPE_CHECKING:
    from headrace.sdk.workspace import Workspace
    from headrace.store.records import DatastoreRecord

__all__ = ["Datastore"]

_TYPE_NAMES = {"local": "Local", "s3": "S3", "azure_blob": "AzureBlob", "gcs": "GCS"}
_NAME = re.compile(r"^[A-Za-z0-9_]{1,255}$")
_CONTAINER = re.compile(r"^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


def _join(*parts: str | None) -> str:
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


class Datastore:
    """A datastore of a workspace; `Datastore(ws, name)` gets a registered one."""

    def __init__(self, workspace: Workspace, name: str | None = None) -> None:
        if name is None:
            default = workspace.get_default_datastore()
            name = default.name
        record = workspace.backend.find_datastore(name)
        if record is None:
            known = ", ".join(sorted(d.name for d in workspace.backend.list_datastores()))
            raise DatastoreNotFoundError(
                f"No datastore named {name!r} in workspace {workspace.name!r}; registered: "
                f"{known}. Register one with Datastore.register_local(ws, name, path)."
            )
        self._init(workspace, record)

    def _init(self, workspace: Workspace, record: DatastoreRecord) -> None:
        self.workspace = workspace
        self.name = record.name
        self.datastore_type = _TYPE_NAMES.get(record.type, record.type)
        self._config = dict(record.config)
        self.is_default = record.is_default
        # How the skip line names the fix: the CLI sets "--overwrite" (its own words).
        self._overwrite_option = "overwrite=True"
        # SDK v1's per-type attributes (AzureBlobDatastore.container_name, ...); never the
        # credentials (SDK v1 exposed account_key and sas_token: headrace does not keep them
        # where a Datastore object could read them).
        config = record.config
        if record.type == "azure_blob":
            self.container_name = config.get("container")
            self.account_name = config.get("account_name")
            self.protocol = config.get("protocol") or "https"
            self.endpoint = config.get("endpoint") or "core.windows.net"
        elif record.type in ("s3", "gcs"):
            self.bucket_name = config.get("bucket")
        # (datastore path, uploaded?) of the last upload_files/upload call; False = skipped
        # because it existed (headrace extension, for tools reporting what happened).
        self.last_upload_results: list[tuple[str, bool]] = []

    @classmethod
    def _from_record(cls, workspace: Workspace, record: DatastoreRecord) -> Datastore:
        obj = cls.__new__(cls)
        obj._init(workspace, record)
        return obj

    # -- lookup and registration -----------------------------------------------------------
    @staticmethod
    def get(workspace: Workspace, datastore_name: str) -> Datastore:
        return Datastore(workspace, datastore_name)

    @staticmethod
    def get_default(workspace: Workspace) -> Datastore:
        return workspace.get_default_datastore()

    @staticmethod
    def register_local(
        workspace: Workspace,
        datastore_name: str,
        path: str | os.PathLike[str],
        overwrite: bool = False,
        create_if_not_exists: bool = True,
    ) -> Datastore:
        """Register a folder as a datastore: a folder of the machine the workspace lives on
        (for a remote workspace, the server's machine)."""
        _check_name(datastore_name)
        # The backend checks (and creates) the folder where the workspace lives.
        config = {"path": os.fspath(path), "create_if_not_exists": create_if_not_exists}
        record = workspace.backend.register_datastore(
            datastore_name, "local", config, overwrite=overwrite
        )
        return Datastore._from_record(workspace, record)

    @staticmethod
    def register_s3(
        workspace: Workspace,
        datastore_name: str,
        bucket_name: str,
        endpoint_url: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        region: str | None = None,
        create_if_not_exists: bool = False,
        overwrite: bool = False,
        *,
        access_key_id_env: str | None = None,
        secret_access_key_env: str | None = None,
    ) -> Datastore:
        """Register an S3 bucket (AWS or any S3-compatible endpoint: MinIO, Ceph, ...).

        Give the keys as values (kept in the workspace secrets file) or as the names of
        environment variables (`*_env`); with neither, the usual AWS sources apply
        (AWS_ACCESS_KEY_ID, ~/.aws). Needs `pip install 'headrace[s3]'` when used."""
        _check_name(datastore_name)
        _check_text("bucket_name", bucket_name)
        config = {
            "bucket": bucket_name.strip("/"),
            "endpoint_url": endpoint_url,
            "region": region,
            "create_if_not_exists": create_if_not_exists,
            "credentials": _credentials(
                access_key_id=(access_key_id, access_key_id_env),
                secret_access_key=(secret_access_key, secret_access_key_env),
            ),
        }
        return _register(workspace, datastore_name, "s3", config, overwrite)

    @staticmethod
    def register_azure_blob_container(
        workspace: Workspace,
        datastore_name: str,
        container_name: str,
        account_name: str,
        sas_token: str | None = None,
        account_key: str | None = None,
        protocol: str | None = None,
        endpoint: str | None = None,
        overwrite: bool = False,
        create_if_not_exists: bool = False,
        skip_validation: bool = False,
        blob_cache_timeout: int | None = None,
        grant_workspace_access: bool = False,
        subscription_id: str | None = None,
        resource_group: str | None = None,
        *,
        sas_token_env: str | None = None,
        account_key_env: str | None = None,
    ) -> Datastore:
        """Register an Azure Blob container, as SDK v1 did. `endpoint` is the storage suffix
        ('core.windows.net') or, headrace extension, a full blob endpoint URL such as
        Azurite's 'http://127.0.0.1:10000/devstoreaccount1'. Needs
        `pip install 'headrace[azure]'` when used."""
        _check_name(datastore_name)
        _check_text("container_name", container_name)
        if not _CONTAINER.match(container_name):
            raise UserError(
                f"Azure container name {container_name!r} is invalid: use 3-63 lowercase "
                "letters, digits and single hyphens, starting with a letter or digit, for "
                "example 'raw-data'."
            )
        _check_text("account_name", account_name)
        config = {
            "container": container_name.strip("/"),
            "account_name": account_name,
            "protocol": protocol,
            "endpoint": endpoint,
            "create_if_not_exists": create_if_not_exists,
            "credentials": _credentials(
                sas_token=(sas_token, sas_token_env),
                account_key=(account_key, account_key_env),
            ),
        }
        return _register(workspace, datastore_name, "azure_blob", config, overwrite)

    @staticmethod
    def register_gcs(
        workspace: Workspace,
        datastore_name: str,
        bucket_name: str,
        project: str | None = None,
        credentials_file: str | os.PathLike[str] | None = None,
        endpoint_url: str | None = None,
        create_if_not_exists: bool = False,
        overwrite: bool = False,
        *,
        anonymous: bool = False,
    ) -> Datastore:
        """Register a Google Cloud Storage bucket (headrace extension). `credentials_file` is
        the path of a service-account JSON key (its path is recorded, not its content);
        without it gcsfs finds credentials as Google's libraries do. `anonymous=True` sends
        no credentials (a public bucket, or an emulator at `endpoint_url` such as
        gcp-storage-emulator). Needs `pip install 'headrace[gcs]'` when used."""
        _check_name(datastore_name)
        _check_text("bucket_name", bucket_name)
        if anonymous and credentials_file:
            raise UserError("register_gcs: give credentials_file or anonymous=True, not both.")
        config = {
            "bucket": bucket_name.strip("/"),
            "project": project,
            "credentials_file": os.fspath(credentials_file) if credentials_file else None,
            "endpoint_url": endpoint_url,
            "create_if_not_exists": create_if_not_exists,
            "anonymous": bool(anonymous),
        }
        return _register(workspace, datastore_name, "gcs", config, overwrite)

    @property
    def root(self) -> str:
        """Where this datastore keeps its files."""
        return self.workspace.backend.datastore_root(self.name)

    # -- data ------------------------------------------------------------------------------
    def path(
        self, path: str | None = None, data_reference_name: str | None = None
    ) -> DataReference:
        return DataReference(self, data_reference_name, path)

    def as_mount(self) -> DataReference:
        return DataReference(self, mode="mount")

    def as_download(self, path_on_compute: str | None = None) -> DataReference:
        return DataReference(self, mode="download", path_on_compute=path_on_compute)

    def upload_files(
        self,
        files: list[str | os.PathLike[str]],
        relative_root: str | os.PathLike[str] | None = None,
        target_path: str | None = None,
        overwrite: bool = False,
        show_progress: bool = True,
    ) -> DataReference:
        """Upload files to `target_path`, keeping their paths relative to `relative_root`
        (default: the folder the files have in common, so one file lands at
        `target_path/<name>`). Existing files are skipped unless `overwrite`."""
        pairs = self._file_pairs(files, relative_root, target_path)
        self._upload(pairs, overwrite, show_progress)
        return DataReference(self, path_on_datastore=target_path)

    def upload(
        self,
        src_dir: str | os.PathLike[str],
        target_path: str | None = None,
        overwrite: bool = False,
        show_progress: bool = True,
    ) -> DataReference:
        """Upload every file under `src_dir` to `target_path`."""
        self._upload(self._folder_pairs(src_dir, target_path), overwrite, show_progress)
        return DataReference(self, path_on_datastore=target_path)

    @staticmethod
    def _file_pairs(
        files: Sequence[str | os.PathLike[str]],
        relative_root: str | os.PathLike[str] | None,
        target_path: str | None,
    ) -> list[tuple[Path, str]]:
        """(local file, datastore path) for `upload_files` (the CLI joins these with
        `_folder_pairs` to send everything as one transfer, with one summary)."""
        target = clean_relative_path(target_path, what="target_path")
        sources = [Path(f).absolute() for f in files]
        missing = [str(s) for s in sources if not s.is_file()]
        if missing:
            raise UserError(f"Cannot upload, not a file: {', '.join(missing)}.")
        if not sources:
            raise UserError("upload_files needs at least one file.")
        root = (
            Path(relative_root).absolute()
            if relative_root is not None
            else Path(os.path.commonpath([str(s.parent) for s in sources]))
        )
        pairs: list[tuple[Path, str]] = []
        for source in sources:
            try:
                rel = source.relative_to(root).as_posix()
            except ValueError:
                raise UserError(
                    f"The file {source} is not inside relative_root {root}; choose a "
                    "relative_root that contains every file."
                ) from None
            pairs.append((source, _join(target, rel)))
        return pairs

    @staticmethod
    def _folder_pairs(
        src_dir: str | os.PathLike[str], target_path: str | None
    ) -> list[tuple[Path, str]]:
        """(local file, datastore path) for every file under `src_dir` (`upload`)."""
        target = clean_relative_path(target_path, what="target_path")
        source = Path(src_dir).absolute()
        if not source.is_dir():
            raise UserError(f"Cannot upload {source}: it is not a folder.")
        pairs = []
        for dirpath, _dirnames, filenames in os.walk(source):
            for filename in sorted(filenames):
                full = Path(dirpath) / filename
                pairs.append((full, _join(target, full.relative_to(source).as_posix())))
        return pairs

    def _upload(self, pairs: list[tuple[Path, str]], overwrite: bool, show_progress: bool) -> None:
        bar = bar_wanted(show_progress)  # a bar in bytes when someone watches, else one line
        results = self.workspace.backend.upload_files(
            self.name, pairs, overwrite=overwrite, show_progress=bar
        )
        self.last_upload_results = list(results)
        sent = [
            src.stat().st_size for (src, _p), (_t, done) in zip(pairs, results, strict=True) if done
        ]
        skipped = len(results) - len(sent)
        if show_progress and not bar and (sent or not skipped):
            done = f"{_files(len(sent))} ({human_bytes(sum(sent))})"
            print(f"Uploaded {done} to datastore {self.name!r}")  # noqa: T201
        if skipped:
            where = f"on datastore {self.name!r}"
            print(skip_summary(skipped, where, self._overwrite_option))  # noqa: T201

    def download(
        self,
        target_path: str | os.PathLike[str],
        prefix: str | None = None,
        overwrite: bool = False,
        show_progress: bool = True,
    ) -> int:
        """Download files under `prefix` to `target_path/<path on datastore>`; returns how many
        were written (existing local files are kept unless `overwrite`)."""
        listing = self.workspace.backend.list_datastore_files(self.name, prefix or "")
        base = Path(target_path)
        pairs = [(path, base / path) for path, _size in listing]
        sizes = {base / path: size for path, size in listing}
        todo = sum(sizes[d] for _p, d in pairs if overwrite or not d.exists())
        bar = bar_wanted(show_progress)
        count = self.workspace.backend.download_datastore_files(
            self.name, pairs, overwrite=overwrite, show_progress=bar
        )
        skipped = len(pairs) - count
        if show_progress and not bar and (count or not skipped):
            print(f"Downloaded {_files(count)} ({human_bytes(todo)}) to {base}")  # noqa: T201
        if skipped:
            where = f"in {base}"
            print(skip_summary(skipped, where, self._overwrite_option))  # noqa: T201
        return count

    def list_files(self, prefix: str | None = None) -> list[str]:
        """Paths of the files under `prefix` (headrace extension)."""
        return [p for p, _ in self.workspace.backend.list_datastore_files(self.name, prefix or "")]

    def __repr__(self) -> str:
        # Never the config: it is where a datastore is, and credentials stay out of reprs.
        return f"Datastore(name={self.name!r}, type={self.datastore_type!r})"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, Datastore) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)


def _files(count: int) -> str:
    return f"{count:,} file" + ("" if count == 1 else "s")


def _check_name(datastore_name: Any) -> None:
    if not isinstance(datastore_name, str) or not _NAME.match(datastore_name):
        raise UserError(
            f"Datastore name {datastore_name!r} is invalid: use 1-255 letters, digits and "
            "underscores (as Azure ML does), for example 'raw_data'."
        )


def _check_text(what: str, value: Any) -> None:
    if not isinstance(value, str) or not value.strip("/ "):
        raise UserError(f"{what} must be a non-empty string, got {value!r}.")


def _credentials(**given: tuple[str | None, str | None]) -> dict[str, str]:
    """{field: value or 'env:NAME'} from each credential's (value, environment variable)."""
    refs: dict[str, str] = {}
    for field, (value, env) in given.items():
        if value is not None and env is not None:
            raise UserError(f"Give {field} or {field}_env, not both.")
        if env is not None:
            if not isinstance(env, str) or not env.strip():
                raise UserError(f"{field}_env must name an environment variable.")
            refs[field] = f"env:{env}"
        elif value:
            refs[field] = str(value)
    return refs


def _register(
    workspace: Workspace, name: str, type_: str, config: dict[str, Any], overwrite: bool
) -> Datastore:
    record = workspace.backend.register_datastore(name, type_, config, overwrite=overwrite)
    return Datastore._from_record(workspace, record)
