"""Landlock, Linux's unprivileged access control, through its three system calls (ctypes).

What headrace uses: filesystem rules (`Ruleset.allow`), and from ABI 6 the scoping of
signals and abstract unix sockets to the sandbox. A ruleset is built in any thread; only
`restrict_thread` confines, and only the calling thread and what it starts afterwards (the
kernel keeps Landlock domains per thread, and a child inherits its parent thread's): see
`engine.isolation`, which restricts a short-lived thread and starts a step from it.

Landlock is an allowlist: once a right is handled by a ruleset, only the paths given that
right keep it (beneath them: a rule on a folder covers everything under it). Path lookup
itself (walking through a folder) and `stat` are never restricted.

The syscall numbers are the same on every architecture (444-446); nothing else here depends
on the machine. Kernels before 5.13, or with Landlock disabled, report ABI 0 and nothing here
may be used on them.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
from functools import cache

__all__ = [
    "ACCESS_ALL",
    "ACCESS_READ",
    "FILE_ACCESS",
    "LandlockError",
    "Ruleset",
    "abi_version",
]

_CREATE_RULESET, _ADD_RULE, _RESTRICT_SELF = 444, 445, 446
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38

# Filesystem access rights, by the ABI that introduced them.
EXECUTE = 1 << 0
WRITE_FILE = 1 << 1
READ_FILE = 1 << 2
READ_DIR = 1 << 3
REMOVE_DIR = 1 << 4
REMOVE_FILE = 1 << 5
MAKE_CHAR = 1 << 6
MAKE_DIR = 1 << 7
MAKE_REG = 1 << 8
MAKE_SOCK = 1 << 9
MAKE_FIFO = 1 << 10
MAKE_BLOCK = 1 << 11
MAKE_SYM = 1 << 12
REFER = 1 << 13  # ABI 2: linking or renaming into another folder
TRUNCATE = 1 << 14  # ABI 3
IOCTL_DEV = 1 << 15  # ABI 5
_BY_ABI = {1: (1 << 13) - 1, 2: REFER, 3: TRUNCATE, 5: IOCTL_DEV}

SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
SCOPE_SIGNAL = 1 << 1  # ABI 6

ACCESS_READ = EXECUTE | READ_FILE | READ_DIR
# The rights that make sense on a file (the kernel refuses the others on a file rule).
FILE_ACCESS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV
ACCESS_ALL = (1 << 16) - 1


class LandlockError(OSError):
    """A Landlock system call failed (the kernel's errno and what was being done)."""


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1  # the kernel's struct is packed
    _fields_ = [
        ("allowed_access", ctypes.c_uint64),
        ("parent_fd", ctypes.c_int32),
    ]


@cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _syscall(number: int, *args: object) -> int:
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    return int(libc.syscall(ctypes.c_long(number), *args))


def _failed(what: str) -> LandlockError:
    code = ctypes.get_errno()
    return LandlockError(code, f"{what}: {os.strerror(code)}")


@cache
def abi_version() -> int:
    """The Landlock ABI this kernel offers; 0 when it has none (or it is disabled)."""
    if not os.uname().sysname == "Linux":
        return 0
    try:
        found = _syscall(_CREATE_RULESET, None, ctypes.c_size_t(0), _CREATE_RULESET_VERSION)
    except (OSError, AttributeError):
        return 0
    return max(0, found)


def handled_access(abi: int) -> int:
    """Every filesystem right the given ABI knows."""
    return sum(bits for version, bits in _BY_ABI.items() if version <= abi)


class Ruleset:
    """A Landlock ruleset: the rights it handles, and where each is allowed.

    `scoped` (ABI 6 and later) keeps signals and abstract unix sockets inside the sandbox.
    """

    def __init__(self, abi: int | None = None, *, scoped: bool = True) -> None:
        self.abi = abi_version() if abi is None else abi
        if self.abi < 1:
            raise LandlockError(errno.ENOSYS, "this kernel has no Landlock")
        self.handled = handled_access(self.abi)
        scopes = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if scoped and self.abi >= 6 else 0
        # The struct grew with the ABI; an older kernel accepts the longer one when the
        # fields it does not know are zero.
        attr = _RulesetAttr(self.handled, 0, scopes)
        size = ctypes.c_size_t(ctypes.sizeof(_RulesetAttr))
        fd = _syscall(_CREATE_RULESET, ctypes.byref(attr), size, 0)
        if fd < 0:
            raise _failed("landlock_create_ruleset")
        self.fd: int | None = fd

    def allow_fd(self, fd: int, access: int, *, is_dir: bool = True) -> None:
        """Allow `access` beneath the file or folder open as `fd` (O_PATH is enough)."""
        mask = access & self.handled
        if not is_dir:
            mask &= FILE_ACCESS
        if not mask:
            return
        rule = _PathBeneathAttr(mask, fd)
        if _syscall(_ADD_RULE, self.fd, _RULE_PATH_BENEATH, ctypes.byref(rule), 0) != 0:
            raise _failed("landlock_add_rule")

    def allow(self, path: str, access: int) -> bool:
        """Allow `access` beneath `path`; False (and nothing allowed) when it does not exist."""
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            return False
        try:
            self.allow_fd(fd, access, is_dir=stat.S_ISDIR(os.fstat(fd).st_mode))
        finally:
            os.close(fd)
        return True

    def restrict_thread(self) -> None:
        """Confine the calling thread (and everything it starts from now on) to the rules.

        Sets no_new_privs on the thread first, which Landlock requires of an unprivileged
        caller; it also means a setuid program started from here gains nothing."""
        libc = _libc()
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise _failed("prctl(PR_SET_NO_NEW_PRIVS)")
        if _syscall(_RESTRICT_SELF, self.fd, 0) != 0:
            raise _failed("landlock_restrict_self")

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> Ruleset:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
