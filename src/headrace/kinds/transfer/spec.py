"""The typed description of one DataTransferStep, made by the SDK class (sdk.py) and read by
the step's program (program.py): which input is copied to which output, where the verified
copy is then published, and how the copy runs."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["REFERENCE_TYPES", "VERIFY_MODES", "TransferSpec"]

REFERENCE_TYPES = ("file", "directory")
VERIFY_MODES = ("checksum", "size")


@dataclass(frozen=True)
class TransferSpec:
    """One DataTransferStep. Paths are not here: the runtime gives the process the source's
    and the output's (`AZUREML_DATAREFERENCE_<port>`). A fixed destination is a path on a
    datastore (`destination_datastore`, `destination_path`), or the value of a DataPath
    parameter (`destination_parameter`) on `destination_datastore`."""

    source: str  # the source input's port
    output: str  # the output port the copy goes to
    destination_datastore: str | None = None
    destination_path: str | None = None
    destination_parameter: str | None = None
    source_type: str | None = None  # "file" | "directory"; None: what the source is
    destination_type: str | None = None
    parallelism: int = 8
    chunk_mb: int = 4
    verify: str = "checksum"  # or "size"

    def __post_init__(self) -> None:
        for name in ("source_type", "destination_type"):
            value = getattr(self, name)
            if value is not None and value not in REFERENCE_TYPES:
                raise ValueError(
                    f"TransferSpec {name} must be 'file' or 'directory', not {value!r}"
                )
        if self.verify not in VERIFY_MODES:
            raise ValueError(
                f"TransferSpec verify must be 'checksum' or 'size', not {self.verify!r}"
            )
        for name in ("parallelism", "chunk_mb"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"TransferSpec {name} must be a positive int, not {value!r}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> TransferSpec:
        raw: Any = json.loads(text)
        if not isinstance(raw, dict):
            raise ValueError("TransferSpec must be a JSON object")
        values = {f.name: raw[f.name] for f in fields(cls) if f.name in raw}
        for name in ("source", "output"):
            if not isinstance(values.get(name), str):
                raise ValueError(f"TransferSpec needs {name!r}, a port name")
        for name in ("destination_datastore", "destination_path", "destination_parameter"):
            if not isinstance(values.get(name), (str, type(None))):
                raise ValueError(f"TransferSpec {name} must be text or null")
        return cls(**values)
