"""Perpetual funding rates from the configured sources, cached like bars, read as of a time.

:class:`FundingFeed` has the interface of :class:`~market.funding.FundingHistory` (``symbols``,
``series``, ``as_of``, ``between``; a symbol is the perpetual's base name, ``BTC-USDT``). For a
symbol whose ``market.yaml`` entry names a ``funding`` source (a ccxt exchange), settlements are
the bundled ones up to the first cached one, then the cached ones. A read whose end is now (within
``now_window`` of the clock) first fetches the settlements since the newest cached one, when one
may be due (8-hourly), and appends them to the bar cache. Other reads never fetch.

In the cache a funding series is the series ``(source, SYMBOL-PERP, "funding")``: one row per
settlement, its time as the open time, the rate (a fraction per 8 h) in every price column,
volume 0. Files: ``{root}/{source}/{SYMBOL}-PERP-funding.csv``.

Errors: :class:`~market.history.MarketDataError` (no funding anywhere, the fetch failed after retries).
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from typing import Callable

import pandas as pd

from market.bars import COLUMNS
from market.cache import BarCache
from market.config import BUNDLED, MarketConfig
from market.funding import FundingHistory
from market.history import MarketDataError
from market.sources import Fetchers

FUNDING = "funding"
PERIOD = timedelta(hours=8)


def _as_series(frame: pd.DataFrame) -> pd.Series:
    return pd.Series(frame["close"].to_numpy(dtype=float), index=frame.index.rename("timestamp"), name="funding_rate")


def _as_frame(series: pd.Series) -> pd.DataFrame:
    df = pd.DataFrame({c: series.to_numpy(dtype=float) for c in COLUMNS}, index=series.index)
    df["volume"] = 0.0
    return df


class FundingFeed:
    """Funding settlements: bundled, cached, and fetched for reads as of now (see the module docstring)."""

    def __init__(self, config: MarketConfig, bundled: FundingHistory | None = None, cache: BarCache | None = None,
                 fetchers: Fetchers | None = None, clock: Callable[[], datetime] | None = None,
                 now_window: timedelta = timedelta(minutes=15), lookback: int = 90) -> None:
        self.config, self.bundled, self.cache, self.fetchers = config, bundled or FundingHistory(), cache, fetchers
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.now_window, self.lookback = now_window, lookback
        self._lock = threading.Lock()

    def source_name(self, symbol: str) -> str:
        """The funding source of ``symbol`` (``bundled`` unless ``market.yaml`` names one and a cache is set)."""
        name = self.config.funding_source(symbol)
        return name if self.cache is not None else BUNDLED

    def symbols(self) -> list[str]:
        """Symbols with bundled funding or a configured funding source."""
        configured = {s.removesuffix("-PERP") for s, spec in self.config.symbols.items() if spec.funding}
        return sorted(set(self.bundled.symbols()) | (configured if self.cache is not None else set()))

    def refresh(self, symbol: str) -> int:
        """Fetch the settlements since the newest cached one when one may be due; return how many were appended.

        Raises:
            MarketDataError: the source failed after its retries.
        """
        name = self.source_name(symbol)
        if name == BUNDLED or self.fetchers is None or self.cache is None:
            return 0
        key = f"{symbol.removesuffix('-PERP')}-PERP"
        with self._lock:
            now = self.clock()
            last = self.cache.last_open(name, key, FUNDING)
            if last is not None and last + PERIOD > pd.Timestamp(now):
                return 0
            since = last.to_pydatetime() if last is not None else now - self.lookback * PERIOD
            fetched = self.fetchers.funding(name).between(key, since, now)
            return self.cache.append(name, key, FUNDING, _as_frame(fetched))

    def series(self, symbol: str, end: datetime | None = None) -> pd.Series:
        """All settlements of ``symbol`` (bundled, then cached); refreshed first when ``end`` is now.

        Raises:
            MarketDataError: no funding is bundled or cached for ``symbol``.
        """
        base = symbol.removesuffix("-PERP")
        if end is not None and end >= self.clock() - self.now_window:
            self.refresh(base)
        name = self.source_name(base)
        cached = pd.Series(dtype=float)
        if name != BUNDLED and self.cache is not None:
            cached = _as_series(self.cache.read(name, f"{base}-PERP", FUNDING))
        try:
            bundled = self.bundled.series(base)
        except MarketDataError:
            if cached.empty:
                raise
            return cached
        if cached.empty:
            return bundled
        return pd.concat([bundled[bundled.index < cached.index[0]], cached])

    def as_of(self, symbol: str, as_of: datetime, lookback: int | None = None) -> pd.Series:
        """Settlements at or before ``as_of``, the last ``lookback`` when given."""
        s = self.series(symbol, as_of)
        n = int(s.index.searchsorted(pd.Timestamp(as_of), side="right"))
        return s.iloc[max(0, n - lookback) if lookback else 0:n]

    def between(self, symbol: str, start: datetime, end: datetime) -> pd.Series:
        """Settlements in (start, end]: what a position held over that span pays or receives."""
        s = self.series(symbol, end)
        return s[(s.index > pd.Timestamp(start)) & (s.index <= pd.Timestamp(end))]
