"""Historical bars from CSV files, read **as of** a time.

Files are named ``{venue}_{SYMBOL}_{timeframe}.csv`` with the columns
``timestamp,open,high,low,close,volume``; ``timestamp`` is the bar's open time
in UTC. Venues ``yahoo``, ``lean`` and ``ib`` are US equities (daily bars labelled with
the session date); ``binance`` / ``binanceusdm`` are crypto. Gaps stay gaps:
nothing is filled.

Folders are read in order (the bundled ``market/data`` first, then each ``--data-dir``): a file
with the name of a file in an earlier folder **shadows** it (the later one is used) and a
warning says so; :attr:`HistoryProvider.shadowed` lists the pairs, and the intents record
``data-dir`` as the source of bars read from a file outside ``market/data``.

Every file is checked when it is loaded: a file that cannot be read as bars (no rows, a
malformed timestamp or number, a line cut short) raises :class:`MalformedBarFile` naming the
file and line; the bars are validated (:func:`market.validate.check_bars`) and bad ones are
withheld from the frame, their findings kept (:meth:`HistoryProvider.findings`) for the
strategies' views to fail closed on (:class:`market.usage.RecordingView`).

A bar is visible only once it has closed (:mod:`market.calendar`):
:class:`MarketView` fixes one as-of time and never returns a later bar.

Two protocols name what the readers need: a :class:`BarSeries` (``frame``) is what a
:class:`MarketView` reads bars through (:class:`HistoryProvider`,
:class:`~market.provider.MarketData`, :class:`~market.live.LiveProvider`), and a
:class:`MarketSource` (``view``) is what a run reads the market through (the pipeline,
the strategy runner).
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd

from market.bars import COLUMNS, with_close_times
from market.config import ValidationConfig
from market.validate import Finding, check_bars

log = logging.getLogger(__name__)

BUNDLED_DIR = Path(__file__).resolve().parent / "data"
_NAME = re.compile(r"^(?P<venue>[a-z]+)_(?P<symbol>[A-Z0-9\-]+)_(?P<tf>1h|4h|1d)\.csv$")
EQUITY_VENUES = {"yahoo", "lean", "ib"}
#: Venue preference when a symbol/timeframe exists from several venues.
VENUE_ORDER = ("yahoo", "binance", "binanceusdm", "lean", "ib")


class MarketDataError(LookupError):
    """Market data is missing: an unknown symbol or timeframe, or no bar visible yet."""


class StaleDataError(MarketDataError):
    """The newest visible bar is older than the allowed age."""


class MalformedBarFile(MarketDataError):
    """A bar file cannot be read as bars: the message is one line naming the file (and the line)."""


class BadBarsError(MarketDataError):
    """Bars a strategy read include a bar that failed validation (:mod:`market.validate`)."""


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


@lru_cache(maxsize=4096)
def _is_bundled(path: Path) -> bool:
    """Whether ``path`` is a file of ``market/data`` (or a folder below it, such as ``hourly``).

    Cached per path (``Path.resolve`` is a system call; a run asks once per series read per strategy)."""
    return path.resolve().is_relative_to(BUNDLED_DIR)


def _data_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of each data row of a CSV, in pandas' numbering of rows (blank lines skipped)."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return [(n, ln) for n, ln in enumerate(lines[1:], 2) if ln.strip()]


def _first_bad_line(path: Path, rows: np.ndarray) -> tuple[int, str]:
    """(line number, text) of the first of ``rows`` (0-based data rows)."""
    body = _data_lines(path)
    return body[int(rows[0])] if len(rows) and int(rows[0]) < len(body) else (0, "")


def read_bar_file(path: Path) -> pd.DataFrame:
    """Parse one bar CSV as it is: float columns OHLCV indexed by open time (UTC), in the file's order.

    Values that are empty or ``nan`` stay NaN (a bad bar for :func:`market.validate.check_bars`);
    everything that makes the file unreadable as bars is an error.

    Raises:
        MalformedBarFile: unreadable CSV, a missing column, no rows (header only), a timestamp that is
            not ISO 8601, a value that is not a number, or a line with fields missing (a file cut short).
    """
    name = path.name
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise MalformedBarFile(f"{name}: not a bar CSV: {str(exc).strip().splitlines()[-1][:200]}") from None
    missing = {"timestamp", *COLUMNS} - set(df.columns)
    if missing:
        raise MalformedBarFile(f"{name}: missing columns {sorted(missing)} (need timestamp,{','.join(COLUMNS)})")
    if df.empty:
        raise MalformedBarFile(f"{name}: no bars (a header only)")
    if not isinstance(df.index, pd.RangeIndex):  # pandas takes a first column of more fields as the index
        raise MalformedBarFile(f"{name}: the rows have more fields than the header")
    stamps = pd.to_datetime(df["timestamp"].astype(str), utc=True, errors="coerce", format="ISO8601")
    bad = np.flatnonzero(stamps.isna().to_numpy())
    if len(bad):
        line, _ = _first_bad_line(path, bad)
        raise MalformedBarFile(f"{name}: line {line}: timestamp '{df['timestamp'].iloc[bad[0]]}' is not an "
                               f"ISO 8601 time (YYYY-MM-DDTHH:MM:SSZ)")
    values = pd.DataFrame(index=pd.DatetimeIndex(stamps, name="open_time"))
    for c in COLUMNS:
        col = df[c]
        num = col if pd.api.types.is_numeric_dtype(col) else pd.to_numeric(col, errors="coerce")
        wrong = np.array([], dtype=int)
        if not pd.api.types.is_numeric_dtype(col) and num.isna().any():
            text = col.astype(str).str.strip().str.lower()
            wrong = np.flatnonzero((num.isna() & col.notna() & ~text.isin(["", "nan"])).to_numpy())
        if len(wrong):
            line, _ = _first_bad_line(path, wrong)
            raise MalformedBarFile(f"{name}: line {line}: {c} '{col.iloc[wrong[0]]}' is not a number")
        values[c] = num.astype(float).to_numpy()
    holes = np.flatnonzero(values.isna().any(axis=1).to_numpy())
    body = _data_lines(path) if len(holes) else []
    for i in holes:  # a NaN: an empty or "nan" field (a bad bar), or a line with fields missing (malformed)
        line, text = body[i] if i < len(body) else (0, "")
        if text.count(",") < len(COLUMNS):
            raise MalformedBarFile(f"{name}: line {line}: {text.count(',') + 1} fields, expected {len(COLUMNS) + 1} "
                                   f"(a line cut short?)")
    return values


def check_bar_files(folder: Path) -> int:
    """Read every bar file of ``folder`` (named ``{venue}_{SYMBOL}_{timeframe}.csv``); returns how many.

    Raises:
        MalformedBarFile: the first file that cannot be read as bars (see :func:`read_bar_file`).
    """
    files = [p for p in sorted(Path(folder).glob("*.csv")) if _NAME.match(p.name)]
    for p in files:
        read_bar_file(p)
    return len(files)


def load_checked(key: SeriesKey, validation: ValidationConfig | None = None
                 ) -> tuple[pd.DataFrame, tuple[Finding, ...]]:
    """Load one file and validate it: (the bars that passed with ``close_time`` (UTC), index = open time
    (UTC); the findings). Limits: ``validation`` (default: :class:`~market.config.ValidationConfig`'s).

    Raises:
        MalformedBarFile: see :func:`read_bar_file`.
    """
    cfg = validation or ValidationConfig()
    checked = check_bars(read_bar_file(key.path), symbol=key.symbol, timeframe=key.timeframe, equity=key.is_equity,
                         limits=cfg.limits(key.symbol, key.is_equity))
    return with_close_times(checked.bars, key.timeframe, key.is_equity), checked.findings


def load_csv(key: SeriesKey) -> pd.DataFrame:
    """Load one file: the bars that pass validation with the default limits, index = open time (UTC),
    columns OHLCV plus ``close_time`` (UTC).

    Raises:
        MalformedBarFile: see :func:`read_bar_file`.
    """
    return load_checked(key)[0]


class BarSeries(Protocol):
    """Whole bar series with a ``close_time`` column, oldest first: what a :class:`MarketView` reads."""

    def frame(self, symbol: str, timeframe: str = "1d") -> pd.DataFrame: ...


class MarketSource(Protocol):
    """The market of a run: views as of a time (:class:`HistoryProvider`, :class:`~market.provider.MarketData`,
    :class:`~market.live.LiveProvider`)."""

    def view(self, as_of: datetime) -> MarketView: ...


class HistoryProvider:
    """All bar files found in ``data_dirs`` (bundled data by default), validated with ``validation``'s
    limits (default: :class:`~market.config.ValidationConfig`'s, which ``config/market.yaml`` ships).

    A later folder's file with an earlier folder's file name shadows it (:attr:`shadowed`, a warning);
    a file outside ``market/data`` that loses to another venue's file (:data:`VENUE_ORDER`) is warned of.
    Thread-safe; each file is parsed and validated once and cached.
    """

    def __init__(self, data_dirs: list[Path] | None = None, validation: ValidationConfig | None = None) -> None:
        self.data_dirs = [Path(d) for d in (data_dirs or [BUNDLED_DIR])]
        self.validation = validation or ValidationConfig()
        #: (the file used, the file it shadows): a later folder's file with an earlier one's name wins.
        self.shadowed: list[tuple[Path, Path]] = []
        files: dict[str, SeriesKey] = {}
        for d in self.data_dirs:
            for p in sorted(d.glob("*.csv")):
                m = _NAME.match(p.name)
                if not m or m["venue"] not in VENUE_ORDER:
                    continue
                old = files.get(p.name)
                if old is not None and old.path.resolve() != p.resolve():
                    self.shadowed.append((p, old.path))
                    log.warning("bar file %s shadows %s (same name): %s is used", p, old.path, p)
                files[p.name] = SeriesKey(m["venue"], m["symbol"], m["tf"], p)
        self._keys: dict[tuple[str, str], SeriesKey] = {}
        for k in files.values():
            prev = self._keys.get((k.symbol, k.timeframe))
            if prev is None or VENUE_ORDER.index(k.venue) < VENUE_ORDER.index(prev.venue):
                self._keys[(k.symbol, k.timeframe)] = k
        for k in files.values():
            used = self._keys[(k.symbol, k.timeframe)].path
            if used != k.path and not _is_bundled(k.path):
                log.warning("bar file %s is not used: %s is preferred (venue order %s)", k.path, used,
                            "/".join(VENUE_ORDER))
        self._cache: dict[tuple[str, str], pd.DataFrame] = {}
        self._findings: dict[tuple[str, str], tuple[Finding, ...]] = {}
        self._lock = threading.Lock()

    def use_validation(self, validation: ValidationConfig) -> None:
        """Validate with ``validation``'s limits from now on (series loaded with other limits are reloaded)."""
        with self._lock:
            if validation != self.validation:
                self.validation = validation
                self._cache.clear()
                self._findings.clear()

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
        """The whole series, without as-of filtering, bad bars withheld (:meth:`findings`).

        Raises:
            MarketDataError: no such series. MalformedBarFile: its file cannot be read as bars.
        """
        k = self.key(symbol, timeframe)
        with self._lock:
            df = self._cache.get((symbol, timeframe))
            if df is None:
                df, found = load_checked(k, self.validation)
                self._cache[(symbol, timeframe)] = df
                self._findings[(symbol, timeframe)] = found
                errors = [f for f in found if f.is_error]
                if errors:
                    log.warning("%s: %d bad bar(s) withheld; the strategies reading them fail: %s%s", k.path.name,
                                len(errors), errors[0], f" (+{len(errors) - 1} more)" if len(errors) > 1 else "")
        return df

    def findings(self, symbol: str, timeframe: str = "1d") -> tuple[Finding, ...]:
        """The validation findings of the series (loading it when needed), oldest bar first."""
        self.frame(symbol, timeframe)
        with self._lock:
            return self._findings.get((symbol, timeframe), ())

    def origin(self, symbol: str, timeframe: str, used: pd.DataFrame) -> str:
        """Where the bars of a series come from, for the intent's record: ``bundled`` (``market/data`` and the
        folders below it) or ``data-dir`` (a file of a ``--data-dir``)."""
        return "bundled" if _is_bundled(self.key(symbol, timeframe).path) else "data-dir"

    def coverage(self, symbols: list[str] | None = None,
                 timeframe: str = "1d") -> dict[str, tuple[pd.Timestamp, pd.Timestamp]]:
        """Symbol -> (first close time, last close time)."""
        out = {}
        for s in symbols or [s for s, tf in self._keys if tf == timeframe]:
            ct = self.frame(s, timeframe)["close_time"]
            if ct.empty:
                raise MarketDataError(f"no {timeframe} bar of {s!r} passed validation")
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

    def window(self, symbol: str, timeframe: str = "1d", lookback: int | None = None) -> tuple[pd.DataFrame, int, int]:
        """Where the bars :meth:`bars` returns sit in the provider's series: ``(frame, start, stop)``, the bars
        being ``frame.iloc[start:stop]`` (``0 <= start < stop``; ``frame`` is the provider's whole series, not
        to be modified). Lets a reader (:class:`market.usage.RecordingView`) record a read without copying it.

        Raises:
            MarketDataError: unknown symbol, or no bar closed yet at ``as_of``.
        """
        df = self._provider.frame(symbol, timeframe)
        n = int(df["close_time"].searchsorted(self.as_of, side="right"))
        if n == 0:
            raise MarketDataError(f"no {timeframe} bar of {symbol} has closed by {self.as_of.isoformat()}")
        return df, (max(0, n - lookback) if lookback else 0), n

    def bars(self, symbol: str, timeframe: str = "1d", lookback: int | None = None) -> pd.DataFrame:
        """Bars closed by ``as_of``, oldest first; the last ``lookback`` when given (:meth:`window`).

        Raises:
            MarketDataError: unknown symbol, or no bar closed yet at ``as_of``.
        """
        df, start, stop = self.window(symbol, timeframe, lookback)
        return df.iloc[start:stop]

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
