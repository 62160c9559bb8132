"""SparkStep as a kind package: `sdk.py` (SparkStep, SDK v1's DatabricksStep), `compute.py`
(the `spark` target, SDK v1's DatabricksCompute), `spec.py` (SparkSpec, what travels to the
step), `program.py` (the step's process: a SparkSession, then the script or notebook) with
`notebook.py` (notebooks run cell by cell, `dbutils`) and `master.py` (which masters are
accepted, and whether one answers). `legacy.py` runs steps recorded before the move
(`python -m headrace.engine.sparkrun ...`). See headrace.kinds for the contract."""

from headrace.kinds.spark.compute import DatabricksCompute, SparkCompute
from headrace.kinds.spark.sdk import DatabricksStep, SparkStep

__all__ = ["DatabricksCompute", "DatabricksStep", "SparkCompute", "SparkStep"]
