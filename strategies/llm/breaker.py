"""The circuit breaker per model: after K failed requests within a window, skip the model for a cool-down.

State in ``llm_breaker/{model id}`` (shared by every trader and process that uses
the model; updated in a store transaction)::

    {model, failed_requests, failures_{window number}: count, open_until,
     opened_at, reason, openings: [one line per opening]}

A failed request is one that got no usable answer through no choice of the
model's: a timeout, a connection error, an HTTP error (429 after its retries
included) or a malformed reply. A refusal is the model's answer and does not
count. With ``breaker_failures`` (K) failures within one window of
``breaker_window_seconds`` (consecutive windows, not a sliding one) the breaker
opens for ``breaker_cooldown_seconds``: the chain passes the model
over (attempt ``circuit_open``, with the reason) until then. Times are the wall
clock (UTC), like the budget's.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from strategies.llm.config import ModelSpec, TraderSpec

log = logging.getLogger(__name__)
FAILURES = ("timeout", "connection_error", "http_error", "rate_limited", "malformed")


def path(model_id: str) -> str:
    """``llm_breaker/{model id}``."""
    return f"llm_breaker/{model_id}"


def _time(v: Any) -> datetime | None:
    if v is None:
        return None
    return v if isinstance(v, datetime) else datetime.fromisoformat(str(v))


def open_reason(doc: dict[str, Any] | None, now: datetime) -> str | None:
    """Why the model is skipped now (its breaker is open), or None."""
    until = _time((doc or {}).get("open_until"))
    if until is None or until <= now:
        return None
    return f"circuit open until {until.isoformat()}: {(doc or {}).get('reason', '')}"


def record_failure(store: Any, model: ModelSpec, spec: TraderSpec, now: datetime, outcome: str) -> str | None:
    """Count one failed request of ``model``; open its breaker when the count of the window reaches K.

    Windows are consecutive spans of ``breaker_window_seconds`` (UTC epoch), counted in the field
    ``failures_{window number}`` with one atomic increment: the request that brings the count to
    exactly K opens the breaker (one opening per window, whatever the concurrency).

    Returns the opening's message when this failure opened it, else None.

    Raises:
        bus.store.StoreError: the store is unreachable.
    """
    window = int(now.timestamp()) // spec.breaker_window_seconds
    name = f"failures_{window}"
    got = store.increment(path(model.id), {name: 1, "failed_requests": 1}, {"model": model.id})
    if int(got[name]) != spec.breaker_failures:
        return None
    until = now + timedelta(seconds=spec.breaker_cooldown_seconds)
    reason = (f"{spec.breaker_failures} failed requests within {spec.breaker_window_seconds} s "
              f"(last: {outcome}); skipped for {spec.breaker_cooldown_seconds} s")
    line = f"{now.isoformat()}: {model.id}: {reason}"
    store.increment(path(model.id), {}, {"open_until": until, "opened_at": now, "reason": reason},
                    {"openings": [line]})
    log.warning("LLM circuit breaker opened: %s", line)
    return line
