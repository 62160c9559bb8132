"""The JSON wire format between `RemoteBackend` and the server's /api/v1 routes.

Records travel as plain objects with their field names; datetimes as ISO 8601 text. Errors
travel in the server's one error shape; `error_from_body` turns one back into the headrace
exception the local backend would have raised, by the exception's class name (sent as the
first detail's `Code`) or else by the error's `Code`. Used by both sides, so it imports
nothing of the server.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Any

from headrace import errors
from headrace.store.records import (
    PipelineEndpointRecord,
    PipelineRunRecord,
    PublishedPipelineRecord,
    StepPreview,
    Submission,
    from_wire,
    to_wire,
)

__all__ = [
    "CLASS_DETAIL",
    "endpoint_from_document",
    "error_from_body",
    "from_wire",
    "manifest_id",
    "published_pipeline_from_document",
    "submission_from_wire",
    "submission_to_wire",
    "to_wire",
    "url_path",
    "url_segment",
]


# The detail whose Code names the exception class (the shape's Details hold dicts).
CLASS_DETAIL = "HeadraceErrorClass"

# Error codes of the server's status table, for errors from routes that send no class name.
_BY_CODE: dict[str, type[errors.HeadraceError]] = {
    "NotFound": errors.NotFoundError,
    "UserError": errors.UserError,
    "ValidationError": errors.UserError,
    "BadRequest": errors.UserError,
    "Conflict": errors.ConflictError,
    "PipelineDisabled": errors.PipelineDisabledError,
    "ConfigError": errors.ConfigError,
    "ServiceUnavailable": errors.StoreError,
}


def submission_to_wire(submission: Submission) -> dict[str, Any]:
    return {
        "run": to_wire(submission.run),
        "previews": [to_wire(p) for p in submission.previews],
    }


def submission_from_wire(data: dict[str, Any]) -> Submission:
    return Submission(
        run=from_wire(PipelineRunRecord, data["run"]),
        previews=[from_wire(StepPreview, p) for p in data.get("previews", [])],
    )


def _when(text: Any) -> datetime:
    if isinstance(text, str) and text:
        return datetime.fromisoformat(text)
    return datetime.now(timezone.utc)


def published_pipeline_from_document(doc: dict[str, Any]) -> PublishedPipelineRecord:
    """A published pipeline from the document of GET /api/v1/published-pipelines/{id}."""
    return PublishedPipelineRecord(
        id=doc["Id"],
        name=doc["Name"],
        description=doc.get("Description"),
        version=doc.get("Version"),
        graph_id=doc["GraphId"],
        status=doc["Status"],
        continue_on_step_failure=bool(doc.get("ContinueRunOnStepFailure")),
        source_run_id=doc.get("SourceRunId"),
        created_at=_when(doc.get("CreatedDate")),
    )


def endpoint_from_document(doc: dict[str, Any]) -> PipelineEndpointRecord:
    """A pipeline endpoint from its document (GET /api/v1/pipeline-endpoints...)."""
    return PipelineEndpointRecord(
        id=doc["Id"],
        name=doc["Name"],
        description=doc.get("Description"),
        status=doc["Status"],
        default_version=str(doc["DefaultVersion"]),
        versions={str(k): str(v) for k, v in dict(doc.get("Versions") or {}).items()},
        created_at=_when(doc.get("CreatedDate")),
    )


def manifest_id(manifest: dict[str, Any]) -> str:
    """A snapshot's id: the hash of its manifest, as `engine.snapshots` computes it."""
    text = json.dumps(manifest, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _error_class(name: str | None) -> type[errors.HeadraceError] | None:
    if not name or name not in errors.__all__:
        return None
    klass = getattr(errors, name, None)
    if isinstance(klass, type) and issubclass(klass, errors.HeadraceError):
        return klass
    return None


def error_from_body(body: Any, status: int, where: str) -> errors.HeadraceError:
    """The headrace exception a server error body stands for (status: the HTTP status)."""
    error = body.get("Error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return errors.HeadraceError(
            f"The server at {where} answered HTTP {status} without a headrace error body; "
            "is that URL a headrace server?"
        )
    message = str(error.get("Message") or f"HTTP {status}")
    details = [d for d in error.get("Details") or [] if isinstance(d, dict)]
    named = [d for d in details if d.get("Target") == CLASS_DETAIL]
    klass = _error_class(named[0].get("Code") if named else None)
    if klass is None:
        klass = _BY_CODE.get(str(error.get("Code")), errors.HeadraceError)
    # Build without the class's own __init__ (PipelineValidationError takes a problem list).
    exc = klass.__new__(klass)
    Exception.__init__(exc, message)
    if isinstance(exc, errors.PipelineValidationError):
        exc.problems = [str(d.get("Message")) for d in details if d.get("Target") != CLASS_DETAIL]
    return exc


def url_segment(text: str) -> str:
    """One URL path segment (a name or an id), with `/` and the rest escaped."""
    from urllib.parse import quote

    return quote(str(text), safe="")


def url_path(path: str) -> str:
    """A relative path for a `{...:path}` route: each segment escaped, slashes kept."""
    from urllib.parse import quote

    return "/".join(quote(part, safe="") for part in path.split("/"))
