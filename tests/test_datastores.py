"""Datastores with SDK v1 semantics: the defaults, registration, upload/download paths,
overwrite and its skip message, progress output, and paths that would leave the datastore."""

from __future__ import annotations

import contextlib
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from headrace import (
    ConflictError,
    DataReference,
    Datastore,
    DatastorePathError,
    NotFoundError,
    UserError,
    Workspace,
)
from tests.servers import LiveServer, make_token


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """A small local folder: a.txt, sub/b.txt, sub/deeper/c.txt."""
    src = tmp_path / "src"
    (src / "sub" / "deeper").mkdir(parents=True)
    (src / "a.txt").write_text("A")
    (src / "sub" / "b.txt").write_text("B")
    (src / "sub" / "deeper" / "c.txt").write_text("C")
    return src


def on_store(ds: Datastore, path: str) -> Path:
    return Path(ds.root) / path


def test_default_datastores(any_ws: Workspace) -> None:
    assert set(any_ws.datastores) == {"workspaceblobstore", "workspacefilestore"}
    default = any_ws.get_default_datastore()
    assert default.name == "workspaceblobstore" and default.is_default
    assert Datastore(any_ws).name == "workspaceblobstore"
    assert Datastore(any_ws, "workspacefilestore").name == "workspacefilestore"
    assert Datastore.get(any_ws, "workspacefilestore") == any_ws.datastores["workspacefilestore"]
    # Both are folders inside the workspace.
    for ds in any_ws.datastores.values():
        assert Path(ds.root).is_dir() and any_ws.path in Path(ds.root).parents


def test_set_default_datastore(any_ws: Workspace) -> None:
    any_ws.set_default_datastore("workspacefilestore")
    assert any_ws.get_default_datastore().name == "workspacefilestore"
    fresh = Workspace(path=any_ws.path)  # what another process sees
    assert fresh.get_default_datastore().name == "workspacefilestore"
    fresh.backend.store.close()  # type: ignore[attr-defined]
    assert not any_ws.datastores["workspaceblobstore"].is_default
    with pytest.raises(NotFoundError) as info:
        any_ws.set_default_datastore("nope")
    assert "workspaceblobstore" in str(info.value) and "register_local" in str(info.value)
    assert any_ws.get_default_datastore().name == "workspacefilestore"


def test_unknown_datastore_lists_the_registered_ones(ws: Workspace) -> None:
    with pytest.raises(NotFoundError) as info:
        Datastore(ws, "nope")
    message = str(info.value)
    assert "'nope'" in message and "workspaceblobstore, workspacefilestore" in message
    assert "register_local" in message


def test_register_local(any_ws: Workspace, tmp_path: Path) -> None:
    ds = Datastore.register_local(any_ws, "raw_data", tmp_path / "raw")
    assert (tmp_path / "raw").is_dir()
    assert ds.name == "raw_data" and ds.datastore_type == "Local"
    assert Path(ds.root) == tmp_path / "raw"
    assert "raw_data" in any_ws.datastores
    with pytest.raises(ConflictError, match="overwrite=True"):
        Datastore.register_local(any_ws, "raw_data", tmp_path / "other")
    moved = Datastore.register_local(any_ws, "raw_data", tmp_path / "other", overwrite=True)
    assert Path(moved.root) == tmp_path / "other"
    assert Path(Datastore(any_ws, "raw_data").root) == tmp_path / "other"
    # Uploads land in the registered folder.
    (tmp_path / "f.txt").write_text("x")
    moved.upload_files([str(tmp_path / "f.txt")], target_path="in", show_progress=False)
    assert (tmp_path / "other" / "in" / "f.txt").read_text() == "x"


def test_register_local_bad_input(ws: Workspace, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="Datastore name 'bad name' is invalid"):
        Datastore.register_local(ws, "bad name", tmp_path / "x")
    assert not (tmp_path / "x").exists()
    (tmp_path / "a-file").write_text("")
    with pytest.raises(UserError, match="is not a folder"):
        Datastore.register_local(ws, "f", tmp_path / "a-file")
    with pytest.raises(UserError, match="does not exist"):
        Datastore.register_local(ws, "g", tmp_path / "missing", create_if_not_exists=False)
    assert set(ws.datastores) == {"workspaceblobstore", "workspacefilestore"}


def test_upload_one_file_lands_at_target_basename(ws: Workspace, files: Path) -> None:
    ds = ws.get_default_datastore()
    ref = ds.upload_files([str(files / "sub" / "b.txt")], target_path="t1", show_progress=False)
    assert isinstance(ref, DataReference)
    assert ref.path_on_datastore == "t1" and ref.datastore_name == ds.name
    assert ds.list_files() == ["t1/b.txt"]
    assert on_store(ds, "t1/b.txt").read_text() == "B"


def test_upload_files_default_relative_root_is_the_common_folder(
    ws: Workspace, files: Path
) -> None:
    ds = ws.get_default_datastore()
    ds.upload_files(
        [files / "sub" / "b.txt", files / "sub" / "deeper" / "c.txt"],
        target_path="t2",
        show_progress=False,
    )
    assert ds.list_files("t2") == ["t2/b.txt", "t2/deeper/c.txt"]


def test_upload_files_explicit_relative_root_keeps_sub_paths(ws: Workspace, files: Path) -> None:
    ds = ws.get_default_datastore()
    ds.upload_files(
        [str(files / "sub" / "deeper" / "c.txt")],
        relative_root=str(files),
        target_path="t3",
        show_progress=False,
    )
    assert ds.list_files() == ["t3/sub/deeper/c.txt"]
    with pytest.raises(UserError, match="not inside relative_root"):
        ds.upload_files(
            [str(files / "a.txt")], relative_root=str(files / "sub"), show_progress=False
        )


def test_upload_files_without_target_path_goes_to_the_root(ws: Workspace, files: Path) -> None:
    ds = ws.get_default_datastore()
    ref = ds.upload_files([str(files / "a.txt")], show_progress=False)
    assert ds.list_files() == ["a.txt"]
    assert ref.path_on_datastore is None and ref.data_reference_name == ds.name


def test_overwrite_false_skips_with_one_line_naming_the_fix(
    ws: Workspace, files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ds = ws.get_default_datastore()
    ds.upload_files([str(files / "a.txt")], target_path="t", show_progress=False)
    (files / "a.txt").write_text("A2")
    capsys.readouterr()
    ds.upload_files([str(files / "a.txt")], target_path="t", show_progress=False)
    assert capsys.readouterr().out == (
        "1 file already there on datastore 'workspaceblobstore', skipped: pass "
        "overwrite=True to replace it\n"
    )
    assert on_store(ds, "t/a.txt").read_text() == "A"
    ds.upload_files([str(files / "a.txt")], target_path="t", overwrite=True, show_progress=False)
    assert capsys.readouterr().out == ""
    assert on_store(ds, "t/a.txt").read_text() == "A2"


def test_uploading_many_files_again_prints_one_summary_line(
    ws: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    many = tmp_path / "many"
    many.mkdir()
    for i in range(301):
        (many / f"f{i:03}.csv").write_text("x" * 10)
    ds = ws.get_default_datastore()
    ds.upload(str(many), target_path="many")
    # Output captured (not a terminal): one plain line instead of a bar.
    assert capsys.readouterr().out == (
        "Uploaded 301 files (3.0 kB) to datastore 'workspaceblobstore'\n"
    )
    ds.upload(str(many), target_path="many")
    assert capsys.readouterr().out == (
        "301 files already there on datastore 'workspaceblobstore', skipped: pass "
        "overwrite=True to replace them\n"
    )
    (many / "new.csv").write_text("new")
    ds.upload(str(many), target_path="many", show_progress=False)
    assert capsys.readouterr().out.splitlines() == [
        "301 files already there on datastore 'workspaceblobstore', skipped: pass "
        "overwrite=True to replace them"
    ]
    ds.download(str(tmp_path / "dl"), prefix="many")
    assert capsys.readouterr().out == f"Downloaded 302 files (3.0 kB) to {tmp_path / 'dl'}\n"
    ds.download(str(tmp_path / "dl"), prefix="many", show_progress=False)
    assert capsys.readouterr().out == (
        f"302 files already there in {tmp_path / 'dl'}, skipped: pass overwrite=True to "
        "replace them\n"
    )


def test_upload_folder_and_download(ws: Workspace, files: Path, tmp_path: Path) -> None:
    ds = ws.get_default_datastore()
    ref = ds.upload(str(files), target_path="t4", show_progress=False)
    assert ref.path_on_datastore == "t4"
    assert ds.list_files("t4") == ["t4/a.txt", "t4/sub/b.txt", "t4/sub/deeper/c.txt"]
    count = ds.download(str(tmp_path / "dl"), prefix="t4/sub", show_progress=False)
    assert count == 2
    assert (tmp_path / "dl" / "t4" / "sub" / "b.txt").read_text() == "B"
    assert (tmp_path / "dl" / "t4" / "sub" / "deeper" / "c.txt").read_text() == "C"
    assert not (tmp_path / "dl" / "t4" / "a.txt").exists()
    # Existing local files are kept unless overwrite=True.
    (tmp_path / "dl" / "t4" / "sub" / "b.txt").write_text("local edit")
    assert ds.download(str(tmp_path / "dl"), prefix="t4/sub", show_progress=False) == 0
    assert (tmp_path / "dl" / "t4" / "sub" / "b.txt").read_text() == "local edit"
    ds.download(str(tmp_path / "dl"), prefix="t4/sub", overwrite=True, show_progress=False)
    assert (tmp_path / "dl" / "t4" / "sub" / "b.txt").read_text() == "B"


def test_upload_missing_file_or_folder(ws: Workspace, tmp_path: Path) -> None:
    ds = ws.get_default_datastore()
    with pytest.raises(UserError, match="not a file"):
        ds.upload_files([str(tmp_path / "missing.txt")], show_progress=False)
    with pytest.raises(UserError, match="not a folder"):
        ds.upload(str(tmp_path / "missing"), show_progress=False)
    assert ds.list_files() == []


def test_show_progress_without_a_terminal_prints_one_line(
    ws: Workspace, files: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ds = ws.get_default_datastore()
    ds.upload(str(files), target_path="p", show_progress=True)
    captured = capsys.readouterr()
    assert captured.out == "Uploaded 3 files (3 bytes) to datastore 'workspaceblobstore'\n"
    assert captured.err == ""  # no bar drawn into a pipe or a log
    ds.download(str(tmp_path / "dl"), prefix="p", show_progress=True)
    assert capsys.readouterr().out == f"Downloaded 3 files (3 bytes) to {tmp_path / 'dl'}\n"
    ds.upload(str(files), target_path="q", show_progress=False)
    assert capsys.readouterr().out == ""


TERMINAL_UPLOAD = """
import sys
from headrace import TokenAuthentication, Workspace
if sys.argv[1].startswith("http"):
    ws = Workspace.get("test-ws", url=sys.argv[1], auth=TokenAuthentication(sys.argv[5]))
else:
    ws = Workspace.get("test-ws", path=sys.argv[1])
ds = ws.get_default_datastore()
ds.upload(sys.argv[2], target_path=sys.argv[3])
ds.download(sys.argv[4], prefix=sys.argv[3])
"""


@pytest.mark.parametrize("where", ["folder", "server"])
def test_in_a_terminal_uploads_and_downloads_draw_a_bar_in_bytes(
    ws: Workspace, tmp_path: Path, where: str
) -> None:
    big = tmp_path / "big"
    big.mkdir()
    for i in range(3):
        (big / f"part{i}.bin").write_bytes(os.urandom(700_000))
    with contextlib.ExitStack() as stack:
        if where == "server":
            token = make_token(Path(str(ws.path)), "submitter", "bar")
            live = stack.enter_context(LiveServer(Path(str(ws.path))))
            screen = _run_in_a_terminal([live.url, str(big), "big", str(tmp_path / "dl"), token])
        else:
            screen = _run_in_a_terminal([str(ws.path), str(big), "big", str(tmp_path / "dl")])
    assert "Uploading" in screen and "Downloading" in screen
    assert "2.1/2.1 MB" in screen  # the bar counts bytes, not files
    assert "Uploaded" not in screen and "Downloaded" not in screen  # the bar replaces the line
    assert (tmp_path / "dl" / "big" / "part2.bin").read_bytes() == (big / "part2.bin").read_bytes()


def _run_in_a_terminal(args: list[str]) -> str:
    """TERMINAL_UPLOAD's output with stdout and stderr on a pseudo-terminal, as in a shell."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-c", TERMINAL_UPLOAD, *args],
        stdout=follower,
        stderr=follower,
        env={**os.environ, "COLUMNS": "120", "TERM": "xterm"},
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    screen = b"".join(chunks).decode(errors="replace")
    assert process.wait(60) == 0, screen
    return screen


@pytest.mark.parametrize("target", ["../x", "a/../../x", "/abs", "/", "C:/x", "..\\x"])
def test_upload_outside_the_datastore_is_refused(
    ws: Workspace, files: Path, tmp_path: Path, target: str
) -> None:
    ds = ws.get_default_datastore()
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(DatastorePathError) as info:
        ds.upload_files([str(files / "a.txt")], target_path=target, show_progress=False)
    assert repr(target) in str(info.value)
    with pytest.raises(DatastorePathError):
        ds.upload(str(files), target_path=target, show_progress=False)
    assert ds.list_files() == []
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert not Path("/abs").exists() and not Path("/x").exists()


def test_download_prefix_outside_is_refused(ws: Workspace, tmp_path: Path) -> None:
    ds = ws.get_default_datastore()
    with pytest.raises(DatastorePathError, match=r"'\.\./'"):
        ds.download(str(tmp_path / "dl"), prefix="../", show_progress=False)
    with pytest.raises(DatastorePathError, match="absolute"):
        ds.download(str(tmp_path / "dl"), prefix="/etc", show_progress=False)
    assert not (tmp_path / "dl").exists()


@pytest.fixture
def escaping_links(ws: Workspace, tmp_path: Path) -> Path:
    """A datastore with a folder link and a file link pointing outside it, and one real file."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    root = Path(ws.get_default_datastore().root)
    os.symlink(outside, root / "linkdir")
    os.symlink(outside / "secret.txt", root / "linkfile.txt")
    (root / "ok").mkdir()
    (root / "ok" / "f.txt").write_text("F")
    return outside


def test_upload_through_a_symlink_out_is_refused(
    ws: Workspace, files: Path, escaping_links: Path
) -> None:
    ds = ws.get_default_datastore()
    with pytest.raises(DatastorePathError, match="symbolic link"):
        ds.upload_files([str(files / "a.txt")], target_path="linkdir", show_progress=False)
    with pytest.raises(DatastorePathError, match="symbolic link"):
        ds.upload(str(files), target_path="linkdir/deeper", show_progress=False)
    with pytest.raises(DatastorePathError, match="symbolic link"):
        ds.upload_files(
            [str(files / "a.txt")],
            relative_root=str(files),
            target_path="linkfile.txt",
            show_progress=False,
        )
    assert sorted(p.name for p in escaping_links.iterdir()) == ["secret.txt"]
    assert (escaping_links / "secret.txt").read_text() == "secret"


def test_download_and_list_through_a_symlink_out_are_refused(
    ws: Workspace, tmp_path: Path, escaping_links: Path
) -> None:
    ds = ws.get_default_datastore()
    with pytest.raises(DatastorePathError, match="symbolic link"):
        ds.list_files("linkdir")
    with pytest.raises(DatastorePathError, match="symbolic link"):
        ds.download(str(tmp_path / "dl"), prefix="linkdir", show_progress=False)
    with pytest.raises(DatastorePathError, match="symbolic link"):
        ds.download(str(tmp_path / "dl"), prefix="linkfile.txt", show_progress=False)
    assert not (tmp_path / "dl").exists()
    # A whole-datastore listing or download leaves the links out and keeps the real files.
    assert ds.list_files() == ["ok/f.txt"]
    assert ds.download(str(tmp_path / "all"), show_progress=False) == 1
    assert [p.name for p in (tmp_path / "all").rglob("*") if p.is_file()] == ["f.txt"]


def test_datastore_path_returns_a_reference(ws: Workspace) -> None:
    ds = ws.get_default_datastore()
    ref = ds.path("data/train.csv", data_reference_name="train")
    assert (ref.path_on_datastore, ref.data_reference_name, ref.mode) == (
        "data/train.csv",
        "train",
        "mount",
    )
    assert str(ref) == "$AZUREML_DATAREFERENCE_train"
    assert ds.as_download().mode == "download"
    assert ds.as_mount().data_reference_name == ds.name
