"""Step kinds as packages (issue 15): one package per kind with one contract.

A kind is a package `headrace.kinds.<kind>` with three parts:

- `sdk.py`: the SDK class users build (its signature and SDK v1's validation, raising
  UserError). It imports the SDK layer only, never the engine.
- `spec.py`: the typed description of one step of this kind, a frozen dataclass with
  `to_json()` / `from_json()`. The SDK class makes it; the step's program receives the same
  object, rebuilt from the JSON (no argv string to re-parse).
- `program.py`: `main(spec) -> int`, what runs inside the step's own process.

The SDK class hands the builder `(kind, spec JSON)` through `PipelineStep._kind_spec()`; the
graph records the step as a command step running `python -m headrace.kinds` whose
`step_kind` and `settings` (the spec as JSON data) say what it is (graph/model.py, schema
version 2). The runtime hands the process both (`HEADRACE_STEP_KIND`, `HEADRACE_STEP_SPEC`),
so reuse fingerprints, retries, isolation, adoption and executors treat it as any other
step, while the CLI and the portal show the kind ("SqlStep") and its settings. This module's
`main` looks the kind up in `KINDS` (loaded lazily: nothing of a kind is imported until a
step of that kind starts or is shown) and calls its program.

The kinds: ParallelRunStep (`parallel`), SparkStep and DatabricksStep (`spark`), SqlStep
and AdlaStep (`sql`), DataTransferStep (`transfer`). Adding a kind: a package with the three
modules, one `Kind` entry in `KINDS`, and a case in tests/test_kinds_contract.py, which then
runs it on every executor.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from typing import Any, NamedTuple

from headrace.graph.model import KIND_VARIABLE, SPEC_VARIABLE, StepNode

__all__ = [
    "KINDS",
    "KIND_VARIABLE",
    "SPEC_VARIABLE",
    "Kind",
    "kind_title",
    "load_spec",
    "main",
    "run_spec",
    "settings_text",
    "step_title",
]


class Kind(NamedTuple):
    """Where a kind's parts are, as import paths (nothing is imported until needed)."""

    spec: str  # "module:Class", the frozen spec dataclass
    program: str  # the module whose main(spec) runs in the step's process
    sdk: str  # "module:Class", the SDK class users build; its name is the kind's title

    @property
    def title(self) -> str:
        return self.sdk.rpartition(":")[2]


KINDS: dict[str, Kind] = {
    "parallel": Kind(
        "headrace.kinds.parallel.spec:ParallelSpec",
        "headrace.kinds.parallel.program",
        "headrace.kinds.parallel.sdk:ParallelRunStep",
    ),
    "spark": Kind(
        "headrace.kinds.spark.spec:SparkSpec",
        "headrace.kinds.spark.program",
        "headrace.kinds.spark.sdk:SparkStep",
    ),
    "sql": Kind(
        "headrace.kinds.sql.spec:SqlSpec",
        "headrace.kinds.sql.program",
        "headrace.kinds.sql.sdk:SqlStep",
    ),
    "transfer": Kind(
        "headrace.kinds.transfer.spec:TransferSpec",
        "headrace.kinds.transfer.program",
        "headrace.kinds.transfer.sdk:DataTransferStep",
    ),
}


def _spec_class(kind: str) -> Any:
    module, _, name = KINDS[kind].spec.partition(":")
    return getattr(importlib.import_module(module), name)


def load_spec(kind: str, text: str) -> Any:
    """The kind's spec object from its JSON (KeyError for a kind not in KINDS)."""
    if kind not in KINDS:
        raise KeyError(kind)
    return _spec_class(kind).from_json(text)


def run_spec(kind: str, spec: Any) -> int:
    """Run the kind's program on `spec` in this process (its exit code)."""
    program = importlib.import_module(KINDS[kind].program)
    return int(program.main(spec))


def kind_title(step_kind: str) -> str:
    """A registered kind's SDK class name ("sql" -> "SqlStep"); an unknown kind as it is."""
    entry = KINDS.get(step_kind)
    return entry.title if entry is not None else step_kind


def step_title(node: StepNode) -> str:
    """What a step is, as its SDK class: "SqlStep", "ParallelRunStep", "PythonScriptStep"..."""
    if node.step_kind is not None:
        return kind_title(node.step_kind)
    return "PythonScriptStep" if node.kind == "python_script" else "CommandStep"


def settings_text(settings: dict[str, Any] | None) -> list[tuple[str, str]]:
    """A step's settings as (name, value) rows to show, the values as JSON, unset ones left
    out."""
    rows = []
    for key, value in sorted((settings or {}).items()):
        if value is None or value in ([], {}):
            continue
        rows.append((key, value if isinstance(value, str) else json.dumps(value)))
    return rows


def main() -> int:
    kind = os.environ.get(KIND_VARIABLE, "")
    text = os.environ.get(SPEC_VARIABLE, "")
    if kind not in KINDS or not text:
        sys.stderr.write(
            f"headrace.kinds: this process has no step kind ({KIND_VARIABLE}={kind!r}); "
            f"it runs inside a step of one of: {', '.join(sorted(KINDS))}.\n"
        )
        return 2
    return run_spec(kind, load_spec(kind, text))
