"""Intent Bus entry points, both thin.

* **Cloud Functions** (functions-framework, HTTP): ``orchestrator``,
  ``strategy``, ``reconcile``, ``allocation`` and ``api`` (the read API and dashboard). Each delegates to
  :mod:`functions.handlers`, imported on the first request so that importing
  this file costs nothing (``functions-framework --target=orchestrator``;
  ``gcloud functions deploy orchestrator --entry-point=orchestrator``).
* **The command line**: ``python main.py run | serve | workflow run | deploy …``
  (:mod:`cli.app`).
"""

from __future__ import annotations

from typing import Any


def orchestrator(request: Any) -> Any:
    """``POST /orchestrator`` ``{"strategies": [...], "dryRun": true, "runReconcile": true, "asOf": null}``."""
    from functions.handlers import orchestrator as handler

    return handler(request)


def strategy(request: Any) -> Any:
    """``GET /strategy`` (enabled ids, as-of) and ``POST /strategy[/{id}]`` (one strategy's intent)."""
    from functions.handlers import strategy as handler

    return handler(request)


def reconcile(request: Any) -> Any:
    """``POST /reconcile``: take the account's lease and snapshot the broker."""
    from functions.handlers import reconcile as handler

    return handler(request)


def allocation(request: Any) -> Any:
    """``POST /allocation``: the Commander."""
    from functions.handlers import allocation as handler

    return handler(request)


def api(request: Any) -> Any:
    """``GET /api/...``: the read API and the dashboard (:mod:`functions.api`)."""
    from functions.api import handle

    return handle(request)


if __name__ == "__main__":
    from cli.app import main

    main()
