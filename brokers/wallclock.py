"""Helpers shared by the live brokers (IB, ccxt): they see the market now, not at a past as-of."""

from __future__ import annotations

from datetime import datetime, timezone

from brokers.base import BrokerError


def require_current(as_of: datetime, tolerance_seconds: float, who: str, now: datetime | None = None) -> None:
    """Refuse an as-of further than ``tolerance_seconds`` from the wall clock.

    A live venue answers with today's account and prices; recording them as of
    another time would be a lie that the Commander would then trade on.

    Raises:
        BrokerError: naming the as-of, the clock and the tolerance.
    """
    now = now or datetime.now(timezone.utc)
    gap = abs((now - as_of).total_seconds())
    if gap > tolerance_seconds:
        raise BrokerError(f"{who}: as-of {as_of.isoformat()} is {gap:.0f} s from now ({now.isoformat()}); a live "
                          f"broker answers only within {tolerance_seconds:g} s of the present")
