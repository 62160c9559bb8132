"""`azureml.core.compute`: compute targets. An `AmlCompute` cluster is a local process pool
running at most `max_nodes` steps at once.

DatabricksCompute, AdlaCompute and DataFactoryCompute are not here yet: they belong to the
Spark, SQL and data-transfer work of a later issue, and importing one raises
NotYetImplementedError (an ImportError) saying so.
"""

from __future__ import annotations

from headrace.compat.azureml._planned import planned_names
from headrace.sdk.compute import AmlCompute, ComputeTarget

__all__ = ["AmlCompute", "ComputeTarget"]

__getattr__ = planned_names(
    __name__,
    {
        "AdlaCompute": "planned as the DuckDB SQL target",
        "DataFactoryCompute": "planned as the data-transfer engine",
        "DatabricksCompute": "planned as the Spark target",
    },
)
