"""Long names and paths (issue 13, item 4): every name the file system allows (255 bytes)
works everywhere a user gives one, and anything longer is refused with the limit named,
never a 500: the SDK on a workspace folder and on a server, the REST API, the portal, and
pipelines whose inputs and outputs carry such names.

Names are built from two-byte characters where it matters: the limits are in UTF-8 bytes,
not characters.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from headrace import (
    DataReference,
    Datastore,
    DatastorePathError,
    Experiment,
    Pipeline,
    PipelineData,
    PipelineParameter,
    PythonScriptStep,
    TokenAuthentication,
    UserError,
    Workspace,
)
from headrace.limits import NAME_MAX_BYTES, PATH_MAX_BYTES, URL_MAX_BYTES
from tests import shapes
from tests.objectstores import MotoS3
from tests.servers import LiveServer, bearer, make_token
from tests.test_object_datastores import moto, s3_store

__all__ = ["moto"]  # the session's S3 server fixture, shared with the object-store tests

# 255 bytes: 127 two-byte characters and one ASCII letter.
LONGEST = "é" * 127 + "n"
TOO_LONG = "é" * 128  # 256 bytes, 128 characters
assert len(LONGEST.encode()) == NAME_MAX_BYTES
assert len(TOO_LONG.encode()) == NAME_MAX_BYTES + 1


def assert_refused(response: httpx.Response, status: int, *words: str) -> str:
    assert response.status_code == status, response.text
    message: str = response.json()["Error"]["Message"]
    for word in words:
        assert word in message, message
    return message


@pytest.fixture
def served(ws: Workspace) -> Iterator[tuple[LiveServer, str]]:
    root = Path(ws.path or "")
    token = make_token(root, "admin")
    with LiveServer(root) as live:
        yield live, token


def opened(where: str, ws: Workspace, live: LiveServer, token: str) -> Workspace:
    """The workspace of `ws` opened again, as a folder or through its server."""
    if where == "server":
        return Workspace.get("test-ws", url=live.url, auth=TokenAuthentication(token))
    return Workspace.get("test-ws", path=ws.path)


@pytest.fixture
def long_file(tmp_path: Path) -> Path:
    folder = tmp_path / "upload"
    folder.mkdir()
    source = folder / LONGEST
    source.write_text("the longest name")
    return source


# -- the SDK -------------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["folder", "server"])
def test_a_255_byte_name_uploads_lists_and_downloads(
    where: str,
    ws: Workspace,
    served: tuple[LiveServer, str],
    long_file: Path,
    tmp_path: Path,
) -> None:
    live, token = served
    with opened(where, ws, live, token) as workspace:
        ds = Datastore.get(workspace, "workspaceblobstore")
        ds.upload_files([str(long_file)], target_path=LONGEST, show_progress=False)
        assert ds.list_files(LONGEST) == [f"{LONGEST}/{LONGEST}"]
        assert ds.download(tmp_path / "back", prefix=LONGEST, show_progress=False) == 1
    assert (tmp_path / "back" / LONGEST / LONGEST).read_text() == "the longest name"
    # Nothing half-written is left beside it.
    on_disk = Path(ws.path or "") / "datastores" / "workspaceblobstore" / LONGEST
    assert [p.name for p in on_disk.iterdir()] == [LONGEST]


@pytest.mark.parametrize("where", ["folder", "server"])
def test_an_over_long_name_or_path_is_refused_naming_the_limit(
    where: str, ws: Workspace, served: tuple[LiveServer, str], long_file: Path
) -> None:
    live, token = served
    deep = "/".join(["d" * 200] * 6)  # 1,205 bytes, every name legal
    with opened(where, ws, live, token) as workspace:
        ds = Datastore.get(workspace, "workspaceblobstore")
        with pytest.raises(DatastorePathError, match=f"limited to {NAME_MAX_BYTES} bytes"):
            ds.upload_files([str(long_file)], target_path=TOO_LONG, show_progress=False)
        with pytest.raises(DatastorePathError, match=f"limited to {PATH_MAX_BYTES:,} bytes"):
            ds.upload_files([str(long_file)], target_path=deep, show_progress=False)
        with pytest.raises(DatastorePathError, match=f"limited to {NAME_MAX_BYTES} bytes"):
            ds.list_files(TOO_LONG)
    assert not any((Path(ws.path or "") / "datastores" / "workspaceblobstore").iterdir())


# -- REST ----------------------------------------------------------------------------------
def test_rest_routes_take_the_longest_name_and_refuse_longer(
    served: tuple[LiveServer, str],
) -> None:
    live, token = served
    chunk = {"upload": "0" * 32, "offset": 0, "final": "true"}
    with httpx.Client(base_url=f"{live.url}/api/v1", headers=bearer(token)) as client:
        files = "/datastores/workspaceblobstore/files"
        put = client.put(f"{files}/{quote(LONGEST)}", params=chunk, content=b"x")
        assert put.status_code == 200, put.text
        assert client.get(f"{files}/{quote(LONGEST)}").content == b"x"
        assert client.get(files, params={"prefix": LONGEST}).json() == [[LONGEST, 1]]
        run_file = client.put(f"/runs/nope/files/{quote(LONGEST)}", params=chunk, content=b"x")
        assert run_file.status_code in (200, 404), run_file.text

        for answer in (
            client.put(f"{files}/{quote(TOO_LONG)}", params=chunk, content=b"x"),
            client.get(f"{files}/{quote(TOO_LONG)}"),
            client.get(files, params={"prefix": TOO_LONG}),
            client.put(f"/runs/nope/files/{quote(TOO_LONG)}", params=chunk, content=b"x"),
        ):
            assert_refused(answer, 400, f"limited to {NAME_MAX_BYTES} bytes")
        four_kb = "/".join(["c" * 200] * 21)
        assert_refused(client.get(f"{files}/{four_kb}"), 400, f"{PATH_MAX_BYTES:,} bytes")
        # A 5,000-character id is looked up like any other and not found.
        for path in ("/runs/", "/pipeline-runs/", "/step-runs/", "/graphs/"):
            answer = client.get(path + "e" * 5000 + ("/files" if path == "/runs/" else ""))
            assert answer.status_code == 404, answer.text


def test_an_over_long_url_is_414_naming_the_limit(served: tuple[LiveServer, str]) -> None:
    live, token = served
    long = "e" * (URL_MAX_BYTES + 1)
    for url in (f"/api/v1/runs/{long}", f"/api/v1/pipeline-runs?experiment={long}", f"/ui/{long}"):
        answer = httpx.get(live.url + url, headers=bearer(token))
        message = assert_refused(answer, 414, f"at most {URL_MAX_BYTES:,}")
        assert answer.json()["Error"]["Code"] == "URITooLong", message


# -- the portal ----------------------------------------------------------------------------
def test_portal_browses_and_downloads_the_longest_name(
    ws: Workspace, served: tuple[LiveServer, str], long_file: Path
) -> None:
    live, token = served
    Datastore.get(ws, "workspaceblobstore").upload_files(
        [str(long_file)], target_path="long", show_progress=False
    )
    base = f"{live.url}/ui/datastores/workspaceblobstore"
    folder = httpx.get(f"{base}/browse/long.json", headers=bearer(token))
    assert folder.status_code == 200, folder.text
    assert [e["name"] for e in folder.json()["entries"]] == [LONGEST]
    page = httpx.get(f"{base}/browse/long", headers=bearer(token))
    assert page.status_code == 200 and LONGEST in page.text
    download = httpx.get(f"{base}/download/long/{quote(LONGEST)}", headers=bearer(token))
    assert download.status_code == 200 and download.content == b"the longest name"

    for url in (f"{base}/browse/{quote(TOO_LONG)}", f"{base}/download/{quote(TOO_LONG)}"):
        answer = httpx.get(url, headers=bearer(token))
        assert answer.status_code == 400, answer.text
        assert f"limited to {NAME_MAX_BYTES} bytes" in answer.text


# -- pipelines -----------------------------------------------------------------------------
COPY = textwrap.dedent(
    """
    import os, shutil, sys
    source, out = sys.argv[1], sys.argv[2]
    found = sorted(os.listdir(source)) if os.path.isdir(source) else [os.path.basename(source)]
    os.makedirs(out, exist_ok=True)
    for name in found:
        path = os.path.join(source, name) if os.path.isdir(source) else source
        shutil.copyfile(path, os.path.join(out, name))
    print("copied", len(found), "file(s)")
    """
)


@pytest.mark.parametrize("mode", ["mount", "download"])
def test_the_longest_name_works_as_a_step_input_and_output(
    mode: str, ws: Workspace, long_file: Path, tmp_path: Path
) -> None:
    ds = Datastore.get(ws, "workspaceblobstore")
    ds.upload_files([str(long_file)], target_path=LONGEST, show_progress=False)
    source = tmp_path / "steps"
    source.mkdir()
    (source / "copy.py").write_text(COPY)
    raw = DataReference(ds, "raw", LONGEST, mode=mode)
    middle = PipelineData("middle", datastore=ds)
    final = PipelineData("final", datastore=ds)
    first = PythonScriptStep(
        "copy.py", name="first", arguments=[raw, middle], inputs=[raw], outputs=[middle],
        source_directory=str(source),
    )  # fmt: skip
    second = PythonScriptStep(
        "copy.py", name="second", arguments=[middle, final], inputs=[middle], outputs=[final],
        source_directory=str(source),
    )  # fmt: skip
    run = Experiment(ws, "long-names").submit(Pipeline(ws, [first, second]))
    assert run.wait_for_completion(show_output=False) == "Finished"
    output = run.find_step_run("second")[0].get_output_data("final")
    produced = ds.list_files(output.path_on_datastore)
    assert [p.rsplit("/", 1)[-1] for p in produced] == [LONGEST]


def test_an_object_store_takes_the_longest_name_and_refuses_longer(
    ws: Workspace, moto: MotoS3, long_file: Path, tmp_path: Path
) -> None:
    ds = s3_store(ws, moto)
    ds.upload_files([str(long_file)], target_path=LONGEST, show_progress=False)
    assert ds.list_files(LONGEST) == [f"{LONGEST}/{LONGEST}"]
    assert ds.download(tmp_path / "back", prefix=LONGEST, show_progress=False) == 1
    assert (tmp_path / "back" / LONGEST / LONGEST).read_text() == "the longest name"
    with pytest.raises(DatastorePathError, match=f"limited to {NAME_MAX_BYTES} bytes"):
        ds.upload_files([str(long_file)], target_path=TOO_LONG, show_progress=False)
    # An object someone else wrote under a name too long for a file here: listed, and a
    # download says why it cannot be written instead of failing in the file system.
    moto.filesystem().pipe(f"{ds.bucket_name}/elsewhere/{TOO_LONG}", b"x")
    assert ds.list_files("elsewhere") == [f"elsewhere/{TOO_LONG}"]
    with pytest.raises(DatastorePathError, match=f"limited to {NAME_MAX_BYTES} bytes"):
        ds.download(tmp_path / "other", prefix="elsewhere", show_progress=False)


def test_texts_longer_than_the_database_keeps_are_client_errors(
    any_ws: Workspace, tmp_path: Path
) -> None:
    """PostgreSQL refuses a text longer than its column (SQLite keeps it): both answer 400
    naming the field, never 500."""
    root = Path(any_ws.path or "")
    value = PipelineParameter("value", default_value=1)
    step = shapes.step(tmp_path, "echo", extra=["--value", value])
    published = Pipeline(any_ws, [step]).publish(name="echo")
    with pytest.raises(UserError, match="name is 300 characters long; at most 255"):
        Pipeline(any_ws, [step]).publish(name="n" * 300)
    token = make_token(root, "admin")
    with LiveServer(root) as live, httpx.Client(base_url=live.url, headers=bearer(token)) as c:
        body = {"ExperimentName": "e", "RunSource": "r" * 300}
        assert_refused(c.post(live.submit_url(published.id), json=body), 400, "RunSource")
        api = "/api/v1"
        answer = c.post(f"{api}/published-pipelines/{published.id}/runs",
                        json={"experiment_name": "e", "run_source": "r" * 300})  # fmt: skip
        assert_refused(answer, 400, "run_source")
        answer = c.post(f"{api}/pipeline-endpoints",
                        json={"name": "n" * 300, "description": "", "pipeline_id": published.id})  # fmt: skip
        assert_refused(answer, 400, "name")
        answer = c.put(f"{api}/compute-targets/{'c' * 300}", json={"type": "local", "config": {}})
        assert_refused(answer, 400, "1 to 255 characters")
    assert len(any_ws.backend.list_pipeline_runs()) == 0
