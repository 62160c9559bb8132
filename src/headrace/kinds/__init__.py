"""Step kinds as packages (issue 15): one package per kind with one contract.

A kind is a package `headrace.kinds.<kind>` with three parts:

- `sdk.py`: the SDK class users build (its signature and SDK v1's validation, raising
  UserError). It imports the SDK layer only, never the engine.
- `spec.py`: the typed description of one step of this kind, a frozen dataclass with
  `to_json()` / `from_json()`. The SDK class makes it; the step's program receives the same
  object, rebuilt from the JSON (no argv string to re-parse).
- `program.py`: `main(spec) -> int`, what runs inside the step's own process.

The SDK class hands the builder `(kind, spec JSON)` through `PipelineStep._kind_spec()`; the
builder records the step as a command step running `python -m headrace.kinds` with the kind
and the spec in its environment (`HEADRACE_STEP_KIND`, `HEADRACE_STEP_SPEC`), so reuse
fingerprints, retries, isolation, adoption and executors treat it as any other step. This
module's `main` looks the kind up in `KINDS` (loaded lazily: nothing of a kind is imported
until a step of that kind starts) and calls its program.

ParallelRunStep (`parallel`) and SparkStep (`spark`) are built this way; SqlStep and
DataTransferStep still use the older argv convention (sdk/<kind>.py + engine/<kind>run.py)
and can move here.
"""

from __future__ import annotations

import importlib
import os
import sys

__all__ = ["KINDS", "KIND_VARIABLE", "SPEC_VARIABLE", "main"]

KIND_VARIABLE = "HEADRACE_STEP_KIND"
SPEC_VARIABLE = "HEADRACE_STEP_SPEC"

# kind name -> (spec class "module:Class", program module)
KINDS: dict[str, tuple[str, str]] = {
    "parallel": ("headrace.kinds.parallel.spec:ParallelSpec", "headrace.kinds.parallel.program"),
    "spark": ("headrace.kinds.spark.spec:SparkSpec", "headrace.kinds.spark.program"),
}


def load_spec(kind: str, text: str) -> object:
    """The kind's spec object from its JSON."""
    if kind not in KINDS:
        raise KeyError(kind)
    module, _, name = KINDS[kind][0].partition(":")
    cls = getattr(importlib.import_module(module), name)
    return cls.from_json(text)


def main() -> int:
    kind = os.environ.get(KIND_VARIABLE, "")
    text = os.environ.get(SPEC_VARIABLE, "")
    if kind not in KINDS or not text:
        sys.stderr.write(
            f"headrace.kinds: this process has no step kind ({KIND_VARIABLE}={kind!r}); "
            f"it runs inside a step of one of: {', '.join(sorted(KINDS))}.\n"
        )
        return 2
    spec = load_spec(kind, text)
    program = importlib.import_module(KINDS[kind][1])
    return int(program.main(spec))
