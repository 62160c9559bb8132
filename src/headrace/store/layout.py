"""The files of a workspace folder and its `workspace.json`.

<workspace>/workspace.json        name, Azure-only arguments as given, database URL
<workspace>/headrace.db           SQLite metadata (unless a database URL is configured)
<workspace>/datastores/<name>/    default local datastores
<workspace>/artifacts/            run files and logs, snapshots (LocalArtifactStore)
<workspace>/work/                 scratch working folders of running steps
<workspace>/agent/                the local agent's lock file and log
<workspace>/portal.key            the key that signs the portal's sessions (the server makes it)

The database files and the portal key are private to the workspace's owner (mode 0600):
they hold every record and the means to sign a session.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from headrace.errors import ConfigError, WorkspaceNotFoundError

__all__ = ["CONFIG_NAME", "PRIVATE_MODE", "WorkspaceLayout", "make_private"]

CONFIG_NAME = "workspace.json"
FORMAT_VERSION = 1
PRIVATE_MODE = 0o600


def make_private(path: Path, *, create: bool = False) -> None:
    """Make the file at `path` readable and writable by its owner only (`create`: an empty
    file if absent and its folder exists, so whatever fills it never makes it 0644 first).
    A file of another user (a workspace opened by someone else) is left as it is."""
    if create and path.parent.is_dir():
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE))
    with contextlib.suppress(OSError):
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            path.chmod(PRIVATE_MODE)


@dataclass(frozen=True)
class WorkspaceLayout:
    root: Path

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_NAME

    @property
    def sqlite_path(self) -> Path:
        return self.root / "headrace.db"

    @property
    def datastores_dir(self) -> Path:
        return self.root / "datastores"

    @property
    def artifacts_dir(self) -> Path:
        return self.root / "artifacts"

    @property
    def work_dir(self) -> Path:
        return self.root / "work"

    @property
    def agent_dir(self) -> Path:
        return self.root / "agent"

    def exists(self) -> bool:
        return self.config_path.is_file()

    def read_config(self) -> dict[str, Any]:
        if not self.root.is_dir():
            raise WorkspaceNotFoundError(f"No workspace folder at {self.root}.")
        if not self.config_path.is_file():
            raise WorkspaceNotFoundError(
                f"{self.root} is not a headrace workspace (no {CONFIG_NAME}); create one with "
                "Workspace.create(name, path=...) or `headrace workspace create`."
            )
        try:
            raw = json.loads(self.config_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(
                f"The workspace config {self.config_path} is not valid JSON ({exc}); fix it or "
                "restore it from a backup (it holds the workspace name and database URL)."
            ) from exc
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            raise ConfigError(
                f"The workspace config {self.config_path} has no 'name'; fix it or restore it."
            )
        return raw

    def write_config(self, config: dict[str, Any]) -> None:
        data = {"format": FORMAT_VERSION, **config}
        self._check_writable()
        write_json_atomic(self.config_path, data)

    def create_folders(self) -> None:
        self._check_writable()
        for folder in (self.artifacts_dir, self.work_dir, self.agent_dir, self.datastores_dir):
            folder.mkdir(parents=True, exist_ok=True)

    def _check_writable(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"Cannot create the workspace folder {self.root}: {exc.strerror}; choose a "
                "writable path (Workspace.create(..., path=...) or $HEADRACE_HOME)."
            ) from exc
        if not os.access(self.root, os.W_OK):
            raise ConfigError(
                f"The workspace folder {self.root} is read-only; make it writable or use "
                "another path."
            )


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON through a temporary file and a rename, so readers never see half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
