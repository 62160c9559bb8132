"""SqlStep as a kind package: `sdk.py` (SqlStep, AdlaStep), `spec.py` (SqlSpec, what travels
to the step) and `program.py` (the step's process: DuckDB runs the script). See
headrace.kinds for the contract. The SDK classes load on first use, so the step's process
(which imports only the spec and the program) does not import the SDK."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from headrace.kinds.sql.sdk import AdlaStep, SqlStep

__all__ = ["AdlaStep", "SqlStep"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from headrace.kinds.sql import sdk

        return getattr(sdk, name)
    raise AttributeError(f"module 'headrace.kinds.sql' has no attribute {name!r}")
