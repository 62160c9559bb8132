"""`azureml.contrib`: the preview packages SDK v1 code still imports from."""

__all__: list[str] = []
