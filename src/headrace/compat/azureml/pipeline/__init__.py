"""`azureml.pipeline`: the pipeline packages `core` (pipelines, data, parameters, runs) and
`steps`."""

from __future__ import annotations

__all__: list[str] = []
