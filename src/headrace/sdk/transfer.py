"""Where DataTransferStep and the `transfer` targets lived before they became a kind package:
they are in `headrace.kinds.transfer` now (import them from `headrace`, or SDK v1's
`azureml.*` names).

This module keeps `from headrace.sdk.transfer import DataTransferStep` working for code
written then. It imports nothing at import time (the SDK layer sits below the kinds): each
name is looked up in `headrace.kinds.transfer` when first used.
"""

from __future__ import annotations

import importlib
from typing import Any

_NAMES = (
    "DataFactoryCompute",
    "DataFactoryComputeConfiguration",
    "DataTransferStep",
    "TransferCompute",
    "TransferComputeProvisioningConfiguration",
)
__all__ = list(_NAMES)


def __getattr__(name: str) -> Any:
    if name not in _NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module("headrace.kinds.transfer.sdk"), name)
