"""Data fetch time per run, cold and warm bar cache, against fake venues on loopback.

A "run" reads what the default classic strategies read as of now: SPY and VIXY daily bars
(``yfinance`` against the fake Yahoo, tests/fakes/fake_etf_source.py) and BTC-USDT and
ETH-USDT daily bars (``ccxt`` against the fake Binance USD-M, tests/fakes/fake_binance.py),
each ~1,000 bars, through a fresh :class:`market.provider.MarketData` (as a new process would):

* cold: an empty cache; every series is fetched, cleaned and appended;
* warm: the cache already holds every bar that could have closed; no request is made.

For each of the two caches: files under a state folder (locally) and store documents (the
cloud's layout, on the in-memory store; ``--emulator`` on the Firestore emulator too).

Usage::

    python bench/data_fetch.py [--runs 10] [--emulator]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bus.store import MemoryStore
from market.cache import BarCache, FileBarCache, StoreBarCache
from market.config import parse_market_config
from market.history import HistoryProvider
from market.provider import MarketData
from market.sources import Fetchers
from tests.fakes.fake_binance import FakeBinanceUSDM
from tests.fakes.fake_etf_source import FakeYahoo
from tests.market.today import crypto_rows, etf_rows

SERIES = [("SPY", "1d"), ("VIXY", "1d"), ("BTC-USDT", "1d"), ("ETH-USDT", "1d")]


def figures(name: str, times: list[float], requests: list[int]) -> str:
    """One line: median, p95 and max of ``times`` (seconds) in ms, and requests per run."""
    ms = sorted(t * 1000 for t in times)
    p95 = ms[min(len(ms) - 1, int(0.95 * len(ms)))]
    return (f"{name}: runs={len(ms)} median={statistics.median(ms):.1f} ms  p95={p95:.1f} ms  max={ms[-1]:.1f} ms"
            f"  requests/run={statistics.mean(requests):.0f}")


def one_run(cfg, cache: BarCache, bundled: HistoryProvider, now: datetime) -> tuple[float, int]:
    """Read every series as of now through a fresh MarketData; (seconds, requests made)."""
    md = MarketData(cfg, cache, bundled, Fetchers(cfg, lambda: now), lambda: now)
    t = time.perf_counter()
    view = md.view(now)
    for symbol, tf in SERIES:
        view.bars(symbol, tf)
    return time.perf_counter() - t, md.requests


def bench(label: str, cfg, new_cache: Callable[[], BarCache], runs: int, bundled: HistoryProvider,
          now: datetime) -> None:
    cold_t, cold_n, warm_t, warm_n = [], [], [], []
    for _ in range(runs):
        cache = new_cache()
        t, n = one_run(cfg, cache, bundled, now)
        cold_t.append(t)
        cold_n.append(n)
        t, n = one_run(cfg, cache, bundled, now)
        warm_t.append(t)
        warm_n.append(n)
    print(figures(f"{label} cold cache", cold_t, cold_n))
    print(figures(f"{label} warm cache", warm_t, warm_n))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--emulator", action="store_true", help="also the store cache on the Firestore emulator")
    args = ap.parse_args()
    now = datetime.now(timezone.utc)
    bundled = HistoryProvider()
    with FakeBinanceUSDM() as binance, FakeYahoo() as yahoo, tempfile.TemporaryDirectory() as tmp:
        binance.set_klines("BTCUSDT", "1d", crypto_rows("BTC-USDT", now, n=1000))
        binance.set_klines("ETHUSDT", "1d", crypto_rows("ETH-USDT", now, n=1000))
        yahoo.set_bars("SPY", etf_rows("SPY", now, n=1000))
        yahoo.set_bars("VIXY", etf_rows("VIXY", now, n=1000))
        cfg = parse_market_config({
            "sources": {"yahoo": {"kind": "yfinance", "base_url": yahoo.base_url},
                        "binance": {"kind": "ccxt", "exchange": "binanceusdm", "base_url": binance.base_url,
                                    "symbols": {"BTC-USDT": "BTC/USDT:USDT", "ETH-USDT": "ETH/USDT:USDT"}}},
            "symbols": {"SPY": "yahoo", "VIXY": "yahoo", "BTC-USDT": "binance", "ETH-USDT": "binance"}})
        one_run(cfg, FileBarCache(Path(tmp) / "warmup"), bundled, now)  # imports, ccxt markets, yfinance cookie
        print(f"data fetch per run: {len(SERIES)} daily series of ~1000 bars (2 yfinance, 2 ccxt), fakes on loopback")
        bench("files", cfg, lambda: FileBarCache(Path(tmp) / uuid.uuid4().hex), args.runs, bundled, now)
        bench("store (memory)", cfg, lambda: StoreBarCache(MemoryStore()), args.runs, bundled, now)
        if args.emulator:
            import os

            from bus.emulator import FirestoreEmulator
            from bus.store import FirestoreStore

            with FirestoreEmulator("bench-data-fetch") as emu:
                os.environ["FIRESTORE_EMULATOR_HOST"] = emu.host
                bench("store (emulator)", cfg, lambda: StoreBarCache(FirestoreStore(f"b-{uuid.uuid4().hex[:10]}")),
                      args.runs, bundled, now)


if __name__ == "__main__":
    main()
