"""`azureml.widgets`: `RunDetails(run).show()`, the live status of a run: an updating table in
Jupyter (an ipywidgets widget with `pip install 'headrace[widgets]'`), a live table drawn with
rich in a terminal, returning when the run ends (headrace.sdk.rundetails)."""

from __future__ import annotations

from headrace.sdk.rundetails import RunDetails

__all__ = ["RunDetails"]
