"""Bars that end at the current time, for the fakes: real bundled prices relabelled to recent dates.

* :func:`crypto_rows`: daily (or 4h) rows whose newest bar closed at the last boundary before ``now``.
* :func:`etf_rows`: daily rows on the last XNYS sessions whose close is at or before ``now``.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pandas as pd

from market.calendar import _xnys_closes
from market.history import HistoryProvider
from market.timeframes import TIMEFRAMES

_BUNDLED = HistoryProvider()


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def last_boundary(now: datetime, timeframe: str) -> datetime:
    """The newest bar close at or before ``now`` (a multiple of the bar length since the epoch, UTC)."""
    step = int(TIMEFRAMES[timeframe].duration.total_seconds())
    return datetime.fromtimestamp(int(now.timestamp()) // step * step, timezone.utc)


def crypto_rows(symbol: str, now: datetime, n: int | None = None, timeframe: str = "1d",
                end_close: datetime | None = None) -> list[tuple]:
    """``(open_ms, o, h, l, c, v)`` rows: the last ``n`` bundled bars of ``symbol`` relabelled so the newest
    closes at ``end_close`` (default the last boundary at or before ``now``).

    ``n`` defaults to 200 bars, or more when needed to reach back past the bundled series' last bar: a
    live read merges the bundled history with the fetched bars, and a fake that started after the bundled
    end would leave a calendar gap at the junction (the bar validation rightly refuses it) once enough
    time has passed since the bundle was made."""
    full = _BUNDLED.frame(symbol, timeframe)
    step = TIMEFRAMES[timeframe].duration
    end_open = (end_close or last_boundary(now, timeframe)) - step
    if n is None:
        behind = (pd.Timestamp(end_open) - full.index[-1]) // pd.Timedelta(step)
        n = min(len(full), max(200, int(behind) + 30))
    df = full.iloc[-n:]
    first = end_open - (len(df) - 1) * step
    return [(int((first + i * step).timestamp() * 1000), r.open, r.high, r.low, r.close, r.volume)
            for i, r in enumerate(df.itertuples())]


def sessions_closed_by(now: datetime, n: int) -> list[date]:
    """The last ``n`` NYSE session dates whose close is at or before ``now``."""
    closes = _xnys_closes()
    done = closes[closes <= pd.Timestamp(now)]
    return [d.date() for d in done.index[-n:]]


def etf_rows(symbol: str, now: datetime, n: int = 450) -> list[tuple]:
    """``(session_date, o, h, l, c, v)`` rows: the last ``n`` bundled daily bars of ``symbol`` on the last
    ``n`` sessions closed by ``now``."""
    df = _BUNDLED.frame(symbol, "1d").iloc[-n:]
    days = sessions_closed_by(now, len(df))
    return [(d, r.open, r.high, r.low, r.close, r.volume) for d, r in zip(days, df.itertuples(), strict=True)]


def session_close(day: date) -> pd.Timestamp:
    """The UTC close of session ``day``."""
    return pd.Timestamp(_xnys_closes()[pd.Timestamp(day)]).tz_convert("UTC")


def day_before(now: datetime) -> datetime:
    return now - timedelta(days=1)
