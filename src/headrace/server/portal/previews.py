"""File previews in the page (issue 17 item 3): what a step's run file or a datastore file
looks like, without downloading it.

`preview(source)` reads at most `TEXT_BYTES` of a file (or, for Parquet, its footer and first
row group through pyarrow), so a 5 GB file never comes into memory, and answers a dict the
template `preview.html` shows:

- text and logs: the first 256 KB (cut at a line), with "download the whole file";
- JSON: pretty-printed (when the whole file is within the first 256 KB and parses);
- CSV / TSV: a table of the first `TABLE_ROWS` rows, column types guessed from those rows;
- Parquet: a table of the first rows with the file's column types and row count (pyarrow, if
  installed; else a note saying how to get it);
- images (png, jpg, gif, webp, svg): an `<img>` whose source is the download route. An SVG is
  only ever an image (scripts in an `<img>` do not run) and never inlined as markup;
- Markdown: rendered by markdown-it-py (already installed with `rich`) with raw HTML off, so
  tags in the text show as text; its link check refuses `javascript:`, `vbscript:`, `file:`
  and `data:` links (except inline images), and the `style` attributes of table alignment are
  dropped (the portal's CSP forbids inline style);
- anything else with a NUL byte in its first 8 KB, or a known binary extension: "no preview".

Only the reading is here; which file may be read (path checks) is the routes' business.
"""

from __future__ import annotations

import contextlib
import csv
import json
import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from fastapi import Request, Response

from headrace.server.portal.base import render

__all__ = [
    "PREVIEW_KINDS",
    "TABLE_ROWS",
    "TEXT_BYTES",
    "PreviewSource",
    "preview",
    "preview_page",
    "render_markdown",
]

TEXT_BYTES = 256 * 1024  # most of a text file a preview reads and shows
TABLE_ROWS = 100
IMAGE_BYTES = 20 * 1024 * 1024  # larger images are left to the download link
CELL_CHARS = 300  # a table cell's text is cut there

IMAGES = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg"}
BINARY = {
    ".bin", ".pkl", ".pickle", ".joblib", ".pt", ".pth", ".onnx", ".npy", ".npz", ".h5",
    ".hdf5", ".zip", ".gz", ".tgz", ".bz2", ".xz", ".zst", ".tar", ".7z", ".whl", ".so",
    ".exe", ".dll", ".pdf", ".avro", ".orc", ".feather", ".arrow", ".db", ".sqlite",
    ".mp3", ".mp4", ".wav", ".bmp", ".tif", ".tiff", ".ico",
}  # fmt: skip
PREVIEW_KINDS = ("text", "json", "table", "image", "markdown", "none")


@dataclass(frozen=True)
class PreviewSource:
    """A file to preview: its name (the extension picks the kind), size, a way to open it
    for reading (binary, seekable) and where the whole file downloads."""

    name: str
    size: int
    open: Callable[[], contextlib.AbstractContextManager[IO[bytes]]]
    download_url: str


def preview(source: PreviewSource) -> dict[str, Any]:
    """What the preview page shows of `source`: a dict with `kind` (one of PREVIEW_KINDS)."""
    ext = posixpath.splitext(source.name.lower())[1]
    if ext in IMAGES:
        if source.size > IMAGE_BYTES:
            return _none(f"The image is {source.size:,} bytes, too large to show here.")
        return {"kind": "image", "url": source.download_url}
    if ext in (".parquet", ".pq"):
        return _parquet(source)
    if ext in BINARY:
        return _none(f"A {ext} file is binary.")
    with source.open() as fh:
        head = fh.read(TEXT_BYTES)
    if b"\0" in head[:8192]:
        return _none("The file is binary (it holds NUL bytes).")
    truncated = source.size > len(head)
    if truncated and b"\n" in head:
        head = head[: head.rindex(b"\n") + 1]  # whole lines (and whole characters) only
    text = head.decode("utf-8", errors="replace")
    if ext == ".json":
        return _json(text, truncated)
    if ext in (".csv", ".tsv"):
        return _csv(text, "\t" if ext == ".tsv" else ",", truncated)
    if ext in (".md", ".markdown"):
        return {"kind": "markdown", "html": render_markdown(text), "truncated": truncated}
    return {"kind": "text", "text": text, "truncated": truncated}


def _none(reason: str) -> dict[str, Any]:
    return {"kind": "none", "reason": reason}


def _json(text: str, truncated: bool) -> dict[str, Any]:
    if truncated:
        note = f"Larger than {TEXT_BYTES // 1024} KB: the beginning is shown as it is."
        return {"kind": "text", "text": text, "truncated": True, "note": note}
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        note = f"Not valid JSON ({str(exc).splitlines()[0][:200]}): shown as text."
        return {"kind": "text", "text": text, "truncated": False, "note": note}
    try:
        pretty = json.dumps(value, indent=2, ensure_ascii=False)
    except (ValueError, RecursionError):
        pretty = text
    return {"kind": "json", "text": pretty, "truncated": False}


def _guess_type(values: list[str]) -> str:
    """int, float, bool or string: what every non-empty value of a column reads as."""
    present = [v.strip() for v in values if v.strip()]
    if not present:
        return "empty"
    for name, check in (("int", int), ("float", float)):
        try:
            for value in present:
                check(value)
        except ValueError:
            continue
        return name
    if all(v.lower() in ("true", "false") for v in present):
        return "bool"
    return "string"


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= CELL_CHARS else text[: CELL_CHARS - 1] + "…"


def _parquet_cell(value: Any) -> Any:
    """A number stays one (the page formats it, the full value on hover); the rest as text."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    return _cell(value)


def _csv(text: str, delimiter: str, truncated: bool) -> dict[str, Any]:
    reader = csv.reader(text.splitlines(), delimiter=delimiter)
    try:
        header = next(reader, [])
        rows = [row for _n, row in zip(range(TABLE_ROWS + 1), reader, strict=False)]
    except csv.Error as exc:
        note = f"Not readable as CSV ({exc}): shown as text."
        return {"kind": "text", "text": text, "truncated": truncated, "note": note}
    more = len(rows) > TABLE_ROWS or truncated
    rows = rows[:TABLE_ROWS]
    width = max([len(header), *(len(r) for r in rows)])
    names = [*header, *(f"column {i + 1}" for i in range(len(header), width))]
    padded = [[*r, *([""] * (width - len(r)))] for r in rows]
    types = [_guess_type([r[i] for r in padded]) for i in range(width)]
    return {
        "kind": "table",
        "format": "TSV" if delimiter == "\t" else "CSV",
        "columns": [{"name": n, "type": t} for n, t in zip(names, types, strict=True)],
        "rows": [[_cell(v) for v in r] for r in padded],
        "total_rows": None if more else len(rows),
        "more": more,
        "types_note": "types guessed from the rows shown",
    }


def _parquet(source: PreviewSource) -> dict[str, Any]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        return _none(
            "Parquet previews need pyarrow, which is not installed: "
            "pip install 'headrace[datasets]'."
        )
    try:
        with source.open() as fh:
            parquet = pq.ParquetFile(fh)
            schema = parquet.schema_arrow
            total = parquet.metadata.num_rows
            batch = next(parquet.iter_batches(batch_size=TABLE_ROWS), None)
            records = batch.to_pylist() if batch is not None else []
    except Exception as exc:  # pyarrow's ArrowInvalid & co.: a file that is not Parquet
        return _none(f"Not a readable Parquet file ({str(exc).splitlines()[0][:200]}).")
    names = list(schema.names)
    return {
        "kind": "table",
        "format": "Parquet",
        "columns": [{"name": f.name, "type": str(f.type)} for f in schema],
        "rows": [[_parquet_cell(r.get(n)) for n in names] for r in records[:TABLE_ROWS]],
        "total_rows": total,
        "more": total > len(records),
        "types_note": None,
    }


def _drop_styles(tokens: list[Any]) -> None:
    """Drop `style` attributes (table column alignment) from markdown-it tokens."""
    stack = list(tokens)
    while stack:
        token = stack.pop()
        if token.attrs and "style" in token.attrs:
            del token.attrs["style"]
        stack.extend(token.children or ())


def render_markdown(text: str) -> str:
    """Markdown as safe HTML: raw HTML escaped, dangerous link schemes refused, no styles."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])
    tokens = md.parse(text)
    _drop_styles(tokens)
    html: str = md.renderer.render(tokens, md.options, {})
    return html


def preview_page(request: Request, source: PreviewSource, crumbs: list[dict[str, str]]) -> Response:
    """The preview page of `source` (or its JSON, for a client that asks for JSON);
    `crumbs`: the links above it (the last one is the page that lists the file)."""
    data = {
        "file": {
            "name": posixpath.basename(source.name),
            "path": source.name,
            "size": source.size,
            "download_url": source.download_url,
        },
        "crumbs": crumbs,
        "preview": preview(source),
        "limits": {"text_bytes": TEXT_BYTES, "table_rows": TABLE_ROWS},
    }
    return render(request, "preview.html", title=f"Preview {source.name}", data=data)
