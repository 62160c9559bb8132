"""`azureml_user.parallel_run`: what an entry script imports in its worker process.

`EntryScript().logger` logs to the worker's own log (`logs/user/worker_<n>.txt` in the
step's files); `output_dir` is the step's output folder (for output_action='summary_only',
where the script writes its own files); `working_dir` the step's working folder.
"""

from __future__ import annotations

import logging
import os

__all__ = ["EntryScript"]

_STATE: dict[str, str] = {}


class EntryScript:
    """SDK v1's helper for entry scripts (azureml_user.parallel_run.EntryScript)."""

    @property
    def logger(self) -> logging.Logger:
        return logging.getLogger(_STATE.get("logger", "parallel_run.worker"))

    @property
    def output_dir(self) -> str:
        return _STATE.get("output_dir", os.getcwd())

    @property
    def working_dir(self) -> str:
        return os.getcwd()

    @property
    def log_dir(self) -> str:
        return _STATE.get("log_dir", os.path.join(os.getcwd(), "logs"))
