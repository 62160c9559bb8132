"""The `ray` compute target: steps run as Ray tasks on a Ray cluster.

```
cluster = ComputeTarget.create(ws, "ray", RayCompute.attach_configuration(address="10.0.0.5:6379"))
local = ComputeTarget.create(ws, "ray-local", RayCompute.provisioning_configuration(num_cpus=2))
step = PythonScriptStep("train.py", compute_target=cluster, resources={"cpu": 2, "gpu": 1})
```

With an `address` the workspace's agent connects to that running cluster (what `ray start
--head` printed); without one it starts a Ray head of its own on 127.0.0.1 with `num_cpus`
CPUs, which stops with the agent. Each step attempt asks Ray for the step's `resources` (one
CPU when it names none) and runs on whichever node Ray picks; see headrace.engine.executors.ray
for what travels between the agent and the node.

SDK v1's `AmlCompute.provisioning_configuration(vm_size, min_nodes, max_nodes)` runs on Ray
when the workspace configuration (`workspace.json`) has `"amlcompute": {"backend": "ray",
"address": "<head>:<port>"}` (no address: a local head); `max_nodes` then bounds how many of
its steps run at once.

The agent drives one Ray cluster: targets naming two different clusters cannot both be used
by one workspace agent at the same time.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from headrace.errors import ComputeTargetException
from headrace.sdk.compute import ComputeTarget, ComputeTargetProvisioningConfiguration

__all__ = ["RayCompute", "RayComputeConfiguration"]


class RayComputeConfiguration(ComputeTargetProvisioningConfiguration):
    """A `ray` target's settings: a cluster address, or a local head's CPUs."""

    type = "ray"

    def validate_configuration(self) -> None:
        address = self.settings.get("address")
        if address is not None:
            if not isinstance(address, str) or not address.strip():
                raise ComputeTargetException(
                    f"address must be a Ray address like '127.0.0.1:6379', not {address!r}."
                )
            from headrace.engine.executors.ray import RayUnavailable, check_address

            try:
                check_address(address.strip())
            except RayUnavailable as exc:
                raise ComputeTargetException(str(exc)) from None
        for key in ("num_cpus", "max_concurrent_steps"):
            value = self.settings.get(key)
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or value < 1
            ):
                raise ComputeTargetException(f"{key} must be a positive int, not {value!r}.")
        if importlib.util.find_spec("ray") is None:
            raise ComputeTargetException(
                "Ray is not installed; install it with `pip install 'headrace[ray]'` (the same "
                "Ray version as the cluster's)."
            )


class RayCompute(ComputeTarget):
    """A Ray cluster (the native name)."""

    _type = "ray"

    @staticmethod
    def attach_configuration(
        address: str, max_concurrent_steps: int | None = None
    ) -> RayComputeConfiguration:
        """A running cluster at `address` (host:port of its head, as `ray start` prints it)."""
        return RayComputeConfiguration(
            address=address.strip() if isinstance(address, str) else address,
            max_concurrent_steps=max_concurrent_steps,
        )

    @staticmethod
    def provisioning_configuration(
        num_cpus: int | None = None, max_concurrent_steps: int | None = None
    ) -> RayComputeConfiguration:
        """A Ray head the agent starts on 127.0.0.1 with `num_cpus` CPUs (all by default)."""
        return RayComputeConfiguration(num_cpus=num_cpus, max_concurrent_steps=max_concurrent_steps)

    @property
    def address(self) -> str | None:
        value: Any = self._config.get("address")
        return value if isinstance(value, str) else None

    @property
    def max_nodes(self) -> int:
        return int(self._config.get("max_concurrent_steps") or self._config.get("num_cpus") or 1)
