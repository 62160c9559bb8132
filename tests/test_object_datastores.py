"""Datastores in object storage, against real servers on 127.0.0.1: moto's S3 server (with
authentication on), gcp-storage-emulator for GCS and, when installed, Azurite for Azure Blob.
Registration, credentials kept out of the metadata store and the portal, upload/download
round trips, pipelines whose inputs and PipelineData live in the bucket, wrong credentials
(S3 and Azure: the GCS emulator checks none), missing extras."""

from __future__ import annotations

import os
import stat
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from headrace import (
    ConfigError,
    ConflictError,
    DataReference,
    Datastore,
    DatastorePathError,
    Experiment,
    MissingDependencyError,
    Pipeline,
    PipelineData,
    PythonScriptStep,
    Workspace,
)
from headrace.cli.main import app as cli_app
from tests.objectstores import Azurite, GcsEmulator, MotoS3, azurite_command
from tests.servers import RUNNER, LiveServer


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoS3]:
    server = MotoS3(tmp_path_factory.mktemp("moto") / "moto.log")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    command = azurite_command()
    if command is None:
        if os.environ.get("HEADRACE_TEST_REQUIRE_AZURITE"):
            pytest.fail("Azurite is not installed (npm install --prefix <folder> azurite)")
        pytest.skip(
            "Azurite is not installed: npm install --prefix <folder> azurite, and set HEADRACE_TEST_AZURITE=<folder>"
        )
    folder = tmp_path_factory.mktemp("azurite")
    server = Azurite(command, folder / "data", folder / "azurite.log")
    yield server
    server.stop()


def s3_store(ws: Workspace, moto: MotoS3, name: str = "s3data", **kw: Any) -> Datastore:
    return Datastore.register_s3(
        ws,
        name,
        moto.new_bucket(),
        endpoint_url=moto.url,
        access_key_id=moto.key_id,
        secret_access_key=moto.secret,
        **kw,
    )


@pytest.fixture(params=["s3", "azure", "gcs"])
def store(request: pytest.FixtureRequest, ws: Workspace) -> Datastore:
    """An empty object-store datastore: an S3 bucket on moto, an Azurite container, or a
    bucket on the GCS emulator."""
    if request.param == "s3":
        return s3_store(ws, request.getfixturevalue("moto"))
    if request.param == "gcs":
        emulator: GcsEmulator = request.getfixturevalue("gcs")
        return Datastore.register_gcs(
            ws,
            "gcsdata",
            f"g{os.urandom(6).hex()}",
            project="test",
            endpoint_url=emulator.url,
            anonymous=True,
            create_if_not_exists=True,
        )
    server: Azurite = request.getfixturevalue("azurite")
    return Datastore.register_azure_blob_container(
        ws,
        "blobdata",
        container_name=f"c{os.urandom(6).hex()}",
        account_name=server.account,
        account_key=server.key,
        endpoint=server.endpoint,
        create_if_not_exists=True,
    )


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """a.txt, sub/b.txt, sub/deeper/c.txt."""
    src = tmp_path / "src-files"
    (src / "sub" / "deeper").mkdir(parents=True)
    (src / "a.txt").write_text("A")
    (src / "sub" / "b.txt").write_text("B")
    (src / "sub" / "deeper" / "c.txt").write_text("C")
    return src


SCRIPTS = {
    # write.py OUT TEXT [fail|ok [MORE_OUT...]]: writes OUT/made.txt and OUT/deep/more.txt
    # (and MORE_OUT/made.txt); exits 1 on "fail".
    "write.py": """
        import os, sys
        out = sys.argv[1]
        os.makedirs(os.path.join(out, "deep"), exist_ok=True)
        open(os.path.join(out, "made.txt"), "w").write(sys.argv[2])
        open(os.path.join(out, "deep", "more.txt"), "w").write("more")
        for more in sys.argv[4:]:
            os.makedirs(more, exist_ok=True)
            open(os.path.join(more, "made.txt"), "w").write(sys.argv[2])
        sys.exit(1 if sys.argv[3:4] == ["fail"] else 0)
    """,
    # read.py OUT IN...: writes what each input holds (a file's text, a folder's files) to
    # OUT/seen.txt, one line per input.
    "read.py": """
        import os, sys
        out, inputs = sys.argv[1], sys.argv[2:]
        lines = []
        for path in inputs:
            if os.path.isfile(path):
                lines.append(open(path).read())
            else:
                found = []
                for d, _, names in os.walk(path):
                    for n in names:
                        full = os.path.join(d, n)
                        found.append(os.path.relpath(full, path) + "=" + open(full).read())
                lines.append(",".join(sorted(found)))
        os.makedirs(out, exist_ok=True)
        open(os.path.join(out, "seen.txt"), "w").write("\\n".join(lines))
    """,
}


@pytest.fixture
def scripts(tmp_path: Path) -> Path:
    src = tmp_path / "scripts"
    src.mkdir()
    for name, text in SCRIPTS.items():
        (src / name).write_text(textwrap.dedent(text))
    return src


def finished(run: Any) -> str:
    status: str = run.wait_for_completion(show_output=False, raise_on_error=False)
    return status


def test_register_keeps_credentials_out_of_the_metadata_store_and_the_portal(
    ws: Workspace, moto: MotoS3
) -> None:
    ds = s3_store(ws, moto)
    assert ds.datastore_type == "S3" and ds.root.startswith("s3://b-")
    assert moto.secret not in repr(ds) and moto.key_id not in repr(ds)
    assert ds._config["credentials"] == {
        "access_key_id": "workspace",
        "secret_access_key": "workspace",
    }
    root = Path(str(ws.path))
    for db_file in root.glob("headrace.db*"):
        raw = db_file.read_bytes()
        assert moto.secret.encode() not in raw and moto.key_id.encode() not in raw
    secrets = root / "secrets" / "datastores.json"
    assert moto.secret in secrets.read_text()
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    assert stat.S_IMODE(secrets.parent.stat().st_mode) == 0o700
    # A refused registration (name taken) leaves the kept credentials alone.
    with pytest.raises(ConflictError, match="overwrite=True"):
        Datastore.register_s3(ws, "s3data", "other", secret_access_key="another-secret")
    assert moto.secret in secrets.read_text() and "another-secret" not in secrets.read_text()
    with LiveServer(root, auth=False) as portal:
        listing = httpx.get(f"{portal.url}/ui/datastores.json")
        page = httpx.get(f"{portal.url}/ui/datastores")
        api = httpx.get(f"{portal.url}/api/v1/datastores")
    assert listing.status_code == 200 and "s3data" in listing.text
    assert api.status_code == 200 and "s3data" in api.text
    cli = RUNNER.invoke(cli_app, ["datastore", "list", "--json", "-w", str(root)])
    assert cli.exit_code == 0 and "s3://" in cli.output
    for text in (listing.text, page.text, api.text, cli.output):
        assert moto.secret not in text and moto.key_id not in text


def test_the_metadata_database_holds_no_credential(
    any_ws: Workspace, moto: MotoS3, files: Path
) -> None:
    """On SQLite and PostgreSQL: the datastore row holds references only, and a second
    process (a fresh Workspace object) still reaches the bucket."""
    import sqlalchemy as sa

    ds = s3_store(any_ws, moto)
    engine = any_ws.backend.store.database.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT name, type, config FROM datastores")).all()
    text = repr(rows)
    assert "s3data" in text and moto.secret not in text and moto.key_id not in text
    fresh = Workspace(path=any_ws.path)
    Datastore(fresh, ds.name).upload(str(files), show_progress=False)
    assert len(ds.list_files("")) == 3
    fresh.backend.store.close()  # type: ignore[attr-defined]


def test_upload_and_download_round_trip(store: Datastore, files: Path, tmp_path: Path) -> None:
    if store.datastore_type == "AzureBlob":
        assert store.container_name and store.account_name == "devstoreaccount1"
        assert not hasattr(store, "account_key") and not hasattr(store, "sas_token")
    elif store.datastore_type == "GCS":
        assert store.bucket_name and store.root == f"gs://{store.bucket_name}"
    else:
        assert store.bucket_name and store.root == f"s3://{store.bucket_name}"
    with pytest.raises(DatastorePathError, match=r"contains '\.\.'"):
        store.upload(str(files), target_path="../escape", show_progress=False)
    with pytest.raises(DatastorePathError, match="is absolute"):
        store.list_files("/etc")
    store.upload(str(files), target_path="in", show_progress=False)
    assert store.list_files("in") == ["in/a.txt", "in/sub/b.txt", "in/sub/deeper/c.txt"]
    assert store.list_files("in/sub/b.txt") == ["in/sub/b.txt"]
    assert store.list_files("in/su") == []  # a prefix is a folder, not a string prefix

    (files / "a.txt").write_text("changed")
    store.upload(str(files), target_path="in", show_progress=False)  # existing: skipped
    assert store.last_upload_results[0] == ("in/a.txt", False)
    store.upload_files([str(files / "a.txt")], target_path="one", show_progress=False)
    assert store.list_files("one") == ["one/a.txt"]

    count = store.download(tmp_path / "dl", prefix="in", show_progress=False)
    assert count == 3
    assert (tmp_path / "dl" / "in" / "a.txt").read_text() == "A"
    assert (tmp_path / "dl" / "in" / "sub" / "deeper" / "c.txt").read_text() == "C"
    store.upload(str(files), target_path="in", overwrite=True, show_progress=False)
    store.download(tmp_path / "dl", prefix="in", overwrite=True, show_progress=False)
    assert (tmp_path / "dl" / "in" / "a.txt").read_text() == "changed"


def test_bytes_are_counted_as_they_move(store: Datastore, tmp_path: Path) -> None:
    """The bar's counter hears every byte of a batched upload and download (fsspec's
    per-file callbacks), on each object store."""
    src = tmp_path / "bytes"
    src.mkdir()
    sizes = [0, 1, 70_000, 300_000]
    for i, size in enumerate(sizes):
        (src / f"f{i}.bin").write_bytes(os.urandom(size))
    files = store.workspace.backend.store.datastore_files(store.name)  # type: ignore[attr-defined]
    sent: list[int] = []
    pairs = [(src / f"f{i}.bin", f"b/f{i}.bin") for i in range(len(sizes))]
    assert files.upload_many(pairs, overwrite=False, advance=sent.append) == [True] * 4
    assert sum(sent) == sum(sizes) and all(n > 0 for n in sent)
    received: list[int] = []
    back = [(f"b/f{i}.bin", tmp_path / "back" / f"f{i}.bin") for i in range(len(sizes))]
    files.download_many(back, advance=received.append)
    assert sum(received) == sum(sizes)
    assert (tmp_path / "back" / "f3.bin").read_bytes() == (src / "f3.bin").read_bytes()


def test_uploading_again_to_s3_prints_one_summary_line(
    ws: Workspace, moto: MotoS3, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    many = tmp_path / "many"
    many.mkdir()
    for i in range(60):
        (many / f"f{i:02}.csv").write_text("x" * 100)
    store = s3_store(ws, moto)
    capsys.readouterr()
    store.upload(str(many), target_path="many")
    assert capsys.readouterr().out == "Uploaded 60 files (6.0 kB) to datastore 's3data'\n"
    store.upload(str(many), target_path="many")
    assert capsys.readouterr().out == (
        "60 files already there on datastore 's3data', skipped: pass overwrite=True to "
        "replace them\n"
    )
    store.download(tmp_path / "dl", prefix="many")
    assert capsys.readouterr().out == f"Downloaded 60 files (6.0 kB) to {tmp_path / 'dl'}\n"


def test_pipeline_with_inputs_and_pipeline_data_in_object_storage(
    ws: Workspace, store: Datastore, files: Path, scripts: Path, tmp_path: Path
) -> None:
    """A DataReference folder (mount mode: downloaded) and file, PipelineData written to the
    bucket by one step and read by the next, PortDataReference.download."""
    store.upload(str(files), target_path="raw", show_progress=False)
    folder = DataReference(store, "raw_dir", "raw")
    one_file = store.path("raw/sub/b.txt").as_download()
    made = PipelineData("made", datastore=store)
    seen = PipelineData(
        "seen", datastore=store, output_mode="upload", output_path_on_compute="seen_here"
    )
    writer = PythonScriptStep(
        "write.py",
        name="writer",
        arguments=[made, "payload"],
        outputs=[made],
        source_directory=str(scripts),
    )
    reader = PythonScriptStep(
        "read.py",
        name="reader",
        arguments=[seen, folder, one_file, made],
        inputs=[folder, one_file, made],
        outputs=[seen],
        source_directory=str(scripts),
    )
    run = Experiment(ws, "s3").submit(Pipeline(ws, [writer, reader]))
    assert finished(run) == "Finished", run.get_details()

    writer_run = run.find_step_run("writer")[0]
    made_path = f"azureml/{writer_run.id}/made"
    assert store.list_files(made_path) == [f"{made_path}/deep/more.txt", f"{made_path}/made.txt"]
    port = run.find_step_run("reader")[0].get_output_data("seen")
    assert port.path_on_datastore.startswith("azureml/") and port.datastore_name == store.name
    target = Path(port.download(tmp_path / "dl", show_progress=False))
    assert (target / "seen.txt").read_text().splitlines() == [
        "a.txt=A,sub/b.txt=B,sub/deeper/c.txt=C",
        "B",
        "deep/more.txt=more,made.txt=payload",
    ]
    # Nothing staged is left in the bucket or in the workspace's working folders.
    assert all(p.startswith(("raw/", "azureml/")) for p in store.list_files(""))
    assert not any(Path(str(ws.path), "work").rglob("*.txt"))


def test_reuse_notices_changed_data_in_the_bucket(
    ws: Workspace, moto: MotoS3, files: Path, scripts: Path
) -> None:
    store = s3_store(ws, moto)
    store.upload(str(files), target_path="raw", show_progress=False)

    def submit() -> bool:
        """True when the step ran, False when it was reused."""
        data = DataReference(store, "raw_dir", "raw")
        seen = PipelineData("seen", datastore=store)
        step = PythonScriptStep(
            "read.py",
            name="reader",
            arguments=[seen, data],
            inputs=[data],
            outputs=[seen],
            source_directory=str(scripts),
        )
        run = Experiment(ws, "reuse").submit(Pipeline(ws, [step]))
        assert finished(run) == "Finished"
        return run.find_step_run("reader")[0].reused_run_id is None

    assert submit() is True
    assert submit() is False  # same objects in the bucket: reused
    (files / "sub" / "b.txt").write_text("B, changed")
    store.upload(str(files), target_path="raw", overwrite=True, show_progress=False)
    assert submit() is True


def test_a_failed_step_uploads_nothing(ws: Workspace, moto: MotoS3, scripts: Path) -> None:
    store = s3_store(ws, moto)
    made = PipelineData("made", datastore=store)
    step = PythonScriptStep(
        "write.py",
        name="writer",
        arguments=[made, "x", "fail"],
        outputs=[made],
        source_directory=str(scripts),
    )
    run = Experiment(ws, "s3fail").submit(Pipeline(ws, [step]))
    assert finished(run) == "Failed"
    assert store.list_files("") == []


def test_wrong_credentials_give_one_line_without_the_secret(
    ws: Workspace, moto: MotoS3, files: Path, scripts: Path
) -> None:
    bucket = moto.new_bucket()
    wrong = "WrongSecretValue0123456789"
    ds = Datastore.register_s3(
        ws,
        "badkeys",
        bucket,
        endpoint_url=moto.url,
        access_key_id=moto.key_id,
        secret_access_key=wrong,
    )
    with pytest.raises(ConfigError) as info:
        ds.upload(str(files), target_path="x", show_progress=False)
    message = str(info.value)
    assert "\n" not in message and wrong not in message
    assert "'badkeys'" in message and "refused" in message and "credentials" in message

    # A pipeline reading from it is refused at submit (its input's fingerprint needs a
    # listing), with the same line.
    data = ds.path("x")
    step = PythonScriptStep(
        "read.py",
        name="reader",
        arguments=["out", data],
        inputs=[data],
        source_directory=str(scripts),
    )
    with pytest.raises(ConfigError) as info:
        Experiment(ws, "badkeys").submit(Pipeline(ws, [step]))
    message = str(info.value)
    assert "\n" not in message and wrong not in message and "refused" in message


def test_a_wrong_azure_account_key_gives_one_line(
    ws: Workspace, azurite: Azurite, files: Path
) -> None:
    import base64

    wrong = base64.b64encode(b"not the key of this account, 64 bytes long .......").decode()
    ds = Datastore.register_azure_blob_container(
        ws,
        "badblob",
        "container1",
        azurite.account,
        account_key=wrong,
        endpoint=azurite.endpoint,
    )
    with pytest.raises(ConfigError) as info:
        ds.upload(str(files), target_path="x", show_progress=False)
    message = str(info.value)
    assert "\n" not in message and wrong not in message and "'badblob'" in message
    assert "refused: Server failed to authenticate the request." in message
    assert "<?xml" not in message and "credentials" in message


def test_an_output_that_cannot_be_uploaded_fails_its_step(
    ws: Workspace, moto: MotoS3, scripts: Path
) -> None:
    """Refused at upload time, in the agent: the step fails with one line naming the
    datastore, no secret reaches the run's details or the agent's log, and its other
    output, uploaded first to a good bucket, is removed again (all outputs or none)."""
    good = s3_store(ws, moto, "goodout")
    wrong = "AnotherWrongSecret987654321"
    ds = Datastore.register_s3(
        ws,
        "badout",
        moto.new_bucket(),
        endpoint_url=moto.url,
        access_key_id=moto.key_id,
        secret_access_key=wrong,
    )
    first = PipelineData("first", datastore=good)
    made = PipelineData("made", datastore=ds)
    step = PythonScriptStep(
        "write.py",
        name="writer",
        arguments=[made, "x", "ok", first],
        outputs=[first, made],
        source_directory=str(scripts),
    )
    run = Experiment(ws, "badout").submit(Pipeline(ws, [step]))
    status = finished(run)
    details = str(run.find_step_run("writer")[0].get_details())
    assert wrong not in details
    text = (Path(str(ws.path)) / "agent" / "agent.log").read_text(errors="replace")
    assert "Listing 'azureml/" in text and "'badout'" in text and "refused" in text
    assert wrong not in text
    assert moto.filesystem().ls(ds.root.removeprefix("s3://")) == []  # nothing uploaded
    assert good.list_files("") == []  # the first output was uploaded, then removed
    assert status == "Failed"  # the script succeeded, but its outputs could not be kept
    assert "outputs could not be kept" in details and "refused" in details


def test_credentials_from_environment_variables(
    ws: Workspace, moto: MotoS3, files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = Datastore.register_s3(
        ws,
        "fromenv",
        moto.new_bucket(),
        endpoint_url=moto.url,
        access_key_id_env="HR_TEST_KEY",
        secret_access_key_env="HR_TEST_SECRET",
    )
    assert ds._config["credentials"] == {
        "access_key_id": "env:HR_TEST_KEY",
        "secret_access_key": "env:HR_TEST_SECRET",
    }
    assert not (Path(str(ws.path)) / "secrets").exists()
    with pytest.raises(ConfigError, match="environment variable HR_TEST_KEY, which is not set"):
        ds.list_files("")
    monkeypatch.setenv("HR_TEST_KEY", moto.key_id)
    monkeypatch.setenv("HR_TEST_SECRET", moto.secret)
    fresh = Datastore(ws, "fromenv")
    ws.backend.store.forget_datastore("fromenv")  # type: ignore[attr-defined]
    fresh.upload(str(files), show_progress=False)
    assert len(fresh.list_files("")) == 3


def test_bad_registrations(ws: Workspace) -> None:
    with pytest.raises(ValueError, match="not both"):
        Datastore.register_s3(ws, "x", "b", secret_access_key="s", secret_access_key_env="E")
    with pytest.raises(ValueError, match="bucket_name must be a non-empty string"):
        Datastore.register_s3(ws, "x", "")
    with pytest.raises(ValueError, match="Datastore name 'bad-name' is invalid"):
        Datastore.register_s3(ws, "bad-name", "bucket")
    for container in ("c1", "Upper", "a--b", "-x-"):
        with pytest.raises(ValueError, match=f"Azure container name '{container}' is invalid"):
            Datastore.register_azure_blob_container(ws, "x", container, "account")
    assert "x" not in ws.datastores  # nothing registered by a refused call


@pytest.mark.parametrize(
    ("module", "extra", "register"),
    [
        ("s3fs", "s3", lambda ws: Datastore.register_s3(ws, "m", "bucket")),
        (
            "adlfs",
            "azure",
            lambda ws: Datastore.register_azure_blob_container(ws, "m", "cont", "acct"),
        ),
        ("gcsfs", "gcs", lambda ws: Datastore.register_gcs(ws, "m", "bucket", project="p")),
    ],
)
def test_a_missing_extra_names_what_to_install(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch, module: str, extra: str, register: Any
) -> None:
    ds = register(ws)  # registering contacts nothing
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    with pytest.raises(MissingDependencyError, match=rf"pip install 'headrace\[{extra}\]'"):
        ds.list_files("")


def test_gcs_registration(ws: Workspace, tmp_path: Path) -> None:
    key = tmp_path / "sa.json"
    ds = Datastore.register_gcs(ws, "gcsdata", "my-bucket", project="proj", credentials_file=key)
    assert ds.datastore_type == "GCS" and ds.root == "gs://my-bucket"
    assert ds._config["credentials_file"] == str(key)
    assert Datastore(ws, "gcsdata").root == "gs://my-bucket"
    with pytest.raises(ValueError, match="not both"):
        Datastore.register_gcs(ws, "other", "my-bucket", credentials_file=key, anonymous=True)


def test_the_portal_and_the_api_browse_and_download_an_object_store(
    store: Datastore, files: Path
) -> None:
    """Folders are key prefixes; downloads stream the object; `..` is refused."""
    store.upload(str(files), target_path="in", show_progress=False)
    root = Path(str(store.workspace.path))
    name = store.name
    # The first request imports the object store's client in the server: seconds on a busy
    # machine, past httpx's 5 s default once in CI.
    http = httpx.Client(timeout=60)
    with LiveServer(root, auth=False) as server, http:
        top = http.get(f"{server.url}/ui/datastores/{name}.json").json()
        assert [(e["name"], e["kind"]) for e in top["entries"]] == [("in", "folder")]
        folder = http.get(f"{server.url}/ui/datastores/{name}/browse/in.json").json()
        assert [(e["name"], e["kind"]) for e in folder["entries"]] == [
            ("sub", "folder"),
            ("a.txt", "file"),
        ]
        page = http.get(f"{server.url}/ui/datastores/{name}/browse/in/sub")
        assert page.status_code == 200 and "b.txt" in page.text and "deeper" in page.text
        got = http.get(f"{server.url}/ui/datastores/{name}/download/in/sub/b.txt")
        assert got.status_code == 200
        assert got.content == (files / "sub" / "b.txt").read_bytes()
        assert "b.txt" in got.headers["content-disposition"]
        shown = http.get(
            f"{server.url}/ui/datastores/{name}/preview/in/sub/b.txt",
            headers={"Accept": "application/json"},
        ).json()
        assert shown["file"]["size"] == (files / "sub" / "b.txt").stat().st_size
        assert shown["preview"] == {
            "kind": "text",
            "text": (files / "sub" / "b.txt").read_text(),
            "truncated": False,
        }
        unknown = http.get(f"{server.url}/ui/datastores/{name}/preview/in/nothing.txt")
        assert unknown.status_code == 404 and "nothing.txt" in unknown.text
        api = http.get(f"{server.url}/api/v1/datastores/{name}/files/in/a.txt")
        assert api.status_code == 200 and api.content == (files / "a.txt").read_bytes()
        missing = http.get(f"{server.url}/ui/datastores/{name}/browse/nothing-here")
        assert missing.status_code == 404 and "nothing-here" in missing.text
        escape = http.get(f"{server.url}/ui/datastores/{name}/browse/in/%2E%2E/%2E%2E/x")
        assert escape.status_code in (400, 404) and "Traceback" not in escape.text
