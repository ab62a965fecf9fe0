"""When a bar closes: the moment it becomes visible (see "Time" in DESIGN.md).

Crypto bars close at open + timeframe. Daily US ETF bars are labelled with the
session date and close at the NYSE session close in America/New_York (16:00,
13:00 on early-close days, daylight saving included), from the
``exchange_calendars`` XNYS calendar.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import lru_cache

import pandas as pd

from market.timeframes import timeframe as _timeframe

NEW_YORK = "America/New_York"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def utc_ns(t: datetime) -> int:
    """Nanoseconds since the epoch (UTC) of an aware ``t``, as ``pd.Timestamp(t).value``: exact integer
    arithmetic for a plain ``datetime``; a pandas ``Timestamp`` (it may hold nanoseconds) goes through pandas.

    Raises:
        TypeError: ``t`` is naive (pandas refuses to convert it to UTC).
    """
    if type(t) is datetime and t.tzinfo is not None:
        return (t - _EPOCH) // timedelta(microseconds=1) * 1000
    return int(pd.Timestamp(t).tz_convert("UTC").as_unit("ns").value)


@lru_cache(maxsize=1)
def _xnys_closes() -> pd.Series:
    import exchange_calendars as xc  # ~0.3 s import, only when equity data is loaded

    cal = xc.get_calendar("XNYS", start="1990-01-02")
    closes = cal.closes
    closes.index = pd.DatetimeIndex(closes.index).tz_localize(None).normalize()
    return closes


def xnys_sessions() -> pd.DatetimeIndex:
    """The XNYS sessions of the ``exchange_calendars`` calendar (1990-01-02 to its end, about a year
    ahead), as naive midnight dates, oldest first: what daily US ETF bars are checked against."""
    return pd.DatetimeIndex(_xnys_closes().index)


def equity_daily_close_times(session_dates: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """UTC close times of daily equity bars labelled with their session date.

    A date the XNYS calendar does not list as a session falls back to 16:00 New York.
    """
    naive = session_dates.tz_localize(None) if session_dates.tz is not None else session_dates
    naive = naive.normalize()
    closes = _xnys_closes().reindex(naive)
    fallback = pd.Series((naive + pd.Timedelta(hours=16)).tz_localize(NEW_YORK).tz_convert("UTC"), index=naive)
    return pd.DatetimeIndex(closes.fillna(fallback)).tz_convert("UTC")


@lru_cache(maxsize=1)
def _xnys_opens() -> pd.Series:
    import exchange_calendars as xc

    opens = xc.get_calendar("XNYS", start="1990-01-02").opens
    opens.index = pd.DatetimeIndex(opens.index).tz_localize(None).normalize()
    return opens


def equity_daily_open_times(session_dates: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """UTC open times (XNYS session open, 09:30 New York) of daily equity bars labelled with their session
    date; a date the calendar does not list falls back to 09:30 New York. The paper broker fills a market
    order at the open of the next session after it (``fill_at: next_open``)."""
    naive = session_dates.tz_localize(None) if session_dates.tz is not None else session_dates
    naive = naive.normalize()
    opens = _xnys_opens().reindex(naive)
    fallback = pd.Series((naive + pd.Timedelta(hours=9, minutes=30)).tz_localize(NEW_YORK).tz_convert("UTC"),
                         index=naive)
    return pd.DatetimeIndex(opens.fillna(fallback)).tz_convert("UTC")


def crypto_close_times(open_times: pd.DatetimeIndex, timeframe: str) -> pd.DatetimeIndex:
    """UTC close times of crypto bars: open + the timeframe's length (:mod:`market.timeframes`).

    Raises:
        UnknownTimeframeError: (a ValueError) for a timeframe not in ``market.timeframes.TIMEFRAMES``.
    """
    return open_times + _timeframe(timeframe).duration


def next_close_after(last_open: pd.Timestamp, timeframe: str, equity: bool) -> pd.Timestamp:
    """UTC close time of the bar after the one opened at ``last_open``: the next XNYS session's close
    for daily equity bars (labelled by session date; the next weekday at 16:00 New York past the
    calendar's end), ``last_open`` + 2 bar lengths otherwise. Before it, no newer bar can have closed."""
    if equity and timeframe == "1d":
        session = pd.Timestamp(last_open).tz_localize(None).normalize() if pd.Timestamp(last_open).tz is not None \
            else pd.Timestamp(last_open).normalize()
        closes = _xnys_closes()
        later = closes[closes.index > session]
        if len(later):
            return pd.Timestamp(later.iloc[0]).tz_convert("UTC")
        nxt = session + pd.offsets.BDay(1)
        return (nxt + pd.Timedelta(hours=16)).tz_localize(NEW_YORK).tz_convert("UTC")
    return pd.Timestamp(last_open) + 2 * _timeframe(timeframe).duration
