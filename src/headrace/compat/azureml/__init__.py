"""`azureml.*` (SDK v1) names, so pipeline code ports by changing `azureml.` to
`headrace.compat.azureml.` in its imports.

The tree mirrors the SDK v1 modules that pipeline code imports from: `core` (with `compute`,
`runconfig`, `conda_dependencies`, `environment`, `datastore`, ...), `data` (`data_reference`,
`datapath`), `pipeline.core` (with `graph`, `builder`, `pipeline`, `run`), `pipeline.steps` and
`exceptions`. Every name is the headrace object itself, re-exported (so `type(t) is
AmlCompute` and `except ComputeTargetException` behave as in SDK v1); nothing here adds
behaviour of its own. See docs/porting.md for what maps to what and what differs.

`alias` lets the same code run with its `azureml.` imports unchanged (an explicit opt-in:
`python -m headrace.v1 script.py`, `%load_ext headrace.v1`); `_planned` is the table of SDK
v1 names headrace does not have, each with what to use instead.
"""

from __future__ import annotations

from headrace.compat.azureml.alias import MissingModuleFinder

__all__: list[str] = []

# `from headrace.compat.azureml.pipeline.core.pipeline_draft import PipelineDraft` says what to use
# instead, like its `azureml.` spelling through the alias (see _planned).
MissingModuleFinder.install()
