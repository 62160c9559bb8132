"""Reading what a local step prints and writing its three logs: shared, or the step's own.

A step's output comes on up to three pipes: its fd 1 and fd 2 and, for a Python script run
in-process (engine/steplog.py), a channel of frames each tagged with its stream (what
`print` and `sys.stderr` write, in their exact order). `Stream` reads them and writes
`user_logs/stdout.txt` and `stderr.txt` byte for byte, and `user_logs/std_log.txt`: every
line with its time (UTC, ISO 8601, milliseconds) and its stream, in the order received.
A stream is done when every writer has closed its pipes (the step and whatever it started);
its log files are closed then, and with the combined log's open file goes the lock the
agent took on it before the start (`executors.local.wait_for_logger` waits for that).

Two readers run streams, with the same code:

- the log server (`serve`): one process per user and install of headrace, started by the
  first agent that needs it (executors/logserver.py) in a session of its own, so it
  outlives agents as steps do. An agent hands it each local step's pipes and open log
  files over a Unix socket (SCM_RIGHTS) just before it starts the step: the step then
  starts no logger of its own (forking one costs a step several milliseconds, mostly the
  copy-on-write of two Python processes' pages). It answers only its own user
  (SO_PEERCRED), and exits when no agent has been connected and no step has written for
  `IDLE_SECONDS`. If it dies (killed), the steps it was reading get EPIPE on their
  next write: the agents then start later steps with their own loggers again.
- the step's own logger (`read_alone`): forked by the step's process before the script
  when no server took its output (none could be had, or `HEADRACE_STEP_LOG_SERVER=0`).

This file imports nothing from headrace but steplog.py, its neighbour: both readers run it
as a top-level module from this folder (the agent only needs its path).
"""

# No `from __future__ import annotations`: a step's own logger imports this file, and
# every millisecond of it is on the step's path.
import os
import sys
import time

from steplog import FRAME_HEADER, write_all  # type: ignore[import-not-found]  # beside it

TYPE_CHECKING = False  # typing's own flag would cost importing typing
if TYPE_CHECKING:
    import socket

__all__ = ["IDLE_SECONDS", "Stream", "read_alone", "serve"]

STREAM_NAMES = {1: b"stdout", 2: b"stderr"}
IDLE_FLUSH_SECONDS = 0.5  # a line without its newline yet is written after this long
# A line without a newline is held at most this long in memory (one server holds every
# step's): longer, it goes to the combined log in pieces of this size.
LINE_MAX = 64 * 1024
IDLE_SECONDS = 10.0  # the server's life with no agent connected and nothing to read
HAND_OVER = b"step-output 1"  # an agent's message with a step's descriptors (logserver.py)
MAX_FDS = 6


def format_prefix(when: float) -> bytes:
    """`2026-12-08T00:11:30.123Z`: the time at the head of each line of the combined log."""
    seconds = int(when)
    return b"%s.%03dZ" % (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)).encode(),
        int((when - seconds) * 1000),
    )


class Stream:
    """One step's output: the pipes it reads (`pipes`: stream 1 or 2 -> read end; `channel`:
    the frames' read end, or -1) and the files it writes (`files`: stream -> the step's
    stdout.txt / stderr.txt; `combined`: std_log.txt). `owned`: the descriptors to close when
    it is done (the server's copies; the step's own logger leaves fd 1 and 2 to its exit)."""

    def __init__(
        self,
        pipes: "dict[int, int]",
        channel: int,
        files: "dict[int, int]",
        combined: int,
        owned: "tuple[int, ...]",
    ) -> None:
        self.sources = {fd: stream for stream, fd in pipes.items()}
        self.channel = channel
        if channel >= 0:
            self.sources[channel] = 0
        self.files = files
        self.combined = combined
        self.owned = owned
        self.partial: dict[int, bytes] = {}
        self.framed = b""
        self.last_read = time.monotonic()

    def read(self, fd: int) -> bool:
        """Read what `fd` has; False when it is at its end (no writer left)."""
        try:
            data = os.read(fd, 65536)
        except InterruptedError:
            return True
        except OSError:
            data = b""
        if not data:
            del self.sources[fd]
            return False
        self.last_read = time.monotonic()
        stream = self.sources[fd]
        if stream:
            self._add(stream, data)
            return True
        framed = self.framed + data
        while len(framed) >= FRAME_HEADER:
            size = int.from_bytes(framed[1:FRAME_HEADER], "little")
            if len(framed) < FRAME_HEADER + size:
                break
            stream, payload = framed[0], framed[FRAME_HEADER : FRAME_HEADER + size]
            framed = framed[FRAME_HEADER + size :]
            if stream in (1, 2):
                self._add(stream, payload)
        self.framed = framed
        return True

    def order(self, ready: "list[int]") -> "list[int]":
        """`ready` (this stream's descriptors with news) in the order to read them: the pipes
        first, as their news is most likely older (a child prints and ends, then the script,
        its wait over, prints at once; the other way round, a child takes a millisecond or
        more to start printing)."""
        return sorted(ready, key=lambda fd: fd == self.channel)

    def _add(self, stream: int, data: bytes) -> None:
        write_all(self.files[stream], data)
        other = 3 - stream
        if self.partial.get(other):
            self.flush_partial(other)  # the other stream goes on: keep the order
        data = self.partial.pop(stream, b"") + data
        lines = data.split(b"\n")
        rest = lines.pop()
        if len(rest) > LINE_MAX:  # no newline for this long: written in pieces
            lines += [rest[i : i + LINE_MAX] for i in range(0, len(rest), LINE_MAX)]
            rest = lines.pop() if len(lines[-1]) < LINE_MAX else b""
        if rest:
            self.partial[stream] = rest
        if lines:
            self._write(stream, lines)

    def flush_partial(self, stream: "int | None" = None) -> None:
        for key in [stream] if stream is not None else [1, 2]:
            rest = self.partial.pop(key, b"")
            if rest:
                self._write(key, [rest])

    def _write(self, stream: int, lines: "list[bytes]") -> None:
        head = format_prefix(time.time()) + b" " + STREAM_NAMES[stream] + b" "
        write_all(self.combined, b"".join(head + line + b"\n" for line in lines))

    def flush_due(self, now: float) -> float:
        """Write a partial line older than IDLE_FLUSH_SECONDS; the seconds until the next
        one is due (None-like `-1.0`: nothing waits)."""
        if not self.partial:
            return -1.0
        due = self.last_read + IDLE_FLUSH_SECONDS - now
        if due <= 0:
            self.flush_partial()
            return -1.0
        return due

    def close(self) -> None:
        """Done: the last partial lines written, every descriptor it owns closed."""
        self.flush_partial()
        for fd in [*self.sources, *self.owned]:
            _close(fd)
        self.sources.clear()


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


class _Reader:
    """A poll loop over any number of streams (and, in the server, its sockets)."""

    def __init__(self) -> None:
        import select  # here: a step that only writes frames (steplog) needs none of it

        self.poller = select.poll()
        self.POLLIN = select.POLLIN
        self.streams: dict[int, Stream] = {}  # source descriptor -> its stream
        self.live: list[Stream] = []

    def add(self, stream: Stream) -> None:
        self.live.append(stream)
        for fd in stream.sources:
            self.streams[fd] = stream
            self.poller.register(fd, self.POLLIN)

    def timeout_ms(self) -> "int | None":
        """Until the next partial line is due (None: wait for news)."""
        now = time.monotonic()
        waits = [due for due in (s.flush_due(now) for s in self.live) if due >= 0]
        return int(min(waits) * 1000) + 1 if waits else None

    def handle(self, ready: "list[tuple[int, int]]") -> "list[int]":
        """Read the streams' descriptors in `ready`; the other descriptors, for the caller."""
        others: list[int] = []
        by_stream: dict[Stream, list[int]] = {}
        for fd, _ in ready:
            stream = self.streams.get(fd)
            if stream is None:
                others.append(fd)
            else:
                by_stream.setdefault(stream, []).append(fd)
        for stream, fds in by_stream.items():
            for fd in stream.order(fds):
                if not stream.read(fd):
                    self.poller.unregister(fd)
                    del self.streams[fd]
                    _close(fd)
            if not stream.sources:
                stream.close()
                self.live.remove(stream)
        return others


def read_alone(pipes: "dict[int, int]", channel: int, combined: int) -> None:
    """The step's own logger: read the step's pipes until every writer is gone, writing to
    this process's fd 1 and 2 (the step's log files) and `combined`."""
    reader = _Reader()
    reader.add(Stream(pipes, channel, {1: 1, 2: 2}, combined, owned=()))
    while reader.live:
        reader.handle(reader.poller.poll(reader.timeout_ms()))


def serve(name: str) -> int:
    """The log server on the abstract Unix socket `name` (SOCK_SEQPACKET): each message
    from an agent of this user is `HAND_OVER` with six descriptors (a step's stdout, stderr
    and channel pipes, then its stdout.txt, stderr.txt and std_log.txt), or five without a
    channel. Exits 0 at once when another server has the address."""
    import socket

    # Nothing its starter left open and inheritable stays open here for the server's life
    # (a pipe some process waits to see closed).
    os.closerange(3, os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 1024)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    try:
        listener.bind("\0" + name)
    except OSError:
        return 0  # another server answers there
    ready_r, ready_w = os.pipe()
    if os.fork():  # the agent that started this waits for this exit: the server listens
        os.close(ready_w)
        os.read(ready_r, 1)
        os._exit(0)
    os.close(ready_r)
    _undumpable()
    listener.listen(64)  # here, so that its credentials on a connection are the server's
    os.close(ready_w)
    reader = _Reader()
    reader.poller.register(listener.fileno(), reader.POLLIN)
    clients: dict[int, socket.socket] = {}
    idle_since = time.monotonic()
    while True:
        timeout = reader.timeout_ms()
        if not clients and not reader.live:
            left = IDLE_SECONDS - (time.monotonic() - idle_since)
            if left <= 0:
                return 0
            wake = int(left * 1000) + 1
            timeout = wake if timeout is None else min(timeout, wake)
        for fd in reader.handle(reader.poller.poll(timeout)):
            if fd == listener.fileno():
                _accept(listener, clients, reader)
            elif fd in clients and not _receive(clients[fd], reader):
                reader.poller.unregister(fd)
                clients.pop(fd).close()
        if clients or reader.live:
            idle_since = time.monotonic()


def _undumpable() -> None:
    """Keep processes of this user (steps confined by Landlock alone) out of this one's
    memory and `/proc/<pid>/fd`: it holds every step's logs (engine/isolation.py does the
    same for the agent)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE, 0
    except (OSError, AttributeError, ImportError):
        pass


def _accept(
    listener: "socket.socket", clients: "dict[int, socket.socket]", reader: _Reader
) -> None:
    import socket
    import struct

    try:
        conn, _ = listener.accept()
    except OSError:
        return
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _, uid, _ = struct.unpack("3i", creds)
    if uid != os.getuid():
        conn.close()  # another user's process: it may not have this one write for it
        return
    clients[conn.fileno()] = conn
    reader.poller.register(conn.fileno(), reader.POLLIN)


def _receive(conn: "socket.socket", reader: _Reader) -> bool:
    """Take one hand-over from `conn`; False when the agent has gone."""
    import socket

    size = MAX_FDS * 4
    try:
        data, ancillary, _, _ = conn.recvmsg(64, socket.CMSG_SPACE(size), socket.MSG_CMSG_CLOEXEC)
    except InterruptedError:
        return True
    except OSError:
        return False
    fds: list[int] = []
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(payload) - len(payload) % 4
            fds += [
                int.from_bytes(payload[i : i + 4], sys.byteorder, signed=True)
                for i in range(0, usable, 4)
            ]
    if not data and not fds:
        return False
    if data != HAND_OVER or len(fds) not in (MAX_FDS - 1, MAX_FDS):
        for fd in fds:
            _close(fd)
        return True
    if len(fds) == MAX_FDS - 1:
        fds.insert(2, -1)
    out, err, channel, out_file, err_file, combined = fds
    files = {1: out_file, 2: err_file}
    owned = (out_file, err_file, combined)
    reader.add(Stream({1: out, 2: err}, channel, files, combined, owned))
    return True
