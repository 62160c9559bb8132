"""`azureml.contrib.pipeline`."""

__all__: list[str] = []
