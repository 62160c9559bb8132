"""The Python a step with no environment of its own runs in: its submitter's.

A notebook or script that submits a run is the Python whose packages its author sees, so
its steps run there too, not in whichever Python happened to start the agent (a second
virtual environment's agent, still alive, would otherwise run them without the packages
the submitter has). `submit_graph` records the interpreter of the process that queues the
run with the run (`Interpreter.record`); the orchestrator fingerprints steps with it and
the agent starts them with it. The process that queues the run is the submitter's own in an
embedded workspace; on a server it is the server (REST submits and remote SDK submits have
no interpreter on this machine), so those steps run in the server's Python.

Two spellings of one interpreter are one interpreter: `bin/python` and `bin/python3` of a
virtual environment are the same file. What identifies it (`identity`, part of the reuse
fingerprint) is its real path, the real path of its environment (`sys.prefix`: two
virtual environments made from one Python share the real path of their interpreter, not
their packages) and its version. The path it is started with stays the one the submitter
used, since a virtual environment is found from the path its interpreter was started as.
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Interpreter", "current", "describe"]


@dataclass(frozen=True)
class Interpreter:
    path: str  # how the submitter started it (absolute): steps are started the same way
    real: str  # its real path (links resolved)
    prefix: str  # the real path of its environment (sys.prefix: a venv's folder)
    base_prefix: str  # the installation a virtual environment was made from
    version: str  # "3.11.7"

    def record(self) -> dict[str, str]:
        """What the run row keeps."""
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict[str, Any] | None) -> Interpreter | None:
        if not record:
            return None
        try:
            return cls(**{k: str(record[k]) for k in cls.__dataclass_fields__})
        except KeyError:
            return None

    def identity(self) -> dict[str, str]:
        """The environment part of the reuse fingerprint of a step without an environment."""
        return {"interpreter": self.real, "prefix": self.prefix, "python": self.version}

    def folders(self) -> list[str]:
        """The folders a step needs to read to run it: its environment, the installation
        it comes from, and where its real file lives."""
        home = os.path.dirname(os.path.dirname(self.real))
        return sorted({self.prefix, self.base_prefix, home} - {"", "/"})


def current() -> Interpreter | None:
    """This process's interpreter; None when Python cannot say (an embedded interpreter)."""
    if not sys.executable:
        return None
    path = os.path.abspath(sys.executable)
    return Interpreter(
        path=path,
        real=os.path.realpath(path),
        prefix=os.path.realpath(sys.prefix),
        base_prefix=os.path.realpath(sys.base_prefix),
        version=".".join(map(str, sys.version_info[:3])),
    )


def describe(identity: dict[str, Any]) -> str:
    """A fingerprint's interpreter, said for people: 'Python 3.11.7, /work/venv (real file
    /usr/bin/python3.11)'."""
    version = identity.get("python") or "?"
    real = identity.get("interpreter") or "?"
    prefix = identity.get("prefix")
    if not prefix:  # recorded before headrace kept the environment's folder
        return f"Python {version}, {real}"
    return f"Python {version}, environment {prefix} (interpreter {real})"
