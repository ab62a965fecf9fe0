"""The market data of a run: bundled bars, the bar cache, and the configured sources for a run as of now.

:class:`MarketData` stands where :class:`~market.history.HistoryProvider` stands (``frame``,
``view``, ``coverage``, ``symbols``). For each symbol, ``market.yaml`` names a source
(:meth:`~market.config.MarketConfig.bars_source`). A series' bars are the bundled ones up to
the first cached bar, then the cached ones (:mod:`market.cache`).

**As of now or historical.** A view as of a time within ``now_window`` of the clock (a run as
of now) first refreshes each series it reads from its source: when a bar newer than the
newest cached one may have closed (:func:`market.calendar.next_close_after`), the source is
asked (with retries, ``tenacity``) for the bars since, and the closed ones are cleaned
(:func:`market.bars.clean_bars`) and appended to the cache. Otherwise no request is made. The
newest closed bar must then be younger than the source's staleness limit against the clock.
Any other view (a historical as-of, a replay) reads only the cache and the bundled files:
it never fetches.

As-of semantics are :class:`~market.history.MarketView`'s: a bar is visible only once it has
closed (crypto: open + timeframe; daily US ETF bars: the session close, New York).

**Validation** (:mod:`market.validate`, limits from ``market.yaml``'s ``validation:``): fetched
bars are checked before they are appended, against the newest cached bar (a jump or a gap at the
seam is found): the bars before the first bad one are appended, nothing from it on, and the
refresh raises :class:`~market.history.BadBarsError` naming the bar (the next refresh asks again).
Cached bars are checked again when read (against the last bundled bar before them), the bundled
files when loaded (:class:`~market.history.HistoryProvider`); bad bars are withheld from
:meth:`MarketData.frame` and listed by :meth:`MarketData.findings`, on which a strategy's view
fails closed (:class:`market.usage.RecordingView`).

Errors (fail closed; the strategy runner turns them into ``error`` intents):
:class:`~market.history.MarketDataError` (no bars anywhere, the fetch failed after its
retries), :class:`~market.history.BadBarsError` (a fetched bar failed validation),
:class:`~market.history.MalformedBarFile` (a bundled or ``--data-dir`` file cannot be read as
bars), :class:`~market.history.StaleDataError` (the newest bar is too old).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable

import pandas as pd
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from market.bars import as_bars, empty_bars, with_close_times
from market.cache import BarCache
from market.calendar import equity_daily_close_times, next_close_after
from market.config import BUNDLED, MarketConfig
from market.history import (
    EQUITY_VENUES,
    BadBarsError,
    HistoryProvider,
    MalformedBarFile,
    MarketDataError,
    MarketView,
    StaleDataError,
)
from market.live import FetchError
from market.sources import Fetchers
from market.timeframes import TIMEFRAMES
from market.validate import CheckedBars, Finding, check_bars

log = logging.getLogger(__name__)
EQUITY_KINDS = {"yfinance", "ib"}


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _close_of(open_time: pd.Timestamp, timeframe: str, equity: bool) -> pd.Timestamp:
    """Close time of the bar opened (or, daily equity, labelled) at ``open_time``."""
    if equity and timeframe == "1d":
        return equity_daily_close_times(pd.DatetimeIndex([open_time]).tz_convert(None))[0]
    return pd.Timestamp(open_time) + TIMEFRAMES[timeframe].duration


@dataclass
class FetchReport:
    """What one refresh of a series did: ``requested`` (the source was asked), ``appended`` bars,
    ``last_close`` of the newest cached bar (None when nothing is cached)."""

    source: str
    symbol: str
    timeframe: str
    requested: bool = False
    appended: int = 0
    last_close: pd.Timestamp | None = None


@dataclass
class MarketData:
    """Bars from the bundled files and the bar cache, refreshed from the sources for views as of now.

    Args:
        config: the ``market:`` configuration.
        cache: where fetched bars are kept; None: bundled bars only, nothing fetched.
        bundled: the bundled files (default ``market/data``).
        fetchers: the sources' fetchers; None: never fetch (a replay, a backtest).
        clock: the current time, UTC.
        now_window: a view whose as-of is at most this far before the clock is "as of now".
        retry_ttl: seconds before a series whose source had nothing new is asked again.
    """

    config: MarketConfig
    cache: BarCache | None = None
    bundled: HistoryProvider = field(default_factory=HistoryProvider)
    fetchers: Fetchers | None = None
    clock: Callable[[], datetime] = _utc_now
    now_window: timedelta = timedelta(minutes=15)
    retry_ttl: float = 60.0
    requests: int = field(default=0, init=False)
    _frames: dict[tuple[str, str], tuple[object, pd.DataFrame, tuple[Finding, ...]]] = field(
        default_factory=dict, init=False, repr=False)
    _asked: dict[tuple[str, str], datetime] = field(default_factory=dict, init=False, repr=False)
    _rejected: dict[tuple[str, str], str] = field(default_factory=dict, init=False, repr=False)
    _locks: dict[tuple[str, str], threading.Lock] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self.bundled.use_validation(self.config.validation)

    # ------------------------------------------------------------------ sources

    def source_name(self, symbol: str) -> str:
        """The source of ``symbol``'s bars (``bundled`` when nothing is fetched for it)."""
        name = self.config.bars_source(symbol)
        return name if self.cache is not None or name == BUNDLED else BUNDLED

    def is_equity(self, symbol: str, timeframe: str) -> bool:
        """Whether ``symbol``'s bars are equity bars (daily bars labelled by session date)."""
        name = self.source_name(symbol)
        if name != BUNDLED:
            return self.config.source(name).kind in EQUITY_KINDS
        try:
            return self.bundled.key(symbol, timeframe).venue in EQUITY_VENUES
        except MarketDataError:
            return False

    def staleness(self, symbol: str, timeframe: str) -> timedelta:
        """Allowed age of the newest closed bar for a run as of now: the source's
        ``max_staleness_hours``, else 4 days for daily equity bars and 2 bar lengths otherwise."""
        cfg = self.config.source(self.source_name(symbol))
        if timeframe in cfg.max_staleness_hours:
            return timedelta(hours=cfg.max_staleness_hours[timeframe])
        if self.is_equity(symbol, timeframe) and timeframe == "1d":
            return timedelta(days=4)
        return 2 * TIMEFRAMES[timeframe].duration

    # ------------------------------------------------------------------ reading

    def cached(self, symbol: str, timeframe: str) -> pd.DataFrame:
        """The cached bars of ``symbol`` from its source (empty for a bundled symbol), without close times."""
        name = self.source_name(symbol)
        if name == BUNDLED or self.cache is None:
            return empty_bars()
        return self.cache.read(name, symbol, timeframe)

    def _bundled(self, symbol: str, timeframe: str) -> pd.DataFrame | None:
        try:
            return self.bundled.frame(symbol, timeframe)
        except MalformedBarFile:
            raise
        except MarketDataError:
            return None

    def frame(self, symbol: str, timeframe: str = "1d") -> pd.DataFrame:
        """The whole series (bundled, then cached) with ``close_time``, oldest first; never fetches.

        Raises:
            MarketDataError: unknown timeframe, or no bar of the series is bundled or cached.
        """
        return self._checked(symbol, timeframe)[0]

    def findings(self, symbol: str, timeframe: str = "1d") -> tuple[Finding, ...]:
        """The validation findings of the series :meth:`frame` returns (bundled part, then cached part)."""
        return self._checked(symbol, timeframe)[1]

    def _checked(self, symbol: str, timeframe: str) -> tuple[pd.DataFrame, tuple[Finding, ...]]:
        if timeframe not in TIMEFRAMES:
            raise MarketDataError(f"unknown timeframe {timeframe!r}; known: {sorted(TIMEFRAMES)}")
        cached = self.cached(symbol, timeframe)
        stamp = (len(cached), cached.index[-1] if len(cached) else None)
        with self._lock:
            hit = self._frames.get((symbol, timeframe))
        if hit is not None and hit[0] == stamp:
            return hit[1], hit[2]
        bundled = self._bundled(symbol, timeframe)
        if cached.empty:
            if bundled is None:
                name = self.source_name(symbol)
                where = "bundled" if name == BUNDLED else f"cached from source {name!r} or bundled"
                raise MarketDataError(f"no {timeframe} bars of {symbol!r} are {where}"
                                      + ("" if name == BUNDLED else " (fetch them: python main.py data update)"))
            df, found = bundled, self.bundled.findings(symbol, timeframe)
        else:
            before = bundled[bundled.index < cached.index[0]] if bundled is not None else empty_bars()
            checked = self._check(symbol, timeframe, cached, before)
            df = with_close_times(checked.bars, timeframe, self.is_equity(symbol, timeframe))
            found = checked.findings
            if bundled is not None:
                df = pd.concat([before[df.columns], df])
                found = tuple(f for f in self.bundled.findings(symbol, timeframe)
                              if f.open_time < cached.index[0]) + found
        with self._lock:
            self._frames[(symbol, timeframe)] = (stamp, df, found)
        return df, found

    def _check(self, symbol: str, timeframe: str, bars: pd.DataFrame, before: pd.DataFrame) -> CheckedBars:
        """:func:`market.validate.check_bars` of ``bars`` with the configured limits, after ``before``'s last bar."""
        equity = self.is_equity(symbol, timeframe)
        prev = (before.index[-1], float(before["close"].iloc[-1])) if len(before) else None
        return check_bars(bars, symbol=symbol, timeframe=timeframe, equity=equity,
                          limits=self.config.validation.limits(symbol, equity), prev=prev)

    def origin(self, symbol: str, timeframe: str, used: pd.DataFrame) -> str:
        """Where the bars ``used`` came from: ``bundled``, the source name, or ``bundled+NAME`` for both."""
        name = self.source_name(symbol)
        cached = self.cached(symbol, timeframe)
        try:
            files = self.bundled.origin(symbol, timeframe, used)  # bundled, or data-dir
        except MarketDataError:
            files = BUNDLED
        if name == BUNDLED or cached.empty or used.empty or used.index[-1] < cached.index[0]:
            return files
        return name if used.index[0] >= cached.index[0] else f"{files}+{name}"

    def symbols(self) -> list[str]:
        """Bundled and configured symbols."""
        return sorted(set(self.bundled.symbols()) | set(self.config.symbols))

    def coverage(self, symbols: list[str] | None = None, timeframe: str = "1d"
                 ) -> dict[str, tuple[pd.Timestamp, pd.Timestamp]]:
        """Symbol -> (first close time, last close time) of what is bundled or cached (symbols with neither
        left out)."""
        out = {}
        for s in symbols or self.symbols():
            try:
                ct = self.frame(s, timeframe)["close_time"]
            except MarketDataError:
                continue
            out[s] = (ct.iloc[0], ct.iloc[-1])
        return out

    def view(self, as_of: datetime) -> MarketView:
        """The market as of ``as_of``: refreshed from the sources when ``as_of`` is now (within
        ``now_window`` of the clock), else bundled and cached bars only."""
        if self.live_at(as_of):
            return MarketView(_AsOfNow(self), as_of)
        return MarketView(self, as_of)

    def live_at(self, as_of: datetime) -> bool:
        """Whether a view as of ``as_of`` fetches: sources and a cache are set and ``as_of`` is now."""
        return (self.fetchers is not None and self.cache is not None
                and as_of >= self.clock() - self.now_window)

    # ------------------------------------------------------------------ fetching

    def _key_lock(self, key: tuple[str, str]) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(key, threading.Lock())

    def refresh(self, symbol: str, timeframe: str) -> FetchReport:
        """Fetch the bars of ``symbol`` that may have closed since the newest cached one and append them.

        No request is made for a bundled symbol, when no newer bar can have closed yet, or when
        the source had nothing new less than ``retry_ttl`` seconds ago.

        Raises:
            MarketDataError: the source failed after its retries, or does not know the symbol.
            BadBarsError: a fetched bar failed validation (the bars before it were appended).
        """
        name = self.source_name(symbol)
        report = FetchReport(name, symbol, timeframe)
        if name == BUNDLED or self.fetchers is None or self.cache is None:
            return report
        if timeframe not in TIMEFRAMES:
            raise MarketDataError(f"unknown timeframe {timeframe!r}; known: {sorted(TIMEFRAMES)}")
        key = (symbol, timeframe)
        equity = self.is_equity(symbol, timeframe)
        with self._key_lock(key):
            now = self.clock()
            last = self.cache.last_open(name, symbol, timeframe)
            asked = self._asked.get(key)
            due = last is None or next_close_after(last, timeframe, equity) <= pd.Timestamp(now)
            if due and not (asked is not None and (now - asked).total_seconds() < self.retry_ttl):
                cfg = self.config.source(name)
                duration = TIMEFRAMES[timeframe].duration
                count = cfg.lookback if last is None else int((pd.Timestamp(now) - last) / duration) + 2
                raw = self._fetch(name, symbol, timeframe, min(count, cfg.lookback))
                report.requested = True
                self._asked[key] = now
                try:
                    if not raw.empty:
                        report.appended = self._append_checked(name, symbol, timeframe, raw, last, now)
                        last = self.cache.last_open(name, symbol, timeframe)
                except BadBarsError as exc:
                    self._rejected[key] = str(exc)  # sticky until a fetch passes: no read in between uses the cache
                    raise
                self._rejected.pop(key, None)
            if last is not None:
                report.last_close = _close_of(last, timeframe, equity)
        return report

    def _append_checked(self, name: str, symbol: str, timeframe: str, raw: pd.DataFrame,
                        last: pd.Timestamp | None, now: datetime) -> int:
        """Validate the closed bars of ``raw`` newer than ``last`` against the cache's newest bar and append the
        ones before the first error; returns how many were appended.

        Raises:
            BadBarsError: a fetched bar failed validation (the bars before it were appended).
        """
        assert self.cache is not None
        equity = self.is_equity(symbol, timeframe)
        bars = with_close_times(raw, timeframe, equity)
        new = bars[bars["close_time"] <= pd.Timestamp(now)].drop(columns="close_time")
        if last is not None:
            new = new[new.index > last]
        checked = self._check(symbol, timeframe, new, self.cached(symbol, timeframe).tail(1))
        good, errors = checked.bars, checked.errors
        if errors:
            good = good[good.index < errors[0].open_time]
        appended = self.cache.append(name, symbol, timeframe, good)
        if errors:
            more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
            raise BadBarsError(f"{timeframe} bars of {symbol} from source {name} failed validation: {errors[0]}{more};"
                               f" {appended} bar(s) before it cached, none from it on")
        return appended

    def _fetch(self, name: str, symbol: str, timeframe: str, count: int) -> pd.DataFrame:
        assert self.fetchers is not None
        cfg = self.config.source(name)
        fetcher = self.fetchers.bars(name)
        try:
            for attempt in Retrying(stop=stop_after_attempt(cfg.retries),
                                    wait=wait_exponential(multiplier=cfg.retry_wait, max=30),
                                    retry=retry_if_exception_type(FetchError), reraise=True):
                with attempt:
                    with self._lock:
                        self.requests += 1
                    return as_bars(fetcher(symbol, timeframe, count))
        except FetchError as exc:
            raise MarketDataError(f"{timeframe} bars of {symbol} from source {name}: {exc} "
                                  f"(after {cfg.retries} attempts)") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def live_frame(self, symbol: str, timeframe: str = "1d") -> pd.DataFrame:
        """:meth:`refresh`, then :meth:`frame`, checking the newest closed bar against the clock.

        Raises:
            MarketDataError: see :meth:`refresh` and :meth:`frame`; no bar has closed yet.
            BadBarsError: the last fetch of the series failed validation (until a fetch passes).
            StaleDataError: the newest closed bar is older than :meth:`staleness`.
        """
        self.refresh(symbol, timeframe)
        rejected = self._rejected.get((symbol, timeframe))
        if rejected is not None:
            raise BadBarsError(rejected)
        df = self.frame(symbol, timeframe)
        now = pd.Timestamp(self.clock())
        closed = df["close_time"][df["close_time"] <= now]
        if closed.empty:
            raise MarketDataError(f"no {timeframe} bar of {symbol} has closed by {now.isoformat()}")
        age, limit = now - closed.iloc[-1], self.staleness(symbol, timeframe)
        if age > limit:
            raise StaleDataError(f"{symbol} {timeframe} bars from {self.source_name(symbol)} are stale: newest bar "
                                 f"closed {closed.iloc[-1].isoformat()}, now {now.isoformat()}, allowed age {limit}")
        return df


class _AsOfNow:
    """The provider a view as of now reads through: every frame refreshed and checked for staleness."""

    def __init__(self, data: MarketData) -> None:
        self.data = data

    def frame(self, symbol: str, timeframe: str = "1d") -> pd.DataFrame:
        return self.data.live_frame(symbol, timeframe)

    def origin(self, symbol: str, timeframe: str, used: pd.DataFrame) -> str:
        return self.data.origin(symbol, timeframe, used)

    def findings(self, symbol: str, timeframe: str = "1d") -> tuple[Finding, ...]:
        return self.data.findings(symbol, timeframe)

