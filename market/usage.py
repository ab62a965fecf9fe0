"""What a strategy read: a :class:`~market.history.MarketView` that records every bar series handed out.

The strategy runner gives each strategy its own :class:`RecordingView` over the run's view,
and writes :meth:`RecordingView.used` into the intent (``source.bars``, :class:`bus.models.BarsUsed`):
per symbol and timeframe, where the bars came from, how many were read, the first open and
last close time, and a digest (:func:`market.bars.bars_digest`) of the bars read, so an audit
or a replay on the bar cache can check that it sees the same data.

Several reads of one series (different lookbacks) are recorded as their union.

It also fails closed on bad bars (:mod:`market.validate`): a read whose window holds a bar that
failed validation (withheld from the provider's frame), a bar opened at or after the first bar
returned and closed by the as-of time, raises :class:`~market.history.BadBarsError` with the
finding's message, so the strategy's intent is an ``error`` naming the bar. Only strategies get
this view: the paper broker prices, marks and fills from the provider's view, on the bars that
passed. Validation warnings (zero volume) about the bars read are recorded in ``flags``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from bus.models import BarsUsed
from market.bars import bars_digest, derived, window_digest
from market.config import BUNDLED
from market.history import BadBarsError, HistoryProvider, MarketView
from market.validate import Finding, errors_in, warnings_in


@dataclass
class _Window:
    """A read recorded as a slice of the provider's series: the bars ``frame.iloc[start:stop]``;
    ``df`` that slice when a reader got it (else made when needed)."""

    frame: pd.DataFrame
    start: int
    stop: int
    df: pd.DataFrame | None

    def bars(self) -> pd.DataFrame:
        if self.df is None:
            self.df = self.frame.iloc[self.start:self.stop]
        return self.df

    def times(self) -> tuple[datetime, datetime]:
        """(open time of the first bar, close time of the last), aware UTC datetimes."""
        opens, closes = derived(self.frame, "py_times", _py_times)
        return opens[self.start], closes[self.stop - 1]


def _py_times(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The series' open times (index) and close times (``close_time``) as arrays of datetimes."""
    return frame.index.to_pydatetime(), pd.DatetimeIndex(frame["close_time"]).to_pydatetime()


class RecordingView(MarketView):
    """``base``'s market (same provider, same as-of): reads go through ``base`` and are recorded.

    When ``base`` reads bars the stock way (it does not override :meth:`MarketView.bars`, as
    :class:`~market.history.MarketView` and :class:`backtest.horizon.HorizonView`), a read is recorded as
    a window of the provider's series (:meth:`MarketView.window`) and its digest hashes that window of
    the series' packed rows (:func:`market.bars.window_digest`, the same value as
    :func:`market.bars.bars_digest` of the bars read); reads of one series at one as-of time are
    windows ending at the same bar, so their union is one window. Otherwise (or when the windows
    do not meet) the bars read are kept as frames and joined.
    """

    def __init__(self, base: MarketView) -> None:
        # base's provider and as-of, as MarketView.__init__ would set them (base.as_of is already an aware UTC
        # Timestamp: converting it again costs more than the rest of a bar read)
        self._provider = base._provider
        self.as_of = base.as_of
        self._base = base
        self._windowed = type(base).bars is MarketView.bars
        self._reads: dict[tuple[str, str], pd.DataFrame | _Window] = {}
        self._found: dict[tuple[str, str], tuple[Finding, ...]] = {}
        self._lock = threading.Lock()

    def _findings(self, symbol: str, timeframe: str) -> tuple[Finding, ...]:
        key = (symbol, timeframe)
        got = self._found.get(key)
        if got is None:
            found = getattr(self._provider, "findings", None)
            got = self._found[key] = found(symbol, timeframe) if found is not None else ()
        return got

    def _check(self, symbol: str, timeframe: str, first_open: pd.Timestamp) -> None:
        bad = errors_in(self._findings(symbol, timeframe), first_open, self.as_of)
        if bad:
            more = f" (+{len(bad) - 1} more)" if len(bad) > 1 else ""
            raise BadBarsError(f"bad {symbol} {timeframe} bars in the window read: {bad[0]}{more}")

    def _read_window(self, symbol: str, timeframe: str, lookback: int | None, want_df: bool) -> pd.DataFrame | None:
        """Read and record ``base``'s window; the bars when ``want_df``."""
        frame, start, stop = self._base.window(symbol, timeframe, lookback)
        if self._findings(symbol, timeframe):
            self._check(symbol, timeframe, frame.index[start])
        df = frame.iloc[start:stop] if want_df else None
        key = (symbol, timeframe)
        with self._lock:
            prev = self._reads.get(key)
            if prev is None:
                self._reads[key] = _Window(frame, start, stop, df)
            elif isinstance(prev, _Window) and prev.frame is frame and start <= prev.stop and prev.start <= stop:
                lo, hi = min(start, prev.start), max(stop, prev.stop)
                if (lo, hi) != (prev.start, prev.stop):
                    keep = df if (lo, hi) == (start, stop) else None
                    self._reads[key] = _Window(frame, lo, hi, keep)
            else:
                self._join(key, prev, frame.iloc[start:stop] if df is None else df)
        return df

    def _join(self, key: tuple[str, str], prev: pd.DataFrame | _Window | None, df: pd.DataFrame) -> None:
        """Record ``df`` as read: the union (by open time) with what was read of the series before."""
        before = prev.bars() if isinstance(prev, _Window) else prev
        if before is None or (df.index[0] <= before.index[0] and df.index[-1] >= before.index[-1]):
            self._reads[key] = df
        elif not (df.index[0] >= before.index[0] and df.index[-1] <= before.index[-1]):
            both = pd.concat([before, df])
            self._reads[key] = both[~both.index.duplicated(keep="last")].sort_index()

    def bars(self, symbol: str, timeframe: str = "1d", lookback: int | None = None) -> pd.DataFrame:
        """``base.bars``, recorded.

        Raises:
            BadBarsError: the window read holds a bar that failed validation (the first finding's message).
            MarketDataError: see :meth:`MarketView.bars`.
        """
        if self._windowed:
            df = self._read_window(symbol, timeframe, lookback, True)
            assert df is not None
            return df
        df = self._base.bars(symbol, timeframe, lookback)
        if df.empty:
            return df
        self._check(symbol, timeframe, df.index[0])
        with self._lock:
            self._join((symbol, timeframe), self._reads.get((symbol, timeframe)), df)
        return df

    def last_price(self, symbol: str, timeframe: str = "1d") -> float:
        """``base.last_price``; the newest bar is recorded as read (as :meth:`bars` with ``lookback=1``).

        Raises:
            BadBarsError, MarketDataError: see :meth:`bars`.
        """
        if not self._windowed:
            return super().last_price(symbol, timeframe)
        self._read_window(symbol, timeframe, 1, False)
        return self._base.last_price(symbol, timeframe)

    def require_fresh(self, symbol: str, max_age: pd.Timedelta, timeframe: str = "1d") -> pd.Timestamp:
        """``base.require_fresh``; the newest bar is recorded as read (as :meth:`bars` with ``lookback=1``).

        Raises:
            BadBarsError, MarketDataError: see :meth:`bars`. StaleDataError: see :meth:`MarketView.require_fresh`.
        """
        if not self._windowed:
            return super().require_fresh(symbol, max_age, timeframe)
        self._read_window(symbol, timeframe, 1, False)
        return self._base.require_fresh(symbol, max_age, timeframe)

    def used(self) -> list[BarsUsed]:
        """One record per series read, sorted by symbol and timeframe."""
        origin = getattr(self._provider, "origin", None)
        # HistoryProvider's origin depends on the series' file only, not on the bars read: no slice needed
        whole_series = getattr(type(self._provider), "origin", None) is HistoryProvider.origin
        out = []
        with self._lock:
            reads = sorted(self._reads.items(), key=lambda kv: kv[0])
        for (symbol, timeframe), read in reads:
            if isinstance(read, _Window):
                first_open, last_close = read.times()
                n, digest = read.stop - read.start, window_digest(read.frame, read.start, read.stop)
            else:
                first_open, last_close = read.index[0].to_pydatetime(), read["close_time"].iloc[-1].to_pydatetime()
                n, digest = len(read), bars_digest(read)
            findings = self._findings(symbol, timeframe)
            flags = []
            if findings:
                first, last = ((read.frame.index[read.start], read.frame.index[read.stop - 1])
                               if isinstance(read, _Window) else (read.index[0], read.index[-1]))
                flags = [str(f) for f in warnings_in(findings, first, last)]
            source = BUNDLED
            if origin is not None:
                used = read.frame if whole_series and isinstance(read, _Window) else (
                    read.bars() if isinstance(read, _Window) else read)
                source = origin(symbol, timeframe, used)
            out.append(BarsUsed(symbol=symbol, timeframe=timeframe, source=source, bars=n, first_open=first_open,
                                last_close=last_close, digest=digest, flags=flags))
        return out
