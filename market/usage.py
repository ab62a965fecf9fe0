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

import pandas as pd

from bus.models import BarsUsed
from market.bars import bars_digest
from market.config import BUNDLED
from market.history import BadBarsError, MarketView
from market.validate import Finding, errors_in, warnings_in


class RecordingView(MarketView):
    """``base``'s market (same provider, same as-of): reads go through ``base.bars`` and are recorded."""

    def __init__(self, base: MarketView) -> None:
        super().__init__(base._provider, base.as_of.to_pydatetime())
        self._base = base
        self._reads: dict[tuple[str, str], pd.DataFrame] = {}
        self._lock = threading.Lock()

    def _findings(self, symbol: str, timeframe: str) -> tuple[Finding, ...]:
        found = getattr(self._provider, "findings", None)
        return found(symbol, timeframe) if found is not None else ()

    def bars(self, symbol: str, timeframe: str = "1d", lookback: int | None = None) -> pd.DataFrame:
        """``base.bars``, recorded.

        Raises:
            BadBarsError: the window read holds a bar that failed validation (the first finding's message).
            MarketDataError: see :meth:`MarketView.bars`.
        """
        df = self._base.bars(symbol, timeframe, lookback)
        if df.empty:
            return df
        bad = errors_in(self._findings(symbol, timeframe), df.index[0], self.as_of)
        if bad:
            more = f" (+{len(bad) - 1} more)" if len(bad) > 1 else ""
            raise BadBarsError(f"bad {symbol} {timeframe} bars in the window read: {bad[0]}{more}")
        key = (symbol, timeframe)
        with self._lock:
            prev = self._reads.get(key)
            if prev is None or (df.index[0] <= prev.index[0] and df.index[-1] >= prev.index[-1]):
                self._reads[key] = df
            elif not (df.index[0] >= prev.index[0] and df.index[-1] <= prev.index[-1]):
                both = pd.concat([prev, df])
                self._reads[key] = both[~both.index.duplicated(keep="last")].sort_index()
        return df

    def used(self) -> list[BarsUsed]:
        """One record per series read, sorted by symbol and timeframe."""
        origin = getattr(self._provider, "origin", None)
        out = []
        with self._lock:
            reads = sorted(self._reads.items())
        for (symbol, timeframe), df in reads:
            flags = warnings_in(self._findings(symbol, timeframe), df.index[0], df.index[-1])
            out.append(BarsUsed(
                symbol=symbol, timeframe=timeframe,
                source=origin(symbol, timeframe, df) if origin is not None else BUNDLED,
                bars=len(df), first_open=df.index[0].to_pydatetime(),
                last_close=df["close_time"].iloc[-1].to_pydatetime(), digest=bars_digest(df),
                flags=[str(f) for f in flags]))
        return out
