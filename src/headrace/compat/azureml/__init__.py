"""`azureml.*` (SDK v1) names, so pipeline code ports by changing `azureml.` to
`headrace.compat.azureml.` in its imports."""
