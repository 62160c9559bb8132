"""The run journal: how a step script hands metrics and tags to headrace.

`Run.get_context()` inside a step appends one JSON object per line to
`artifacts/runs/<step run id>/.headrace/journal.jsonl`; the agent reads new complete lines
while the step runs and when it ends, and records them in the metadata store. Appending to a
file costs the script microseconds and needs no database driver, so `import`ing the in-script
API stays cheap. Only the standard library is used here.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["JOURNAL_NAME", "JournalEntry", "read_journal"]

JOURNAL_NAME = ".headrace/journal.jsonl"


@dataclass(frozen=True)
class JournalEntry:
    """One line: `target` is 'self' or 'parent'; `kind` is a metric kind, 'tag' or 'file'."""

    target: str
    kind: str
    name: str
    value: Any
    description: str | None = None
    step: int | None = None


def read_journal(path: Path, offset: int) -> tuple[list[JournalEntry], int]:
    """Entries from byte `offset` on, and the offset after the last complete line.

    The step writes this file: a link in its place is not followed and anything but a
    regular file (a fifo would block the agent) reads as empty."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except (FileNotFoundError, OSError):
        return [], offset
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return [], offset
        fh.seek(offset)
        data = fh.read()
    end = data.rfind(b"\n")
    if end < 0:
        return [], offset
    entries: list[JournalEntry] = []
    for line in data[: end + 1].splitlines():
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            entries.append(
                JournalEntry(
                    target=str(raw.get("target", "self")),
                    kind=str(raw["kind"]),
                    name=str(raw["name"]),
                    value=raw.get("value"),
                    description=raw.get("description"),
                    step=raw.get("step"),
                )
            )
        except (ValueError, KeyError, TypeError):
            # A line the script half-wrote before being killed; skip it, keep the rest.
            continue
    return entries, offset + end + 1
