"""Compute targets: where steps run.

A `local` target always exists (a process pool as wide as the machine). The SDK v1 cluster
idiom creates more: `ComputeTarget.create(ws, name, AmlCompute.provisioning_configuration(
max_nodes=4))` makes a local process pool that runs at most `max_nodes` steps at once
(`LocalCompute` is the native name). `ComputeTarget(ws, name)` raises ComputeTargetException
when there is none, so the SDK's try/except idiom works.

A `sql` target (`SqlCompute.provisioning_configuration(memory_limit=..., threads=...)`, or SDK
v1's `ComputeTarget.attach(ws, name, AdlaCompute.attach_configuration(...))`) is a local process
pool too; it carries DuckDB settings that a SqlStep given the target object picks up (see
headrace.kinds.sql). The Azure account fields of AdlaCompute are recorded and not used.
"""

from __future__ import annotations

import os
import re
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any

from headrace.errors import ComputeTargetException

if TYPE_CHECKING:
    from headrace.sdk.workspace import Workspace
    from headrace.store.records import ComputeTargetRecord

__all__ = [
    "AdlaCompute",
    "AdlaComputeAttachConfiguration",
    "AmlCompute",
    "AmlComputeProvisioningConfiguration",
    "ComputeTarget",
    "ComputeTargetProvisioningConfiguration",
    "ComputeTargetStatus",
    "LocalCompute",
    "SqlCompute",
    "SqlComputeProvisioningConfiguration",
]


_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_MEMORY = re.compile(r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$", re.IGNORECASE)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


class ComputeTargetProvisioningConfiguration:
    """What to create: a type and its settings."""

    type = "local"

    def __init__(self, **settings: Any) -> None:
        self.settings = settings

    def validate_configuration(self) -> None:
        max_nodes = self.settings.get("max_nodes")
        min_nodes = self.settings.get("min_nodes") or 0
        if max_nodes is not None and (
            not isinstance(max_nodes, int) or isinstance(max_nodes, bool) or max_nodes < 1
        ):
            raise ComputeTargetException(f"max_nodes must be a positive int, not {max_nodes!r}.")
        if not isinstance(min_nodes, int) or isinstance(min_nodes, bool) or min_nodes < 0:
            raise ComputeTargetException(f"min_nodes must be 0 or more, not {min_nodes!r}.")
        if max_nodes is not None and min_nodes > max_nodes:
            raise ComputeTargetException(
                f"min_nodes ({min_nodes}) is larger than max_nodes ({max_nodes})."
            )


class AmlComputeProvisioningConfiguration(ComputeTargetProvisioningConfiguration):
    type = "AmlCompute"


class SqlComputeProvisioningConfiguration(ComputeTargetProvisioningConfiguration):
    """A `sql` target: DuckDB's memory_limit and threads for the SqlSteps that use it."""

    type = "sql"

    def validate_configuration(self) -> None:
        super().validate_configuration()
        memory = self.settings.get("memory_limit")
        if memory is not None and (not isinstance(memory, str) or not _MEMORY.match(memory)):
            raise ComputeTargetException(
                f"memory_limit {memory!r} is not a size; write it like '512MB' or '4GB'."
            )
        threads = self.settings.get("threads")
        if threads is not None and (
            not isinstance(threads, int) or isinstance(threads, bool) or threads < 1
        ):
            raise ComputeTargetException(f"threads must be a positive int, not {threads!r}.")


class AdlaComputeAttachConfiguration(SqlComputeProvisioningConfiguration):
    """SDK v1's Data Lake Analytics attach configuration; the account fields are recorded."""

    type = "AdlaCompute"


class ComputeTargetStatus:
    """The status of a compute target (SDK v1's `AmlComputeStatus`)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data
        self.current_node_count = data["currentNodeCount"]
        self.target_node_count = data["targetNodeCount"]
        self.provisioning_state = data["provisioningState"]
        self.allocation_state = data["allocationState"]
        self.vm_size = data["vmSize"]

    def serialize(self) -> dict[str, Any]:
        return dict(self._data)

    def __repr__(self) -> str:
        return f"ComputeTargetStatus({self._data!r})"


class ComputeTarget:
    """A compute target of a workspace. `ComputeTarget(ws, name)` gets an existing one."""

    _type = "local"

    def __new__(cls, workspace: Workspace | None = None, name: str | None = None) -> Any:
        if workspace is None or name is None:
            return super().__new__(cls)
        record = workspace.backend.find_compute_target(name)
        if record is None:
            known = ", ".join(sorted(t.name for t in workspace.backend.list_compute_targets()))
            raise ComputeTargetException(
                f"ComputeTargetNotFound: Compute target with name {name!r} not found in "
                f"workspace {workspace.name!r} (known: {known}); create it with "
                "ComputeTarget.create(ws, name, AmlCompute.provisioning_configuration(...))."
            )
        target_cls = _class_for(record.type)
        if not issubclass(target_cls, cls):
            raise ComputeTargetException(
                f"Compute target {name!r} is of type {record.type}, not {cls.__name__}."
            )
        obj = super().__new__(target_cls)
        obj._init(workspace, record)
        return obj

    def __init__(self, workspace: Workspace | None = None, name: str | None = None) -> None:
        # Everything happens in __new__ (which may return a subclass, as SDK v1 does).
        pass

    def _init(self, workspace: Workspace, record: ComputeTargetRecord) -> None:
        self.workspace = workspace
        self.name = record.name
        self.type = record.type
        self._config = dict(record.config)
        self._created = record.created_at
        self.provisioning_state = "Succeeded"

    @classmethod
    def _from_record(cls, workspace: Workspace, record: ComputeTargetRecord) -> ComputeTarget:
        obj: ComputeTarget = object.__new__(_class_for(record.type))
        obj._init(workspace, record)
        return obj

    @staticmethod
    def create(
        workspace: Workspace,
        name: str,
        provisioning_configuration: ComputeTargetProvisioningConfiguration,
    ) -> ComputeTarget:
        """Create (or update) a compute target; a local process pool of `max_nodes` slots."""
        if not isinstance(name, str) or not _NAME.match(name):
            raise ComputeTargetException(
                f"Compute target name {name!r} is invalid: use 1-64 letters, digits, '-' or '_', "
                "starting with a letter, for example 'cpu-cluster'."
            )
        provisioning_configuration.validate_configuration()
        settings = dict(provisioning_configuration.settings)
        if name == "local" and provisioning_configuration.type != "local":
            raise ComputeTargetException(
                "The name 'local' is reserved for the built-in local target; choose another name."
            )
        record = workspace.backend.create_compute_target(
            name, provisioning_configuration.type, settings
        )
        return ComputeTarget._from_record(workspace, record)

    @staticmethod
    def attach(
        workspace: Workspace,
        name: str,
        attach_configuration: ComputeTargetProvisioningConfiguration,
    ) -> ComputeTarget:
        """Attach an existing compute (SDK v1 spelling); here the same as `create`."""
        return ComputeTarget.create(workspace, name, attach_configuration)

    @staticmethod
    def list(workspace: Workspace) -> list[ComputeTarget]:
        return list(workspace.compute_targets.values())

    @property
    def max_nodes(self) -> int:
        return int(self._config.get("max_nodes") or os.cpu_count() or 1)

    def wait_for_completion(
        self,
        show_output: bool = False,
        min_node_count: int | None = None,
        timeout_in_minutes: int = 25,
    ) -> None:
        """Provisioning is instant for local pools; prints the state like SDK v1."""
        if show_output:
            print('SucceededProvisioning operation finished, operation "Succeeded"')  # noqa: T201
            sys.stdout.flush()

    def get_status(self) -> ComputeTargetStatus:
        running = self.workspace.backend.running_steps(self.name)
        max_nodes = self.max_nodes
        min_nodes = int(self._config.get("min_nodes") or 0)
        created = _iso(self._created)
        idle_seconds = int(self._config.get("idle_seconds_before_scaledown") or 1800)
        data = {
            "currentNodeCount": running,
            "targetNodeCount": running,
            "nodeStateCounts": {
                "preparingNodeCount": 0,
                "runningNodeCount": running,
                "idleNodeCount": max(0, max_nodes - running),
                "unusableNodeCount": 0,
                "leavingNodeCount": 0,
                "preemptedNodeCount": 0,
            },
            "allocationState": "Steady",
            "allocationStateTransitionTime": created,
            "errors": None,
            "creationTime": created,
            "modifiedTime": created,
            "provisioningState": "Succeeded",
            "provisioningStateTransitionTime": created,
            "scaleSettings": {
                "minNodeCount": min_nodes,
                "maxNodeCount": max_nodes,
                "nodeIdleTimeBeforeScaleDown": f"PT{idle_seconds}S",
            },
            "vmPriority": str(self._config.get("vm_priority") or "dedicated").capitalize(),
            "vmSize": self._config.get("vm_size") or "local",
        }
        return ComputeTargetStatus(data)

    @property
    def status(self) -> ComputeTargetStatus:
        return self.get_status()

    def serialize(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "properties": dict(self._config)}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, max_nodes={self.max_nodes})"


class LocalCompute(ComputeTarget):
    """A pool of local processes (the native name)."""

    _type = "local"

    @staticmethod
    def provisioning_configuration(
        max_nodes: int | None = None, min_nodes: int = 0, **settings: Any
    ) -> ComputeTargetProvisioningConfiguration:
        return ComputeTargetProvisioningConfiguration(
            max_nodes=max_nodes, min_nodes=min_nodes, **settings
        )


class AmlCompute(ComputeTarget):
    """SDK v1's managed cluster; here a local process pool of `max_nodes` slots."""

    _type = "AmlCompute"

    @staticmethod
    def provisioning_configuration(
        vm_size: str = "",
        vm_priority: str = "dedicated",
        min_nodes: int = 0,
        max_nodes: int | None = None,
        idle_seconds_before_scaledown: int = 1800,
        admin_username: str | None = None,
        admin_user_password: str | None = None,
        admin_user_ssh_key: str | None = None,
        vnet_resourcegroup_name: str | None = None,
        vnet_name: str | None = None,
        subnet_name: str | None = None,
        tags: dict[str, str] | None = None,
        description: str | None = None,
        remote_login_port_public_access: str = "NotSpecified",
        identity_type: str | None = None,
        identity_id: list[str] | None = None,
        location: str | None = None,
        enable_node_public_ip: bool = True,
    ) -> AmlComputeProvisioningConfiguration:
        return AmlComputeProvisioningConfiguration(
            vm_size=vm_size,
            vm_priority=vm_priority,
            min_nodes=min_nodes,
            max_nodes=max_nodes,
            idle_seconds_before_scaledown=idle_seconds_before_scaledown,
            description=description,
            location=location,
        )


class SqlCompute(ComputeTarget):
    """A local process pool whose SqlSteps run DuckDB with these settings (the native name)."""

    _type = "sql"

    @staticmethod
    def provisioning_configuration(
        memory_limit: str | None = None,
        threads: int | None = None,
        max_nodes: int | None = None,
    ) -> SqlComputeProvisioningConfiguration:
        """`memory_limit` like '2GB' (DuckDB spills beyond it), `threads` per step, and at
        most `max_nodes` SqlSteps at once."""
        return SqlComputeProvisioningConfiguration(
            memory_limit=memory_limit, threads=threads, max_nodes=max_nodes
        )

    @property
    def memory_limit(self) -> str | None:
        value = self._config.get("memory_limit")
        return value if isinstance(value, str) else None

    @property
    def threads(self) -> int | None:
        value = self._config.get("threads")
        return value if isinstance(value, int) else None


class AdlaCompute(SqlCompute):
    """SDK v1's Azure Data Lake Analytics compute, attached as a DuckDB `sql` target."""

    _type = "AdlaCompute"

    @staticmethod
    def attach_configuration(
        resource_group: str | None = None,
        account_name: str | None = None,
        resource_id: str | None = None,
        *,
        memory_limit: str | None = None,
        threads: int | None = None,
    ) -> AdlaComputeAttachConfiguration:
        return AdlaComputeAttachConfiguration(
            resource_group=resource_group,
            account_name=account_name,
            resource_id=resource_id,
            memory_limit=memory_limit,
            threads=threads,
        )


def _class_for(type_: str) -> type[ComputeTarget]:
    """The class of a target type: the ComputeTarget subclass whose `_type` it is (the Ray,
    Spark and transfer targets live in their own modules and are found the same way)."""
    pending: list[type[ComputeTarget]] = [ComputeTarget]
    while pending:
        cls = pending.pop()
        if cls._type == type_ and cls is not ComputeTarget:
            return cls
        pending.extend(cls.__subclasses__())
    return ComputeTarget
