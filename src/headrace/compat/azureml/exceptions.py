"""`azureml.exceptions`: the SDK v1 exception names, bound to headrace's error tree.

    AzureMLException        = HeadraceError (the base of every error headrace raises)
    UserErrorException      = UserError (also a ValueError)
    ComputeTargetException  = ComputeTargetException (a missing or invalid compute target)
    WorkspaceException      = WorkspaceNotFoundError (SDK v1 raised it for a missing workspace)
    ActivityFailedException = ActivityFailedException (a waited-on run did not finish)
    WebserviceException     = ModelNotFoundError (SDK v1 raised it for a missing model)

They are the same classes, not copies, so `except AzureMLException` catches every headrace
error. One difference: creating an existing workspace without exist_ok raises
WorkspaceExistsError (a HeadraceError), not WorkspaceException.
"""

from __future__ import annotations

from headrace.errors import ActivityFailedException, ComputeTargetException
from headrace.errors import HeadraceError as AzureMLException
from headrace.errors import ModelNotFoundError as WebserviceException
from headrace.errors import UserError as UserErrorException
from headrace.errors import WorkspaceNotFoundError as WorkspaceException

__all__ = [
    "ActivityFailedException",
    "AzureMLException",
    "ComputeTargetException",
    "UserErrorException",
    "WebserviceException",
    "WorkspaceException",
]
