"""Progress of datastore uploads and downloads, in bytes, and the lines summing them up.

A rich progress bar (on stderr) is drawn only when the caller asked for progress and stderr is
a terminal or the code runs in a notebook; otherwise the SDK prints one plain summary line.
Object stores report bytes through fsspec callbacks (`fsspec_callback`); local copies
advance by each file's size once it is written.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = [
    "Advance",
    "bar_wanted",
    "byte_progress",
    "fsspec_callback",
    "human_bytes",
    "skip_summary",
]

Advance = Callable[[int], None]
"""Called with a number of bytes just moved."""


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None or "ipykernel" not in sys.modules:
        return False
    get = getattr(shell, "get_ipython", None)
    return get is not None and get() is not None and hasattr(get(), "kernel")


def bar_wanted(show_progress: bool) -> bool:
    """Whether to draw a bar: progress asked for, and someone watches (terminal or notebook)."""
    if not show_progress:
        return False
    try:
        tty = sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        tty = False
    return tty or _in_notebook()


def _ignore(_nbytes: int) -> None:
    return None


@contextmanager
def byte_progress(show: bool, verb: str, total_bytes: int) -> Iterator[Advance]:
    """A bar of `total_bytes` labelled `verb` while the block runs (when `show`); yields the
    function to call with each number of bytes moved."""
    if not show or total_bytes <= 0:
        yield _ignore
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    progress = Progress(
        TextColumn(verb),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    )
    with progress:
        task = progress.add_task(verb, total=total_bytes)

        def advance(nbytes: int) -> None:
            if nbytes:
                progress.update(task, advance=nbytes)

        yield advance
        progress.update(task, completed=total_bytes)


def fsspec_callback(advance: Advance) -> Any:
    """The callback to give fsspec's batched `put`/`get` so `advance` hears every byte: the
    batch counts files (ignored here), each file's child callback counts its bytes."""
    from fsspec.callbacks import Callback  # fsspec loads only when an object store is used

    class FileBytes(Callback):  # type: ignore[misc]  # fsspec is untyped
        def __init__(self) -> None:
            super().__init__()
            self.reported = 0

        def call(self, hook_name: str | None = None, **kwargs: Any) -> None:
            value = int(self.value or 0)
            if value > self.reported:
                advance(value - self.reported)
                self.reported = value

    class ManyFiles(Callback):  # type: ignore[misc]
        def branched(self, path_1: str, path_2: str, **kwargs: Any) -> Any:
            return FileBytes()

        def call(self, hook_name: str | None = None, **kwargs: Any) -> None:
            return None

    return ManyFiles()


def human_bytes(count: int) -> str:
    """`count` bytes for people: 512 bytes, 1.2 kB, 3.4 MB (powers of 1000, as rich shows)."""
    if count < 1000:
        return f"{count} byte" + ("" if count == 1 else "s")
    size = float(count)
    for unit in ("kB", "MB", "GB", "TB"):
        size /= 1000
        if size < 1000:
            return f"{size:.1f} {unit}"
    return f"{size:.1f} PB"


def skip_summary(skipped: int, where: str, fix: str = "overwrite=True") -> str:
    """The one line for files left as they were because they already existed: `where` is
    "on datastore 'name'" or "in /local/folder"; `fix` the option that replaces them."""
    noun, them = ("file", "it") if skipped == 1 else ("files", "them")
    return f"{skipped:,} {noun} already there {where}, skipped: pass {fix} to replace {them}"
