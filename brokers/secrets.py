"""Secrets of broker accounts: read from environment variables only, and kept out of text.

A secret is read once, when the broker is built (:func:`read_secret`); a missing
one is a :class:`~brokers.base.BrokerConfigError` naming the variable, never at
the first order. Every secret read is registered with :mod:`bus.redaction`, the
project's one redaction, and from then on:

* :func:`redact` (re-exported from :mod:`bus.redaction`) replaces it, and any
  ``signature=...`` query value, with ``***`` in a text; the brokers pass every
  error message they raise through it;
* every log record created anywhere in the process is redacted the same way.

Which variables hold a broker's secrets is the brokers' configuration (each
account names its ``*_env`` variables); this module only reads and registers them.
"""

from __future__ import annotations

import os

from brokers.base import BrokerConfigError
from bus.redaction import MASK, redact, register

__all__ = ["MASK", "read_secret", "redact", "register"]


def read_secret(env_name: str | None, purpose: str, account: str) -> str:
    """The value of ``$env_name``, registered for redaction.

    Args:
        env_name: the variable's name, as the account configures it (None: the account names none).
        purpose: what it is ("API key"), for the error message.
        account: the account name, for the error message.

    Raises:
        BrokerConfigError: no variable is named, or it is unset or empty (the message names it, not a value).
    """
    if not env_name:
        raise BrokerConfigError(f"account {account}: no environment variable is named for the {purpose}")
    value = os.environ.get(env_name, "")
    if not value.strip():
        raise BrokerConfigError(f"account {account}: environment variable {env_name} ({purpose}) is not set")
    register(value)
    return value
