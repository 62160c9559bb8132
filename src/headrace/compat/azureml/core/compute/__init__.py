"""`azureml.core.compute`: compute targets. An `AmlCompute` cluster is a local process pool
running at most `max_nodes` steps at once. An `AdlaCompute` (attached with
`ComputeTarget.attach(ws, name, AdlaCompute.attach_configuration(...))`) is headrace's DuckDB
`sql` target, used by AdlaStep.

DatabricksCompute and DataFactoryCompute are not here yet: they belong to the Spark and
data-transfer work of a later issue, and importing one raises NotYetImplementedError (an
ImportError) saying so.
"""

from __future__ import annotations

from headrace.compat.azureml._planned import planned_names
from headrace.sdk.compute import AdlaCompute, AmlCompute, ComputeTarget

__all__ = ["AdlaCompute", "AmlCompute", "ComputeTarget"]

__getattr__ = planned_names(
    __name__,
    {
        "DataFactoryCompute": "planned as the data-transfer engine",
        "DatabricksCompute": "planned as the Spark target",
    },
)
