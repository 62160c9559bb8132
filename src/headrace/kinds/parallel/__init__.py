"""ParallelRunStep as a kind package: `sdk.py` (ParallelRunConfig, ParallelRunStep),
`spec.py` (ParallelSpec, what travels to the step), `program.py` (the step's process: the
coordinator) with `worker.py` (each worker process) and `entry.py` (what entry scripts import
as `azureml_user.parallel_run`). See headrace.kinds for the contract."""

from headrace.kinds.parallel.sdk import ParallelRunConfig, ParallelRunStep

__all__ = ["ParallelRunConfig", "ParallelRunStep"]
