"""`azureml_user.parallel_run`: what an entry script imports in its worker process.

`EntryScript().logger` logs to the worker's own log (`logs/user/worker_<n>.txt` in the
step's files); `output_dir` is the step's output folder (for output_action='summary_only',
where the script writes its own files); `working_dir` the step's working folder.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EntryScript", "MiniBatchContext", "PartitionedBatch"]

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


@dataclass(frozen=True)
class PartitionedBatch:
    """A mini-batch of one partition (`partition_keys`), as the coordinator sends it."""

    data: Any
    values: dict[str, Any]

    def __len__(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class MiniBatchContext:
    """SDK v1's second argument of `run(mini_batch, mini_batch_context)`:
    `partition_key_value` maps each of `partition_keys` to this mini-batch's value ({}
    without partition_keys). `dataset` (SDK v1: the input filtered to the partition) is
    not provided (None): use `mini_batch` itself."""

    partition_key_value: dict[str, Any] = field(default_factory=dict)
    dataset: Any = None
