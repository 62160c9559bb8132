"""`azureml.contrib.pipeline`."""
