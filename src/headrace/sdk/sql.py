"""Where SqlStep and AdlaStep lived before they became a kind package: they are in
`headrace.kinds.sql` now (import them from `headrace`, or SDK v1's `azureml.*` names).

This module keeps `from headrace.sdk.sql import SqlStep` working for code written then. It
imports nothing at import time (the SDK layer sits below the kinds): each name is looked up
in `headrace.kinds.sql` when first used.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {"AdlaStep": "headrace.kinds.sql.sdk", "SqlStep": "headrace.kinds.sql.sdk"}
__all__ = list(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
