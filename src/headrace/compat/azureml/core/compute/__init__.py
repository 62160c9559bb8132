"""`azureml.core.compute`: compute targets. An `AmlCompute` cluster is a local process pool
running at most `max_nodes` steps at once. An `AdlaCompute` (attached with
`ComputeTarget.attach(ws, name, AdlaCompute.attach_configuration(...))`) is headrace's DuckDB
`sql` target, used by AdlaStep. A `DataFactoryCompute` (made with
`provisioning_configuration(location=...)` or `attach_configuration(...)`) is headrace's local
`transfer` target, used by DataTransferStep (headrace.kinds.transfer). A `DatabricksCompute` is
a `spark` target on this machine (headrace.kinds.spark): DatabricksSteps on it run PySpark on
the master named by the workspace setting `spark_master` (workspace.json), default local[*].
"""

from __future__ import annotations

from headrace.compat.azureml._planned import planned_names
from headrace.kinds.spark import DatabricksCompute
from headrace.kinds.transfer import DataFactoryCompute
from headrace.sdk.compute import AdlaCompute, AmlCompute, ComputeTarget

__all__ = ["AdlaCompute", "AmlCompute", "ComputeTarget", "DataFactoryCompute", "DatabricksCompute"]

__getattr__ = planned_names(__name__)
