"""What a strategy read: a :class:`~market.history.MarketView` that records every bar series handed out.

The strategy runner gives each strategy its own :class:`RecordingView` over the run's view,
and writes :meth:`RecordingView.used` into the intent (``source.bars``, :class:`bus.models.BarsUsed`):
per symbol and timeframe, where the bars came from, how many were read, the first open and
last close time, and a digest (:func:`market.bars.bars_digest`) of the bars read, so an audit
or a replay on the bar cache can check that it sees the same data.

Several reads of one series (different lookbacks) are recorded as their union.
"""

from __future__ import annotations

import threading

import pandas as pd

from bus.models import BarsUsed
from market.bars import bars_digest
from market.config import BUNDLED
from market.history import MarketView


class RecordingView(MarketView):
    """``base``'s market (same provider, same as-of): reads go through ``base.bars`` and are recorded."""

    def __init__(self, base: MarketView) -> None:
        super().__init__(base._provider, base.as_of.to_pydatetime())
        self._base = base
        self._reads: dict[tuple[str, str], pd.DataFrame] = {}
        self._lock = threading.Lock()

    def bars(self, symbol: str, timeframe: str = "1d", lookback: int | None = None) -> pd.DataFrame:
        df = self._base.bars(symbol, timeframe, lookback)
        if df.empty:
            return df
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
            out.append(BarsUsed(
                symbol=symbol, timeframe=timeframe,
                source=origin(symbol, timeframe, df) if origin is not None else BUNDLED,
                bars=len(df), first_open=df.index[0].to_pydatetime(),
                last_close=df["close_time"].iloc[-1].to_pydatetime(), digest=bars_digest(df)))
        return out
