"""The step's own start: one chronological log of what it prints (`user_logs/std_log.txt`).

A local step starts as `python -c "import steplog ..." ...` (engine/executors/local.py:
imported from this folder, so its byte code is cached), and before any user
code runs, this makes a pipe for its stdout and one for its stderr, and forks a logger (a
copy of this small process: about a millisecond) that reads them and writes three files:

- `user_logs/stdout.txt` and `user_logs/stderr.txt`, byte for byte what the step wrote
  (the step's fd 1 and 2 as the agent opened them, kept by the logger);
- `user_logs/std_log.txt`: every line with its time (UTC, ISO 8601, milliseconds) and its
  stream, stdout and stderr interleaved in the order the logger received them.

What the Python process itself prints (`print`, `sys.stderr`, logging, the final traceback)
goes through one channel, frames tagged with their stream (`sys.stdout`/`sys.stderr` are
replaced, still answering `fileno()` 1 and 2), so its order is exact however fast stdout
and stderr alternate. Writes to fd 1 and 2 themselves (subprocesses, C code) go through the
pipes and are ordered by arrival.

The logger is not the agent's (a local step outlives its agent) and not in the step's
process group: it is in a group of its own (set by both sides of the fork, so before
either goes on), so a stop of the group (timeout, cancel)
leaves it to read what is still in the pipes; it ends when every writer has closed them
(the step and whatever it started). The agent locks (`flock`) the combined log's open
file before it starts the step; the lock lasts as long as a process holds that open file,
the logger last (the step's process lets go of it before the script runs): the agent takes
the lock again, with a bounded wait, before it reads the logs of an ended attempt
(`wait_for_logger`).

Two ways to start (`MODE`):

    python -c "...steplog.main(sys.argv[1:])" run LOG_FD WORKDIR SNAPSHOT -- script.py args
    python -S -c "...steplog.main(sys.argv[1:])" exec LOG_FD - - -- program args

`run` (a Python step in the submitter's Python) then runs the script in this process, as
`python script.py` would (sys.argv, sys.path[0], `__main__`); a traceback the script ends
with names its files under SNAPSHOT (the snapshot's folder under the workspace, which the
agent makes when the step fails) instead of WORKDIR (the attempt's working folder, deleted
after it). `exec` (a CommandStep, a step of a kind, a step in an environment) replaces
this process with the program. This file imports nothing from headrace: it runs in the
step's interpreter, as a top-level module.
"""

# No `from __future__ import annotations` (its import is paid at every step's start): the
# names only type checkers know are quoted.
import os
import sys
import time

TYPE_CHECKING = False  # typing's own flag would cost importing typing at every start
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType
    from typing import Any, TextIO

__all__ = ["exec_file", "format_prefix", "main"]

FRAME_HEADER = 5  # stream (1 byte) + length (4 bytes); a frame fits in PIPE_BUF
FRAME_MAX = 4096 - FRAME_HEADER
STREAM_NAMES = {1: b"stdout", 2: b"stderr"}
IDLE_FLUSH_SECONDS = 0.5  # a line without its newline yet is written after this long


def format_prefix(when: float) -> bytes:
    """`2026-12-08T00:11:30.123Z`: the time at the head of each line of the combined log."""
    seconds = int(when)
    return b"%s.%03dZ" % (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)).encode(),
        int((when - seconds) * 1000),
    )


class _Lines:
    """The combined log: complete lines, each stamped with its time and stream."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.partial: dict[int, bytes] = {}

    def add(self, stream: int, data: bytes) -> None:
        other = 3 - stream
        if self.partial.get(other):
            self.flush_partial(other)  # the other stream goes on: keep the order
        data = self.partial.pop(stream, b"") + data
        lines = data.split(b"\n")
        rest = lines.pop()
        if rest:
            self.partial[stream] = rest
        if lines:
            self._write(stream, lines)

    def flush_partial(self, stream: int | None = None) -> None:
        for key in [stream] if stream is not None else [1, 2]:
            rest = self.partial.pop(key, b"")
            if rest:
                self._write(key, [rest])

    def _write(self, stream: int, lines: list[bytes]) -> None:
        head = format_prefix(time.time()) + b" " + STREAM_NAMES[stream] + b" "
        _write_all(self.fd, b"".join(head + line + b"\n" for line in lines))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except InterruptedError:
            continue
        except OSError:
            return  # a full disk: the step goes on, its log is short
        view = view[written:]


def _logger(channel: int, pipes: dict[int, int], log_fd: int) -> None:
    """Read the step's channel and pipes until every writer is gone; write the three logs."""
    import _signal  # type: ignore[import-not-found]  # `signal` imports enum: milliseconds
    import select

    for sig in (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP):
        _signal.signal(sig, _signal.SIG_IGN)  # a stop of the step is no reason to stop reading
    _leave_group(0)
    lines = _Lines(log_fd)
    poller = select.poll()
    sources = {fd: stream for stream, fd in pipes.items()}
    if channel >= 0:
        sources[channel] = 0
    for fd in sources:
        poller.register(fd, select.POLLIN)
    framed = b""
    while sources:
        ready = poller.poll(IDLE_FLUSH_SECONDS * 1000 if lines.partial else None)
        if not ready:
            lines.flush_partial()
            continue
        # The pipes first: when both have news, the pipes' is most likely older (a child
        # prints and ends, then the script, its wait over, prints at once; the other way
        # round, a child takes a millisecond or more to start printing).
        for fd, _ in sorted(ready, key=lambda item: item[0] == channel):
            try:
                data = os.read(fd, 65536)
            except InterruptedError:
                continue
            if not data:
                poller.unregister(fd)
                del sources[fd]
                continue
            stream = sources[fd]
            if stream:
                _write_all(stream, data)
                lines.add(stream, data)
                continue
            framed += data
            while len(framed) >= FRAME_HEADER:
                size = int.from_bytes(framed[1:FRAME_HEADER], "little")
                if len(framed) < FRAME_HEADER + size:
                    break
                stream, payload = framed[0], framed[FRAME_HEADER : FRAME_HEADER + size]
                framed = framed[FRAME_HEADER + size :]
                if stream in (1, 2):
                    _write_all(stream, payload)
                    lines.add(stream, payload)
    lines.flush_partial()


class _Framed:
    """The raw layer of the script's `sys.stdout` / `sys.stderr`: each write is one or more
    frames on the channel (a frame is written whole: a pipe write of at most PIPE_BUF
    bytes is atomic, so threads printing at once never mix their frames)."""

    def __init__(self, channel: int, stream: int) -> None:
        self.channel = channel
        self.stream = stream
        self.closed = False

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        tag = bytes([self.stream])
        for start in range(0, len(view), FRAME_MAX):
            chunk = view[start : start + FRAME_MAX]
            _write_all(self.channel, tag + len(chunk).to_bytes(4, "little") + chunk)
        return len(view)

    def fileno(self) -> int:
        return self.stream

    def readable(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def isatty(self) -> bool:
        return False

    def flush(self) -> None:
        return None

    def close(self) -> None:
        self.closed = True


def _framed_stream(channel: int, stream: int, like: "TextIO") -> "TextIO":
    import io

    raw: Any = _Framed(channel, stream)
    return io.TextIOWrapper(
        raw,
        encoding=getattr(like, "encoding", None) or "utf-8",
        errors=getattr(like, "errors", None) or "strict",
        line_buffering=True,
        write_through=True,
    )


def _leave_group(pid: int) -> None:
    """Put the logger (`pid`, 0 for itself) in a process group of its own, out of reach of
    the stop the agent sends the step's group."""
    try:
        os.setpgid(pid, 0)
    except OSError:
        pass  # done already by the other side (or the logger is gone)


def _start_logger(log_fd: int, framed: bool) -> None:
    """Fork the logger and leave this process writing into it (fd 1, 2 and, when `framed`,
    sys.stdout and sys.stderr). The combined log's open file is locked already (the agent
    locked it before the start): the lock lasts while any process holds it, the logger last.

    The objects made so far are frozen out of the garbage collector's reach first, and the
    logger collects nothing: a collection touches every object, and each page either side
    of a fork writes is copied (milliseconds for a whole interpreter)."""
    import gc

    gc.freeze()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    chan_r, chan_w = os.pipe() if framed else (-1, -1)
    pid = os.fork()
    if pid == 0:  # the logger
        gc.disable()
        try:
            for fd in (out_w, err_w, chan_w):
                if fd >= 0:
                    os.close(fd)
            _logger(chan_r, {1: out_r, 2: err_r}, log_fd)
        finally:
            os._exit(0)
    _leave_group(pid)  # here too: whichever runs first, the group kill cannot reach it
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    for fd in (out_r, err_r, out_w, err_w, chan_r, log_fd):
        if fd >= 0:
            os.close(fd)
    if framed:
        os.set_inheritable(chan_w, False)
        sys.stdout.flush()
        sys.stderr.flush()
        sys.stdout = _framed_stream(chan_w, 1, sys.stdout)
        sys.stderr = _framed_stream(chan_w, 2, sys.stderr)


def _run_script(args: list[str], workdir: str, snapshot: str) -> int:
    """Run `script args` (or `-m module args`) as `python` would, in this process."""
    target: Callable[[], object]
    if args[0] == "-m":
        import runpy

        sys.path[0] = os.getcwd()
        sys.argv[:] = [args[1], *args[2:]]
        target = lambda: runpy.run_module(args[1], run_name="__main__", alter_sys=True)  # noqa: E731
    else:
        path = os.path.abspath(args[0])
        sys.path[0] = os.path.dirname(os.path.realpath(path))
        sys.argv[:] = [args[0], *args[1:]]
        target = lambda: exec_file(path)  # noqa: E731
    if snapshot != "-":
        sys.excepthook = _snapshot_hook(workdir, snapshot)
    try:
        target()
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        exc.__traceback__ = _user_frames(exc.__traceback__)
        sys.excepthook(type(exc), exc, exc.__traceback__)
        return 1
    return 0


def exec_file(path: str, program: str | None = None) -> None:
    """Execute `path` as `__main__`, as `python path` does (`program` names who cannot open
    it). headrace.v1 has its own: importing this from there would load the engine package
    at every launch."""
    try:
        with open(path, "rb") as source_file:
            source = source_file.read()
    except OSError as exc:
        sys.stderr.write(
            f"{program or sys.executable}: can't open file {path!r}: "
            f"[Errno {exc.errno}] {exc.strerror}\n"
        )
        raise SystemExit(2) from None
    module = type(sys)("__main__")
    module.__file__ = path
    module.__builtins__ = __builtins__  # type: ignore[attr-defined]
    sys.modules["__main__"] = module
    code = compile(source, path, "exec", dont_inherit=True)
    exec(code, module.__dict__)  # noqa: S102 (running the user's script is the point)


def _user_frames(tb: "TracebackType | None") -> "TracebackType | None":
    """The traceback without this file's (and runpy's) frames at its head."""
    here = os.path.abspath(__file__)
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename not in ("<frozen runpy>", "<string>") and not filename.endswith("runpy.py"):
            if os.path.abspath(filename) != here:
                break
        tb = tb.tb_next
    return tb


def _snapshot_hook(
    workdir: str, snapshot: str
) -> "Callable[[type[BaseException], BaseException, TracebackType | None], None]":
    """`sys.excepthook` for the script (unless it sets its own): Python's own display of
    the error, its frames in the working folder renamed to the same files in the
    snapshot's folder, which outlives the attempt (the file names in the display are
    rewritten; the code ran from the working folder, the script's cwd)."""
    folders = {workdir, os.path.realpath(workdir)}

    def hook(kind: type[BaseException], exc: BaseException, tb: "TracebackType | None") -> None:
        import traceback

        text = "".join(traceback.format_exception(kind, exc, tb))
        for folder in folders:
            text = text.replace(f'File "{folder}{os.sep}', f'File "{snapshot}{os.sep}')
        sys.stderr.write(text)
        sys.stderr.flush()

    return hook


def main(argv: list[str]) -> int:
    mode, log_fd, workdir, snapshot = argv[:4]
    args = argv[5:]  # after "--"
    _start_logger(int(log_fd), framed=mode == "run")
    if mode == "exec":
        import _signal

        for name in ("SIGPIPE", "SIGXFSZ"):  # as subprocess does: Python ignores them
            if hasattr(_signal, name):
                _signal.signal(getattr(_signal, name), _signal.SIG_DFL)
        try:
            os.execvp(args[0], args)  # noqa: S606 (the step's own program, as given)
        except OSError as exc:
            os.write(2, f"cannot start {args[0]}: {exc.strerror}\n".encode())
            return 127
    return _run_script(args, workdir, snapshot)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
