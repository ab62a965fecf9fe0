"""Structured logs for Cloud Logging: one JSON object per line, written by google-cloud-logging's own
``StructuredLogHandler`` (stdout, no API call).

Cloud Functions (gen2) and Cloud Run parse a JSON line on stdout into a log
entry: ``severity`` and ``message`` become the entry's severity and text,
``logging.googleapis.com/trace`` / ``spanId`` / ``trace_sampled`` tie it to the
request's trace, ``logging.googleapis.com/sourceLocation`` to the code,
``logging.googleapis.com/labels`` (``python_logger``) to the logger, and every
other key lands in ``jsonPayload``. See
https://cloud.google.com/logging/docs/structured-logging.

Context travels in :mod:`contextvars`, so every line logged while a request is
handled carries its ``execution_id``, ``strategy_id``, ``function``,
``error_id`` and trace without passing them around::

    configure()                       # once per process (idempotent)
    with context(execution_id=eid, **trace_fields(request.headers.get(TRACE_HEADER))):
        log.info("placed %d orders", n)

Threads do not inherit context variables: a thread pool must submit
``contextvars.copy_context().run`` for its lines to keep them.

The project's own :class:`ContextFilter`, which runs on the handler before the
library's, puts those fields on the record where the library reads them
(``json_fields``, ``trace``, ``span_id``, ``trace_sampled``) and redacts the
record with :mod:`bus.redaction`: message, traceback, stack and every JSON
field, so no secret reaches a line (see that module for what counts).

The library is imported by :func:`configure`, not with this module: it brings
the whole Cloud Logging client with it, and a function that only imports its
code should not pay for it.

This module imports nothing from the project but :mod:`bus.redaction` (``bus`` is the bottom layer).
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import sys
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Iterator, TypeGuard

from bus.redaction import redact, scrub, secrets

TRACE_HEADER = "X-Cloud-Trace-Context"
TRACEPARENT_HEADER = "traceparent"
#: Context fields every line carries when set.
FIELDS = ("execution_id", "strategy_id", "function", "error_id", "trace", "span_id", "trace_sampled")

_VARS: dict[str, contextvars.ContextVar[Any]] = {
    name: contextvars.ContextVar(f"intent_bus_log_{name}", default=None) for name in FIELDS
}
_TRACE_KEYS = ("trace", "span_id", "trace_sampled")
_FORMATTER = logging.Formatter()  # formats a traceback the way every handler does


# --------------------------------------------------------------------------- context


def current() -> dict[str, Any]:
    """The context fields set in this context (unset ones left out)."""
    return {k: v.get() for k, v in _VARS.items() if v.get() is not None}


@contextmanager
def context(**fields: Any) -> Iterator[None]:
    """Set context fields (names from :data:`FIELDS`) for the ``with`` block, then restore them.

    ``None`` values are ignored, so an absent trace does not erase an outer one.

    Raises:
        KeyError: an unknown field name.
    """
    tokens = []
    try:
        for name, value in fields.items():
            if value is not None:
                tokens.append((_VARS[name], _VARS[name].set(value)))
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def bind(**fields: Any) -> None:
    """Set context fields until the current context ends (for code that cannot use ``with``).

    Raises:
        KeyError: an unknown field name.
    """
    for name, value in fields.items():
        _VARS[name].set(value)


def trace_fields(cloud_trace: str | None, traceparent: str | None = None) -> dict[str, Any]:
    """Trace id, span id and sampled flag from the request's trace headers.

    ``X-Cloud-Trace-Context: TRACE_ID/SPAN_ID;o=OPTIONS`` (span id decimal,
    ``o=1`` sampled) is preferred; the W3C ``traceparent: 00-TRACE_ID-SPAN_ID-FLAGS``
    is the fallback. Malformed headers give ``{}``.
    """
    if cloud_trace:
        m = re.fullmatch(r"\s*([0-9a-fA-F]{32})(?:/(\d+))?(?:;o=([01]))?\s*", cloud_trace)
        if m:
            out: dict[str, Any] = {"trace": m[1].lower()}
            if m[2]:
                out["span_id"] = f"{int(m[2]):016x}"
            if m[3] is not None:
                out["trace_sampled"] = m[3] == "1"
            return out
    if traceparent:
        m = re.fullmatch(r"\s*[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})\s*", traceparent)
        if m:
            return {"trace": m[1], "span_id": m[2], "trace_sampled": bool(int(m[3], 16) & 1)}
    return {}


# --------------------------------------------------------------------------- the filter


class ContextFilter(logging.Filter):
    """Redacts a record and adds the context fields where ``StructuredLogHandler`` reads them.

    Args:
        project: the project id for ``projects/{project}/traces/{trace}``;
            default ``$GOOGLE_CLOUD_PROJECT`` when the record is filtered.

    * the message (``msg`` % ``args``), the traceback (``exc_text``) and ``stack_info``
      are redacted in place, so any later handler prints them redacted too;
    * ``json_fields`` (which becomes ``jsonPayload``) gets the context :data:`FIELDS`
      from context variables, or from ``extra=`` on the call, which wins, and
      ``data`` when ``extra={"data": {...}}`` is given; it is scrubbed whole;
    * ``trace`` (full resource name), ``span_id`` and ``trace_sampled`` are set when known;
      ``http_request`` is only kept when given, scrubbed: the platform's request log has it.

    Never drops a record.
    """

    def __init__(self, project: str | None = None) -> None:
        super().__init__()
        self.project = project

    def filter(self, record: logging.LogRecord) -> bool:
        values = secrets()
        if isinstance(record.msg, dict):
            record.msg = scrub(record.msg, known=values)
        else:
            try:
                msg = record.getMessage()
            except Exception:  # a badly formatted record: logging reports it at format time
                msg = None
            clean = None if msg is None else redact(msg, known=values)
            if clean != msg:
                record.msg, record.args = clean, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = _FORMATTER.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, known=values)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, known=values)

        fields = current()
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                fields[name] = value
        trace, span, sampled = (fields.pop(k, None) for k in _TRACE_KEYS)
        payload = {**(getattr(record, "json_fields", None) or {}), **fields}
        data = getattr(record, "data", None)
        if data is not None:
            payload["data"] = data
        record.json_fields = scrub(payload, known=values)
        if trace:
            project = self.project or os.environ.get("GOOGLE_CLOUD_PROJECT")
            trace = str(trace)
            record.trace = (f"projects/{project}/traces/{trace}" if project and not trace.startswith("projects/")
                            else trace)
        if span:
            record.span_id = str(span)
        if sampled is not None:
            record.trace_sampled = bool(sampled)
        http = getattr(record, "http_request", None)
        record.http_request = scrub(http, known=values) if http else None
        return True


# --------------------------------------------------------------------------- the handler


def _rfc3339(created: float) -> str:
    return datetime.fromtimestamp(created, timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


_HANDLER_CLASS: Any = None
_CONFIGURE_LOCK = threading.Lock()  # two first requests at once must not add two handlers


class _OurHandler(logging.Handler):
    """What :func:`configure` knows of the structured-log handler, whose class is built on first use."""

    intent_bus = True
    to_stderr: bool = False


def _handler_class() -> Any:
    """``StructuredLogHandler`` fitted to this project, imported on first use (it is heavy)."""
    global _HANDLER_CLASS
    if _HANDLER_CLASS is not None:
        return _HANDLER_CLASS
    import google.cloud.logging_v2
    from google.cloud.logging_v2.handlers import StructuredLogHandler

    class _Encoder(json.JSONEncoder):
        def default(self, o: Any) -> Any:
            return str(o)

    class Handler(StructuredLogHandler, _OurHandler):
        """Writes to whatever ``sys.stdout`` (or ``sys.stderr``) is at emit time (test capture, a
        redirect); adds ``time``; prints no diagnostic line of its own."""

        def __init__(self, project: str | None = None, to_stderr: bool = False) -> None:
            self.to_stderr = to_stderr
            super().__init__(project_id=project or os.environ.get("GOOGLE_CLOUD_PROJECT"),
                             json_encoder_cls=_Encoder)
            self.filters.insert(0, ContextFilter(project))  # before the library's filter reads the record

        @property
        def stream(self) -> Any:
            return sys.stderr if self.to_stderr else sys.stdout

        @stream.setter
        def stream(self, _value: Any) -> None:
            pass

        def format(self, record: logging.LogRecord) -> str:
            # The library strips a "time" key from json_fields; the line starts with "{".
            return f'{{"time": "{_rfc3339(record.created)}", ' + super().format(record)[1:]

        def emit_instrumentation_info(self) -> None:
            # The library's one-off line naming itself has no message; mark it sent instead.
            google.cloud.logging_v2._instrumentation_emitted = True

    _HANDLER_CLASS = Handler
    return Handler


def make_handler(project: str | None = None, to_stderr: bool = False) -> logging.Handler:
    """A new structured-log handler (not attached): ``StructuredLogHandler`` with :class:`ContextFilter`
    first. ``handler.filter(record)`` then ``handler.format(record)`` gives the line without writing it."""
    return _handler_class()(project, to_stderr)


def _ours(h: logging.Handler) -> TypeGuard[_OurHandler]:
    return getattr(h, "intent_bus", False) is True


def configure(level: int | str = logging.INFO, project: str | None = None,
              to_stderr: bool = False) -> logging.Handler:
    """Send every log record (root logger) as one JSON line to stdout (or stderr); idempotent.

    A plain-text stream handler (``logging.basicConfig``'s) is removed from the
    root logger, so no line is printed twice in another shape. Returns the handler.
    """
    root = logging.getLogger()
    with _CONFIGURE_LOCK:
        for h in list(root.handlers):
            if _ours(h):
                h.to_stderr = to_stderr
                for f in h.filters:
                    if isinstance(f, ContextFilter):
                        f.project = project
                root.setLevel(level)
                return h
        for h in list(root.handlers):
            if type(h) is logging.StreamHandler:  # basicConfig's plain-text handler
                root.removeHandler(h)
        handler = make_handler(project, to_stderr)
        root.addHandler(handler)
        root.setLevel(level)
        return handler


def ensure_configured() -> None:
    """:func:`configure` with the defaults, unless it was already called (a function's first request)."""
    if not any(_ours(h) for h in logging.getLogger().handlers):
        configure()
