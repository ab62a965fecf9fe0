"""Who may call the functions.

* **In the cloud** the functions are deployed with ``--no-allow-unauthenticated``:
  Cloud Run's IAM checks the Google-signed OIDC token (``Authorization: Bearer …``)
  before our code runs, and only principals with ``roles/run.invoker`` on the
  function pass (the workflow's service account, and the people ``deploy``
  names with ``--invoker``). Nothing here runs in that case.
* **Locally** (``python main.py serve``), when ``$INTENT_BUS_TOKEN`` is set, every
  request must carry ``Authorization: Bearer <that token>``; otherwise 401.
  Unset, the loopback server is open (it listens on 127.0.0.1 only).

The token is read from the environment at each request and never logged.
"""

from __future__ import annotations

import hmac
import os
from typing import Protocol

from bus.constants import TOKEN_ENV
from functions.errors import Unauthorized


class Headers(Protocol):
    """Request headers, looked up by name: a plain mapping, or Flask's case-insensitive ``request.headers``."""

    def get(self, key: str) -> str | None: ...


def required_token() -> str | None:
    """The bearer token requests must carry, or None when none is required."""
    return os.environ.get(TOKEN_ENV) or None


def check(headers: Headers) -> None:
    """Refuse the request unless it carries the required bearer token (when one is required).

    Raises:
        Unauthorized: no ``Authorization: Bearer`` header, or a wrong token.
    """
    token = required_token()
    if token is None:
        return
    challenge = {"WWW-Authenticate": 'Bearer realm="intent-bus"'}
    value = headers.get("Authorization") or ""
    scheme, _, given = value.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise Unauthorized(f"missing bearer token: send 'Authorization: Bearer <${TOKEN_ENV}>'", headers=challenge)
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise Unauthorized("wrong bearer token", headers=challenge)
