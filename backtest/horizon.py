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
backtest needs: ``price_aliases`` (a symbol without its own bars served from
another series, e.g. a perpetual from its spot pair) and ``periods_per_year``
for the report's annualization.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from market.funding import FundingHistory
from market.history import HistoryProvider, MarketDataError, MarketView, SeriesKey

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
    """

    model_config = ConfigDict(extra="forbid")
    price_aliases: dict[str, str] = Field(default_factory=dict)
    periods_per_year: int = Field(365, gt=0)


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

    def symbols(self) -> list[str]:
        """Symbols with bars, aliases whose stand-in has bars included."""
        own = set(super().symbols())
        return sorted(own | {s for s, a in self.aliases.items() if a in own})

    def frame(self, symbol: str, timeframe: str = "1d") -> pd.DataFrame:
        """The series up to the horizon (bars closing at or before it), oldest first."""
        k = (symbol, timeframe)
        df = self._cut.get(k)
        if df is None:
            full = super().frame(symbol, timeframe)
            df = full[full["close_time"] <= self.horizon]
            self._cut[k] = df
        return df

    def arrays(self, symbol: str, timeframe: str = "1d") -> tuple[np.ndarray, np.ndarray]:
        """(close times as int64 ns UTC, closes) of :meth:`frame`, for fast as-of look-ups."""
        k = (symbol, timeframe)
        a = self._arrays.get(k)
        if a is None:
            df = self.frame(symbol, timeframe)
            a = (df["close_time"].to_numpy(dtype="datetime64[ns]").astype(np.int64), df["close"].to_numpy(dtype=float))
            self._arrays[k] = a
        return a

    def view(self, as_of: datetime) -> "HorizonView":
        """A view that sees only bars closed at or before ``as_of`` (and the horizon)."""
        return HorizonView(self, as_of)


class HorizonView(MarketView):
    """:class:`~market.history.MarketView` over a :class:`HorizonHistory`; ``last_price`` by binary search on arrays.

    Same rule as the base class: the newest bar with ``close_time <= as_of``.
    """

    def __init__(self, provider: HorizonHistory, as_of: datetime) -> None:
        super().__init__(provider, as_of)
        self._as_of_ns = int(self.as_of.value)
        self._horizon_provider = provider

    def last_price(self, symbol: str, timeframe: str = "1d") -> float:
        """Close of the newest bar closed by ``as_of`` (base currency per unit).

        Raises:
            MarketDataError: unknown symbol, or no bar closed yet.
        """
        times, closes = self._horizon_provider.arrays(symbol, timeframe)
        n = int(np.searchsorted(times, self._as_of_ns, side="right"))
        if n == 0:
            raise MarketDataError(f"no {timeframe} bar of {symbol} has closed by {self.as_of.isoformat()}")
        return float(closes[n - 1])


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
