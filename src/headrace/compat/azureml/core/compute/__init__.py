"""`azureml.core.compute`: compute targets. An `AmlCompute` cluster is a local process pool
running at most `max_nodes` steps at once. An `AdlaCompute` (attached with
`ComputeTarget.attach(ws, name, AdlaCompute.attach_configuration(...))`) is headrace's DuckDB
`sql` target, used by AdlaStep. A `DataFactoryCompute` (made with
`provisioning_configuration(location=...)` or `attach_configuration(...)`) is headrace's local
`transfer` target, used by DataTransferStep (headrace.sdk.transfer).

DatabricksCompute is not here yet: it belongs to the Spark work of a later issue, and
importing it raises NotYetImplementedError (an ImportError) saying so.
"""

from __future__ import annotations

from headrace.compat.azureml._planned import planned_names
from headrace.sdk.compute import AdlaCompute, AmlCompute, ComputeTarget
from headrace.sdk.transfer import DataFactoryCompute

__all__ = ["AdlaCompute", "AmlCompute", "ComputeTarget", "DataFactoryCompute"]

__getattr__ = planned_names(
    __name__,
    {
        "DatabricksCompute": "planned as the Spark target",
    },
)
