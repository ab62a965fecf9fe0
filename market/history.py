"""Historical bars from CSV files, read **as of** a time.

Files are named ``{venue}_{SYMBOL}_{timeframe}.csv`` with the columns
``timestamp,open,high,low,close,volume``; ``timestamp`` is the bar's open time
in UTC. Venues ``yahoo``, ``lean`` and ``ib`` are US equities (daily bars labelled with
the session date); ``binance`` / ``binanceusdm`` are crypto. Gaps stay gaps:
nothing is filled.

A bar is visible only once it has closed (:mod:`market.calendar`):
:class:`MarketView` fixes one as-of time and never returns a later bar.

Two protocols name what the readers need: a :class:`BarSeries` (``frame``) is what a
:class:`MarketView` reads bars through (:class:`HistoryProvider`,
:class:`~market.provider.MarketData`, :class:`~market.live.LiveProvider`), and a
:class:`MarketSource` (``view``) is what a run reads the market through (the pipeline,
the strategy runner).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

import pandas as pd

from market.calendar import crypto_close_times, equity_daily_close_times

BUNDLED_DIR = Path(__file__).resolve().parent / "data"
_NAME = re.compile(r"^(?P<venue>[a-z]+)_(?P<symbol>[A-Z0-9\-]+)_(?P<tf>1h|4h|1d)\.csv$")
EQUITY_VENUES = {"yahoo", "lean", "ib"}
#: Venue preference when a symbol/timeframe exists from several venues.
VENUE_ORDER = ("yahoo", "binance", "binanceusdm", "lean", "ib")


class MarketDataError(LookupError):
    """Market data is missing: an unknown symbol or timeframe, or no bar visible yet."""


class StaleDataError(MarketDataError):
    """The newest visible bar is older than the allowed age."""


@dataclass(frozen=True)
class SeriesKey:
    """One file: ``symbol`` at ``timeframe`` from ``venue``."""

    venue: str
    symbol: str
    timeframe: str
    path: Path

    @property
    def is_equity(self) -> bool:
        return self.venue in EQUITY_VENUES


def load_csv(key: SeriesKey) -> pd.DataFrame:
    """Load one file: index = open time (UTC), columns OHLCV plus ``close_time`` (UTC).

    Raises:
        MarketDataError: when the file lacks the expected columns.
    """
    df = pd.read_csv(key.path)
    missing = {"timestamp", "open", "high", "low", "close", "volume"} - set(df.columns)
    if missing:
        raise MarketDataError(f"{key.path.name}: missing columns {sorted(missing)}")
    idx = pd.DatetimeIndex(pd.to_datetime(df.pop("timestamp"), utc=True), name="open_time")
    df.index = idx
    df = df.astype(float)
    if key.is_equity:
        df["close_time"] = equity_daily_close_times(idx.tz_convert(None))
    else:
        df["close_time"] = crypto_close_times(idx, key.timeframe)
    return df


class BarSeries(Protocol):
    """Whole bar series with a ``close_time`` column, oldest first: what a :class:`MarketView` reads."""

    def frame(self, symbol: str, timeframe: str = "1d") -> pd.DataFrame: ...


class MarketSource(Protocol):
    """The market of a run: views as of a time (:class:`HistoryProvider`, :class:`~market.provider.MarketData`,
    :class:`~market.live.LiveProvider`)."""

    def view(self, as_of: datetime) -> MarketView: ...


class HistoryProvider:
    """All bar files found in ``data_dirs`` (bundled data by default).

    Thread-safe; each file is parsed once and cached.
    """

    def __init__(self, data_dirs: list[Path] | None = None) -> None:
        self.data_dirs = [Path(d) for d in (data_dirs or [BUNDLED_DIR])]
        self._keys: dict[tuple[str, str], SeriesKey] = {}
        for d in self.data_dirs:
            for p in sorted(d.glob("*.csv")):
                m = _NAME.match(p.name)
                if not m or m["venue"] not in VENUE_ORDER:
                    continue
                k = SeriesKey(m["venue"], m["symbol"], m["tf"], p)
                prev = self._keys.get((k.symbol, k.timeframe))
                if prev is None or VENUE_ORDER.index(k.venue) < VENUE_ORDER.index(prev.venue):
                    self._keys[(k.symbol, k.timeframe)] = k
        self._cache: dict[tuple[str, str], pd.DataFrame] = {}
        self._lock = threading.Lock()

    def symbols(self) -> list[str]:
        """All symbols with at least one timeframe."""
        return sorted({s for s, _ in self._keys})

    def key(self, symbol: str, timeframe: str = "1d") -> SeriesKey:
        """The file behind ``symbol``/``timeframe``.

        Raises:
            MarketDataError: naming the symbol (and the known ones) when absent.
        """
        k = self._keys.get((symbol, timeframe))
        if k is None:
            have = sorted({s for s, tf in self._keys if tf == timeframe})
            raise MarketDataError(f"no {timeframe} bars for symbol {symbol!r}; available: {', '.join(have)}")
        return k

    def frame(self, symbol: str, timeframe: str = "1d") -> pd.DataFrame:
        """The whole series, without as-of filtering: for the provider's own use and tests."""
        k = self.key(symbol, timeframe)
        with self._lock:
            df = self._cache.get((symbol, timeframe))
            if df is None:
                df = load_csv(k)
                self._cache[(symbol, timeframe)] = df
        return df

    def coverage(self, symbols: list[str] | None = None,
                 timeframe: str = "1d") -> dict[str, tuple[pd.Timestamp, pd.Timestamp]]:
        """Symbol -> (first close time, last close time)."""
        out = {}
        for s in symbols or [s for s, tf in self._keys if tf == timeframe]:
            ct = self.frame(s, timeframe)["close_time"]
            out[s] = (ct.iloc[0], ct.iloc[-1])
        return out

    def view(self, as_of: datetime) -> MarketView:
        """A read-only view that sees only bars closed at or before ``as_of``."""
        return MarketView(self, as_of)


class MarketView:
    """The market as of one instant. Strategies get only this.

    Args:
        provider: where bars come from.
        as_of: aware datetime; no bar with ``close_time > as_of`` is ever returned.
    """

    def __init__(self, provider: BarSeries, as_of: datetime) -> None:
        if as_of.tzinfo is None:
            raise ValueError("as_of must be timezone-aware (UTC)")
        self._provider = provider
        self.as_of = pd.Timestamp(as_of).tz_convert("UTC")

    def bars(self, symbol: str, timeframe: str = "1d", lookback: int | None = None) -> pd.DataFrame:
        """Bars closed by ``as_of``, oldest first; the last ``lookback`` when given.

        Raises:
            MarketDataError: unknown symbol, or no bar closed yet at ``as_of``.
        """
        df = self._provider.frame(symbol, timeframe)
        n = int(df["close_time"].searchsorted(self.as_of, side="right"))
        if n == 0:
            raise MarketDataError(f"no {timeframe} bar of {symbol} has closed by {self.as_of.isoformat()}")
        start = max(0, n - lookback) if lookback else 0
        return df.iloc[start:n]

    def last_price(self, symbol: str, timeframe: str = "1d") -> float:
        """Close of the newest visible bar of ``symbol`` (base currency per unit)."""
        return float(self.bars(symbol, timeframe, lookback=1)["close"].iloc[-1])

    def require_fresh(self, symbol: str, max_age: pd.Timedelta, timeframe: str = "1d") -> pd.Timestamp:
        """Close time of the newest visible bar; raises when it is older than ``max_age``.

        Raises:
            StaleDataError: naming the symbol, the bar's close and the as-of time.
        """
        last = self.bars(symbol, timeframe, lookback=1)["close_time"].iloc[-1]
        if self.as_of - last > max_age:
            raise StaleDataError(
                f"{symbol} {timeframe} data is stale: newest bar closed {last.isoformat()}, "
                f"as-of {self.as_of.isoformat()}, allowed age {max_age}")
        return last
