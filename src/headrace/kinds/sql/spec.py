"""The typed description of one SqlStep, made by the SDK class (sdk.py) and read by the
step's program (program.py): which script, which inputs are tables, which outputs are
written in which format, which parameters of which type, and DuckDB's settings."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["OUTPUT_FORMATS", "PARAMETER_TYPES", "SqlSpec"]

OUTPUT_FORMATS = ("parquet", "csv")
PARAMETER_TYPES = ("int", "float", "bool", "str")


def _names(raw: Any, what: str) -> tuple[str, ...]:
    if not isinstance(raw, (list, tuple)) or not all(isinstance(v, str) for v in raw):
        raise ValueError(f"SqlSpec {what} must be a list of names, not {raw!r:.60}")
    return tuple(raw)


def _pairs(raw: Any, what: str, allowed: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, (list, tuple)) or not all(
        isinstance(p, (list, tuple)) and len(p) == 2 and isinstance(p[0], str) and p[1] in allowed
        for p in raw
    ):
        raise ValueError(
            f"SqlSpec {what} must be a list of [name, one of {', '.join(allowed)}], not {raw!r:.60}"
        )
    return tuple((str(p[0]), str(p[1])) for p in raw)


@dataclass(frozen=True)
class SqlSpec:
    """One SqlStep. Paths and values are not here: the runtime gives the process each
    input's and output's path (`AZUREML_DATAREFERENCE_<name>`) and each parameter's value
    (`AML_PARAMETER_<name>`)."""

    script: str  # relative to the step's source directory (its working folder)
    inputs: tuple[str, ...] = ()  # table names, one per input
    outputs: tuple[tuple[str, str], ...] = ()  # (name, "parquet" | "csv")
    params: tuple[tuple[str, str], ...] = ()  # (name, "int" | "float" | "bool" | "str")
    memory_limit: str | None = None  # DuckDB's, e.g. "2GB"
    threads: int | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> SqlSpec:
        raw = json.loads(text)
        if not isinstance(raw, dict) or not isinstance(raw.get("script"), str):
            raise ValueError("SqlSpec needs a 'script', the .sql file to run")
        memory, threads = raw.get("memory_limit"), raw.get("threads")
        if not isinstance(memory, (str, type(None))):
            raise ValueError(f"SqlSpec memory_limit must be text like '2GB', not {memory!r}")
        if threads is not None and (
            not isinstance(threads, int) or isinstance(threads, bool) or threads < 1
        ):
            raise ValueError(f"SqlSpec threads must be a positive int, not {threads!r}")
        return cls(
            script=raw["script"],
            inputs=_names(raw.get("inputs", ()), "inputs"),
            outputs=_pairs(raw.get("outputs", ()), "outputs", OUTPUT_FORMATS),
            params=_pairs(raw.get("params", ()), "params", PARAMETER_TYPES),
            memory_limit=memory,
            threads=threads,
        )
