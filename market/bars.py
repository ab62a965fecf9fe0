"""The bar frame every source hands over, cleaned before it is cached, and its digest.

A bar frame is indexed by the bar's UTC open time (``open_time``) with float columns
``open, high, low, close, volume`` (prices in the quote currency per unit, volume in
units of the base asset or shares). Providers add ``close_time`` (:func:`with_close_times`).

:func:`clean_bars` is what the bar cache applies when it stores and reads bars: sorted, one row
per open time, all finite. Validation (:mod:`market.validate`) runs before that, on the bars as
the file or the venue gave them, so that nothing is dropped or merged silently.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from market.calendar import crypto_close_times, equity_daily_close_times

COLUMNS = ["open", "high", "low", "close", "volume"]


def empty_bars() -> pd.DataFrame:
    """A bar frame with no rows."""
    return pd.DataFrame({c: pd.Series(dtype=float) for c in COLUMNS},
                        index=pd.DatetimeIndex([], tz="UTC", name="open_time"))


def utc_index(index: object) -> pd.DatetimeIndex:
    """``index`` as a DatetimeIndex in UTC named ``open_time`` (a naive index is taken to be UTC)."""
    idx = pd.DatetimeIndex(index)
    return (idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")).rename("open_time")


def as_bars(raw: pd.DataFrame) -> pd.DataFrame:
    """``raw``'s OHLCV columns as floats indexed by :func:`utc_index`, rows as given (nothing dropped, sorted or
    merged: what validation must see).

    Raises:
        KeyError: a column of :data:`COLUMNS` is missing.
    """
    if raw.empty:
        return empty_bars()
    df = raw[COLUMNS].astype(float)
    df.index = utc_index(df.index)
    return df


def clean_bars(raw: pd.DataFrame) -> pd.DataFrame:
    """``raw``'s OHLCV columns as floats, sorted by open time, one row per open time (the last
    one a venue sent wins), rows with a missing or non-finite value dropped.

    Raises:
        KeyError: a column of :data:`COLUMNS` is missing.
    """
    if raw.empty:
        return empty_bars()
    df = as_bars(raw)
    df = df[np.isfinite(df.to_numpy()).all(axis=1)]
    df = df[~df.index.duplicated(keep="last")]
    return df.sort_index()


def with_close_times(bars: pd.DataFrame, timeframe: str, equity: bool) -> pd.DataFrame:
    """``bars`` plus ``close_time``: the session close (New York) for daily equity bars labelled by
    session date, open + the timeframe's length otherwise (see :mod:`market.calendar`)."""
    df = bars.copy()
    if equity and timeframe == "1d":
        df["close_time"] = equity_daily_close_times(df.index.tz_convert(None))
    else:
        df["close_time"] = crypto_close_times(df.index, timeframe)
    return df


def bars_digest(bars: pd.DataFrame) -> str:
    """``sha256:`` + the hex SHA-256 of the bars: for each row, oldest first, its open time as
    int64 nanoseconds since the epoch (UTC) then open, high, low, close, volume as float64,
    all little-endian. Equal bars give equal digests whatever their source or extra columns."""
    idx = bars.index if isinstance(bars.index, pd.DatetimeIndex) else pd.DatetimeIndex(bars.index)
    if idx.tz is None:
        idx = idx.tz_localize("UTC")
    rows = np.empty(len(bars), dtype=[("t", "<i8")] + [(c, "<f8") for c in COLUMNS])
    rows["t"] = idx.as_unit("ns").asi8  # epoch nanoseconds, UTC, whatever the index's zone
    for c in COLUMNS:
        rows[c] = bars[c].to_numpy()
    return "sha256:" + hashlib.sha256(rows.tobytes()).hexdigest()
