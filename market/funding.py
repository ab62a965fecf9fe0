"""Perpetual funding rates from ``binanceusdm_{SYMBOL}-PERP_funding.csv``, read as of a time.

Each row is one 8-hourly settlement: ``timestamp`` (UTC) and ``funding_rate``
as a fraction of position notional (0.0001 = 1 bp per 8 h). Longs pay shorts
when the rate is positive. A settlement is visible from its timestamp on.
"""

from __future__ import annotations

import re
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from market.calendar import utc_ns
from market.history import BUNDLED_DIR, MarketDataError

_NAME = re.compile(r"^binanceusdm_(?P<base>[A-Z0-9]+)-(?P<quote>[A-Z0-9]+)-PERP_funding\.csv$")


class FundingHistory:
    """Funding settlements per symbol (``BTC-USDT`` names the BTC-USDT perpetual).

    Thread-safe; each file is parsed once.
    """

    def __init__(self, data_dirs: list[Path] | None = None) -> None:
        self._files: dict[str, Path] = {}
        for d in data_dirs or [BUNDLED_DIR]:
            for p in sorted(Path(d).glob("*_funding.csv")):
                m = _NAME.match(p.name)
                if m:
                    self._files[f"{m['base']}-{m['quote']}"] = p
        self._cache: dict[str, pd.Series] = {}
        self._plain: dict[str, tuple[Any, list[datetime], list[float]]] = {}
        self._lock = threading.Lock()

    def symbols(self) -> list[str]:
        """Symbols with a funding history."""
        return sorted(self._files)

    def series(self, symbol: str) -> pd.Series:
        """All settlements of ``symbol``: index UTC settlement time, values fractions.

        Raises:
            MarketDataError: naming the symbol when there is no funding file for it.
        """
        with self._lock:
            s = self._cache.get(symbol)
            if s is None:
                path = self._files.get(symbol)
                if path is None:
                    raise MarketDataError(f"no funding history for {symbol!r}; available: {', '.join(self.symbols())}")
                df = pd.read_csv(path)
                s = pd.Series(df["funding_rate"].astype(float).values,
                              index=pd.DatetimeIndex(pd.to_datetime(df["timestamp"], utc=True), name="timestamp"),
                              name="funding_rate")
                self._cache[symbol] = s
        return s

    def as_of(self, symbol: str, as_of: datetime, lookback: int | None = None) -> pd.Series:
        """Settlements at or before ``as_of``, the last ``lookback`` when given."""
        s = self.series(symbol)
        n = int(s.index.searchsorted(pd.Timestamp(as_of), side="right"))
        return s.iloc[max(0, n - lookback) if lookback else 0:n]

    def between(self, symbol: str, start: datetime, end: datetime) -> pd.Series:
        """Settlements in (start, end]: what a position held over that span pays or receives."""
        s = self.series(symbol)
        lo = int(s.index.searchsorted(pd.Timestamp(start), side="right"))
        hi = int(s.index.searchsorted(pd.Timestamp(end), side="right"))
        return s.iloc[lo:hi]

    def settlements(self, symbol: str, start: datetime, end: datetime) -> list[tuple[datetime, float]]:
        """:meth:`between` as ``(UTC settlement time, rate)`` pairs, without pandas per call (the paper
        broker asks at every step of a backtest): the series' times and rates are kept as plain lists.

        Raises:
            MarketDataError: naming the symbol when there is no funding file for it.
        """
        plain = self._plain.get(symbol)
        if plain is None:
            s = self.series(symbol)
            plain = (s.index.as_unit("ns").asi8, list(s.index.to_pydatetime()), s.values.tolist())
            with self._lock:
                self._plain[symbol] = plain
        ns, times, rates = plain
        lo, hi = (int(ns.searchsorted(utc_ns(t), side="right")) for t in (start, end))
        return list(zip(times[lo:hi], rates[lo:hi], strict=True))
