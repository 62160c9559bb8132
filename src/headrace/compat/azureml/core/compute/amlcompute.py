"""`azureml.core.compute.amlcompute`: the managed-cluster target (a local process pool here),
its provisioning configuration and its status."""

from __future__ import annotations

from headrace.sdk.compute import AmlCompute, AmlComputeProvisioningConfiguration
from headrace.sdk.compute import ComputeTargetStatus as AmlComputeStatus

__all__ = ["AmlCompute", "AmlComputeProvisioningConfiguration", "AmlComputeStatus"]
