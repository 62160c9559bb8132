"""Removing step working folders off the agent's critical path.

Deleting a folder costs milliseconds of filesystem metadata work on some disks. The agent
queues finished attempts' folders here and removes them when it would otherwise wait for a
process to end (`work`), and before a run is recorded as ended (`drain`), so the removal
never delays starting the next step. (A thread was tried: it contends for the GIL with the
agent's loop and adds latency instead.)
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

__all__ = ["DeferredRemover"]


class DeferredRemover:
    def __init__(self) -> None:
        self._pending: list[Path] = []

    def remove(self, path: Path) -> None:
        """Delete `path` (a folder or file) later; a missing path is fine."""
        self._pending.append(path)

    def work(self, budget_seconds: float) -> None:
        """Remove queued paths for at most about `budget_seconds`."""
        deadline = time.monotonic() + budget_seconds
        while self._pending and time.monotonic() < deadline:
            self._remove(self._pending.pop(0))

    def drain(self) -> None:
        """Remove everything queued so far."""
        while self._pending:
            self._remove(self._pending.pop(0))

    @staticmethod
    def _remove(path: Path) -> None:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
