"""`azureml.core.compute`: compute targets. An `AmlCompute` cluster is a local process pool
running at most `max_nodes` steps at once.

DatabricksCompute, AdlaCompute and DataFactoryCompute are not here yet: they belong to the
Spark, SQL and data-transfer work of a later issue, and importing them fails plainly until then.
"""

from __future__ import annotations

from headrace.sdk.compute import AmlCompute, ComputeTarget

__all__ = ["AmlCompute", "ComputeTarget"]
