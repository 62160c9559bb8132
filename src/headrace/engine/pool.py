"""`AgentPool`: the agents a server runs for its lifetime, supervised and restarted.

Each agent is a child process (`python -m headrace.engine.agent --slot N`), not a thread of
the server: an agent is one single-threaded loop built around signals, pidfds and process
groups; its identity (`host:pid:start`) is how other agents tell it died, which threads
sharing a pid could not give; and a crash or a slow pass of one agent then never stalls
the HTTP server or the other agents. Children run in their own session, so a Ctrl-C in the
server's terminal reaches only the server, which then drains its agents itself; each child
also drains on its own when the server is gone (`--parent-pid`).

Stopping (`stop`): SIGTERM to every agent, which stops claiming, lets running steps finish
for the grace period, then kills what still runs and gives those runs back to the store for
the next agent; after the grace period and a margin, a SIGKILL ends an agent that is stuck
(its runs are then resumed like a crashed agent's).
"""

from __future__ import annotations

import logging
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from headrace.engine.isolation import Isolation

__all__ = ["AgentPool"]

log = logging.getLogger("headrace.agents")

RESTART_DELAY_SECONDS = 1.0
MAX_RESTART_DELAY_SECONDS = 30.0
STOP_MARGIN_SECONDS = 15.0  # beyond the grace period: killing steps and writing the records


class AgentPool:
    """`count` agents serving `workspace` (slots 0..count-1) while the pool runs."""

    def __init__(
        self,
        workspace: Path,
        count: int,
        *,
        grace_seconds: float = 30.0,
        step_nice: int = 0,
        isolation: Isolation | None = None,
    ) -> None:
        """`isolation` None: each agent takes it from its environment (off by default)."""
        if count < 1:
            raise ValueError("an agent pool needs at least one agent")
        self.workspace = Path(workspace)
        self.count = count
        self.grace_seconds = grace_seconds
        self.step_nice = step_nice
        self.isolation = isolation
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        self.restarts = 0
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._supervisor: threading.Thread | None = None

    def start(self) -> None:
        with self._lock:
            for slot in range(self.count):
                self.processes[slot] = self._spawn(slot)
        self._supervisor = threading.Thread(
            target=self._supervise, name="headrace-agent-pool", daemon=True
        )
        self._supervisor.start()

    def _spawn(self, slot: int) -> subprocess.Popen[bytes]:
        log_path = self.workspace / "agent" / "agent.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        argv = [
            sys.executable,
            "-m",
            "headrace.engine.agent",
            "--workspace",
            str(self.workspace),
            "--slot",
            str(slot),
            "--idle-seconds",
            "inf",
            "--grace-seconds",
            str(self.grace_seconds),
            "--wait-for-slot",
            "--parent-pid",
            str(os.getpid()),
            "--step-nice",
            str(self.step_nice),
            *(self.isolation.agent_args() if self.isolation is not None else []),
        ]
        with log_path.open("ab") as log_file:
            return subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _supervise(self) -> None:
        """Restart an agent that died (backing off when it keeps dying)."""
        delays = dict.fromkeys(range(self.count), RESTART_DELAY_SECONDS)
        while not self._stopping.wait(0.5):
            with self._lock:
                dead = [(s, p) for s, p in self.processes.items() if p.poll() is not None]
            for slot, process in dead:
                log.warning(
                    "agent slot %d (pid %d) exited with %s; restarting it in %.0f s (its log: %s)",
                    slot,
                    process.pid,
                    process.returncode,
                    delays[slot],
                    self.workspace / "agent" / "agent.log",
                )
                if self._stopping.wait(delays[slot]):
                    return
                delays[slot] = min(MAX_RESTART_DELAY_SECONDS, delays[slot] * 2)
                with self._lock:
                    self.processes[slot] = self._spawn(slot)
                    self.restarts += 1

    def pids(self) -> list[int]:
        with self._lock:
            return [p.pid for p in self.processes.values() if p.poll() is None]

    def stop(self) -> None:
        """Drain every agent (see the module docstring); returns when all have exited."""
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join()
        with self._lock:
            processes = list(self.processes.values())
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        limit = self.grace_seconds + STOP_MARGIN_SECONDS
        deadline = time.monotonic() + (limit if math.isfinite(limit) else 1e9)
        for process in processes:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("agent pid %d did not stop in time; killing it", process.pid)
                process.kill()
                process.wait()
