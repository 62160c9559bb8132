"""The typed description of one ParallelRunStep, made by the SDK class (sdk.py) and read by
the step's program (program.py) from the same class: no argv string in between."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["ParallelSpec", "parse_size"]

_UNITS = {"": 1, "B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}


def parse_size(text: str) -> tuple[float, str] | None:
    """('10KB' -> (10.0, 'KB')); None when `text` is not a number with an optional unit."""
    raw = text.strip().upper()
    unit = next((u for u in ("KB", "MB", "GB", "B") if raw.endswith(u)), "")
    number = raw[: len(raw) - len(unit)].strip()
    try:
        value = float(number)
    except ValueError:
        return None
    if not math.isfinite(value) or value <= 0:
        return None
    return value, unit


def size_in_bytes(value: float, unit: str) -> int:
    return max(1, int(value * _UNITS[unit]))


@dataclass(frozen=True)
class ParallelSpec:
    """One ParallelRunStep. Settings given as PipelineParameters are named in `parameters`:
    the program reads their run values from `AML_PARAMETER_<setting>`."""

    entry_script: str
    inputs: tuple[tuple[str, str], ...]  # (input name, "file" | "tabular"), in order
    output: str | None = None
    output_action: str = "append_row"
    append_row_file_name: str = "parallel_run_step.txt"
    mini_batch_size: str | None = None  # None: 10 files, or 1MB of a table
    process_count_per_node: int | None = None  # None: the machine's cores
    node_count: int = 1
    error_threshold: int = -1
    allowed_failed_count: int | None = None
    allowed_failed_percent: float | None = None
    run_invocation_timeout: int = 60
    run_max_try: int = 3
    logging_level: str = "INFO"
    partition_keys: tuple[str, ...] = ()  # one mini-batch per distinct key
    # (input, partition_format) of FileDataset inputs partitioned by their paths
    partition_formats: tuple[tuple[str, str], ...] = ()
    parameters: tuple[str, ...] = ()

    def input_kind(self) -> str:
        return self.inputs[0][1] if self.inputs else "file"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> ParallelSpec:
        raw: dict[str, Any] = json.loads(text)
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in raw.items() if k in known}
        values["inputs"] = tuple(tuple(pair) for pair in values.get("inputs", ()))
        values["parameters"] = tuple(values.get("parameters", ()))
        values["partition_keys"] = tuple(values.get("partition_keys", ()))
        values["partition_formats"] = tuple(
            (str(a), str(b)) for a, b in values.get("partition_formats", ())
        )
        return cls(**values)
