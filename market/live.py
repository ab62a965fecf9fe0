"""Live market data for the strategies, with the same as-of semantics as the bundled history.

:class:`LiveProvider` stands in for :class:`~market.history.HistoryProvider`: its
``view(as_of)`` is a :class:`~market.history.MarketView`, which never returns a bar
that closed after the as-of time. Venues also send the bar still forming; it closes
in the future and so is never visible. Bars come from a fetcher:

* :class:`CcxtBars`: OHLCV from a ccxt exchange (``fetch_ohlcv``, paginated);
* :class:`IBBars`: historical bars from TWS / IB Gateway (``ib_async``'s
  ``reqHistoricalData``), on the fetcher's own connection and event-loop thread.

:class:`CcxtFunding` gives perpetual funding rates (``fetch_funding_rate_history``)
with the interface of :class:`~market.funding.FundingHistory`.

Fetched bars are validated (:func:`market.validate.check_bars`, limits ``validation``): bad bars
are withheld from the frame and listed by :meth:`LiveProvider.findings`, on which a strategy's
view fails closed (:class:`market.usage.RecordingView`).

Failures fail closed. A fetch is retried with exponential backoff (``tenacity``);
when it still fails the read raises :class:`~market.history.MarketDataError`; when
the newest closed bar is older than ``max_staleness`` (per timeframe, against the
wall clock) it raises :class:`~market.history.StaleDataError`. The strategy runner
turns either into an ``error`` intent, and the strategy keeps its book.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Protocol

import pandas as pd
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from market.bars import with_close_times
from market.config import ValidationConfig
from market.history import MarketDataError, MarketView, StaleDataError
from market.timeframes import TIMEFRAMES
from market.validate import Finding, check_bars

log = logging.getLogger(__name__)
COLUMNS = ["open", "high", "low", "close", "volume"]


class FetchError(RuntimeError):
    """A fetcher could not get bars (network, venue error); retried, then a MarketDataError."""


class BarFetcher(Protocol):
    """Bars of ``symbol`` at ``timeframe``: the last ``count`` bars up to now, as a DataFrame indexed
    by UTC open time with columns open, high, low, close, volume (the forming bar may be included).
    ``equity`` tells daily bars labelled by session date (US ETFs) from crypto bars.

    Raises FetchError on failure, MarketDataError for an unknown symbol."""

    equity: bool

    def __call__(self, symbol: str, timeframe: str, count: int) -> pd.DataFrame: ...


@dataclass
class LiveProvider:
    """Bars fetched live, cached for ``ttl_seconds``, read through :class:`~market.history.MarketView`.

    Args:
        fetcher: where bars come from.
        lookback: bars fetched per symbol and timeframe.
        max_staleness: per timeframe, the allowed age of the newest closed bar against
            the wall clock (default: 2 bar lengths for crypto; 4 days for daily equity
            bars, a long weekend).
        retries: fetch attempts; the wait between them doubles from ``retry_wait`` seconds.
        validation: the limits of the bar checks (``market.yaml``'s ``validation:``).
    """

    fetcher: BarFetcher
    lookback: int = 300
    max_staleness: dict[str, timedelta] = field(default_factory=dict)
    ttl_seconds: float = 60.0
    retries: int = 3
    retry_wait: float = 0.5
    clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    _cache: dict[tuple[str, str], tuple[float, pd.DataFrame, tuple[Finding, ...]]] = field(
        default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def symbols(self) -> list[str]:
        """Symbols fetched so far."""
        return sorted({s for s, _ in self._cache})

    def staleness(self, timeframe: str) -> timedelta:
        """Allowed age of the newest closed bar at ``timeframe``."""
        if timeframe in self.max_staleness:
            return self.max_staleness[timeframe]
        if self.fetcher.equity and timeframe == "1d":
            return timedelta(days=4)
        return 2 * TIMEFRAMES[timeframe].duration

    def _fetch(self, symbol: str, timeframe: str) -> pd.DataFrame:
        try:
            for attempt in Retrying(stop=stop_after_attempt(self.retries),
                                    wait=wait_exponential(multiplier=self.retry_wait, max=30),
                                    retry=retry_if_exception_type(FetchError), reraise=True):
                with attempt:
                    return self.fetcher(symbol, timeframe, self.lookback)
        except FetchError as exc:
            raise MarketDataError(f"live {timeframe} bars of {symbol}: {exc} (after {self.retries} attempts)") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def frame(self, symbol: str, timeframe: str = "1d") -> pd.DataFrame:
        """Bars with a ``close_time`` column, oldest first, including any not closed yet (MarketView hides those).

        Raises:
            MarketDataError: unknown timeframe, no bars, or the fetch failed after retries.
            StaleDataError: the newest closed bar is older than :meth:`staleness` allows.
        """
        if timeframe not in TIMEFRAMES:
            raise MarketDataError(f"unknown timeframe {timeframe!r}; live bars have {sorted(TIMEFRAMES)}")
        now = self.clock()
        key = (symbol, timeframe)
        with self._lock:
            hit = self._cache.get(key)
        if hit is None or now.timestamp() - hit[0] > self.ttl_seconds:
            raw = self._fetch(symbol, timeframe)
            if raw.empty:
                raise MarketDataError(f"live {timeframe} bars of {symbol}: none returned")
            equity = self.fetcher.equity
            checked = check_bars(raw, symbol=symbol, timeframe=timeframe, equity=equity,
                                 limits=self.validation.limits(symbol, equity))
            df = with_close_times(checked.bars, timeframe, equity)
            hit = (now.timestamp(), df, checked.findings)
            with self._lock:
                self._cache[key] = hit
        df = hit[1]
        closed = df[df["close_time"] <= pd.Timestamp(now)]
        if closed.empty:
            raise MarketDataError(f"live {timeframe} bars of {symbol}: no bar has closed yet")
        last = closed["close_time"].iloc[-1]
        if pd.Timestamp(now) - last > self.staleness(timeframe):
            raise StaleDataError(f"live {timeframe} data of {symbol} is stale: newest bar closed {last.isoformat()}, "
                                 f"now {now.isoformat()}, allowed age {self.staleness(timeframe)}")
        return df

    def findings(self, symbol: str, timeframe: str = "1d") -> tuple[Finding, ...]:
        """The validation findings of the bars last fetched for the series (none before a fetch)."""
        with self._lock:
            hit = self._cache.get((symbol, timeframe))
        return hit[2] if hit is not None else ()

    def view(self, as_of: datetime) -> MarketView:
        """The market as of ``as_of`` (no bar closed later is visible)."""
        return MarketView(self, as_of)

    def origin(self, symbol: str, timeframe: str, used: pd.DataFrame) -> str:
        """Where bars read through this provider came from (for the intent's record): ``live``."""
        return "live"


# ---------------------------------------------------------------------- ccxt


class CcxtBars:
    """OHLCV from a ccxt exchange. ``symbols`` maps a project symbol to ccxt's
    (``BTC-USDT-PERP`` -> ``BTC/USDT:USDT`` by default; ``BTC-USDT`` -> ``BTC/USDT``).
    ``clock`` (default the wall clock, UTC) ends the window fetched."""

    equity = False

    def __init__(self, exchange: Any, symbols: dict[str, str] | None = None, page: int = 1000,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.exchange = exchange
        self.symbols = dict(symbols or {})
        self.page = page
        self.clock = clock or (lambda: datetime.now(timezone.utc))

    def ccxt_symbol(self, symbol: str) -> str:
        """The ccxt symbol of a project symbol."""
        if symbol in self.symbols:
            return self.symbols[symbol]
        parts = symbol.split("-")
        if len(parts) == 3 and parts[2] == "PERP":
            return f"{parts[0]}/{parts[1]}:{parts[1]}"
        if len(parts) == 2:
            return f"{parts[0]}/{parts[1]}"
        raise MarketDataError(f"cannot map {symbol!r} to a ccxt symbol")

    def __call__(self, symbol: str, timeframe: str, count: int) -> pd.DataFrame:
        import ccxt

        sym = self.ccxt_symbol(symbol)
        tf = TIMEFRAMES[timeframe]
        step = int(tf.duration.total_seconds() * 1000)
        since = int(self.clock().timestamp() * 1000) - (count + 1) * step
        rows: list[list] = []
        try:
            while len(rows) < count + 1:
                batch = self.exchange.fetch_ohlcv(sym, tf.ccxt, since=since, limit=self.page)
                if not batch:
                    break
                rows += [r for r in batch if not rows or r[0] > rows[-1][0]]
                if len(batch) < self.page:
                    break
                since = batch[-1][0] + step
        except ccxt.BadSymbol as exc:
            raise MarketDataError(f"{symbol}: {exc}") from exc
        except ccxt.BaseError as exc:
            raise FetchError(f"{type(exc).__name__}: {exc}") from exc
        df = pd.DataFrame(rows[-(count + 1):], columns=["t", *COLUMNS])
        df.index = pd.to_datetime(df.pop("t"), unit="ms", utc=True)
        return df


class CcxtFunding:
    """Funding settlements from a ccxt exchange, read as of a time (the interface of ``FundingHistory``).

    ``symbol`` names the perpetual as the bundled files do (``BTC-USDT``) or as a project
    perpetual (``BTC-USDT-PERP``). Retried like bars; failures are MarketDataError.
    """

    def __init__(self, exchange: Any, retries: int = 3, retry_wait: float = 0.5, page: int = 1000) -> None:
        self.exchange = exchange
        self.retries, self.retry_wait, self.page = retries, retry_wait, page

    def _fetch(self, symbol: str, since: datetime) -> pd.Series:
        import ccxt

        base = symbol.removesuffix("-PERP")
        b, q = base.split("-")
        sym = f"{b}/{q}:{q}"

        def once() -> list[dict]:
            try:
                return self.exchange.fetch_funding_rate_history(sym, since=int(since.timestamp() * 1000),
                                                                limit=self.page)
            except ccxt.BadSymbol as exc:
                raise MarketDataError(f"no funding for {symbol}: {exc}") from exc
            except ccxt.BaseError as exc:
                raise FetchError(f"{type(exc).__name__}: {exc}") from exc

        try:
            for attempt in Retrying(stop=stop_after_attempt(self.retries),
                                    wait=wait_exponential(multiplier=self.retry_wait, max=30),
                                    retry=retry_if_exception_type(FetchError), reraise=True):
                with attempt:
                    rows = once()
        except FetchError as exc:
            raise MarketDataError(f"live funding of {symbol}: {exc} (after {self.retries} attempts)") from exc
        return pd.Series([float(r["fundingRate"]) for r in rows],
                         index=pd.DatetimeIndex(pd.to_datetime([r["timestamp"] for r in rows], unit="ms", utc=True),
                                                name="timestamp"), name="funding_rate")

    def between(self, symbol: str, start: datetime, end: datetime) -> pd.Series:
        """Settlements in (start, end]: what a position held over that span pays or receives."""
        s = self._fetch(symbol, start)
        return s[(s.index > pd.Timestamp(start)) & (s.index <= pd.Timestamp(end))]

    def as_of(self, symbol: str, as_of: datetime, lookback: int = 21) -> pd.Series:
        """The last ``lookback`` settlements at or before ``as_of`` (8-hourly: 21 is a week)."""
        s = self._fetch(symbol, as_of - timedelta(hours=8 * (lookback + 1)))
        return s[s.index <= pd.Timestamp(as_of)].iloc[-lookback:]


# ---------------------------------------------------------------------- IB


class IBBars:
    """Historical bars from TWS / IB Gateway with ``ib_async`` (``reqHistoricalData``, TRADES).

    Runs its own connection (``client_id`` must differ from the broker's) on its own
    event-loop thread; a dropped connection is re-made on the next fetch.
    """

    equity = True

    def __init__(self, host: str, port: int, client_id: int, timeout: float = 10.0, use_rth: bool = True,
                 sec_type: str = "STK", exchange: str = "SMART", currency: str = "USD") -> None:
        self.host, self.port, self.client_id, self.timeout, self.use_rth = host, port, client_id, timeout, use_rth
        self.sec_type, self.exchange, self.currency = sec_type, exchange, currency
        self._ib: Any = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"ib-bars-{port}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Disconnect and stop the loop thread."""
        def stop() -> None:
            if self._ib is not None:
                self._ib.disconnect()
            self._loop.stop()

        self._loop.call_soon_threadsafe(stop)
        self._thread.join(timeout=5)

    async def _bars(self, symbol: str, timeframe: str, count: int) -> list:
        from ib_async import IB, Contract

        if self._ib is None or not self._ib.isConnected():
            self._ib = IB()
            await self._ib.connectAsync(self.host, self.port, clientId=self.client_id, timeout=self.timeout,
                                        readonly=True)
        tf = TIMEFRAMES[timeframe]
        span = tf.duration * count
        duration = f"{max(1, span.days + 1)} D" if span.days < 365 else f"{span.days // 365 + 1} Y"
        contract = Contract(symbol=symbol, secType=self.sec_type, exchange=self.exchange, currency=self.currency)
        return list(await self._ib.reqHistoricalDataAsync(
            contract, endDateTime="", durationStr=duration, barSizeSetting=tf.ib_bar_size,
            whatToShow="TRADES", useRTH=self.use_rth, formatDate=2, timeout=self.timeout))

    def __call__(self, symbol: str, timeframe: str, count: int) -> pd.DataFrame:
        fut = asyncio.run_coroutine_threadsafe(self._bars(symbol, timeframe, count), self._loop)
        try:
            bars = fut.result(self.timeout * 2 + 1)
        except (OSError, ConnectionError, asyncio.TimeoutError, TimeoutError) as exc:
            fut.cancel()
            self._ib = None
            raise FetchError(f"IB {self.host}:{self.port}: {type(exc).__name__}: {exc}") from exc
        if not bars:
            raise FetchError(f"IB returned no {timeframe} bars for {symbol}")
        df = pd.DataFrame([[b.open, b.high, b.low, b.close, b.volume] for b in bars], columns=COLUMNS)
        stamps = [pd.Timestamp(b.date) for b in bars]
        df.index = pd.DatetimeIndex([t.tz_localize("UTC") if t.tzinfo is None else t for t in stamps])
        return df.iloc[-(count + 1):]
