"""Secrets of broker accounts: read from environment variables only, and kept out of text.

A secret is read once, when the broker is built (:func:`read_secret`); a missing
one is a :class:`~brokers.base.BrokerConfigError` naming the variable, never at
the first order. Every secret read is registered, and from then on:

* :func:`redact` replaces it (and any ``signature=...`` query value) with ``***``
  in a text; the brokers pass every error message they raise through it;
* every log record created anywhere in the process is redacted the same way
  (a log-record factory is installed on the first secret).
"""

from __future__ import annotations

import logging
import os
import re
import threading

from brokers.base import BrokerConfigError

_SECRETS: set[str] = set()
_LOCK = threading.Lock()
_INSTALLED = False
_SIGNATURE = re.compile(r"(signature=)[0-9A-Za-z%+/=_-]+")
MASK = "***"


def read_secret(env_name: str, purpose: str, account: str) -> str:
    """The value of ``$env_name``, registered for redaction.

    Args:
        purpose: what it is ("API key"), for the error message.
        account: the account name, for the error message.

    Raises:
        BrokerConfigError: the variable is unset or empty (the message names it, not a value).
    """
    value = os.environ.get(env_name, "")
    if not value.strip():
        raise BrokerConfigError(f"account {account}: environment variable {env_name} ({purpose}) is not set")
    register(value)
    return value


def register(value: str) -> None:
    """Treat ``value`` as a secret from now on (values shorter than 4 characters are ignored)."""
    global _INSTALLED
    if len(value) < 4:
        return
    with _LOCK:
        _SECRETS.add(value)
        if not _INSTALLED:
            _install_log_redaction()
            _INSTALLED = True


def redact(text: str) -> str:
    """``text`` with every registered secret and ``signature=`` value replaced by ``***``."""
    for s in sorted(_SECRETS, key=len, reverse=True):
        if s in text:
            text = text.replace(s, MASK)
    return _SIGNATURE.sub(r"\1" + MASK, text)


def _install_log_redaction() -> None:
    base = logging.getLogRecordFactory()

    def factory(*args, **kwargs) -> logging.LogRecord:  # noqa: ANN002, ANN003 - logging's own signature
        record = base(*args, **kwargs)
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001 - a badly formatted record is logging's problem, not ours
            return record
        clean = redact(msg)
        if clean != msg:
            record.msg, record.args = clean, ()
        return record

    logging.setLogRecordFactory(factory)
