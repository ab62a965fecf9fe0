"""The one secret redaction of the project: every secret in a text becomes :data:`MASK` (``***``).

What counts as a secret:

* every value passed to :func:`register` (a broker's API key and secret, an LLM
  endpoint's key, later a webhook URL): whoever reads a secret registers it;
* the value of every environment variable whose name says it is a secret
  (``*KEY*``, ``*TOKEN*``, ``*SECRET*``, ``*PASSWORD*``, ``*CREDENTIAL*``, ``*WEBHOOK*``,
  ``*PRIVATE*``), read at each call, so one set after start-up is covered too;
* well-known shapes: bearer/basic ``Authorization`` values, ``key=value`` /
  ``"key": "value"`` pairs whose key names a secret (``api_key``, ``token``,
  ``password``, ``X-MBX-APIKEY``, ...), ``signature=`` query values, OpenAI-style
  ``sk-...`` keys, Google API keys and OAuth tokens, JWTs, PEM private keys.

:func:`redact` cleans a text, :func:`scrub` a JSON-like value. The first
:func:`register` also installs a log-record factory, so that from then on the
message of every log record made anywhere in the process is redacted, whatever
handler prints it (the CLI's plain-text one, pytest's). The JSON log lines of
:mod:`bus.logs` are redacted whole by its filter in any case.

This module imports nothing from the project (``bus`` is the bottom layer).
"""

from __future__ import annotations

import logging
import os
import re
import threading
from typing import Any

#: What a secret is replaced with, everywhere.
MASK = "***"
_MIN_REGISTERED = 4   # shorter registered values are ignored (they would mask ordinary text)
_MIN_ENV = 6          # an environment value is only a guess from its name: ask a little more
_SECRET_ENV_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|PRIVATE|WEBHOOK", re.IGNORECASE)
_KEY_WORDS = (r"api[_-]?key|apikey|access[_-]?key|secret[_-]?key|private[_-]?key|client[_-]?secret|secret|"
              r"password|passwd|token|access[_-]?token|refresh[_-]?token|id[_-]?token|authorization|auth")
_M = re.escape(MASK)
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # "Authorization: Bearer xyz", "bearer xyz"
    (re.compile(rf"(?i)\b(bearer|basic)(\s+)(?!{_M})[A-Za-z0-9\-._~+/]+=*"), rf"\1\2{MASK}"),
    # key=value, key: value, "key": "value" where the key names a secret
    (re.compile(rf"(?i)\b((?:[a-z0-9]+[_-])*(?:{_KEY_WORDS})(?:\\?[\"'])?\s*[:=]\s*(?:\\?[\"'])?)"
                rf"(?!{_M})(?!bearer\b)(?!basic\b)[^\s\"'\\,;&{{}}\[\]()]+"), rf"\1{MASK}"),
    (re.compile(r"(?i)\b(signature=)[0-9A-Za-z%+/=_-]+"), rf"\1{MASK}"),      # signed query strings (ccxt)
    (re.compile(r"\bsk-[A-Za-z0-9_\-]{16,}"), MASK),                           # OpenAI-style API keys
    (re.compile(r"\bAIza[0-9A-Za-z_\-]{30,}"), MASK),                          # Google API keys
    (re.compile(r"\bya29\.[0-9A-Za-z_\-.]+"), MASK),                           # Google OAuth access tokens
    (re.compile(r"\beyJ[A-Za-z0-9_\-]{6,}\.[A-Za-z0-9_\-]{6,}\.[A-Za-z0-9_\-]*"), MASK),  # JWTs
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.DOTALL), MASK),
)
_SECRET_KEY = re.compile(rf"(?i)(?:[a-z0-9]+[_-])*(?:{_KEY_WORDS})")

_lock = threading.Lock()
_registered: frozenset[str] = frozenset()  # replaced whole under the lock, read without it
_factory_installed = False


def register(value: str | None) -> None:
    """Treat ``value`` as a secret from now on (``None`` and values under 4 characters are ignored).

    The first call installs the process-wide log-record redaction (see the module docstring).
    """
    global _registered, _factory_installed
    if not value or len(value) < _MIN_REGISTERED or value in _registered:
        return
    with _lock:
        _registered = _registered | {value}
        if not _factory_installed:
            _install_record_factory()
            _factory_installed = True


def secrets() -> list[str]:
    """The secret values known now (registered and from the environment), longest first."""
    env = {v for k, v in os.environ.items() if len(v) >= _MIN_ENV and _SECRET_ENV_NAME.search(k)}
    return sorted(_registered | env, key=len, reverse=True)


def redact(text: str, *, known: list[str] | None = None) -> str:
    """``text`` with every secret (see the module docstring) replaced by :data:`MASK`.

    Args:
        known: the secret values, as :func:`secrets` gave them; by default read now. A caller
            that redacts many texts at once reads them once.
    """
    return _clean(text, secrets() if known is None else known)


def scrub(obj: Any, *, known: list[str] | None = None) -> Any:
    """``obj`` (JSON-like) with every string redacted, every value under a secret-named key
    (``api_key``, ``token``, ``password``, ...) replaced by :data:`MASK`, and every value that
    is not a JSON type replaced by its redacted ``str()`` (so nothing unredacted is printed later).

    Args:
        known: as for :func:`redact`.
    """
    return _scrub(obj, secrets() if known is None else known)


def _clean(text: str, values: list[str]) -> str:
    for value in values:
        if value in text:
            text = text.replace(value, MASK)
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


def _scrub(obj: Any, values: list[str]) -> Any:
    if isinstance(obj, str):
        return _clean(obj, values)
    if obj is None or isinstance(obj, (bool, int, float)):
        return obj
    if isinstance(obj, dict):
        return {(k if isinstance(k, str) else str(k)): (MASK if _secret_entry(k, v) else _scrub(v, values))
                for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_scrub(v, values) for v in obj]
    return _clean(str(obj), values)


def _secret_entry(key: Any, value: Any) -> bool:
    """A dict entry whose key names a secret and whose value is not empty."""
    empty = value is None or (isinstance(value, str) and not value)
    return isinstance(key, str) and not empty and _SECRET_KEY.fullmatch(key) is not None


def _install_record_factory() -> None:
    base = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = base(*args, **kwargs)
        if isinstance(record.msg, dict):  # a structured message: left to the handler's filter
            return record
        try:
            msg = record.getMessage()
        except Exception:  # a badly formatted record is logging's problem, not ours
            return record
        clean = redact(msg)
        if clean != msg:
            record.msg, record.args = clean, ()
        return record

    logging.setLogRecordFactory(factory)
