"""DataTransferStep as a kind package: `sdk.py` (DataTransferStep and the `transfer` targets,
TransferCompute, DataFactoryCompute), `spec.py` (TransferSpec, what travels to the step),
`program.py` (the step's process) with `copy.py` (the streaming, verified copy). See
headrace.kinds for the contract. The SDK classes load on first use, so the step's process
(which imports only the spec and the program) does not import the SDK."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from headrace.kinds.transfer.sdk import (
        DataFactoryCompute,
        DataFactoryComputeConfiguration,
        DataTransferStep,
        TransferCompute,
        TransferComputeProvisioningConfiguration,
    )

__all__ = [
    "DataFactoryCompute",
    "DataFactoryComputeConfiguration",
    "DataTransferStep",
    "TransferCompute",
    "TransferComputeProvisioningConfiguration",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from headrace.kinds.transfer import sdk

        return getattr(sdk, name)
    raise AttributeError(f"module 'headrace.kinds.transfer' has no attribute {name!r}")
