"""Step isolation: what a step's process may reach, and starting it confined to that.

A step runs code its submitter wrote. On a shared server the submitter is not trusted with
the workspace itself (its database, `portal.key`, secrets file, agent files) nor with other
runs' folders, so a step must not reach them either (docs/security.md). Two mechanisms, used
together where both exist:

- **Landlock** (`Isolation.landlock`): the step may read and run what the machine has
  outside the workspace folder and the server user's home (plus the interpreter and
  headrace's packages, wherever they are), and write only its own folders: its working
  folder, its scratch folder (TMPDIR and HOME), its run folder, its pipeline run's folder
  and its staged outputs; it reads its inputs. From Landlock ABI 6 it can neither signal
  nor connect to abstract unix sockets outside its sandbox. What the paths are comes from
  the step runtime (`PreparedStep.writable`, `PreparedStep.input_paths`).
- **A step user** (`Isolation.user`, when the server runs as root): the step runs as that
  OS user, so file modes keep it out of the workspace's private files (made 0600/0700 by
  `protect_workspace_files`) and root's powers (modules, raw devices) are not its.

Starting a step costs one thread, not a fork. `Popen` without `preexec_fn` or `user=`
starts the child with vfork, which copies no page tables; anything run in the child first
would make every spawn a full fork of the agent. Instead a short-lived thread takes the
step's identity and sandbox and calls an ordinary `Popen`: Linux keeps credentials and
Landlock domains per thread (the raw setres*id system calls change only the calling
thread, unlike glibc's wrappers, which change all threads), and the child inherits the
thread's. The thread then ends; the agent's other threads never change.

Nothing here runs on the Ray executor's nodes: those steps are not confined.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import platform
import pwd
import re
import subprocess
import sys
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from headrace.engine import landlock
from headrace.errors import ConfigError
from headrace.store.layout import CONFIG_NAME, make_private

__all__ = [
    "OFF",
    "Isolation",
    "Sandbox",
    "StepUser",
    "add_isolation_arguments",
    "find_user",
    "from_environment",
    "inherited_environment",
    "isolation_from_arguments",
    "make_undumpable",
    "protect_workspace_files",
    "resolve",
]

MIN_LANDLOCK_ABI = 2  # ABI 1 refuses every rename or link across folders (no REFER right)
DEFAULT_STEP_USER = "nobody"
ISOLATION_ENV = "HEADRACE_STEP_ISOLATION"  # on|off for agents started without arguments
STEP_USER_ENV = "HEADRACE_STEP_USER"

# setgroups, setresuid, setresgid by machine: glibc's own functions change every thread
# of the process (POSIX), which is exactly what must not happen here.
_SET_ID_SYSCALLS = {
    "x86_64": (116, 117, 119),
    "aarch64": (159, 147, 149),
}
# Names of inherited variables that hold secrets: parts of the name, or the whole of it.
_SECRET_PARTS = {"PASSWORD", "PASSWD", "SECRET", "SECRETS", "TOKEN", "CREDENTIALS", "CREDENTIAL"}
_SECRET_NAMES = re.compile(
    r"(PASSWORD|PASSWD|SECRET|ACCESS_KEY|ACCOUNT_KEY|API_KEY|APIKEY|PRIVATE_KEY|CLIENT_KEY"
    r"|SAS_|_SAS|CONNECTION_STRING"
    r"|DATABASE_URL|DSN|PGPASSFILE|SSH_AUTH_SOCK|KRB5CCNAME)",
)
_PRIVATE_FILES = ("headrace.db", "headrace.db-wal", "headrace.db-shm", "portal.key")
_PRIVATE_DIRS = ("agent", "secrets")


@dataclass(frozen=True)
class StepUser:
    """The OS user steps run as."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]


@dataclass(frozen=True)
class Isolation:
    """How an agent confines its steps: Landlock, another user, both or neither."""

    landlock: bool = False
    user: StepUser | None = None

    @property
    def enabled(self) -> bool:
        return self.landlock or self.user is not None

    def agent_args(self) -> list[str]:
        """The arguments that give an agent process these settings."""
        args = ["--step-isolation", "landlock" if self.landlock else "off"]
        return [*args, "--step-user", self.user.name] if self.user else args

    def describe(self) -> str:
        """How steps run, said for a log line: 'confined by Landlock, as user nobody'."""
        parts = ["confined by Landlock"] if self.landlock else []
        if self.user:
            parts.append(f"as user {self.user.name}")
        return ", ".join(parts) if parts else "unconfined"


OFF = Isolation()


def find_user(name: str) -> StepUser:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise ConfigError(
            f"There is no user {name!r} on this machine to run steps as; create one (e.g. "
            f"`useradd --system --no-create-home {name}`) or name another with --step-user."
        ) from None
    groups = tuple(os.getgrouplist(name, entry.pw_gid))
    return StepUser(name, entry.pw_uid, entry.pw_gid, groups)


def resolve(mode: str, step_user: str | None, *, default_user: bool) -> Isolation:
    """The isolation for `mode` (auto, on or off) and `step_user` (None: the default).

    auto: Landlock where the kernel has it, and (with `default_user`, a server) user
    `nobody` when running as root. on: the same, but Landlock is required. A `step_user`
    naming the user this process runs as means no switch.
    """
    if mode not in ("auto", "on", "off"):
        raise ConfigError(f"Step isolation {mode!r} is not one of auto, on, off.")
    if mode == "off":
        return OFF
    abi = landlock.abi_version()
    if mode == "on" and abi < MIN_LANDLOCK_ABI:
        raise ConfigError(
            f"Step isolation 'on' needs Landlock (ABI {MIN_LANDLOCK_ABI}, Linux 5.19 or later), "
            f"which this kernel {'lacks' if abi == 0 else f'has only at ABI {abi}'}; use "
            "--step-isolation auto (a step user alone) or run on a newer kernel."
        )
    name = step_user or (DEFAULT_STEP_USER if default_user and os.geteuid() == 0 else None)
    user = find_user(name) if name else None
    if user is not None and user.uid == os.geteuid():
        user = None  # steps run as this process's own user: nothing to switch
    if user is not None and os.geteuid() != 0:
        raise ConfigError(
            f"Running steps as user {user.name!r} needs the server to run as root; start it "
            "as root, or leave --step-user out."
        )
    if user is not None and platform.machine() not in _SET_ID_SYSCALLS:
        raise ConfigError(
            f"Running steps as another user is supported on x86-64 and arm64, not on "
            f"{platform.machine()}; leave --step-user out."
        )
    return Isolation(landlock=abi >= MIN_LANDLOCK_ABI, user=user)


def from_environment() -> Isolation:
    """What an agent started without isolation arguments does (`HEADRACE_STEP_ISOLATION`,
    `HEADRACE_STEP_USER`); off by default: a laptop runs its owner's code."""
    mode = (os.environ.get(ISOLATION_ENV) or "off").strip().lower()
    return resolve(mode, os.environ.get(STEP_USER_ENV) or None, default_user=False)


def add_isolation_arguments(parser: argparse.ArgumentParser) -> None:
    """An agent's isolation options (a server passes `Isolation.agent_args`)."""
    parser.add_argument(
        "--step-isolation",
        choices=["landlock", "off"],
        default=None,
        help=f"confine steps with Landlock, or not (default: ${ISOLATION_ENV}, else off)",
    )
    parser.add_argument("--step-user", default=None, help="run steps as this user (root only)")


def isolation_from_arguments(args: argparse.Namespace) -> Isolation:
    if args.step_isolation is None:
        return from_environment()
    user = find_user(args.step_user) if args.step_user else None
    return Isolation(args.step_isolation == "landlock", user)


def make_undumpable() -> None:
    """Keep processes of the same user (steps confined by Landlock alone) from reading this
    one's memory and `/proc/<pid>/environ`: Landlock does not guard `environ`."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE, 0


def protect_workspace_files(root: Path) -> None:
    """Make the workspace's private files unreadable to other users (a step user): the
    database (SQLite makes -wal and -shm with the database's mode), the portal key, the
    workspace config (it may hold a database password), the secrets and agent folders."""
    root = Path(root)
    for name in (*_PRIVATE_FILES, CONFIG_NAME):
        make_private(root / name)
    for name in _PRIVATE_DIRS:
        with contextlib.suppress(FileNotFoundError):
            os.chmod(root / name, 0o700)


def inherited_environment(
    environ: Mapping[str, str],
    *,
    isolated: bool,
    also: Iterable[str] = (),
    database_url: str | None = None,
) -> dict[str, str]:
    """What a step inherits of the agent's environment.

    Never the multi-worker server's settings (they hold the database URL). When isolated,
    no variable whose name says it holds a secret (passwords, tokens, keys, credentials,
    connection strings, an ssh agent), nor those named in `also` (the ones datastores read
    their credentials from), nor any holding the workspace's `database_url`: the step's own
    `environment_variables` are added afterwards.
    """
    drop = {"HEADRACE_SERVER_WORKER_SETTINGS", *also}
    env = {k: v for k, v in environ.items() if k not in drop}
    if isolated:
        env = {
            k: v
            for k, v in env.items()
            if not _secret_name(k) and not (database_url and database_url in v)
        }
    return env


def _secret_name(name: str) -> bool:
    upper = name.upper()
    return bool(_SECRET_PARTS.intersection(upper.split("_")) or _SECRET_NAMES.search(upper))


# -- where a step may go -------------------------------------------------------------------
def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _cover(folder: str, excluded: Sequence[str], out: list[str], ancestors: list[str]) -> None:
    """Paths that together are everything under `folder` except the `excluded` trees."""
    if folder in excluded:
        return
    if not any(_inside(e, folder) for e in excluded):
        out.append(folder)
        return
    ancestors.append(folder)
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return
    for name in names:
        _cover(os.path.join(folder, name), excluded, out, ancestors)


def _runtime_paths() -> list[str]:
    """Where this Python and headrace's packages live (the step's interpreter)."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix}
    paths.add(os.path.dirname(os.path.dirname(os.path.realpath(sys.executable))))
    paths.update(os.path.realpath(p) for p in sys.path if p and os.path.isdir(p))
    paths.add(str(Path(__file__).resolve().parents[2]))  # the folder holding `headrace`
    return sorted(paths)


class _Grants:
    """The rules every step of one agent shares, kept open (O_PATH) and rebuilt when a
    folder listed to make them changes (a new entry next to the workspace)."""

    def __init__(self, excluded: list[str], reads: list[str], writes: list[str]) -> None:
        self.excluded = excluded
        self.extra_reads = reads
        self.extra_writes = writes
        self.fds: list[tuple[int, int, bool]] = []  # (fd, access, is_dir)
        self.stamps: list[tuple[str, int]] = []

    def current(self) -> list[tuple[int, int, bool]]:
        if self.fds and all(_mtime(path) == stamp for path, stamp in self.stamps):
            return self.fds
        self.close()
        reads: list[str] = []
        ancestors: list[str] = []
        _cover("/", self.excluded, reads, ancestors)
        self.stamps = [(path, _mtime(path)) for path in ancestors]
        for path, access in [
            *((p, landlock.ACCESS_READ) for p in [*reads, *self.extra_reads]),
            *((p, landlock.ACCESS_ALL) for p in self.extra_writes),
        ]:
            real = os.path.realpath(path)
            if path in reads and any(_inside(real, e) or _inside(e, real) for e in self.excluded):
                continue  # a link from outside into (or around) an excluded tree
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
            self.fds.append((fd, access, os.path.isdir(real)))
        return self.fds

    def close(self) -> None:
        for fd, _, _ in self.fds:
            os.close(fd)
        self.fds = []


def _mtime(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return -1


class Sandbox:
    """Starts one agent's steps confined by `isolation` (see the module docstring)."""

    def __init__(self, isolation: Isolation, workspace: Path) -> None:
        self.isolation = isolation
        self.workspace = Path(os.path.realpath(workspace))
        # Where envrun keeps the workspace's environments (see its envs_dir).
        envs = os.environ.get("HEADRACE_ENVS_DIR") or os.path.join(self.workspace, "envs")
        self.envs_dir = Path(os.path.realpath(envs))
        user = isolation.user
        self.owner = (user.uid, user.gid) if user else None
        home = os.path.realpath(os.path.expanduser("~"))
        excluded = [str(self.workspace)] + ([home] if home != "/" else [])
        # The interpreter's folders may be inside the home (pyenv), never around an excluded
        # tree or inside the workspace (the agent's sys.path holds the folder it started in).
        runtime = [
            p
            for p in _runtime_paths()
            if not any(_inside(e, p) for e in excluded) and not _inside(p, str(self.workspace))
        ]
        self._grants = _Grants(excluded, runtime, ["/dev"])
        self._excluded = excluded
        self._agent_python = os.path.realpath(sys.executable)
        self._usable: set[str] = set()  # interpreters a confined step was seen to start

    def close(self) -> None:
        self._grants.close()

    def admit(self, writable: Sequence[Path], private_files: Sequence[Path] = ()) -> None:
        """Make the step's own folders exist and, with a step user, make them and the
        files the agent made for it (its token) belong to that user."""
        for folder in writable:
            folder.mkdir(parents=True, exist_ok=True)
            if self.owner:
                os.chown(folder, *self.owner, follow_symlinks=False)
        if self.owner:
            for path in private_files:
                with contextlib.suppress(FileNotFoundError):
                    os.chown(path, *self.owner, follow_symlinks=False)

    def spawn(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        stdout: int | IO[Any],
        stderr: int | IO[Any],
        writable: Sequence[Path],
        readable: Iterable[str] = (),
        private_files: Sequence[Path] = (),
        python: str | None = None,
        pass_fds: Sequence[int] = (),
    ) -> subprocess.Popen[bytes]:
        """Start `argv` confined: reading `readable`, writing `writable` (see `admit`), and
        running `python` (the step's interpreter, when not the agent's: `check_interpreter`
        says whether it can); `pass_fds` stay open in it (the combined log's, for the
        step's logger)."""
        self.admit(writable, private_files)
        building = _builds_environment(argv, self.envs_dir)
        if building:  # made by the agent: a step may write in it, not next to it
            self.admit([self.envs_dir])
        readable = [*readable, *self._interpreter_folders(python or argv[0])]
        ruleset = None
        if self.isolation.landlock:
            ruleset = self._ruleset(writable, readable, building=building)
        started: dict[str, Any] = {}

        def confine_and_start() -> None:
            # Runs in its own thread: whatever it changes dies with the thread.
            try:
                if self.isolation.user is not None:
                    _become(self.isolation.user)
                if ruleset is not None:
                    ruleset.restrict_thread()
                started["process"] = subprocess.Popen(
                    argv,
                    cwd=cwd,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=stdout,
                    stderr=stderr,
                    start_new_session=True,
                    close_fds=True,
                    pass_fds=tuple(pass_fds),
                )
            except BaseException as exc:
                started["error"] = exc

        thread = threading.Thread(target=confine_and_start, name="headrace-step-start")
        try:
            thread.start()
            thread.join()
        finally:
            if ruleset is not None:
                ruleset.close()
        if "error" in started:
            raise started["error"]
        process: subprocess.Popen[bytes] = started["process"]
        return process

    def _ruleset(
        self, writable: Sequence[Path], readable: Iterable[str], *, building: bool
    ) -> landlock.Ruleset:
        ruleset = landlock.Ruleset()
        try:
            for fd, access, is_dir in self._grants.current():
                ruleset.allow_fd(fd, access, is_dir=is_dir)
            envs = landlock.ACCESS_ALL if building else landlock.ACCESS_READ
            ruleset.allow(str(self.envs_dir), envs)
            for path in readable:
                if path.startswith("/"):
                    ruleset.allow(path, landlock.ACCESS_READ)
            for folder in writable:
                ruleset.allow(str(folder), landlock.ACCESS_ALL)
        except BaseException:
            ruleset.close()
            raise
        return ruleset

    def _interpreter_folders(self, program: str) -> list[str]:
        """The folders of a step's interpreter other than the agent's own (a submitter's
        Python, engine/interpreters.py): its environment and its installation, so Landlock
        lets the step read and run them; nothing inside the workspace."""
        if not os.path.isabs(program) or os.path.realpath(program) == self._agent_python:
            return []
        folders = {
            os.path.dirname(os.path.dirname(os.path.abspath(program))),
            os.path.dirname(os.path.dirname(os.path.realpath(program))),
        }
        return [f for f in sorted(folders) if f != "/" and not _inside(f, str(self.workspace))]

    def check_interpreter(self, python: str) -> None:
        """Make sure a confined step can start `python` (a submitter's interpreter) before
        a step does: a ConfigError saying who cannot run it and what to do, instead of the
        step failing with whatever the loader says. Checked once per interpreter."""
        if os.path.realpath(python) == self._agent_python or python in self._usable:
            return
        code, problem = self._try_step_side(python)
        if code == 0:
            self._usable.add(python)
            return
        who = f"user {self.isolation.user.name}" if self.isolation.user else "a confined step"
        raise ConfigError(
            f"steps run {self.isolation.describe()}, and {who} cannot start the submitter's "
            f"Python {python} with headrace ({'; '.join(problem) or f'exit code {code}'}). "
            "A step without an environment runs in the Python that submitted its run. Fix: "
            "submit from a Python every user can read and run (a virtual environment under "
            "/opt or /usr/local, not under a home folder such as /root), or give the step an "
            "environment (RunConfiguration(environment=...) with pip packages: headrace "
            "builds it with uv)."
        )

    def probe(self, python: str = sys.executable) -> None:
        """Start headrace's step side once as a step would be started; a ConfigError
        naming the fix when it cannot run (checked when a server starts)."""
        code, problem = self._try_step_side(python)
        if code == 0:
            return
        who = f"user {self.isolation.user.name}" if self.isolation.user else "a step"
        raise ConfigError(
            f"Steps run {self.isolation.describe()}, and {who} cannot start headrace's step "
            f"side with {python} in {self.workspace} ({'; '.join(problem) or code}). Fix: "
            "install headrace in a Python every user can run (a virtual environment under "
            "/opt or /usr/local, not under /root) and keep the workspace's parent folders "
            "traversable (chmod o+x), or choose a user who can with --step-user NAME "
            "(--step-user root: Landlock alone confines steps, see docs/security.md)."
        )

    def _try_step_side(self, python: str) -> tuple[int, list[str]]:
        """Start `python -c 'import headrace.sdk.context'` confined as a step: its exit
        code and the last line it wrote to stderr."""
        folder = self.workspace / "work" / f".probe-{os.getpid()}-{threading.get_ident()}"
        try:
            process = self.spawn(
                [python, "-c", "import headrace.sdk.context"],
                cwd=folder,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(folder)},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                writable=[folder],
            )
            _, err = process.communicate(timeout=120)
            problem = err.decode(errors="replace").strip().splitlines()[-1:] if err else []
            code = process.returncode
        except OSError as exc:
            problem, code = [f"{exc.strerror}: {exc.filename or python}"], -1
        finally:
            with contextlib.suppress(OSError):
                for entry in folder.iterdir():
                    entry.unlink()
                folder.rmdir()
        return code, problem


def _builds_environment(argv: Sequence[str], envs_dir: Path) -> bool:
    """Whether the step starts `envrun` for an environment not built yet (it then writes
    the environments folder; otherwise it only reads it)."""
    from headrace.engine.environments import ENVRUN

    if ENVRUN not in argv or "--key" not in argv:
        return False
    key = argv[list(argv).index("--key") + 1]
    from headrace.engine.envrun import READY

    return not (envs_dir / key / READY).exists()


def _become(user: StepUser) -> None:
    """Give the calling thread (only) the identity of `user`; see the module docstring."""
    set_groups, set_resuid, set_resgid = _SET_ID_SYSCALLS[platform.machine()]
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    groups = (ctypes.c_uint * len(user.groups))(*user.groups)
    for number, args in (
        (set_groups, (ctypes.c_size_t(len(user.groups)), groups)),
        (set_resgid, (user.gid, user.gid, user.gid)),
        (set_resuid, (user.uid, user.uid, user.uid)),
    ):
        if libc.syscall(ctypes.c_long(number), *args) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"cannot switch to user {user.name!r}: {os.strerror(code)}")
