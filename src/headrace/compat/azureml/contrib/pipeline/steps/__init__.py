"""`azureml.contrib.pipeline.steps`: where SDK v1's preview ParallelRunStep lived (the same
classes as `azureml.pipeline.steps`)."""

from headrace.kinds.parallel import ParallelRunConfig, ParallelRunStep

__all__ = ["ParallelRunConfig", "ParallelRunStep"]
