"""The plumbing every function shares: log context and trace, auth, method, JSON body, error mapping.

Order of checks, so that nothing is written on a 4xx: bearer token (401) ->
method (405) -> JSON body (400) -> pydantic validation (400) -> reads of the
store to check ids (404) -> the step, which is the first thing that writes.

Every response is JSON. An unexpected exception becomes a 500 whose body
names only its type and an ``error_id``; the traceback is logged (redacted)
with the same ``error_id``.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Callable, TypeVar

import flask
from pydantic import BaseModel, ValidationError

from bus import logs, telemetry
from functions import auth
from functions.errors import (
    BadRequest,
    HttpError,
    Internal,
    MethodNotAllowed,
    Unavailable,
    from_validation,
    new_error_id,
)

log = logging.getLogger("functions")
M = TypeVar("M", bound=BaseModel)
#: A method's handler: the request -> (status code, JSON-able body).
Handler = Callable[[flask.Request], "tuple[int, dict[str, Any]]"]


def parse_body(request: flask.Request) -> dict[str, Any]:
    """The body as a JSON object, whatever the Content-Type (``curl -d`` sends form-encoded).

    An empty body is ``{}``.

    Raises:
        BadRequest: not UTF-8 JSON, or not an object.
    """
    raw = request.get_data(cache=True)
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadRequest("body: malformed JSON: not UTF-8", "body", "malformed JSON: not UTF-8") from None
    except json.JSONDecodeError as exc:
        reason = f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        raise BadRequest(f"body: {reason}", "body", reason) from None
    except RecursionError:
        reason = "malformed JSON: nested too deeply"
        raise BadRequest(f"body: {reason}", "body", reason) from None
    if not isinstance(data, dict):
        raise BadRequest("body: must be a JSON object", "body", "must be a JSON object")
    return data


def validate(model: type[M], data: dict[str, Any]) -> M:
    """``model`` validated from ``data``.

    Raises:
        BadRequest: naming each bad field and why.
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise from_validation(exc) from None


def _known_failure(exc: Exception) -> HttpError | None:
    """Internal failures whose message is ours and safe to show (no secrets)."""
    from functions.context import NotConfigured
    from functions.workflow_client import WorkflowConfigError

    if isinstance(exc, (NotConfigured, WorkflowConfigError)):
        return Internal(str(exc))
    if type(exc).__name__ == "StoreError":  # bus.store.StoreError: the store is unreachable
        return Unavailable(f"the store is unreachable: {str(exc)[:300]}")
    if type(exc).__name__ == "ConfigError":  # pipeline.settings.ConfigError, not imported here to stay light
        return Internal(f"deployed configuration is invalid: {exc}")
    return None


def respond(name: str, request: flask.Request, handlers: dict[str, Handler]) -> flask.Response:
    """Run the handler of ``request.method`` inside the function's log context; always answer JSON."""
    logs.ensure_configured()
    trace = logs.trace_fields(request.headers.get(logs.TRACE_HEADER), request.headers.get(logs.TRACEPARENT_HEADER))
    started = time.perf_counter()
    headers: dict[str, str] = {}
    with logs.context(function=name, **trace):
        try:
            auth.check(request.headers)
            handler = handlers.get(request.method)
            if handler is None:
                allowed = ", ".join(handlers)
                raise MethodNotAllowed(f"method {request.method} is not allowed; use {allowed}",
                                       headers={"Allow": allowed})
            status, payload = handler(request)
        except Exception as exc:  # every failure becomes a JSON answer with an error id
            err = exc if isinstance(exc, HttpError) else _known_failure(exc)
            error_id = new_error_id()
            if err is None:
                log.error("%s %s %s failed: unexpected %s", name, request.method, request.path, type(exc).__name__,
                          exc_info=exc, extra={"error_id": error_id})
                err = Internal(f"internal error ({type(exc).__name__}); error id {error_id} is in the logs")
            else:
                level = logging.ERROR if err.status_code >= 500 else logging.WARNING
                log.log(level, "%s %s %s -> %d: %s", name, request.method, request.path, err.status_code, err.message,
                        exc_info=exc if err.status_code >= 500 and err is not exc else None,
                        extra={"error_id": error_id})
            status, payload, headers = err.status_code, err.body(error_id), err.headers
        elapsed = time.perf_counter() - started
        log.info("%s %s %s -> %d in %.0f ms", name, request.method, request.path, status, elapsed * 1000)
        telemetry.observe_step(name, elapsed)  # orchestrator: the pipeline; strategy, reconcile, allocation: a step
    return flask.Response(json.dumps(payload, default=str), status=status, headers=headers,
                          mimetype="application/json")
