"""The step's own start: its output framed for the combined log, the script run in-process.

A local step's output is read by a logger (engine/logreader.py), which writes
`user_logs/stdout.txt` and `stderr.txt` byte for byte and `user_logs/std_log.txt`, every
line with its time and stream in the order received. Usually the logger is the shared log
server, and the agent hands it the step's pipes before the start; when none could take
them, the step forks a logger of its own here, before any user code runs.

A Python script run by the submitter's Python starts as `python -c "import steplog ..."`
(engine/executors/local.py: imported from this folder, so its byte code is cached): what
the Python process itself prints (`print`, `sys.stderr`, logging, the final traceback)
goes through one channel, frames tagged with their stream (`sys.stdout`/`sys.stderr` are
replaced, still answering `fileno()` 1 and 2), so its order is exact however fast stdout
and stderr alternate. Writes to fd 1 and 2 themselves (subprocesses, C code) go through
their pipes and are ordered by arrival.

Three ways to start (`MODE`):

    python -c "...steplog.main(...)" attached CHANNEL_FD WORKDIR SNAPSHOT CODE_FD -- script args
    python -c "...steplog.main(...)" run LOG_FD WORKDIR SNAPSHOT CODE_FD -- script.py args
    python -S -c "...steplog.main(...)" exec LOG_FD - - -1 -- program args

`attached`: the log server reads the pipes (fd 1 and 2 are pipes already, CHANNEL_FD the
channel's write end); this process frames its output and runs the script. `run` and
`exec` fork the step's own logger first (LOG_FD: the combined log's open file, which the
agent locked before the start; the lock lasts while a process holds that open file, the
logger last, and the agent takes it again, with a bounded wait, before it reads the logs
of an ended attempt: `wait_for_logger`). The own logger is not in the step's process
group but in a group of its own (set by both sides of the fork, so before either goes
on): a stop of the group (timeout, cancel) leaves it to read what is still in the pipes.

`attached` and `run` (a Python step in the submitter's Python) run the script in this
process, as `python script.py` would (sys.argv, sys.path[0], `__main__`); a traceback the
script ends with names its files under SNAPSHOT (the snapshot's folder under the
workspace, which the agent makes when the step fails) instead of WORKDIR (the attempt's
working folder, deleted after it), and CODE_FD holds its code compiled by the agent
(executors/scriptcode.py; -1: none). `exec` (a CommandStep, a step of a kind, a step in an
environment) replaces this process with the program (with the log server, such a step
starts its program directly). This file imports nothing from headrace: it runs in the
step's interpreter, as a top-level module, beside logreader.py.
"""

# No `from __future__ import annotations` (its import is paid at every step's start): the
# names only type checkers know are quoted.
import os
import sys

TYPE_CHECKING = False  # typing's own flag would cost importing typing at every start
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import CodeType, TracebackType
    from typing import Any, TextIO

__all__ = ["FRAME_HEADER", "FRAME_MAX", "exec_file", "main", "write_all"]

FRAME_HEADER = 5  # stream (1 byte) + length (4 bytes); a frame fits in PIPE_BUF
FRAME_MAX = 4096 - FRAME_HEADER


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except InterruptedError:
            continue
        except OSError:
            return  # a full disk: the step goes on, its log is short
        view = view[written:]


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
            write_all(self.channel, tag + len(chunk).to_bytes(4, "little") + chunk)
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
            _read_alone(chan_r, {1: out_r, 2: err_r}, log_fd)
        finally:
            os._exit(0)
    _leave_group(pid)  # here too: whichever runs first, the group kill cannot reach it
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    for fd in (out_r, err_r, out_w, err_w, chan_r, log_fd):
        if fd >= 0:
            os.close(fd)
    if framed:
        _frame_output(chan_w)


def _read_alone(channel: int, pipes: "dict[int, int]", log_fd: int) -> None:
    """The own logger's life: reading until every writer is gone (logreader.read_alone),
    out of reach of a stop of the step."""
    import _signal  # type: ignore[import-not-found]  # `signal` imports enum: milliseconds

    for sig in (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP):
        _signal.signal(sig, _signal.SIG_IGN)  # a stop of the step is no reason to stop reading
    _leave_group(0)
    import logreader  # type: ignore[import-not-found]

    logreader.read_alone(pipes, channel, log_fd)


def _frame_output(channel: int) -> None:
    """`sys.stdout` and `sys.stderr` as frames on `channel` (its write end)."""
    os.set_inheritable(channel, False)
    sys.stdout.flush()
    sys.stderr.flush()
    sys.stdout = _framed_stream(channel, 1, sys.stdout)
    sys.stderr = _framed_stream(channel, 2, sys.stderr)


def _run_script(args: list[str], workdir: str, snapshot: str, code_fd: int) -> int:
    """Run `script args` (or `-m module args`) as `python` would, in this process (the
    script's code compiled already in `code_fd` when it is not -1)."""
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
        target = lambda: exec_file(path, code=_compiled(code_fd, path))  # noqa: E731
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


def exec_file(path: str, program: str | None = None, code: "CodeType | None" = None) -> None:
    """Execute `path` as `__main__`, as `python path` does (`program` names who cannot open
    it; `code`: its code, compiled already). headrace.v1 has its own: importing this from
    there would load the engine package at every launch."""
    if code is None:
        try:
            with open(path, "rb") as source_file:
                source = source_file.read()
        except OSError as exc:
            sys.stderr.write(
                f"{program or sys.executable}: can't open file {path!r}: "
                f"[Errno {exc.errno}] {exc.strerror}\n"
            )
            raise SystemExit(2) from None
        code = compile(source, path, "exec", dont_inherit=True)
    module = type(sys)("__main__")
    module.__file__ = path
    module.__builtins__ = __builtins__  # type: ignore[attr-defined]
    sys.modules["__main__"] = module
    exec(code, module.__dict__)  # noqa: S102 (running the user's script is the point)


def _compiled(code_fd: int, path: str) -> "CodeType | None":
    """The script's code the agent compiled (executors/scriptcode.py), when it is there,
    of this Python's version, and of `path`; else None (this process compiles it)."""
    if code_fd < 0:
        return None
    try:
        size = os.fstat(code_fd).st_size
        data = os.pread(code_fd, size, 0)
        os.close(code_fd)
    except OSError:
        return None
    magic = sys.modules["_frozen_importlib_external"].MAGIC_NUMBER
    if not data.startswith(magic):
        return None
    import marshal

    try:
        # The agent's own marshalling, in a memory file only it and this process hold.
        code = marshal.loads(memoryview(data)[len(magic) :])  # noqa: S302
    except (EOFError, ValueError, TypeError):
        return None
    if not isinstance(code, type(_compiled.__code__)) or code.co_filename != path:
        return None
    return code


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
    mode, fd, workdir, snapshot, code_fd = argv[:5]
    args = argv[6:]  # after "--"
    if mode == "attached":
        _frame_output(int(fd))
        return _run_script(args, workdir, snapshot, int(code_fd))
    _start_logger(int(fd), framed=mode == "run")
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
    return _run_script(args, workdir, snapshot, int(code_fd))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
