"""File previews in the portal, as a user meets them: a step's run files and a datastore's
files shown in the page (text and logs, JSON, CSV and Parquet tables, images, Markdown
rendered safely, "no preview" for binary files), only their beginning read, paths that would
leave refused, the portal's CSP kept."""

from __future__ import annotations

import base64
import html
import json
import re
import sys
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest

from headrace import Experiment, Pipeline, PythonScriptStep, Workspace
from tests.portal.conftest import screenshot
from tests.servers import LiveServer

PIXEL = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYPj/HwADAgH/eL9GtQAAAABJRU5ErkJggg=="
)
SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"><script>alert(1)</script><rect width="4" height="4"/></svg>'
MARKDOWN = textwrap.dedent(
    """
    # Report <script>alert("md")</script>

    Accuracy **0.93**. [safe](https://example.org) [bad](javascript:alert(1))
    <img src=x onerror="alert(2)">

    | model | score |
    |:------|------:|
    | tree  | 0.91  |
    """
)


def preview_json(url: str) -> dict[str, Any]:
    answer = httpx.get(url, headers={"Accept": "application/json"})
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


@pytest.fixture
def files(ws: Workspace) -> tuple[str, Path]:
    """The default datastore's name and folder, holding a file of each kind."""
    name = ws.get_default_datastore().name
    folder = Path(ws.backend.datastore_root(name)) / "show"
    folder.mkdir(parents=True)
    (folder / "small.json").write_text('{"b": [1, 2], "a": {"c": "ü"}}')
    (folder / "broken.json").write_text('{"b": ')
    rows = ["id,score,label"] + [f"{i},{i / 10},name {i}" for i in range(150)]
    (folder / "table.csv").write_text("\n".join(rows) + "\n")
    (folder / "pixel.png").write_bytes(PIXEL)
    (folder / "drawing.svg").write_text(SVG)
    (folder / "README.md").write_text(MARKDOWN)
    (folder / "model.bin").write_bytes(b"\x00\x01weights")
    (folder / "blob.dat").write_bytes(b"head\x00\x00tail")
    # 5 GB that read as text (a sparse file: no disk used): only the beginning may be read.
    with open(folder / "huge.log", "wb") as fh:
        fh.write(b"".join(b"line %06d of the log\n" % i for i in range(20_000)))
        fh.truncate(5 * 1024**3)
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(
        pa.table({"n": list(range(250)), "word": [f"w{i}" for i in range(250)]}),
        folder / "part.parquet",
        row_group_size=100,
    )
    return name, folder


def test_datastore_files_preview_by_kind(files: tuple[str, Path], portal: LiveServer) -> None:
    name, _folder = files
    base = f"{portal.url}/ui/datastores/{name}/preview/show"

    small = preview_json(f"{base}/small.json")
    assert small["preview"]["kind"] == "json"
    assert small["preview"]["text"] == json.dumps(
        {"b": [1, 2], "a": {"c": "ü"}}, indent=2, ensure_ascii=False
    )
    assert small["file"]["download_url"] == f"/ui/datastores/{name}/download/show/small.json"
    broken = preview_json(f"{base}/broken.json")["preview"]
    assert broken["kind"] == "text" and broken["text"] == '{"b": '
    assert broken["note"].startswith("Not valid JSON")

    table = preview_json(f"{base}/table.csv")["preview"]
    assert table["kind"] == "table" and table["more"] is True
    assert table["columns"] == [
        {"name": "id", "type": "int"},
        {"name": "score", "type": "float"},
        {"name": "label", "type": "string"},
    ]
    assert len(table["rows"]) == 100 and table["rows"][99] == ["99", "9.9", "name 99"]

    parquet = preview_json(f"{base}/part.parquet")["preview"]
    assert parquet["format"] == "Parquet" and parquet["total_rows"] == 250
    assert parquet["columns"] == [
        {"name": "n", "type": "int64"},
        {"name": "word", "type": "string"},
    ]
    assert len(parquet["rows"]) == 100 and parquet["rows"][42] == [42, "w42"]
    shown = httpx.get(f"{base}/part.parquet").text
    assert "Parquet:\n  the first 100 of 250 rows" in shown and "<td>42</td><td>w42</td>" in shown

    huge = preview_json(f"{base}/huge.log")
    assert huge["file"]["size"] == 5 * 1024**3
    text = huge["preview"]["text"]
    assert huge["preview"]["kind"] == "text" and huge["preview"]["truncated"] is True
    assert text.startswith("line 000000 of the log\n") and text.endswith(" of the log\n")
    assert 250_000 < len(text) <= 256 * 1024
    page = httpx.get(f"{base}/huge.log")
    shown = re.sub(r"<[^>]+>", "", page.text)  # the size's element holds its bytes on hover
    assert "The first 256 KB (whole lines) of 5.37 GB" in shown
    assert 'title="5,368,709,120 bytes"' in page.text
    assert 'href="/ui/datastores/' in page.text and "Download the whole file" in page.text

    for binary in ("model.bin", "blob.dat"):
        found = preview_json(f"{base}/{binary}")["preview"]
        assert found["kind"] == "none", binary
        assert "No preview" in httpx.get(f"{base}/{binary}").text

    image = preview_json(f"{base}/pixel.png")["preview"]
    assert image == {"kind": "image", "url": f"/ui/datastores/{name}/download/show/pixel.png"}
    served = httpx.get(portal.url + image["url"])
    assert served.headers["content-type"] == "image/png" and served.content == PIXEL


def test_markdown_and_svg_are_shown_without_their_markup_running(
    files: tuple[str, Path], portal: LiveServer, page: Any
) -> None:
    name, _folder = files
    base = f"{portal.url}/ui/datastores/{name}/preview/show"
    rendered = preview_json(f"{base}/README.md")["preview"]["html"]
    assert "<h1>Report &lt;script&gt;" in rendered and "<script" not in rendered
    assert "javascript:" not in rendered.replace("[bad](javascript:alert(1))", "")
    assert 'href="https://example.org"' in rendered and "<img" not in rendered
    assert "<table>" in rendered and "style=" not in rendered

    svg = httpx.get(f"{base}/drawing.svg")
    assert svg.status_code == 200 and "<svg" not in svg.text and "<rect" not in svg.text
    assert svg.headers["x-content-type-options"] == "nosniff"
    assert "script-src 'self'" in svg.headers["content-security-policy"]

    # In a browser: the Markdown page renders, the SVG shows as an image, no CSP violation
    # (the `page` fixture fails the test on one) and no dialog from any script.
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"{base}/README.md")
    assert page.locator(".markdown h1").inner_text() == 'Report <script>alert("md")</script>'
    assert page.locator(".markdown table td").first.inner_text() == "tree"
    screenshot(page, "preview-markdown")
    page.goto(f"{base}/drawing.svg")
    image = page.locator("img.preview")
    image.wait_for()
    assert page.evaluate("document.querySelector('img.preview').naturalWidth") == 4
    assert dialogs == []


def test_datastore_preview_paths_are_checked(files: tuple[str, Path], portal: LiveServer) -> None:
    name, folder = files
    (folder.parent.parent / "secret.txt").write_text("outside")
    base = f"{portal.url}/ui/datastores/{name}/preview"
    for bad in ("%2Fetc%2Fpasswd", "show/..%2F..%2Fsecret.txt", "..%2Fsecret.txt"):
        answer = httpx.get(f"{base}/{bad}")
        assert answer.status_code == 400, bad
        assert "outside" not in answer.text and "Browse the datastore from" in answer.text
    missing = httpx.get(f"{base}/show/nothing.txt")
    text = html.unescape(missing.text)
    assert missing.status_code == 404 and "There is no file 'show/nothing.txt'" in text
    listing = httpx.get(f"{portal.url}/ui/datastores/{name}/browse/show").text
    assert f'href="/ui/datastores/{name}/preview/show/README.md"' in listing


STEP_SCRIPT = textwrap.dedent(
    """
    import json, os
    os.makedirs("outputs", exist_ok=True)
    with open("outputs/metrics.json", "w") as fh:
        json.dump({"accuracy": 0.93, "classes": ["cat", "dog"]}, fh)
    with open("outputs/notes.md", "w") as fh:
        fh.write("# Notes\\n\\n- first <b>point</b>\\n")
    print("hello from the step")
    """
)


def test_step_run_files_preview_in_the_page(ws: Workspace, root: Path, portal: LiveServer) -> None:
    source = root / "preview_src"
    source.mkdir()
    (source / "write.py").write_text(STEP_SCRIPT)
    step = PythonScriptStep("write.py", name="writer", source_directory=str(source))
    run = Experiment(ws, "previews").submit(Pipeline(ws, steps=[step]))
    assert run.wait_for_completion(show_output=False) == "Finished"
    step_id = run.find_step_run("writer")[0].id

    twin = httpx.get(f"{portal.url}/ui/steps/{step_id}.json").json()
    by_name = {f["name"]: f for f in twin["files"]}
    assert by_name["outputs/metrics.json"]["preview_url"] == (
        f"/ui/steps/{step_id}/preview/outputs/metrics.json"
    )
    page = httpx.get(f"{portal.url}/ui/steps/{step_id}").text
    assert f'href="/ui/steps/{step_id}/preview/user_logs/stdout.txt"' in page

    metrics = preview_json(f"{portal.url}/ui/steps/{step_id}/preview/outputs/metrics.json")
    assert metrics["preview"]["kind"] == "json"
    assert json.loads(metrics["preview"]["text"]) == {"accuracy": 0.93, "classes": ["cat", "dog"]}
    assert metrics["crumbs"][-1] == {"name": "Step writer", "url": f"/ui/steps/{step_id}"}
    notes = preview_json(f"{portal.url}/ui/steps/{step_id}/preview/outputs/notes.md")
    assert "<li>first &lt;b&gt;point&lt;/b&gt;</li>" in notes["preview"]["html"]
    log = httpx.get(f"{portal.url}/ui/steps/{step_id}/preview/user_logs/stdout.txt")
    assert log.status_code == 200 and "hello from the step" in log.text

    outside = httpx.get(f"{portal.url}/ui/steps/{step_id}/preview/..%2F..%2Fheadrace.db")
    assert outside.status_code == 400 and "contains &#39;..&#39;" in outside.text
    missing = httpx.get(f"{portal.url}/ui/steps/{step_id}/preview/outputs/none.txt")
    assert missing.status_code == 404 and f"/ui/steps/{step_id}" in missing.text


def test_a_parquet_file_without_pyarrow_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from headrace.server.portal.previews import PreviewSource, preview

    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)  # as if not installed
    path = tmp_path / "part.parquet"
    path.write_bytes(b"PAR1 not really")
    source = PreviewSource(path.name, path.stat().st_size, lambda: open(path, "rb"), "/x")
    found = preview(source)
    assert found["kind"] == "none"
    assert "pyarrow" in found["reason"] and "pip install 'headrace[datasets]'" in found["reason"]
