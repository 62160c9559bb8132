"""`azureml.pipeline.steps.parallel_run_config`: see headrace.kinds.parallel."""

from headrace.kinds.parallel import ParallelRunConfig, ParallelRunStep

__all__ = ["ParallelRunConfig", "ParallelRunStep"]
