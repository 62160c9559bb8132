"""Which executor runs a compute target's steps.

`local`, `sql` and the other process-pool types run on this machine (`LocalExecutor`). A
`ray` target runs on Ray (`RayExecutor`), and so does SDK v1's `AmlCompute` when the
workspace configuration says so (`"amlcompute": {"backend": "ray", "address": ...}` in
`workspace.json`; no address starts a local Ray head). A Ray cluster that cannot be used
gives an `UnavailableExecutor`: its steps fail to start with the reason, and the agent tries
again after `RETRY_SECONDS`.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from headrace.engine.executors.base import Executor
from headrace.engine.executors.local import LocalExecutor

if TYPE_CHECKING:
    from headrace.engine.isolation import Sandbox
    from headrace.engine.runtime import PreparedStep
    from headrace.store.records import ComputeTargetRecord

__all__ = ["RETRY_SECONDS", "UnavailableExecutor", "make_executor", "ray_settings"]

RETRY_SECONDS = 30.0


class UnavailableExecutor:
    """A target whose engine cannot be used now; starting a step raises why."""

    fetches_inputs = False

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.capacity = 1
        self.reason = reason
        self._until = time.monotonic() + RETRY_SECONDS

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self._until

    def start(self, prepared: PreparedStep) -> Any:
        raise RuntimeError(self.reason)


def ray_settings(
    record: ComputeTargetRecord, workspace_config: dict[str, Any]
) -> dict[str, Any] | None:
    """The Ray settings of a target, or None when it is not run by Ray."""
    if record.type == "ray":
        return dict(record.config)
    if record.type == "AmlCompute":
        backend = workspace_config.get("amlcompute") or {}
        if isinstance(backend, dict) and backend.get("backend") == "ray":
            settings = {k: v for k, v in backend.items() if k != "backend"}
            settings.setdefault("max_concurrent_steps", record.config.get("max_nodes"))
            return settings
    return None


def make_executor(
    record: ComputeTargetRecord,
    workspace_config: dict[str, Any],
    nice: int,
    sandbox: Sandbox | None = None,
) -> Executor:
    """The executor of a target; local ones start their steps in `sandbox` (Ray's nodes
    are not confined, see docs/security.md)."""
    ray = ray_settings(record, workspace_config)
    if ray is None:
        capacity = record.config.get("max_nodes") or os.cpu_count() or 1
        return LocalExecutor(record.name, int(capacity), nice=nice, sandbox=sandbox)
    from headrace.engine.executors.ray import RayExecutor, RayUnavailable

    try:
        return RayExecutor(
            record.name,
            address=ray.get("address"),
            num_cpus=ray.get("num_cpus"),
            max_steps=ray.get("max_concurrent_steps"),
        )
    except RayUnavailable as exc:
        return UnavailableExecutor(record.name, f"compute target {record.name!r}: {exc}")
