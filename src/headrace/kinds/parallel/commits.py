"""The commit journal of a ParallelRunStep: each mini-batch's rows, committed exactly once.

One file, appended by the coordinator only: a first line naming the cut of the inputs
(`headrace-parallel 1 <plan signature>`), then one record per committed mini-batch,
`<index> <bytes> <items> <rows>\\n` and its rows. The records of the mini-batches whose
results the coordinator read in one round are written together, with one `write`, before it
reports them as done; a kill before that loses them from the journal, and they are run again.
A timed-out or killed attempt's rows never get here. At the end the records are joined in
input order into the output file (under a temporary name, then renamed).

The journal lives in the step run's own folder (`HEADRACE_RUN_DIR/.headrace/`), which stays
from one attempt of the step run to the next, so a retried attempt (the step's process
killed, its agent gone, `max_retries`) reads what the earlier attempts committed and runs
only the other mini-batches: nothing is scored twice and no row is written twice. It is only
reused for the same cut of the same inputs (the signature), a record cut short by a kill is
dropped, and a batch committed twice (cannot happen, but) keeps one copy. Where the run's
folder is not writable (a confined step under `headrace server`) the journal is kept in the
working folder instead, and a retry starts over.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CommitJournal", "journal_path"]

_MAGIC = b"headrace-parallel 1 "


def journal_path() -> Path:
    """Where this attempt keeps its journal (see the module docstring)."""
    run_dir = os.environ.get("HEADRACE_RUN_DIR")
    if run_dir:
        folder = Path(run_dir) / ".headrace"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if os.access(folder, os.W_OK):
                return folder / "parallel-committed"
        except OSError:
            pass
    folder = Path(".parallel")
    folder.mkdir(exist_ok=True)
    return folder / "committed"


class CommitJournal:
    def __init__(self, path: Path, signature: str) -> None:
        self.path = path
        # index -> (rows, items) of every committed mini-batch, earlier attempts' included.
        self.committed: dict[int, tuple[int, int]] = {}
        self.resumed = 0  # how many came from earlier attempts
        self.pending: list[bytes] = []  # records not written yet (see `flush`)
        # index -> (offset, bytes) of its rows in the journal (the first record of an index)
        self.where: dict[int, tuple[int, int]] = {}
        header = _MAGIC + signature.encode() + b"\n"
        end = self._read(header)
        flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC
        self.fd = os.open(path, flags, 0o600)
        if end is None:
            os.ftruncate(self.fd, 0)
            os.write(self.fd, header)
            end = len(header)
        else:
            os.ftruncate(self.fd, end)  # a record a kill cut short
            self.resumed = len(self.committed)
        self.end = os.lseek(self.fd, 0, os.SEEK_END)  # where the next record goes (`end`)

    def _read(self, header: bytes) -> int | None:
        """Load the committed records; the offset after the last whole one, or None when
        there is no journal for this plan."""
        try:
            fh = open(self.path, "rb")
        except FileNotFoundError:
            return None
        with fh:
            if fh.readline() != header:
                return None
            size = os.fstat(fh.fileno()).st_size
            end = fh.tell()
            while line := fh.readline():
                try:
                    index, length, items, rows = (int(part) for part in line.split())
                except ValueError:
                    break
                if fh.tell() + length > size:
                    break
                self.where.setdefault(index, (fh.tell(), length))
                fh.seek(length, os.SEEK_CUR)
                self.committed.setdefault(index, (rows, items))
                end = fh.tell()
        return end

    def commit(self, index: int, rows: list[str], items: int) -> None:
        """Commit a mini-batch's rows: written with the others committed at the same
        moment (`flush`: the coordinator's loop flushes after each round of results)."""
        data = "".join(row + "\n" for row in rows).encode()
        head = f"{index} {len(data)} {items} {len(rows)}\n".encode()
        self.pending.append(head + data)
        self.committed[index] = (len(rows), items)
        self.where.setdefault(index, (self.end + len(head), len(data)))
        self.end += len(head) + len(data)

    def flush(self) -> None:
        """Write the records committed since the last flush, with one `write`."""
        if not self.pending:
            return
        view = memoryview(b"".join(self.pending))
        self.pending.clear()
        while view:
            view = view[os.write(self.fd, view) :]

    def assemble(self, target: Path) -> None:
        """All committed rows, in mini-batch order, into `target`."""
        self.close()
        temporary = target.with_name(f".{target.name}.tmp")
        where = self.where
        with open(self.path, "rb") as journal, open(temporary, "wb") as out:
            for index in sorted(where):
                offset, size = where[index]
                journal.seek(offset)
                out.write(journal.read(size))
        os.replace(temporary, target)

    def close(self) -> None:
        if self.fd >= 0:
            self.flush()
            os.close(self.fd)
            self.fd = -1

    def remove(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)
