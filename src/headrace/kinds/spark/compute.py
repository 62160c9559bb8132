"""The `spark` compute target and SDK v1's Databricks target, which runs as one here.

```
target = ComputeTarget.attach(ws, "spark", SparkCompute.attach_configuration(master="local[2]"))
```

A `spark` target is a local process pool whose SparkSteps run Spark on its `master`
(`local[*]`, `local[N]` or `spark://host:port`, checked to answer when attached) with its
`spark_conf`. A `DatabricksCompute` target's master comes from the workspace setting
`spark_master` (workspace.json), default `local[*]`. `ComputeTarget(ws, name)` finds these
classes by their `_type` once this module is imported (importing `headrace.SparkCompute`,
`headrace.SparkStep` or the azureml compat names does that).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from headrace.errors import ComputeTargetException
from headrace.kinds.spark.master import (
    DEFAULT_MASTER,
    SparkMasterError,
    check_master,
    spark_conf_text,
    workspace_master,
)
from headrace.sdk.compute import ComputeTarget, ComputeTargetProvisioningConfiguration

__all__ = [
    "DatabricksCompute",
    "DatabricksComputeAttachConfiguration",
    "SparkCompute",
    "SparkComputeAttachConfiguration",
]


class SparkComputeAttachConfiguration(ComputeTargetProvisioningConfiguration):
    """A `spark` target: a Spark master and settings for the SparkSteps that run on it."""

    type = "spark"

    def validate_configuration(self) -> None:
        super().validate_configuration()
        try:
            check_master(self.settings.get("master"))
            spark_conf_text(self.settings.get("spark_conf"))
        except SparkMasterError as exc:
            raise ComputeTargetException(str(exc)) from None


class DatabricksComputeAttachConfiguration(ComputeTargetProvisioningConfiguration):
    """SDK v1's Databricks attach configuration; the Azure fields are recorded, the access
    token is not kept."""

    type = "DatabricksCompute"


class SparkCompute(ComputeTarget):
    """A local process pool whose SparkSteps run Spark on `master` (the native name)."""

    _type = "spark"

    @staticmethod
    def attach_configuration(
        master: str = DEFAULT_MASTER,
        spark_conf: Mapping[str, Any] | None = None,
        max_nodes: int | None = None,
    ) -> SparkComputeAttachConfiguration:
        """`master` is `local[*]`, `local[N]` or `spark://host:port` (checked to answer when
        attached); `spark_conf` settings apply to every SparkStep on the target (a step's
        own override them); at most `max_nodes` steps run at once."""
        return SparkComputeAttachConfiguration(
            master=master, spark_conf=dict(spark_conf or {}), max_nodes=max_nodes
        )

    provisioning_configuration = attach_configuration

    @property
    def master(self) -> str:
        value = self._config.get("master")
        return value if isinstance(value, str) and value else DEFAULT_MASTER

    @property
    def spark_conf(self) -> dict[str, str]:
        return spark_conf_text(self._config.get("spark_conf"))


class DatabricksCompute(SparkCompute):
    """SDK v1's Databricks workspace, attached as a `spark` target on this machine.

    Its master is the workspace setting `spark_master` (workspace.json), default `local[*]`.
    """

    _type = "DatabricksCompute"

    @staticmethod
    def attach_configuration(  # type: ignore[override]
        resource_group: str | None = None,
        workspace_name: str | None = None,
        resource_id: str | None = None,
        access_token: str = "",
    ) -> DatabricksComputeAttachConfiguration:
        # The access token is a Databricks secret with no use here: it is not stored.
        return DatabricksComputeAttachConfiguration(
            resource_group=resource_group, workspace_name=workspace_name, resource_id=resource_id
        )

    @property
    def master(self) -> str:
        return workspace_master(getattr(self.workspace, "_config", None))
