"""The executor seam: start a prepared step, tell when it ended, stop it, know its capacity.

An executor runs the process of a `PreparedStep` somewhere; the agent waits on the handles it
returns. `LocalExecutor` runs local process groups, `RayExecutor` Ray tasks (executors/choose.py
picks one per compute target).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from headrace.engine.runtime import PreparedStep

__all__ = ["Executor", "StepProcess"]


class StepProcess(Protocol):
    """A running attempt of a step."""

    pid: int | None
    # Why the attempt ended outside the script (its Ray node was lost), else None.
    lost: str | None
    # Why the script never started (its node could not fetch an input), else None.
    not_started: str | None

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
    # Whether its steps run on another machine that downloads their object-store inputs
    # itself (`prepare(fetch_remotely=True)`), rather than getting them from the agent.
    fetches_inputs: bool

    @property
    def capacity(self) -> int:
        """How many steps may run at once."""
        ...

    def start(self, prepared: PreparedStep) -> StepProcess: ...
