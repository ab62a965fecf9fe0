"""HTTP errors of the functions and their JSON bodies.

Every error response is JSON::

    {"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": "dryRun: Input should be a valid boolean",
               "field": "dryRun", "reason": "Input should be a valid boolean",
               "errors": [{"field": "dryRun", "reason": "..."}], "error_id": "3f2a9c1d7b4e"}}

``error_id`` is also on the log line of the failure, so a 500 seen by a caller
can be found in Cloud Logging (``jsonPayload.error_id``).
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import ValidationError


def new_error_id() -> str:
    """12 hex digits, unique enough to find one log line."""
    return uuid.uuid4().hex[:12]


class HttpError(Exception):
    """An error with an HTTP status; ``extra`` keys are added at the top level of the body.

    Args:
        message: one line for the caller; never a secret.
        field: the request field at fault, if any.
        reason: why that field is wrong.
    """

    status_code = 500
    status = "INTERNAL"

    def __init__(self, message: str, field: str | None = None, reason: str | None = None,
                 errors: list[dict[str, str]] | None = None, extra: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.reason = reason
        self.errors = errors or ([{"field": field, "reason": reason or message}] if field else [])
        self.extra = extra or {}
        self.headers = headers or {}

    def body(self, error_id: str) -> dict[str, Any]:
        """The JSON body of the response."""
        err: dict[str, Any] = {"code": self.status_code, "status": self.status, "message": self.message}
        if self.field:
            err["field"] = self.field
            err["reason"] = self.reason or self.message
        if self.errors:
            err["errors"] = self.errors
        err["error_id"] = error_id
        return {"error": err, **self.extra}


class BadRequest(HttpError):
    """400: the body, a field or the path is wrong. Nothing was written."""

    status_code = 400
    status = "INVALID_ARGUMENT"


class Unauthorized(HttpError):
    """401: no or a wrong bearer token (local ``serve`` with a token set)."""

    status_code = 401
    status = "UNAUTHENTICATED"


class NotFound(HttpError):
    """404: an unknown strategy id. Nothing was written."""

    status_code = 404
    status = "NOT_FOUND"


class MethodNotAllowed(HttpError):
    """405: the function does not answer this HTTP method. Nothing was written."""

    status_code = 405
    status = "METHOD_NOT_ALLOWED"


class Conflict(HttpError):
    """409: another Commander holds the account's lease; the ``skipped`` execution is recorded."""

    status_code = 409
    status = "ABORTED"


class Unavailable(HttpError):
    """503: the store (Firestore) could not be reached; nothing was traded on unrecorded state. Retry later."""

    status_code = 503
    status = "UNAVAILABLE"


class Internal(HttpError):
    """500 raised on purpose: a run that failed and was recorded as ``failed``."""

    status_code = 500
    status = "INTERNAL"


def from_validation(exc: ValidationError, prefix: str = "") -> BadRequest:
    """A :class:`BadRequest` naming every bad field (dotted path) and its reason."""
    errors = []
    for e in exc.errors(include_url=False, include_input=False):
        loc = ".".join(str(x) for x in e["loc"]) or "body"
        reason = e["msg"]
        if e["type"] == "extra_forbidden":
            reason = "unknown field"
        errors.append({"field": prefix + loc, "reason": reason})
    first = errors[0]
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return BadRequest(f"{first['field']}: {first['reason']}{more}", first["field"], first["reason"], errors)
