"""The world a backtest sees: bundled history cut at the backtest's horizon, plus ``backtest.yaml``.

A backtest that ends at time H runs on exactly the data a live run at H would
have had: :class:`HorizonHistory` drops every bar that closes after H (the
paper broker asks for funding settlements only up to each step's as-of time,
so funding needs no cut; :func:`funding_coverage` tells the report which
perpetuals had funding over which span). That is what makes
the look-ahead test meaningful: a strategy that reaches past its as-of view
(into the provider's full frame) sees different bars in a backtest to T and in
one to T + 30 days, so its decisions up to T differ and the test catches it.

``backtest.yaml`` (optional, in the ``--config`` folder) holds what only a
backtest needs: ``price_aliases`` (a symbol served from another series where it
has no bars of its own, e.g. a perpetual from its spot pair) and ``periods_per_year``
for the report's annualization.

Perpetuals are priced from their own bars where they exist (the bundled Binance
USD-M 4h bars; their daily bars are resampled from the 4h on UTC days, open
first, high max, low min, close last, volume sum, as the bundled spot 1d bars
were made from 1h): a symbol with bars of its own at any timeframe uses its alias
only for the time before its first own bar (spot stands in before the perpetual
was listed), and one with no bars of its own uses its alias throughout
(:meth:`HorizonHistory.price_sources` says which, for the report).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from market.funding import FundingHistory
from market.history import HistoryProvider, MarketDataError, MarketView, SeriesKey, StaleDataError

BACKTEST_FILE = "backtest.yaml"


class BacktestConfigError(ValueError):
    """``backtest.yaml`` is malformed; the message names the file and field."""


class BacktestFile(BaseModel):
    """``backtest.yaml``.

    Attributes:
        price_aliases: symbol -> series whose bars stand in for it when it has none
            of its own at a timeframe (units and currency must match: a perpetual and
            its spot pair).
        periods_per_year: annualization of daily returns in the report (365: every
            calendar day is a step).
        fill_sensitivity: run the backtest under the other fill model too (``next_open`` vs
            ``close``, in memory) and report each book's return under both.
    """

    model_config = ConfigDict(extra="forbid")
    price_aliases: dict[str, str] = Field(default_factory=dict)
    periods_per_year: int = Field(365, gt=0)
    fill_sensitivity: bool = False


def load_backtest_file(config_dir: Path) -> BacktestFile:
    """Read ``config_dir/backtest.yaml``; defaults when it is absent.

    Raises:
        BacktestConfigError: malformed YAML or a field that does not validate.
    """
    path = Path(config_dir) / BACKTEST_FILE
    if not path.is_file():
        return BacktestFile()
    try:
        return BacktestFile.model_validate(yaml.safe_load(path.read_text()) or {})
    except yaml.YAMLError as exc:
        raise BacktestConfigError(f"{path}: malformed YAML: {exc}") from exc
    except ValidationError as exc:
        e = exc.errors()[0]
        raise BacktestConfigError(f"{path}: {'.'.join(str(x) for x in e['loc'])}: {e['msg']}") from exc


class HorizonHistory(HistoryProvider):
    """The bundled bars (and ``data_dirs``) as they stood at ``horizon``: no bar closing later exists.

    Args:
        data_dirs: folders of bar CSVs (bundled data by default).
        horizon: aware UTC datetime; bars with ``close_time > horizon`` are dropped.
        aliases: symbol -> stand-in series, used when the symbol has no file at a timeframe.

    Views it hands out (:meth:`view`) are :class:`HorizonView`: the same as-of
    rule as :class:`~market.history.MarketView`, with a faster ``last_price``.
    """

    def __init__(self, data_dirs: list[Path] | None, horizon: datetime, aliases: dict[str, str] | None = None) -> None:
        super().__init__(data_dirs)
        if horizon.tzinfo is None:
            raise ValueError("horizon must be timezone-aware (UTC)")
        self.horizon = pd.Timestamp(horizon).tz_convert("UTC")
        self.aliases = dict(aliases or {})
        self._cut: dict[tuple[str, str], pd.DataFrame] = {}
        self._arrays: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
        self._views: dict[datetime, HorizonView] = {}

    def key(self, symbol: str, timeframe: str = "1d") -> SeriesKey:
        """The file behind ``symbol``, or behind its alias when it has none.

        Raises:
            MarketDataError: neither the symbol nor its alias has bars at ``timeframe``.
        """
        try:
            return super().key(symbol, timeframe)
        except MarketDataError:
            alias = self.aliases.get(symbol)
            if alias is None:
                raise
            return super().key(alias, timeframe)

    def _own_frame(self, symbol: str, timeframe: str) -> pd.DataFrame | None:
        """The symbol's own bars at ``timeframe`` (a file; daily bars resampled from its own finer bars
        when it has no daily file), uncut; None when it has none."""
        try:
            HistoryProvider.key(self, symbol, timeframe)
            return HistoryProvider.frame(self, symbol, timeframe)
        except MarketDataError:
            pass
        if timeframe != "1d":
            return None
        for finer in ("4h", "1h"):
            try:
                HistoryProvider.key(self, symbol, finer)
            except MarketDataError:
                continue
            return _daily_from(HistoryProvider.frame(self, symbol, finer))
        return None

    def _first_own(self, symbol: str) -> pd.Timestamp | None:
        """Open time of the symbol's first own bar at any timeframe (None: it has none)."""
        firsts = []
        for tf in OWN_TIMEFRAMES:
            try:
                HistoryProvider.key(self, symbol, tf)
            except MarketDataError:
                continue
            own = HistoryProvider.frame(self, symbol, tf)
            if len(own):
                firsts.append(own.index[0])
        return min(firsts) if firsts else None

    def _spliced(self, symbol: str, timeframe: str) -> pd.DataFrame:
        """Own bars, after the alias's bars that closed by the first own bar's open (see the module)."""
        own = self._own_frame(symbol, timeframe)
        alias = self.aliases.get(symbol)
        if alias is None:
            if own is None:
                return HistoryProvider.frame(self, symbol, timeframe)  # raises MarketDataError naming it
            return own
        first = self._first_own(symbol)
        try:
            stand_in = HistoryProvider.frame(self, alias, timeframe)
        except MarketDataError:
            if own is None:
                raise
            return own
        if first is None:
            return stand_in
        cut = own.index[0] if own is not None and len(own) else first
        before = stand_in[stand_in["close_time"] <= cut]
        return before if own is None else pd.concat([before, own])

    def price_sources(self, horizon: datetime | None = None) -> dict[str, str]:
        """Aliased symbol -> where its bars come from, in words (for the report)."""
        out = {}
        for sym, alias in sorted(self.aliases.items()):
            first = self._first_own(sym)
            if first is None:
                out[sym] = f"{alias} bars throughout (no bars of its own are bundled)"
            else:
                out[sym] = (f"its own bars from {first.date().isoformat()} (daily bars resampled from 4h on UTC "
                            f"days where no daily file exists); {alias} bars before")
        return out

    def symbols(self) -> list[str]:
        """Symbols with bars, aliases whose stand-in has bars included."""
        own = set(super().symbols())
        return sorted(own | {s for s, a in self.aliases.items() if a in own})

    def frame(self, symbol: str, timeframe: str = "1d") -> pd.DataFrame:
        """The series up to the horizon (bars closing at or before it), oldest first."""
        k = (symbol, timeframe)
        df = self._cut.get(k)
        if df is None:
            full = self._spliced(symbol, timeframe)
            df = full[full["close_time"] <= self.horizon]
            self._cut[k] = df
        return df

    def arrays(self, symbol: str, timeframe: str = "1d") -> tuple[np.ndarray, np.ndarray]:
        """(close times as int64 ns UTC, closes) of :meth:`frame`, for fast as-of look-ups."""
        k = (symbol, timeframe)
        a = self._arrays.get(k)
        if a is None:
            df = self.frame(symbol, timeframe)
            ct = pd.DatetimeIndex(df["close_time"]).tz_convert("UTC").as_unit("ns")
            a = (np.asarray(ct.asi8), df["close"].to_numpy(dtype=float))
            self._arrays[k] = a
        return a

    def view(self, as_of: datetime) -> "HorizonView":
        """A view that sees only bars closed at or before ``as_of`` (and the horizon).

        Views are read-only, so the last :data:`VIEWS_KEPT` are reused: a backtest step asks for a view at
        the same instant for every price the paper broker looks up.

        Raises:
            ValueError: ``as_of`` is naive.
        """
        v = self._views.get(as_of)
        if v is None:
            v = HorizonView(self, as_of)
            if len(self._views) >= VIEWS_KEPT:
                self._views.pop(next(iter(self._views)))
            self._views[as_of] = v
        return v


class HorizonView(MarketView):
    """:class:`~market.history.MarketView` over a :class:`HorizonHistory`; ``window`` (hence ``bars``),
    ``last_price`` and ``require_fresh`` by binary search on the provider's cached numpy arrays (a backtest asks them
    thousands of times; pandas' own ``searchsorted`` on a tz-aware column costs far more).

    Same rule as the base class: the newest bar with ``close_time <= as_of``.
    """

    def __init__(self, provider: HorizonHistory, as_of: datetime) -> None:
        super().__init__(provider, as_of)
        self._as_of_ns = int(self.as_of.as_unit("ns").value)
        self._horizon_provider = provider
        # (symbol, timeframe) -> (bars visible, close time of the newest one): a view is asked the same series
        # many times per step (each strategy, the paper broker), and the provider's series never change
        self._seen: dict[tuple[str, str], tuple[int, pd.Timestamp]] = {}

    def _newest(self, symbol: str, timeframe: str) -> tuple[int, pd.Timestamp]:
        """(how many bars of the series have closed by ``as_of``, the newest one's close time); MarketDataError
        when none has."""
        hit = self._seen.get((symbol, timeframe))
        if hit is None:
            times, _ = self._horizon_provider.arrays(symbol, timeframe)
            n = int(np.searchsorted(times, self._as_of_ns, side="right"))
            if n == 0:
                raise MarketDataError(f"no {timeframe} bar of {symbol} has closed by {self.as_of.isoformat()}")
            hit = self._seen[(symbol, timeframe)] = (n, pd.Timestamp(int(times[n - 1]), unit="ns", tz="UTC"))
        return hit

    def _visible(self, symbol: str, timeframe: str) -> int:
        """How many bars of the series have closed by ``as_of`` (MarketDataError when none)."""
        return self._newest(symbol, timeframe)[0]

    def window(self, symbol: str, timeframe: str = "1d", lookback: int | None = None) -> tuple[pd.DataFrame, int, int]:
        """``(frame, start, stop)``: the bars closed by ``as_of`` are ``frame.iloc[start:stop]`` (the last
        ``lookback`` when given); :meth:`~market.history.MarketView.bars` slices it.

        Raises:
            MarketDataError: unknown symbol, or no bar closed yet at ``as_of``.
        """
        n = self._visible(symbol, timeframe)
        return self._horizon_provider.frame(symbol, timeframe), (max(0, n - lookback) if lookback else 0), n

    def require_fresh(self, symbol: str, max_age: pd.Timedelta, timeframe: str = "1d") -> pd.Timestamp:
        """Close time of the newest visible bar; raises when it is older than ``max_age``.

        Raises:
            StaleDataError: naming the symbol, the bar's close and the as-of time.
        """
        last = self._newest(symbol, timeframe)[1]
        if self.as_of - last > max_age:
            raise StaleDataError(
                f"{symbol} {timeframe} data is stale: newest bar closed {last.isoformat()}, "
                f"as-of {self.as_of.isoformat()}, allowed age {max_age}")
        return last

    def last_price(self, symbol: str, timeframe: str = "1d") -> float:
        """Close of the newest bar closed by ``as_of`` (base currency per unit).

        Raises:
            MarketDataError: unknown symbol, or no bar closed yet.
        """
        n = self._visible(symbol, timeframe)
        return float(self._horizon_provider.arrays(symbol, timeframe)[1][n - 1])


#: Views :meth:`HorizonHistory.view` keeps for reuse (the most recent as-of times).
VIEWS_KEPT = 8

#: Timeframes a symbol's own bars are looked for at (finest first).
OWN_TIMEFRAMES = ("1h", "4h", "1d")


def _daily_from(bars: pd.DataFrame) -> pd.DataFrame:
    """Daily bars on UTC days from finer bars (open first, high max, low min, close last, volume sum),
    indexed by open time with ``close_time`` = open + 1 day. A first day that does not start at 00:00
    UTC (a listing mid-day) is dropped: its open would not be the day's."""
    if not len(bars):
        return bars
    cols = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    daily = bars[[c for c in cols if c in bars.columns]].resample("1D").agg(
        {c: f for c, f in cols.items() if c in bars.columns}).dropna(subset=["open", "close"])
    if bars.index[0] != bars.index[0].normalize():
        daily = daily[daily.index > bars.index[0]]
    daily["close_time"] = daily.index + pd.Timedelta(days=1)
    return daily


def funding_coverage(funding: FundingHistory, horizon: datetime) -> dict[str, tuple[str, str] | None]:
    """Symbol -> (first, last) funding settlement date (``YYYY-MM-DD``) up to ``horizon``, None when none.

    The paper broker asks for settlements only up to each step's as-of time, so the
    funding history needs no cut at the horizon; this tells the report which
    perpetuals had real funding over which span (none before the first settlement).
    """
    h = pd.Timestamp(horizon).tz_convert("UTC")
    out: dict[str, tuple[str, str] | None] = {}
    for sym in funding.symbols():
        s = funding.series(sym)
        s = s[s.index <= h]
        out[sym] = (s.index[0].date().isoformat(), s.index[-1].date().isoformat()) if len(s) else None
    return out
