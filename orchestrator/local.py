"""The local runner's wiring: the store (embedded emulator, an existing one, real
Firestore or memory), the bundled history, the paper broker, and as-of times.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Iterator, Literal

from brokers.base import Broker
from brokers.factory import build_broker
from bus.emulator import EmulatorError, FirestoreEmulator
from bus.store import FirestoreStore, MemoryStore, Store
from market.funding import FundingHistory
from market.history import HistoryProvider, MarketDataError
from orchestrator.config import Settings

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


def data_range(provider: HistoryProvider, symbols: list[str]) -> tuple[date, date, date]:
    """(first day any series has, last day every series has, last day any series has)."""
    cov = provider.coverage(symbols)
    first = min(c[0] for c in cov.values()).date()
    common_last = min(c[1] for c in cov.values()).date()
    last = max(c[1] for c in cov.values()).date()
    return first, common_last, last


def resolve_as_of(day: date | None, settings: Settings, provider: HistoryProvider) -> datetime:
    """``day`` at the run time; by default the last day every bundled series covers.

    Raises:
        RunInputError: ``day`` outside the bundled data.
    """
    first, common_last, last = data_range(provider, list(settings.instruments))
    if day is None:
        return as_of_on(common_last, settings)
    if not first <= day <= last:
        raise RunInputError(f"as-of {day.isoformat()} is outside the bundled data ({first.isoformat()} .. {last.isoformat()})")
    return as_of_on(day, settings)


def make_broker(store: Store, settings: Settings, provider: HistoryProvider,
                funding: FundingHistory | None = None) -> Broker:
    """The broker of the configured account (:func:`brokers.factory.build_broker`).

    A paper (``sim``) account prices from ``provider`` as of each call (the newest close of
    the first of its ``price_timeframes`` that has the symbol), rests limit orders against
    the same bars, and applies perpetual funding (``BASE-QUOTE-PERP``) from ``funding``
    (the bundled history by default); a perpetual without funding history fails closed.

    Raises:
        brokers.base.BrokerConfigError: the account cannot be built (a missing secret, ...).
    """
    acct = settings.account
    timeframes = list(getattr(acct, "price_timeframes", ["1d"]))

    def frame_of(symbol: str):  # noqa: ANN202 - a pandas DataFrame
        for tf in timeframes:
            try:
                return provider.frame(symbol, tf)
            except MarketDataError:
                continue
        raise MarketDataError(f"no {'/'.join(timeframes)} bars for {symbol!r}")

    def price(symbol: str, as_of: datetime) -> float:
        view = provider.view(as_of)
        for tf in timeframes[:-1]:
            try:
                return view.last_price(symbol, tf)
            except MarketDataError:
                continue
        return view.last_price(symbol, timeframes[-1])

    def bars(symbol: str, start: datetime, end: datetime) -> list[tuple]:
        df = frame_of(symbol)
        ct = df["close_time"]
        sel = df[(ct > start) & (ct <= end)]
        return list(zip(sel["close_time"].dt.to_pydatetime(), sel["open"], sel["high"], sel["low"], sel["close"]))

    history = funding or FundingHistory()

    def funding_between(symbol: str, start: datetime, end: datetime) -> list[tuple]:
        base = symbol.removesuffix("-PERP")
        series = history.series(base)  # MarketDataError (a LookupError) naming the symbol when absent
        if end > series.index[-1] + timedelta(hours=8, minutes=5):
            raise MarketDataError(f"funding history of {base} ends {series.index[-1].isoformat()}, "
                                  f"before {end.isoformat()}")
        s = history.between(base, start, end)
        return list(zip(s.index.to_pydatetime(), s.values.tolist()))

    return build_broker(acct, settings.trading.mode, instruments=settings.instruments, store=store, prices=price,
                        funding=funding_between, bars=bars, base_currency=settings.trading.base_currency)


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
        yield FirestoreStore(project_id())
    finally:
        os.environ.pop("FIRESTORE_EMULATOR_HOST", None)
        try:
            if started:
                emu.export()
        except EmulatorError as exc:
            log.error("could not save the emulator state: %s", exc)
        finally:
            emu.stop()
