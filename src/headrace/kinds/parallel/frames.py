"""Messages between a ParallelRunStep's coordinator and its forked workers (pool.py's
`LocalPool`, worker.py's `serve`): pickled objects, each framed by its length (4 bytes), on
plain pipes.

Not `multiprocessing.Connection`: it reads a message with two `read`s and, to know whether
one is waiting, builds a new selector each time. With mini-batches of a few microseconds'
work that was most of the coordinator's time per batch. Here a reader takes whatever the
pipe holds with one `read` and cuts it into messages, and a writer puts several messages in
one `write` (`frame` them, then `write_all`).
"""

from __future__ import annotations

import os
import pickle
import struct
from typing import Any

__all__ = ["Frames", "frame", "write_all"]

_HEADER = struct.Struct("!I")
_CHUNK = 1 << 16


def frame(message: Any) -> bytes:
    """`message` as bytes to write: its length, then its pickle."""
    data = pickle.dumps(message, pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data


def write_all(fd: int, data: bytes) -> None:
    """Write all of `data` (a blocking pipe; OSError when the reader is gone)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _load(buffer: bytearray, start: int, end: int) -> Any:
    # Both ends are this step's own processes (the coordinator and the workers it forked),
    # as with multiprocessing's pipes.
    return pickle.loads(memoryview(buffer)[start:end])  # noqa: S301


class Frames:
    """The messages arriving on one pipe's read end."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = bytearray()
        self.closed = False  # the writer closed its end (EOF)

    def _wanted(self) -> int:
        """How much to ask of one `read`: the rest of a large message at once."""
        if len(self.buffer) >= _HEADER.size:
            length: int = _HEADER.unpack_from(self.buffer)[0]
            return max(_CHUNK, _HEADER.size + length - len(self.buffer))
        return _CHUNK

    def fill(self) -> bool:
        """One `read` into the buffer; False at EOF or when nothing is there (a non-blocking
        pipe)."""
        try:
            data = os.read(self.fd, self._wanted())
        except BlockingIOError:
            return False
        if not data:
            self.closed = True
            return False
        self.buffer += data
        return True

    def take(self) -> list[Any]:
        """The whole messages in the buffer, in order."""
        found: list[Any] = []
        buffer = self.buffer
        start = 0
        while len(buffer) - start >= _HEADER.size:
            (length,) = _HEADER.unpack_from(buffer, start)
            end = start + _HEADER.size + length
            if end > len(buffer):
                break
            found.append(_load(buffer, start + _HEADER.size, end))
            start = end
        if start:
            del buffer[:start]
        return found

    def next(self) -> Any:
        """The next message, waiting for it (a blocking pipe); EOFError when the writer
        closed its end first."""
        while True:
            if len(self.buffer) >= _HEADER.size:
                (length,) = _HEADER.unpack_from(self.buffer)
                end = _HEADER.size + length
                if len(self.buffer) >= end:
                    message = _load(self.buffer, _HEADER.size, end)
                    del self.buffer[:end]
                    return message
            if not self.fill():
                raise EOFError("the coordinator closed the pipe")
