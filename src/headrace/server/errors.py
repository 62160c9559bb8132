"""The one error shape of the server and the one table that turns errors into HTTP statuses.

Every error body is SDK v1's:
`{"Error": {"Code", "Message", "Target", "Details": []}, "Correlation": {"RequestId"}}`.
Routes raise `HeadraceError`s (from the backend) or `ApiError` (for HTTP-only problems such as a
missing token); nothing else here knows about routes. No FastAPI import: the CLI uses this too.
"""

from __future__ import annotations

import uuid
from typing import Any

from headrace.errors import (
    ConfigError,
    ConflictError,
    HeadraceError,
    NotFoundError,
    NotificationError,
    StoreError,
    UserError,
)

__all__ = ["STATUS_TABLE", "ApiError", "error_body", "status_of"]


class ApiError(Exception):
    """An HTTP-level failure: `status`, an SDK v1 error `code` and a message a person can act on."""

    def __init__(self, status: int, code: str, message: str, *, target: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.target = target


# The first class in an error's MRO found here decides its status and code.
STATUS_TABLE: dict[type[BaseException], tuple[int, str]] = {
    NotFoundError: (404, "NotFound"),
    UserError: (400, "UserError"),
    ConflictError: (409, "Conflict"),
    ConfigError: (500, "ConfigError"),
    # A test message the SMTP server or webhook refused: the request was fine, the far side
    # was not (Failed Dependency, not a server error).
    NotificationError: (424, "NotificationFailed"),
    StoreError: (503, "ServiceUnavailable"),
    HeadraceError: (500, "InternalServerError"),
}


def status_of(exc: HeadraceError) -> tuple[int, str]:
    """The HTTP status and error code for a headrace error (by its nearest listed class)."""
    for klass in type(exc).__mro__:
        if klass in STATUS_TABLE:
            status, code = STATUS_TABLE[klass]
            if klass is ConflictError and type(exc).__name__ == "PipelineDisabledError":
                return status, "PipelineDisabled"
            return status, code
    return 500, "InternalServerError"


def error_body(
    code: str,
    message: str,
    *,
    target: str | None = None,
    details: list[dict[str, Any]] | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    return {
        "Error": {
            "Code": code,
            "Message": message,
            "Target": target,
            "Details": details or [],
        },
        "Correlation": {"RequestId": request_id or str(uuid.uuid4())},
    }
