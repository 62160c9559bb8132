"""A Python step's script compiled by the agent, handed to the step as a memory file.

A script run in-process (engine/steplog.py) would be compiled by the step's own Python with
`compile()`, whose first call in a process builds the types of Python's syntax tree: about
0.85 ms, longer than the rest of a no-op step's own work. The agent has them built already:
`compiled_script` compiles the script (byte code cached by source, so a chain of the same
script compiles it once) and writes it, marshalled behind the interpreter's magic number,
to an anonymous memory file (memfd) the step inherits. The step runs that code when the
magic is its own and the code names the script it was asked to run, else compiles the
script itself: nothing a user sees differs (`__file__`, tracebacks, `co_filename`).

Only for the agent's own interpreter (the same binary: marshal's format is that of one
Python version) without `PYTHONOPTIMIZE` in the step's environment (its Python would drop
asserts; this compiles as `python script.py` does, at level 0). A script that does not
compile is left to the step, which reports the SyntaxError as Python would.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import marshal
import os
import sys
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import CodeType

__all__ = ["close_quietly", "compiled_script"]

_CACHE_SIZE = 64
_cache: OrderedDict[bytes, CodeType] = OrderedDict()  # source digest -> code, placeholder file
_PLACEHOLDER = "<headrace script>"
_OWN_PYTHON = os.path.realpath(sys.executable)


def compiled_script(argv: Sequence[str], cwd: Path, env: Mapping[str, str]) -> int | None:
    """A memfd holding the script of `python script args` (`argv`, run in `cwd` with `env`)
    compiled (magic number, then marshal), positioned at its start, or None where the step
    compiles it itself."""
    if len(argv) < 2 or argv[1] == "-m":
        return None
    if env.get("PYTHONOPTIMIZE") or os.path.realpath(argv[0]) != _OWN_PYTHON:
        return None
    # As the step names it: its cwd as the kernel has it (no links), joined and normalized.
    path = os.path.normpath(os.path.join(os.path.realpath(cwd), argv[1]))
    try:
        with open(path, "rb") as source_file:
            source = source_file.read()
    except OSError:
        return None  # the step says it cannot open it, as Python would
    code = _code(source)
    if code is None:
        return None
    data = importlib.util.MAGIC_NUMBER + marshal.dumps(_renamed(code, path))
    try:
        fd = os.memfd_create("headrace-script", os.MFD_CLOEXEC)
    except (AttributeError, OSError):
        return None
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.lseek(fd, 0, os.SEEK_SET)
    except OSError:
        os.close(fd)
        return None
    return fd


def _code(source: bytes) -> CodeType | None:
    key = hashlib.blake2b(source, digest_size=20).digest()
    code = _cache.get(key)
    if code is not None:
        _cache.move_to_end(key)
        return code
    try:
        code = compile(source, _PLACEHOLDER, "exec", dont_inherit=True, optimize=0)
    except (SyntaxError, ValueError):
        return None  # the step's own compile reports it
    _cache[key] = code
    while len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return code


def _renamed(code: CodeType, filename: str) -> CodeType:
    """`code` and the code objects in it, named as compiled from `filename`."""
    consts = tuple(
        _renamed(const, filename) if isinstance(const, CodeType) else const
        for const in code.co_consts
    )
    return code.replace(co_filename=filename, co_consts=consts)


def close_quietly(fd: int | None) -> None:
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)
