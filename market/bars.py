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
import threading
import weakref
from typing import Any, Callable

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


#: Bytes per row of the digested layout (:func:`bars_digest`): open time int64, then five float64.
ROW_BYTES = 8 * (1 + len(COLUMNS))


def _packed_rows(bars: pd.DataFrame) -> bytes:
    """The rows of ``bars`` as :func:`bars_digest` hashes them, :data:`ROW_BYTES` each, oldest first."""
    idx = bars.index if isinstance(bars.index, pd.DatetimeIndex) else pd.DatetimeIndex(bars.index)
    if idx.tz is None:
        idx = idx.tz_localize("UTC")
    rows = np.empty(len(bars), dtype=[("t", "<i8")] + [(c, "<f8") for c in COLUMNS])
    rows["t"] = idx.as_unit("ns").asi8  # epoch nanoseconds, UTC, whatever the index's zone
    for c in COLUMNS:
        rows[c] = bars[c].to_numpy()
    return rows.tobytes()


def bars_digest(bars: pd.DataFrame) -> str:
    """``sha256:`` + the hex SHA-256 of the bars: for each row, oldest first, its open time as
    int64 nanoseconds since the epoch (UTC) then open, high, low, close, volume as float64,
    all little-endian. Equal bars give equal digests whatever their source or extra columns."""
    return "sha256:" + hashlib.sha256(_packed_rows(bars)).hexdigest()


#: id(series frame) -> (a weak reference to it, name -> value derived from it): :func:`derived`'s cache.
_DERIVED: dict[int, tuple[weakref.ref, dict[str, Any]]] = {}
_DERIVED_LOCK = threading.Lock()


def derived(frame: pd.DataFrame, name: str, build: Callable[[pd.DataFrame], Any]) -> Any:
    """``build(frame)``, computed once per live ``frame`` and ``name`` and then reused.

    For a provider's whole series, treated as immutable (providers cache them and hand out slices):
    values derived from it (packed rows, times as datetimes) are kept while the frame lives and dropped
    with it. A frame changed in place after a value was derived would keep the stale value: don't.
    """
    key = id(frame)
    with _DERIVED_LOCK:
        hit = _DERIVED.get(key)
        if hit is not None and hit[0]() is frame and name in hit[1]:
            return hit[1][name]
    value = build(frame)
    with _DERIVED_LOCK:
        hit = _DERIVED.get(key)
        if hit is None or hit[0]() is not frame:

            def forget(_: object, key: int = key) -> None:
                with _DERIVED_LOCK:
                    cur = _DERIVED.get(key)
                    if cur is not None and cur[0]() is None:
                        del _DERIVED[key]

            hit = _DERIVED[key] = (weakref.ref(frame, forget), {})
        hit[1][name] = value
    return value


def window_digest(frame: pd.DataFrame, start: int, stop: int) -> str:
    """:func:`bars_digest` of ``frame.iloc[start:stop]`` (the same value), without slicing or re-packing.

    ``frame`` is a provider's whole series (see :func:`derived`): its rows are packed once and each
    window hashes a slice of them. A backtest digests a moving window of the same series every step;
    this costs one SHA-256 over the window's bytes.

    Raises:
        ValueError: not ``0 <= start <= stop <= len(frame)``.
    """
    if not 0 <= start <= stop <= len(frame):
        raise ValueError(f"window [{start}:{stop}] outside a series of {len(frame)} bars")
    packed = derived(frame, "packed_rows", _packed_rows)
    return "sha256:" + hashlib.sha256(memoryview(packed)[start * ROW_BYTES:stop * ROW_BYTES]).hexdigest()
