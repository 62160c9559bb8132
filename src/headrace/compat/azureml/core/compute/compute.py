"""`azureml.core.compute.compute`: the compute-target base class and its provisioning
configuration."""

from __future__ import annotations

from headrace.sdk.compute import ComputeTarget, ComputeTargetProvisioningConfiguration

__all__ = ["ComputeTarget", "ComputeTargetProvisioningConfiguration"]
