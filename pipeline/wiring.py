"""The local runner's wiring: the store (embedded emulator, an existing one, real
Firestore or memory), the market data, the paper broker, and as-of times.

Market data (:func:`market_data`): the bundled bars plus the bar cache, refreshed from the
``market.yaml`` sources for a run as of now. Locally the cache is files under the state
folder (:func:`file_cache`: ``{state dir}/bars/{source}/{symbol}-{timeframe}.csv``); in the
cloud it is Firestore documents (:class:`market.cache.StoreBarCache`).

As-of times (:func:`resolve_as_of`): as of now (``run --live-data``; in the cloud a request
without ``asOf`` when ``market.yaml`` says ``as_of_now: true``), or a historical day at the
configured run time, on bundled and cached bars only. A live broker (IB, ccxt) takes only
"as of now": a historical as-of with it is refused.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Literal

from brokers.base import Broker
from brokers.config import SimAccount
from brokers.factory import build_broker
from brokers.sim import FundingSource, OpenSource
from bus import paths
from bus.emulator import EmulatorError, FirestoreEmulator
from bus.store import FirestoreStore, MemoryStore, Store
from market.cache import BarCache, FileBarCache
from market.calendar import utc_ns
from market.funding import FundingHistory
from market.funding_feed import FundingFeed
from market.history import BUNDLED_DIR, HistoryProvider, MarketDataError
from market.provider import MarketData
from market.sources import Fetchers
from pipeline.settings import Settings

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)
StoreKind = Literal["emulator", "firestore", "memory"]
DEFAULT_PROJECT = "intent-bus-local"
DEFAULT_STATE_DIR = Path(__file__).resolve().parent.parent / ".state"


class RunInputError(ValueError):
    """Bad input to a run (as-of outside the data, unknown strategy): nothing is written."""


def project_id() -> str:
    """``$GOOGLE_CLOUD_PROJECT`` or the local default."""
    return os.environ.get("GOOGLE_CLOUD_PROJECT") or DEFAULT_PROJECT


def run_time(settings: Settings) -> time:
    """The configured daily run time (UTC)."""
    hh, mm = settings.trading.run_time_utc.split(":")
    return time(int(hh), int(mm), tzinfo=timezone.utc)


def as_of_on(day: date, settings: Settings) -> datetime:
    """The run's as-of instant on ``day``: the configured run time, UTC."""
    return datetime.combine(day, run_time(settings))


def data_range(provider: HistoryProvider | MarketData, symbols: list[str]) -> tuple[date, date, date]:
    """(first day any series has, last day every series has, last day any series has), bundled or cached.

    Raises:
        RunInputError: none of ``symbols`` has a bundled or cached daily bar.
    """
    cov = provider.coverage(symbols)
    if not cov:
        raise RunInputError(f"no daily bars of {', '.join(symbols)} are bundled or cached")
    first = min(c[0] for c in cov.values()).date()
    common_last = min(c[1] for c in cov.values()).date()
    last = max(c[1] for c in cov.values()).date()
    return first, common_last, last


def live_broker(settings: Settings) -> str | None:
    """``"name (kind)"`` of the account when it is a live broker (IB, ccxt), None for the paper broker."""
    acct = settings.account
    return None if isinstance(acct, SimAccount) else f"{acct.account!r} ({acct.kind})"


def resolve_as_of(day: date | None, settings: Settings, provider: HistoryProvider | MarketData, *,
                  now: bool = False, clock: Callable[[], datetime] | None = None) -> datetime:
    """The run's as-of instant.

    * ``now``: the current time (``clock``, default the wall clock); the provider then reads
      the configured sources (see :class:`market.provider.MarketData`).
    * ``day``: the configured run time on that day, on bundled and cached bars only.
    * neither: the run time on the last day every instrument's bundled or cached bars cover
      (the day before, when that time is still to come).

    Raises:
        RunInputError: ``day`` and ``now`` both given; ``day`` outside the bundled and cached
            bars, or its run time still in the future; a live broker with a historical as-of
            (or without ``now``).
    """
    live = live_broker(settings)
    if now:
        if day is not None:
            raise RunInputError(f"as-of {day.isoformat()} and 'as of now' exclude each other: give one")
        return (clock or (lambda: datetime.now(timezone.utc)))()
    if live is not None and day is not None:
        raise RunInputError(f"as-of {day.isoformat()} is historical, and the live broker account {live} trades the "
                            "market as it is now: run a historical as-of on the paper broker (mode: paper), or "
                            "run as of now (python main.py run --live-data; over HTTP leave out asOf)")
    if live is not None:
        raise RunInputError(f"the live broker account {live} trades only as of now: run python main.py run "
                            "--live-data (in the cloud: as_of_now: true in market.yaml)")
    first, common_last, last = data_range(provider, list(settings.instruments))
    current = (clock or (lambda: datetime.now(timezone.utc)))()
    if day is None:
        when = as_of_on(common_last, settings)
        return when if when <= current else as_of_on(common_last - timedelta(days=1), settings)
    if not first <= day <= last:
        raise RunInputError(f"as-of {day.isoformat()} is outside the bundled data and the bar cache "
                            f"({first.isoformat()} .. {last.isoformat()}); a historical as-of runs only on bundled "
                            "or cached bars (fetch more: python main.py data update)")
    when = as_of_on(day, settings)
    if when > current:
        raise RunInputError(f"as-of {day.isoformat()} means {when.isoformat()}, which is in the future "
                            f"(now {current.isoformat(timespec='seconds')}); run as of now instead")
    return when


def file_cache(state_dir: Path | None = None) -> FileBarCache:
    """The local bar cache: ``{state_dir}/bars`` (default ``.state/bars``)."""
    return FileBarCache(Path(state_dir or DEFAULT_STATE_DIR) / "bars")


def market_data(settings: Settings, cache: BarCache | None, *, fetch: bool = True, data_dirs: list[Path] | None = None,
                clock: Callable[[], datetime] | None = None, exchanges: dict[str, Any] | None = None,
                bundled: HistoryProvider | None = None) -> MarketData:
    """The run's market data: bundled bars (``market/data`` plus ``data_dirs``), the bar cache, and
    the ``market.yaml`` sources (built on first use; used only by views as of now).

    Args:
        cache: where fetched bars go; None: bundled bars only, nothing is ever fetched.
        fetch: False: read the cache but never fetch (a historical run, a replay).
        clock: the current time (UTC); default the wall clock.
        exchanges: prebuilt ccxt exchanges by source name (tests point them at fakes).
        bundled: an already-parsed bundled history to share (the cloud keeps one per instance).
    """
    clock = clock or (lambda: datetime.now(timezone.utc))
    bundled = bundled or HistoryProvider([BUNDLED_DIR, *(data_dirs or [])])
    fetchers = Fetchers(settings.market, clock, exchanges) if cache is not None and fetch else None
    return MarketData(settings.market, cache, bundled, fetchers, clock)


#: (symbol, as-of) prices a paper broker on bars from files keeps (:func:`make_broker`).
PRICES_KEPT = 4096


def make_broker(store: Store, settings: Settings, provider: HistoryProvider | MarketData,
                funding: FundingHistory | None = None) -> Broker:
    """The broker of the configured account (:func:`brokers.factory.build_broker`).

    A paper (``sim``) account prices from ``provider`` as of each call (the newest close of
    the first of its ``price_timeframes`` that has the symbol), rests limit orders against
    the same bars, and applies perpetual funding (``BASE-QUOTE-PERP``) from ``funding``
    (default: with a :class:`~market.provider.MarketData`, its configured funding sources and
    cache, :class:`~market.funding_feed.FundingFeed`; else the bundled history); a perpetual
    without funding history fails closed. In a run as of now, prices and funding are
    refreshed from the sources first.

    Raises:
        brokers.base.BrokerConfigError: the account cannot be built (a missing secret, ...).
    """
    acct = settings.account
    timeframes = list(getattr(acct, "price_timeframes", ["1d"]))

    def frame_of(symbol: str) -> pd.DataFrame:
        for tf in timeframes:
            try:
                return provider.frame(symbol, tf)
            except MarketDataError:
                continue
        raise MarketDataError(f"no {'/'.join(timeframes)} bars for {symbol!r}")

    # Bars on files (a backtest's horizon, the bundled history) give one price per (symbol, as-of): the paper
    # account asks for the same ones many times a step (quotes, snapshots, fills, margin checks), so they are
    # kept (the newest PRICES_KEPT). Live market data (MarketData) may refresh between calls: always asked.
    kept: dict[tuple[str, datetime], float] | None = {} if isinstance(provider, HistoryProvider) else None

    def price(symbol: str, as_of: datetime) -> float:
        if kept is not None and (hit := kept.get((symbol, as_of))) is not None:
            return hit
        view = provider.view(as_of)
        px: float | None = None
        for tf in timeframes[:-1]:
            try:
                px = view.last_price(symbol, tf)
                break
            except MarketDataError:
                continue
        if px is None:
            px = view.last_price(symbol, timeframes[-1])
        if kept is not None:
            if len(kept) >= PRICES_KEPT:
                kept.clear()
            kept[(symbol, as_of)] = px
        return px

    def bars(symbol: str, start: datetime, end: datetime) -> list[tuple]:
        df = frame_of(symbol)
        ct = df["close_time"]
        sel = df[(ct > start) & (ct <= end)]
        return list(zip(sel["close_time"].dt.to_pydatetime(), sel["open"], sel["high"], sel["low"], sel["close"],
                        strict=True))

    history: FundingHistory | FundingFeed = funding or (
        FundingFeed(provider.config, FundingHistory(), provider.cache, provider.fetchers, provider.clock)
        if isinstance(provider, MarketData) else FundingHistory())

    funding_between = _funding_source(history)

    return build_broker(acct, settings.trading.mode, instruments=settings.instruments, store=store, prices=price,
                        funding=funding_between, bars=bars, base_currency=settings.trading.base_currency,
                        opens=next_open_source(provider, {**settings.instruments, **getattr(acct, "instruments", {})}))


def _funding_source(history: FundingHistory | FundingFeed) -> FundingSource:
    """The paper broker's funding source on ``history``: settlements of a perpetual in ``(start, end]`` as
    ``(time UTC, rate)``.

    Raises (the source, when called):
        MarketDataError: no funding history for the symbol, or it ends before ``end``.
    """
    def funding_between(symbol: str, start: datetime, end: datetime) -> list[tuple]:
        base = symbol.removesuffix("-PERP")
        # MarketDataError (a LookupError) naming the symbol when absent; a feed refreshes first when ``end`` is now
        series = history.series(base, end) if isinstance(history, FundingFeed) else history.series(base)
        if end > series.index[-1] + timedelta(hours=8, minutes=5):
            raise MarketDataError(f"funding history of {base} ends {series.index[-1].isoformat()}, "
                                  f"before {end.isoformat()}")
        if isinstance(history, FundingFeed):
            s = history.between(base, start, end)
            return list(zip(s.index.to_pydatetime(), s.values.tolist(), strict=True))
        return history.settlements(base, start, end)  # files: no pandas per call (a backtest asks every step)

    return funding_between


#: Bar timeframes a market order may fill in, finest first (the earliest open after the order wins).
FILL_TIMEFRAMES = ("1h", "4h", "1d")


def next_open_source(provider: HistoryProvider | MarketData,
                     instruments: dict[str, Any]) -> OpenSource:
    """The paper broker's :class:`~brokers.sim.OpenSource`: the earliest bar of ``symbol`` that opens at or
    after ``after`` and by ``until``, as ``(open time UTC, open)``; None when none has opened yet.

    A stock (``secType`` ``STK``) fills at the next XNYS session's open (daily bars, open times from
    ``exchange_calendars``, :func:`market.calendar.equity_daily_open_times`): an order placed after the
    close, on a weekend or a holiday waits for the next session. Anything else fills at the open of the
    first 1h, 4h or daily bar after ``after``, whichever opens first (the 1h bar where 1h bars exist).
    Raises nothing for a missing timeframe; None when the symbol has no bars at all.
    """
    import numpy as np

    from market.calendar import equity_daily_open_times

    cache: dict[tuple[str, str], tuple[Any, Any, Any]] = {}
    # bars on files (a backtest's horizon, the bundled history) do not change: their arrays, and the timeframes
    # a symbol has no bars at, are kept without asking the provider again (a backtest asks at every step)
    static = isinstance(provider, HistoryProvider)
    absent: dict[tuple[str, str], str] = {}

    def arrays(symbol: str, tf: str) -> tuple[Any, Any]:
        hit = cache.get((symbol, tf))
        if static:
            if hit is not None:
                return hit[1], hit[2]
            if (symbol, tf) in absent:
                raise MarketDataError(absent[(symbol, tf)])
            try:
                df = provider.frame(symbol, tf)
            except MarketDataError as exc:
                absent[(symbol, tf)] = str(exc)
                raise
        else:
            df = provider.frame(symbol, tf)
        if hit is not None and hit[0] is df:
            return hit[1], hit[2]
        idx = pd_index_utc(df.index)
        times = equity_daily_open_times(idx) if tf == "1d" and _is_stock(instruments, symbol) else idx
        out = (np.asarray(times.as_unit("ns").asi8), df["open"].to_numpy(dtype=float))
        cache[(symbol, tf)] = (df, *out)
        return out

    def next_open(symbol: str, after: datetime, until: datetime) -> tuple[datetime, float] | None:
        a, u = utc_ns(after), utc_ns(until)
        best: tuple[int, float] | None = None
        for tf in ("1d",) if _is_stock(instruments, symbol) else FILL_TIMEFRAMES:
            try:
                times, opens = arrays(symbol, tf)
            except MarketDataError:
                continue
            i = int(np.searchsorted(times, a, side="left"))
            if i < len(times) and times[i] <= u and (best is None or times[i] < best[0]):
                best = (int(times[i]), float(opens[i]))
        if best is None:
            return None
        return datetime.fromtimestamp(best[0] / 1e9, tz=timezone.utc), best[1]

    return next_open


def _is_stock(instruments: dict[str, Any], symbol: str) -> bool:
    spec = instruments.get(symbol)
    return getattr(spec, "secType", None) == "STK"




def pd_index_utc(index: Any) -> Any:
    """``index`` as a UTC DatetimeIndex (bar frames are indexed by open time, UTC)."""
    import pandas as pd

    idx = pd.DatetimeIndex(index)
    return idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")


#: Writes after which the embedded emulator saves its state: the write-ahead of orders, each order's
#: answer, and the audit. A crash of the process (even ``kill -9``, which also takes the emulator down)
#: then loses nothing the next run needs to resolve the orders it sent.
COMMIT_POINT_PREFIXES = (paths.ORDERS + "/", "executions/")


def _saved_at_commit_points(emu: FirestoreEmulator) -> Callable[[list[str]], None]:
    def save(written: list[str]) -> None:
        if any(p.startswith(COMMIT_POINT_PREFIXES) for p in written):
            emu.export()

    return save


@contextmanager
def open_store(kind: StoreKind = "emulator", state_dir: Path | None = None) -> Iterator[Store]:
    """Yield a store; an emulator started here is exported and stopped on exit.

    * ``emulator``: use ``$FIRESTORE_EMULATOR_HOST`` if set, else start one
      importing/exporting ``state_dir``.
    * ``firestore``: real Firestore; needs ``$GOOGLE_CLOUD_PROJECT``.
    * ``memory``: a fresh in-memory store.

    Raises:
        EmulatorError: the emulator is missing or did not start.
        RunInputError: ``firestore`` without ``$GOOGLE_CLOUD_PROJECT``.
    """
    if kind == "memory":
        yield MemoryStore()
        return
    if kind == "firestore":
        if not os.environ.get("GOOGLE_CLOUD_PROJECT"):
            raise RunInputError("--store firestore needs GOOGLE_CLOUD_PROJECT set to the project id")
        if os.environ.get("FIRESTORE_EMULATOR_HOST"):
            raise RunInputError("--store firestore with FIRESTORE_EMULATOR_HOST set would use the emulator; unset it")
        yield FirestoreStore(project_id())
        return
    if os.environ.get("FIRESTORE_EMULATOR_HOST"):
        log.info("using the emulator at %s", os.environ["FIRESTORE_EMULATOR_HOST"])
        yield FirestoreStore(project_id())
        return
    emu = FirestoreEmulator(project_id(), state_dir=state_dir or DEFAULT_STATE_DIR)
    emu.start()
    started = True
    os.environ["FIRESTORE_EMULATOR_HOST"] = emu.host
    try:
        store = FirestoreStore(project_id())
        store.on_commit = _saved_at_commit_points(emu)
        yield store
    finally:
        os.environ.pop("FIRESTORE_EMULATOR_HOST", None)
        try:
            if started:
                emu.export()
        except EmulatorError as exc:
            log.error("could not save the emulator state: %s", exc)
        finally:
            emu.stop()
