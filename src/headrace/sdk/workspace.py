"""`Workspace`: a folder that holds everything (runs, datastores, compute targets), or a
`headrace server` that serves one (`Workspace.get(name, url=..., auth=...)`).

Named workspaces live under `$HEADRACE_HOME/workspaces/<name>` (default `~/.headrace`); one
created with `path=` is remembered by name in `$HEADRACE_HOME/registry.json`. The Azure-only
arguments of SDK v1 (subscription, resource group, location, ...) are accepted and recorded;
`ws.subscription_id`, `ws.resource_group` and `ws.location` are `"local"` where none was given.
Opening the database is deferred to the first call that needs it, so importing and
constructing stay cheap.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headrace.config import headrace_home
from headrace.errors import (
    ConfigError,
    DatastoreNotFoundError,
    UserError,
    WorkspaceNotFoundError,
)

if TYPE_CHECKING:
    from headrace.backend.protocol import Backend
    from headrace.sdk.compute import ComputeTarget
    from headrace.sdk.datastore import Datastore
    from headrace.sdk.experiment import Experiment
    from headrace.sdk.model import Model

__all__ = ["TokenAuthentication", "Workspace"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
CONFIG_DIR = ".azureml"
CONFIG_FILE = "config.json"
LOCAL = "local"  # the subscription, resource group and location when none were given


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise UserError(
            f"Workspace name {name!r} is invalid: use 1-64 letters, digits, '-' or '_', "
            "starting with a letter or digit."
        )


def _registry_path() -> Path:
    return headrace_home() / "registry.json"


def _read_registry() -> dict[str, str]:
    try:
        data = json.loads(_registry_path().read_text(encoding="utf-8"))
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
    except (FileNotFoundError, ValueError):
        return {}


def _remember(name: str, path: Path) -> None:
    from headrace.store.layout import write_json_atomic

    registry = _read_registry()
    registry[name] = str(path)
    _registry_path().parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(_registry_path(), registry)


def _default_path(name: str) -> Path:
    return headrace_home() / "workspaces" / name


class TokenAuthentication:
    """A headrace API token (`headrace token create`) for a workspace on a server.

    `TokenAuthentication("hr_...")`; SDK v1's form, a function of the audience that returns
    the token (`TokenAuthentication(get_token_for_audience=fn)`), works too."""

    def __init__(
        self,
        token: str | Callable[[str], str] | None = None,
        *,
        get_token_for_audience: Callable[[str], str] | None = None,
    ) -> None:
        source = token if token is not None else get_token_for_audience
        if not callable(source) and (not isinstance(source, str) or not source.strip()):
            raise UserError(
                "TokenAuthentication needs the API token text (hr_...); create one with "
                "`headrace token create --name NAME --role submitter`."
            )
        self._source = source

    def get_authentication_header(self) -> dict[str, str]:
        token = self._source("headrace") if callable(self._source) else self._source
        return {"Authorization": f"Bearer {str(token).strip()}"}

    def __repr__(self) -> str:
        return "TokenAuthentication(token=<hidden>)"


def _auth_header(auth: Any) -> dict[str, str]:
    """The header `auth` gives; no auth: $HEADRACE_TOKEN if set, else none (--no-auth)."""
    if auth is None:
        token = os.environ.get("HEADRACE_TOKEN", "").strip()
        return TokenAuthentication(token).get_authentication_header() if token else {}
    getter = getattr(auth, "get_authentication_header", None)
    if getter is None:
        raise UserError(
            f"auth={auth!r} has no get_authentication_header(); pass "
            "headrace.TokenAuthentication('hr_...') or an azureml authentication object."
        )
    return dict(getter())


class Workspace:
    """A headrace workspace (SDK v1 `azureml.core.Workspace`)."""

    def __init__(
        self,
        subscription_id: str | None = None,
        resource_group: str | None = None,
        workspace_name: str | None = None,
        auth: Any = None,
        _location: str | None = None,
        _disable_service_check: bool = False,
        *,
        path: str | os.PathLike[str] | None = None,
        _backend: Backend | None = None,
    ) -> None:
        if path is None and workspace_name is None and _backend is None:
            raise UserError(
                "Workspace needs a workspace_name or a path; use Workspace.get(name), "
                "Workspace.from_config() or Workspace.create(name)."
            )
        if path is None and workspace_name is not None:
            path = Workspace._path_for(workspace_name)
        self._path = Path(path).absolute() if path is not None else None
        self._backend = _backend
        self._info: dict[str, Any] | None = None
        if self._path is not None and _backend is None:
            from headrace.store.layout import WorkspaceLayout

            config = WorkspaceLayout(self._path).read_config()
            self._config = config
        else:
            self._config = {}
        self.auth = auth

    # -- construction ----------------------------------------------------------------------
    @staticmethod
    def _path_for(name: str) -> Path:
        registered = _read_registry().get(name)
        if registered and (Path(registered) / "workspace.json").is_file():
            return Path(registered)
        default = _default_path(name)
        if (default / "workspace.json").is_file():
            return default
        raise WorkspaceNotFoundError(
            f"No workspace named {name!r} (looked in {default}); create it with "
            f"Workspace.create({name!r}) or `headrace workspace create {name}`."
        )

    @staticmethod
    def create(
        name: str,
        auth: Any = None,
        subscription_id: str | None = None,
        resource_group: str | None = None,
        location: str | None = None,
        create_resource_group: bool = True,
        sku: str = "basic",
        *,
        exist_ok: bool = False,
        show_output: bool = True,
        path: str | os.PathLike[str] | None = None,
        database_url: str | None = None,
        **azure_only: Any,
    ) -> Workspace:
        """Create a workspace (a folder); with exist_ok=True an existing one is returned."""
        _check_name(name)
        folder = Path(path).absolute() if path is not None else _default_path(name)
        if exist_ok and (folder / "workspace.json").is_file():
            # An existing folder: its workspace.json is all this needs (the store, and its
            # migrations, are opened on first use; by the agent, on the submit path).
            if _read_registry().get(name) != str(folder):
                _remember(name, folder)
            ws = Workspace(path=folder, auth=auth)
            if show_output:
                print(f"Workspace {name!r} is ready at {folder}")  # noqa: T201
            return ws
        from headrace.store.workspace_store import WorkspaceStore

        extra = {"sku": sku, "create_resource_group": create_resource_group}
        extra.update(
            {k: v for k, v in azure_only.items() if isinstance(v, (str, int, float, bool))}
        )
        store = WorkspaceStore.create(
            folder,
            name,
            subscription_id=subscription_id,
            resource_group=resource_group,
            location=location,
            database_url=database_url,
            exist_ok=exist_ok,
            extra=extra,
        )
        _remember(name, folder)
        ws = Workspace(path=folder, auth=auth)
        ws._attach_store(store)
        if show_output:
            print(f"Workspace {name!r} is ready at {folder}")  # noqa: T201
        return ws

    @staticmethod
    def get(
        name: str | None,
        auth: Any = None,
        subscription_id: str | None = None,
        resource_group: str | None = None,
        *,
        path: str | os.PathLike[str] | None = None,
        url: str | None = None,
    ) -> Workspace:
        """The workspace `name`: a folder (registered, or at `path`), or the workspace the
        server at `url` serves (`auth`: an object with get_authentication_header(); `name`
        None: whichever workspace it serves)."""
        if url is not None:
            return Workspace._remote(name, url, auth)
        if path is not None:
            return Workspace(path=path, auth=auth)
        return Workspace(workspace_name=name, auth=auth)

    @staticmethod
    def _remote(name: str | None, url: str, auth: Any) -> Workspace:
        from headrace.backend.remote import RemoteBackend

        backend = RemoteBackend(url, _auth_header(auth))
        try:
            served = str(backend.workspace_info().get("name"))
        finally:
            backend.close()  # reopened on first use
        if name is not None and name != served:
            raise WorkspaceNotFoundError(
                f"The server at {url} serves workspace {served!r}, not {name!r}; check the "
                "name or the URL."
            )
        ws = Workspace(auth=auth, _backend=backend)
        ws._config = {"name": served}
        return ws

    @staticmethod
    def from_config(
        path: str | os.PathLike[str] | None = None,
        auth: Any = None,
        _logger: Any = None,
        _file_name: str | None = None,
    ) -> Workspace:
        """The workspace named by a config file (written by `write_config`).

        Looks at `path` (a file or folder) or else the current folder and its parents, for
        `.azureml/config.json` or `config.json`. With no path, `$HEADRACE_WORKSPACE` (a
        workspace folder; set inside pipeline steps and by the CLI) is used first. A config
        with `"server_url"` (and optionally `"token"`) opens the workspace on that server.
        """
        env_folder = os.environ.get("HEADRACE_WORKSPACE")
        if path is None and _file_name is None and env_folder:
            # Set inside pipeline steps and by the CLI's --workspace option.
            return Workspace(path=env_folder, auth=auth)
        config_path = Workspace._find_config(path, _file_name)
        try:
            raw = json.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"The workspace config {config_path} cannot be read ({exc}); write it again with "
                "ws.write_config()."
            ) from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"The workspace config {config_path} is not a JSON object.")
        server_url = raw.get("server_url")
        if isinstance(server_url, str) and server_url:
            token = raw.get("token")
            if auth is None and isinstance(token, str) and token:
                auth = TokenAuthentication(token)
            name = raw.get("workspace_name")
            return Workspace._remote(name if isinstance(name, str) else None, server_url, auth)
        folder = raw.get("headrace_workspace_path")
        if isinstance(folder, str):
            folder_path = Path(folder)
            if not folder_path.is_absolute():
                folder_path = (config_path.parent / folder_path).resolve()
            return Workspace(path=folder_path, auth=auth)
        name = raw.get("workspace_name")
        if isinstance(name, str):
            return Workspace(workspace_name=name, auth=auth)
        raise ConfigError(
            f"The workspace config {config_path} names no workspace (no 'workspace_name' or "
            "'headrace_workspace_path'); write it again with ws.write_config()."
        )

    @staticmethod
    def _find_config(path: str | os.PathLike[str] | None, file_name: str | None) -> Path:
        names = [file_name] if file_name else [CONFIG_FILE]
        if path is not None:
            given = Path(path)
            if given.is_file():
                return given
            starts = [given]
        else:
            starts = [Path.cwd(), *Path.cwd().parents]
        for folder in starts:
            for name in names:
                for candidate in (folder / CONFIG_DIR / name, folder / name):
                    if candidate.is_file():
                        return candidate
        where = str(path) if path is not None else f"{Path.cwd()} or its parents"
        raise WorkspaceNotFoundError(
            f"No workspace config ({CONFIG_DIR}/{names[0]}) found in {where}; create one with "
            "ws.write_config() or `headrace workspace create NAME`."
        )

    def write_config(
        self, path: str | os.PathLike[str] | None = None, file_name: str | None = None
    ) -> str:
        """Write `.azureml/config.json` (in `path`, default the current folder) naming this
        workspace, so `Workspace.from_config()` finds it. Returns the file's path."""
        folder = Path(path) if path is not None else Path.cwd()
        target = folder / CONFIG_DIR / (file_name or CONFIG_FILE)
        target.parent.mkdir(parents=True, exist_ok=True)
        data: dict[str, Any] = {
            "workspace_name": self.name,
            "subscription_id": self._config.get("subscription_id"),
            "resource_group": self._config.get("resource_group"),
        }
        if self._path is not None:
            data["headrace_workspace_path"] = str(self._path)
        else:  # on a server; the token is a secret: add it by hand or use HEADRACE_TOKEN
            data["server_url"] = self.backend.location
        target.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        return str(target)

    # -- the backend -----------------------------------------------------------------------
    def _attach_store(self, store: Any) -> None:
        from headrace.backend.local import LocalBackend

        self._backend = LocalBackend(store)

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            from headrace.backend.agent_backend import AgentBackend

            assert self._path is not None
            # The submit path through the warm agent; the store opens on first other use.
            self._backend = AgentBackend(self._path)
        assert self._backend is not None
        return self._backend

    # -- properties ------------------------------------------------------------------------
    @property
    def name(self) -> str:
        if self._config:
            return str(self._config["name"])
        return str(self.backend.workspace_info().get("name"))

    @property
    def subscription_id(self) -> str:
        """As recorded at creation, or `"local"` (SDK v1 code formats it into text)."""
        return self._azure_field("subscription_id")

    @property
    def resource_group(self) -> str:
        """As recorded at creation, or `"local"`."""
        return self._azure_field("resource_group")

    @property
    def location(self) -> str:
        """As recorded at creation, or `"local"` (`'Region: ' + ws.location` works)."""
        return self._azure_field("location")

    def _azure_field(self, key: str) -> str:
        """An Azure-only setting: recorded and shown, never used, so never None."""
        if self._config:
            value = self._config.get(key)
        else:  # on a server: its workspace's record, read once
            if self._info is None:
                self._info = dict(self.backend.workspace_info())
            value = self._info.get(key)
        return str(value) if value else LOCAL

    @property
    def path(self) -> Path | None:
        """The workspace folder (None for a workspace on a server)."""
        return self._path

    def get_mlflow_tracking_uri(self) -> str:
        """Where MLflow logs to this workspace (azureml-mlflow's method):
        `mlflow.set_tracking_uri(ws.get_mlflow_tracking_uri())`.

        A workspace folder: `headrace:///path/to/folder`, which headrace's MLflow tracking
        store (installed with headrace) opens; in a step it logs into the step's run. A
        workspace on a server: the server's URL, which serves MLflow's REST API (give MLflow
        a token with `MLFLOW_TRACKING_TOKEN`). In a step of this workspace: the step's own
        `MLFLOW_TRACKING_URI`, so azureml-mlflow's
        `mlflow.set_tracking_uri(run.experiment.workspace.get_mlflow_tracking_uri())` keeps
        logging into the step's run (no token, no network)."""
        from headrace.sdk.context import current_step_run_id

        step_uri = os.environ.get("MLFLOW_TRACKING_URI", "")
        if step_uri.startswith("headrace:") and current_step_run_id(self) is not None:
            return step_uri
        if self._path is None:
            return str(self.backend.location).rstrip("/")
        return Path(self._path).absolute().as_uri().replace("file:", "headrace:", 1)

    def get_details(self) -> dict[str, Any]:
        info = dict(self.backend.workspace_info())
        info.setdefault("name", self.name)
        return info

    @property
    def datastores(self) -> dict[str, Datastore]:
        from headrace.sdk.datastore import Datastore

        return {d.name: Datastore._from_record(self, d) for d in self.backend.list_datastores()}

    @property
    def datasets(self) -> dict[str, Any]:
        """The registered datasets by name, each its latest version (SDK v1 `ws.datasets`)."""
        from headrace.sdk.datasets import dataset_from_record

        return {r.name: dataset_from_record(self, r) for r in self.backend.list_datasets()}

    def get_default_datastore(self) -> Datastore:
        from headrace.sdk.datastore import Datastore

        for record in self.backend.list_datastores():
            if record.is_default:
                return Datastore._from_record(self, record)
        raise WorkspaceNotFoundError(f"Workspace {self.name!r} has no default datastore.")

    def set_default_datastore(self, name: str) -> None:
        if self.backend.find_datastore(name) is None:
            known = ", ".join(sorted(d.name for d in self.backend.list_datastores()))
            raise DatastoreNotFoundError(
                f"No datastore named {name!r} in workspace {self.name!r}; registered: {known}. "
                "Register it first with Datastore.register_local(ws, name, path)."
            )
        self.backend.set_default_datastore(name)

    @property
    def compute_targets(self) -> dict[str, ComputeTarget]:
        from headrace.sdk.compute import ComputeTarget

        return {
            r.name: ComputeTarget._from_record(self, r) for r in self.backend.list_compute_targets()
        }

    @property
    def experiments(self) -> dict[str, Experiment]:
        from headrace.sdk.experiment import Experiment

        return {e.name: Experiment(self, e.name) for e, _count in self.backend.list_experiments()}

    @property
    def models(self) -> dict[str, Model]:
        """The newest version of every registered model, by name (SDK v1 `ws.models`)."""
        from headrace.sdk.model import Model

        return {r.name: Model._from_record(self, r) for r in self.backend.list_models(latest=True)}

    def close(self) -> None:
        """Release the workspace's database connections (it opens again on next use)."""
        if self._path is None:  # on a server: close the connections, keep the backend
            close = getattr(self._backend, "close", None)
            if close is not None:
                close()
            return
        backend, self._backend = self._backend, None
        if backend is None:
            return
        from headrace.backend.agent_backend import AgentBackend

        if isinstance(backend, AgentBackend):  # closes what it opened, opens nothing
            backend.close()
            return
        backend.store.close()  # type: ignore[attr-defined]

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        if self._path is None:
            return f"Workspace.get(name={self.name!r}, url={self.backend.location!r})"
        return f"Workspace.get(name={self.name!r}, path={str(self._path)!r})"
