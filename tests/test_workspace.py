"""Workspaces as a user meets them: create, get, config files, PostgreSQL, and bad input
(existing names, invalid names, unwritable folders, corrupt configs, a missing database)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from headrace import (
    ConfigError,
    HeadraceError,
    StoreError,
    UserError,
    Workspace,
    WorkspaceExistsError,
    WorkspaceNotFoundError,
)

MISSING_PG = "postgresql+psycopg://postgres:s3cret@127.0.0.1:1/x"


def test_create_records_azure_arguments_and_lives_under_headrace_home(
    headrace_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = Workspace.create(
        "proj", subscription_id="sub-1", resource_group="rg-1", location="westeurope"
    )
    assert ws.path == headrace_home / "workspaces" / "proj"
    assert (ws.path / "workspace.json").is_file()
    assert "proj" in capsys.readouterr().out
    details = ws.get_details()
    assert details["name"] == "proj"
    assert details["subscription_id"] == "sub-1"
    assert details["resource_group"] == "rg-1"
    assert details["location"] == "westeurope"
    assert (ws.subscription_id, ws.resource_group, ws.location) == ("sub-1", "rg-1", "westeurope")
    assert details["database"] == "sqlite"


def test_get_finds_default_and_path_workspaces(tmp_path: Path) -> None:
    Workspace.create("home-ws", show_output=False)
    Workspace.create("elsewhere", path=tmp_path / "custom", show_output=False)
    assert Workspace.get("home-ws").name == "home-ws"
    # A workspace created with path= is remembered by name, and can be opened by path too.
    assert Workspace.get("elsewhere").path == tmp_path / "custom"
    assert Workspace.get("elsewhere", path=tmp_path / "custom").name == "elsewhere"
    with pytest.raises(WorkspaceNotFoundError, match=r"Workspace.create\('nope'\)"):
        Workspace.get("nope")


def test_create_existing_needs_exist_ok(tmp_path: Path) -> None:
    first = Workspace.create("dup", path=tmp_path / "dup", show_output=False)
    with pytest.raises(WorkspaceExistsError) as info:
        Workspace.create("dup", path=tmp_path / "dup", show_output=False)
    message = str(info.value)
    assert str(tmp_path / "dup") in message and "exist_ok=True" in message
    again = Workspace.create("dup", path=tmp_path / "dup", exist_ok=True, show_output=False)
    assert again.path == first.path
    assert again.get_details()["created_at"] == first.get_details()["created_at"]


def test_write_config_then_from_config_in_a_subfolder_and_by_path(tmp_path: Path) -> None:
    ws = Workspace.create("cfg", path=tmp_path / "cfg-ws", show_output=False)
    project = tmp_path / "project"
    written = Path(ws.write_config(path=project))
    assert written == project / ".azureml" / "config.json"
    assert json.loads(written.read_text())["workspace_name"] == "cfg"

    deep = project / "src" / "pipelines"
    deep.mkdir(parents=True)
    os.chdir(deep)
    found = Workspace.from_config()  # searches the parents
    assert (found.name, found.path) == ("cfg", ws.path)
    os.chdir(tmp_path)
    assert Workspace.from_config(path=project).path == ws.path
    assert Workspace.from_config(path=written).path == ws.path


def test_from_config_without_a_config_says_how_to_make_one(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(WorkspaceNotFoundError, match="write_config"):
        Workspace.from_config(path=empty)


@pytest.mark.parametrize("name", ["bad name!", "", "-lead", "x" * 65, "a/b"])
def test_invalid_workspace_name(name: str) -> None:
    with pytest.raises(UserError, match="is invalid") as info:
        Workspace.create(name, show_output=False)
    assert "letters, digits" in str(info.value)


def test_path_that_cannot_be_a_folder(tmp_path: Path) -> None:
    afile = tmp_path / "a-file"
    afile.write_text("not a folder")
    with pytest.raises(ConfigError) as info:
        Workspace.create("w", path=afile / "ws", show_output=False)
    assert str(afile / "ws") in str(info.value) and "writable path" in str(info.value)
    assert afile.read_text() == "not a folder"


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder nobody may write in: chmod for ordinary users, `chattr +i` for root (who
    ignores permission bits)."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    if shutil.which("chattr") is None:
        pytest.skip("running as root without chattr: cannot make a folder read-only")
    done = subprocess.run(["chattr", "+i", str(folder)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"chattr +i is not supported here: {done.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_create_in_a_read_only_folder(read_only_dir: Path) -> None:
    with pytest.raises(ConfigError) as info:
        Workspace.create("ro", path=read_only_dir / "ws", show_output=False)
    assert str(read_only_dir / "ws") in str(info.value)
    assert not (read_only_dir / "ws").exists()


def test_existing_workspace_made_read_only(tmp_path: Path) -> None:
    folder = tmp_path / "frozen"
    ws = Workspace.create("frozen", path=folder, show_output=False)
    ws.backend.store.close()  # type: ignore[attr-defined]
    for extra in folder.glob("headrace.db-*"):
        extra.unlink()
    if os.geteuid() == 0:
        if shutil.which("chattr") is None:
            pytest.skip("running as root without chattr: cannot make a folder read-only")
        if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode:
            pytest.skip("chattr +i is not supported here")
    else:
        folder.chmod(0o555)
    try:
        with pytest.raises(HeadraceError) as info:
            list(Workspace(path=folder).datastores)
        assert str(folder) in str(info.value) and "writable" in str(info.value)
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        else:
            folder.chmod(0o755)
    # Nothing was damaged: once writable again the workspace opens.
    assert set(Workspace(path=folder).datastores) == {"workspaceblobstore", "workspacefilestore"}


def test_corrupt_workspace_json(tmp_path: Path) -> None:
    Workspace.create("broken", path=tmp_path / "broken", show_output=False)
    (tmp_path / "broken" / "workspace.json").write_text("{not json")
    for open_it in (lambda: Workspace(path=tmp_path / "broken"), lambda: Workspace.get("broken")):
        with pytest.raises(ConfigError) as info:
            open_it()
        message = str(info.value)
        assert str(tmp_path / "broken" / "workspace.json") in message
        assert "not valid JSON" in message and "fix it" in message


def test_workspace_json_without_a_name(tmp_path: Path) -> None:
    Workspace.create("noname", path=tmp_path / "nn", show_output=False)
    (tmp_path / "nn" / "workspace.json").write_text('{"format": 1}')
    with pytest.raises(ConfigError, match="has no 'name'"):
        Workspace(path=tmp_path / "nn")


def test_corrupt_azureml_config(tmp_path: Path) -> None:
    config = tmp_path / ".azureml" / "config.json"
    config.parent.mkdir()
    config.write_text("nope{")
    with pytest.raises(ConfigError) as info:
        Workspace.from_config()
    assert str(config) in str(info.value) and "write_config()" in str(info.value)
    config.write_text('["a list"]')
    with pytest.raises(ConfigError, match="not a JSON object"):
        Workspace.from_config()
    config.write_text('{"subscription_id": "x"}')
    with pytest.raises(ConfigError, match="names no workspace"):
        Workspace.from_config()


def test_missing_postgresql_is_a_clear_error_and_leaves_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "pg-ws"
    with pytest.raises(StoreError) as info:
        Workspace.create("pg", path=folder, database_url=MISSING_PG, show_output=False)
    message = str(info.value)
    assert "postgresql+psycopg://postgres:***@127.0.0.1:1/x" in message
    assert "s3cret" not in message
    assert "PostgreSQL is running" in message
    # No half-created workspace: no folder, no registry entry.
    assert not folder.exists()
    with pytest.raises(WorkspaceNotFoundError):
        Workspace.get("pg")


def test_failed_create_keeps_what_was_already_in_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "existing"
    (folder / "notes").mkdir(parents=True)
    (folder / "notes" / "todo.txt").write_text("keep me")
    with pytest.raises(StoreError):
        Workspace.create("pg", path=folder, database_url=MISSING_PG, show_output=False)
    assert sorted(p.name for p in folder.iterdir()) == ["notes"]
    assert (folder / "notes" / "todo.txt").read_text() == "keep me"


def test_configured_postgresql_that_went_away(tmp_path: Path) -> None:
    folder = tmp_path / "was-pg"
    Workspace.create("was-pg", path=folder, show_output=False)
    config = json.loads((folder / "workspace.json").read_text())
    config["database_url"] = MISSING_PG
    (folder / "workspace.json").write_text(json.dumps(config))
    with pytest.raises(StoreError, match="PostgreSQL is running"):
        list(Workspace(path=folder).datastores)


@pytest.mark.postgres
def test_workspace_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    ws = Workspace.create(
        "pg-ws", path=tmp_path / "pg", database_url=postgres_url, show_output=False
    )
    try:
        assert ws.get_details()["database"] == "postgresql"
        assert not (tmp_path / "pg" / "headrace.db").exists()
        again = Workspace.get("pg-ws")
        assert set(again.datastores) == {"workspaceblobstore", "workspacefilestore"}
        assert again.get_default_datastore().name == "workspaceblobstore"
        assert "local" in again.compute_targets
        again.backend.store.close()  # type: ignore[attr-defined]
    finally:
        ws.backend.store.close()  # type: ignore[attr-defined]
