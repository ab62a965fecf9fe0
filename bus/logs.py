"""Structured logs for Cloud Logging: one JSON object per line on stdout.

Cloud Functions (gen2) and Cloud Run parse a JSON line on stdout into a log
entry: ``severity`` and ``message`` become the entry's severity and text,
``logging.googleapis.com/trace`` / ``spanId`` / ``trace_sampled`` tie it to the
request's trace, ``logging.googleapis.com/sourceLocation`` to the code, and
every other key lands in ``jsonPayload``. See
https://cloud.google.com/logging/docs/structured-logging.

Context travels in :mod:`contextvars`, so every line logged while a request is
handled carries its ``execution_id``, ``strategy_id``, ``function``,
``error_id`` and trace without passing them around::

    configure()                       # once per process (idempotent)
    with context(execution_id=eid, **trace_fields(request.headers.get(TRACE_HEADER))):
        log.info("placed %d orders", n)

Threads do not inherit context variables: a thread pool must submit
``contextvars.copy_context().run`` for its lines to keep them.

Secrets never reach a line: the whole serialized line goes through
:func:`redact`, which removes bearer tokens, ``key=value`` pairs whose key
names a secret, well-known key and token formats, and the value of every
environment variable whose name says it is a secret (``*KEY*``, ``*TOKEN*``,
``*SECRET*``, ``*PASSWORD*``, ``*CREDENTIAL*``).

This module imports nothing from the project (``bus`` is the bottom layer).
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import sys
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Iterator

TRACE_HEADER = "X-Cloud-Trace-Context"
TRACEPARENT_HEADER = "traceparent"
REDACTED = "[REDACTED]"
#: Context fields every line carries when set.
FIELDS = ("execution_id", "strategy_id", "function", "error_id", "trace", "span_id", "trace_sampled")

_VARS: dict[str, contextvars.ContextVar[Any]] = {
    name: contextvars.ContextVar(f"intent_bus_log_{name}", default=None) for name in FIELDS
}
_SEVERITY = {logging.DEBUG: "DEBUG", logging.INFO: "INFO", logging.WARNING: "WARNING",
             logging.ERROR: "ERROR", logging.CRITICAL: "CRITICAL"}
_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|PRIVATE", re.IGNORECASE)
_KEY_WORDS = (r"api[_-]?key|apikey|access[_-]?key|secret[_-]?key|private[_-]?key|client[_-]?secret|secret|"
              r"password|passwd|token|access[_-]?token|refresh[_-]?token|id[_-]?token|authorization|auth")
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # "Authorization: Bearer xyz", "bearer xyz"
    (re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9\-._~+/]+=*"), rf"\1\2{REDACTED}"),
    # key=value, key: value, "key": "value" where the key names a secret
    (re.compile(rf"(?i)\b((?:[a-z0-9]+[_-])*(?:{_KEY_WORDS})(?:\\?[\"'])?\s*[:=]\s*(?:\\?[\"'])?)"
                r"(?!\[REDACTED\])(?!bearer\b)(?!basic\b)[^\s\"'\\,;&{}\[\]()]+"), rf"\1{REDACTED}"),
    (re.compile(r"\bsk-[A-Za-z0-9_\-]{16,}"), REDACTED),                       # OpenAI-style API keys
    (re.compile(r"\bAIza[0-9A-Za-z_\-]{30,}"), REDACTED),                      # Google API keys
    (re.compile(r"\bya29\.[0-9A-Za-z_\-.]+"), REDACTED),                       # Google OAuth access tokens
    (re.compile(r"\beyJ[A-Za-z0-9_\-]{6,}\.[A-Za-z0-9_\-]{6,}\.[A-Za-z0-9_\-]*"), REDACTED),  # JWTs
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.DOTALL), REDACTED),
)
_SECRET_KEY = re.compile(rf"(?i)(?:[a-z0-9]+[_-])*(?:{_KEY_WORDS})")
_MIN_SECRET_LEN = 6


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


# --------------------------------------------------------------------------- redaction


def _env_secrets() -> list[str]:
    values = {v for k, v in os.environ.items() if _SECRET_NAME.search(k) and len(v) >= _MIN_SECRET_LEN}
    # A path (GOOGLE_APPLICATION_CREDENTIALS) is not itself a secret, but hiding it costs nothing.
    return sorted(values, key=len, reverse=True)


def redact(text: str, _secrets: list[str] | None = None) -> str:
    """``text`` with secrets replaced by ``[REDACTED]`` (see the module docstring for what counts)."""
    for value in _env_secrets() if _secrets is None else _secrets:
        if value in text:
            text = text.replace(value, REDACTED)
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


def scrub(obj: Any, _secrets: list[str] | None = None) -> Any:
    """``obj`` (JSON-like) with every string redacted and every value under a secret-named key
    (``api_key``, ``token``, ``password``, ...) replaced by ``[REDACTED]``."""
    secrets = _env_secrets() if _secrets is None else _secrets
    if isinstance(obj, str):
        return redact(obj, secrets)
    if isinstance(obj, dict):
        return {k: (REDACTED if isinstance(k, str) and v not in (None, "") and _SECRET_KEY.fullmatch(k)
                    else scrub(v, secrets)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [scrub(v, secrets) for v in obj]
    return obj


# --------------------------------------------------------------------------- formatting


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object in the shape Cloud Logging parses.

    Args:
        project: the project id for ``projects/{project}/traces/{trace}``;
            default ``$GOOGLE_CLOUD_PROJECT`` at format time.

    Keys: ``severity``, ``message`` (with the traceback, if any), ``time``
    (RFC 3339 UTC), ``logger``, the context :data:`FIELDS` (from context
    variables, or from ``extra=`` on the call, which wins), the trace keys, and
    ``data`` when ``extra={"data": {...}}`` is given.
    """

    def __init__(self, project: str | None = None) -> None:
        super().__init__()
        self.project = project

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message = f"{message}\n{self.formatException(record.exc_info)}"
        elif record.exc_text:
            message = f"{message}\n{record.exc_text}"
        entry: dict[str, Any] = {
            "severity": _SEVERITY.get(record.levelno, "DEFAULT"),
            "message": message,
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat().replace("+00:00", "Z"),
            "logger": record.name,
        }
        fields = current()
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                fields[name] = value
        trace, span, sampled = fields.pop("trace", None), fields.pop("span_id", None), fields.pop("trace_sampled", None)
        entry.update(fields)
        project = self.project or os.environ.get("GOOGLE_CLOUD_PROJECT")
        if trace:
            entry["logging.googleapis.com/trace"] = f"projects/{project}/traces/{trace}" if project else trace
        if span:
            entry["logging.googleapis.com/spanId"] = span
        if sampled is not None:
            entry["logging.googleapis.com/trace_sampled"] = bool(sampled)
        data = getattr(record, "data", None)
        if data is not None:
            entry["data"] = data
        entry["logging.googleapis.com/sourceLocation"] = {
            "file": record.pathname, "line": str(record.lineno), "function": record.funcName}
        return json.dumps(scrub(json.loads(json.dumps(entry, default=str))), ensure_ascii=False)


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stdout`` (or ``sys.stderr``) is at emit time (test capture, a redirect)."""

    def __init__(self, to_stderr: bool = False) -> None:
        self.to_stderr = to_stderr
        super().__init__(sys.stdout)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr if self.to_stderr else sys.stdout

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure(level: int | str = logging.INFO, project: str | None = None,
              to_stderr: bool = False) -> logging.Handler:
    """Send every log record (root logger) as one JSON line to stdout (or stderr); idempotent.

    A plain-text stream handler (``logging.basicConfig``'s) is removed from the
    root logger, so no line is printed twice in another shape. Returns the handler.
    """
    root = logging.getLogger()
    for h in list(root.handlers):
        if isinstance(h, _StdoutHandler):
            h.setFormatter(JsonFormatter(project))
            h.to_stderr = to_stderr
            root.setLevel(level)
            return h
    for h in list(root.handlers):
        if type(h) is logging.StreamHandler:  # basicConfig's plain-text handler
            root.removeHandler(h)
    handler = _StdoutHandler(to_stderr)
    handler.setFormatter(JsonFormatter(project))
    root.addHandler(handler)
    root.setLevel(level)
    return handler


def ensure_configured() -> None:
    """:func:`configure` with the defaults, unless it was already called (a function's first request)."""
    if not any(isinstance(h, _StdoutHandler) for h in logging.getLogger().handlers):
        configure()
