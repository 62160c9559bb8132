"""`azureml.pipeline.steps.parallel_run_step`: see headrace.kinds.parallel."""

from headrace.kinds.parallel import ParallelRunConfig, ParallelRunStep

__all__ = ["ParallelRunConfig", "ParallelRunStep"]
