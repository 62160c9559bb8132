"""The executor seam: start a prepared step, tell when it ended, stop it, know its capacity.

An executor runs the process of a `PreparedStep` somewhere; the agent waits on the handles it
returns. Local processes are the first implementation; Ray and Spark plug in here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from headrace.engine.runtime import PreparedStep

__all__ = ["Executor", "StepProcess"]


class StepProcess(Protocol):
    """A running attempt of a step."""

    pid: int | None

    @property
    def started(self) -> float | None:
        """The process's start time, so it can be told apart after its pid is reused."""
        ...

    def poll(self) -> int | None:
        """The exit code once the attempt has ended, else None. Never blocks."""
        ...

    def wait_handle(self) -> int | None:
        """A file descriptor that becomes readable when the attempt ends, if there is one."""
        ...

    def terminate(self) -> None:
        """Ask the attempt and everything it started to stop (SIGTERM to its group)."""
        ...

    def kill(self) -> None:
        """Stop the attempt and everything it started now (SIGKILL to its group)."""
        ...

    def close(self) -> None:
        """Release what the handle holds once the attempt has ended."""
        ...


class Executor(Protocol):
    name: str
    capacity: int

    def start(self, prepared: PreparedStep) -> StepProcess: ...
