"""The warm agent's request socket: what both ends of it share, and the client's end.

A running agent listens on an abstract Unix stream socket named after its workspace
(`request_address`, beside the datagram wake-up socket of `launcher.wake_address`). A
process of the same user that wants to submit a pipeline or follow a run talks to it
instead of opening the metadata store itself, so it never imports SQLAlchemy, Alembic or
the store (issue 18: a fresh `python pipeline.py` then costs a few Python start-ups).
The agent's end is `engine/agentserver.py`; the SDK's is `backend/agent_backend.py`.

Messages are length-prefixed JSON (4 bytes, big-endian, then UTF-8). Every request
carries `identity()`: the protocol number, the headrace version and the folder headrace is
installed in. An agent of another install or version refuses the request (`code`
"version"), and the client then does the work itself, as it did before the socket
existed. An abstract socket has no file permissions, so the agent checks the peer's
credentials (SO_PEERCRED) and answers only processes of its own user.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import sys
import time
from pathlib import Path
from typing import Any

from headrace import errors

__all__ = [
    "MAX_MESSAGE_BYTES",
    "PROTOCOL",
    "AgentConnection",
    "AgentUnavailable",
    "error_from_wire",
    "error_to_wire",
    "identity",
    "peer_uid",
    "receive",
    "request_address",
    "send",
]

PROTOCOL = 1
MAX_MESSAGE_BYTES = 256 * 1024 * 1024  # a graph of thousands of steps fits many times
_HEADER = struct.Struct(">I")


class AgentUnavailable(Exception):
    """The agent cannot take this request (none listens, another version, it went away):
    the caller does the work itself. Never reaches a user. `sent`: the request had been
    sent whole, so the agent may have done it (a submit then looks before submitting).
    `refused`: the agent answered that it will not serve this client."""

    def __init__(self, message: str, *, sent: bool = False, refused: bool = False) -> None:
        super().__init__(message)
        self.sent = sent
        self.refused = refused  # the agent answered no (another version, another user)


def request_address(workspace: Path) -> str:
    """The abstract address of the request socket of the agent serving `workspace`."""
    from headrace.engine.launcher import wake_address

    return wake_address(workspace) + "-requests"


def identity() -> dict[str, Any]:
    """What a request says about the code that sent it; an agent answers only its own:
    the protocol, headrace's version and install folder, and the size and modification
    time of the files that define the protocol's messages (an edited checkout differs)."""
    package = sys.modules["headrace"]  # always imported: this module is inside it
    folder = Path(__file__).resolve().parent.parent
    stamps = []
    for name in ("engine/agentsocket.py", "engine/agentserver.py", "store/records.py"):
        with contextlib.suppress(OSError):
            found = (folder / name).stat()
            stamps.append(f"{found.st_size}:{found.st_mtime_ns}")
    return {
        "protocol": PROTOCOL,
        "version": str(getattr(package, "__version__", "")),
        "install": str(folder),
        "files": stamps,
    }


def peer_uid(conn: socket.socket) -> int:
    """The user id of the process at the other end of a Unix socket."""
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


def send(conn: socket.socket, message: dict[str, Any]) -> None:
    body = json.dumps(message, separators=(",", ":")).encode()
    conn.sendall(_HEADER.pack(len(body)) + body)


def _exactly(conn: socket.socket, size: int) -> bytes:
    chunks: list[bytes] = []
    while size:
        chunk = conn.recv(min(size, 1 << 20))
        if not chunk:
            raise ConnectionError("the other end closed the connection")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def receive(conn: socket.socket) -> dict[str, Any]:
    """One message; ValueError when it is not one (too long, not a JSON object)."""
    (size,) = _HEADER.unpack(_exactly(conn, _HEADER.size))
    if size > MAX_MESSAGE_BYTES:
        raise ValueError(f"a message of {size:,} bytes is longer than {MAX_MESSAGE_BYTES:,}")
    message = json.loads(_exactly(conn, size))
    if not isinstance(message, dict):
        raise ValueError("a message must be a JSON object")
    return message


def error_to_wire(exc: errors.HeadraceError) -> dict[str, Any]:
    """A headrace error as the agent answers it (its class by name, message, problems)."""
    return {
        "class": type(exc).__name__,
        "message": str(exc),
        "problems": list(getattr(exc, "problems", []) or []),
    }


def error_from_wire(data: dict[str, Any]) -> errors.HeadraceError:
    """The exception the agent answered, as the same class the store would have raised."""
    name = str(data.get("class") or "")
    klass = getattr(errors, name, None) if name in errors.__all__ else None
    if not (isinstance(klass, type) and issubclass(klass, errors.HeadraceError)):
        klass = errors.HeadraceError
    # Built without the class's own __init__ (PipelineValidationError takes a problem list).
    exc = klass.__new__(klass)
    Exception.__init__(exc, str(data.get("message") or "the agent refused the request"))
    if isinstance(exc, errors.PipelineValidationError):
        exc.problems = [str(p) for p in data.get("problems") or []]
    return exc


class AgentConnection:
    """One connection to the agent serving a workspace; requests go one after another."""

    def __init__(self, workspace: Path, *, connect_seconds: float = 0.0) -> None:
        """Connect, retrying for `connect_seconds` while nobody listens yet (an agent this
        process just started); AgentUnavailable when no agent answers."""
        self.workspace = workspace
        address = request_address(workspace)
        deadline = time.monotonic() + connect_seconds
        pause = 0.002
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(address)
                break
            except OSError as exc:
                sock.close()
                if time.monotonic() + pause > deadline:
                    raise AgentUnavailable(f"no agent listens: {exc}") from None
                time.sleep(pause)
                pause = min(pause * 2, 0.05)
        # An abstract address has no file permissions: a process of another user could
        # listen there first and would read what this one submits. Only our own answers.
        if peer_uid(sock) != os.getuid():
            sock.close()
            raise AgentUnavailable(
                "another user's process listens at the agent's address", refused=True
            )
        self._sock: socket.socket | None = sock
        self._identity = identity()
        self.used = False  # it answered a request (so it may be stale: its agent may be gone)

    def call(self, op: str, timeout: float = 30.0, **arguments: Any) -> dict[str, Any]:
        """The agent's answer to `op`; its HeadraceError raised as such; AgentUnavailable
        when the agent cannot answer (the caller then does the work itself)."""
        if self._sock is None:
            raise AgentUnavailable("the connection is closed")
        sent = False
        try:
            self._sock.settimeout(timeout)
            send(self._sock, {"op": op, "identity": self._identity, **arguments})
            sent = True
            answer = receive(self._sock)
        except (OSError, ValueError, TypeError, struct.error) as exc:
            # TypeError: arguments JSON cannot carry (nothing was sent).
            self.close()
            raise AgentUnavailable(f"the agent did not answer: {exc}", sent=sent) from None
        self.used = True
        if answer.get("ok"):
            return answer
        if answer.get("code") == "error" and isinstance(answer.get("error"), dict):
            raise error_from_wire(answer["error"])
        self.close()
        raise AgentUnavailable(str(answer.get("message") or answer.get("code")), refused=True)

    def __del__(self) -> None:
        # A Workspace dropped without close(): its connection goes quietly with it.
        self.close()

    def close(self) -> None:
        sock, self._sock = getattr(self, "_sock", None), None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
