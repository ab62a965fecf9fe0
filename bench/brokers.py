"""Broker figures: reconcile latency against each fake venue, and the paper broker's fills per second.

* reconcile = ``broker.portfolio`` + the snapshot write (``reconcile.reconcile``), against
  - the fake TWS with the real ``ib_async`` (connected; 3 holdings, 2 working orders),
  - the fake Binance USD-M with the real ``ccxt`` (markets loaded; 2 positions, 1 working
    order), with ccxt's client-side rate limiter off and on (on, an unfiltered
    ``openOrders`` costs 40 request weight: ccxt waits before sending it),
  - the paper broker (sim) on the Firestore emulator;
  with the snapshot written to an in-memory store for the fakes (the store is not what is
  measured there) and to the emulator for the sim (its account lives there).
* fills per second: market orders on the paper broker, sequentially, on the emulator
  (each fill = one read of the account + one batch write) and on the in-memory store.

Usage::

    python bench/brokers.py [--runs 30] [--fills 200]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from brokers.base import OrderRequest
from brokers.config import CcxtAccount
from brokers.factory import build_broker
from brokers.ib import IBBroker
from brokers.sim import SimBroker
from bus.emulator import FirestoreEmulator
from bus.models import InstrumentSpec
from bus.store import FirestoreStore, MemoryStore
from reconcile import reconcile
from tests.fakes.fake_binance import FakeBinanceUSDM
from tests.fakes.fake_tws import FakeTWS


def figures(name: str, times: list[float]) -> str:
    """One line: median, p95 and max of ``times`` (seconds) in ms."""
    ms = sorted(t * 1000 for t in times)
    p95 = ms[min(len(ms) - 1, int(0.95 * len(ms)))]
    return f"{name}: runs={len(ms)} median={statistics.median(ms):.1f} ms  p95={p95:.1f} ms  max={ms[-1]:.1f} ms"


def timed(fn, runs: int) -> list[float]:
    """Wall times of ``runs`` calls of ``fn`` after one warm-up call."""
    fn()  # warm-up: connect, load markets
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def bench_ib(runs: int) -> str:
    """Reconcile latency against the fake TWS."""
    with FakeTWS() as tws:
        for sym, q, px in (("SPY", 10, 480.0), ("VIXY", -100, 16.0), ("QQQ", 5, 420.0)):
            tws.seed_position(sym, q, px)
        b = IBBroker(tws.host, tws.port, 41, reconnect_wait=0.05)
        try:
            now = datetime.now(timezone.utc)
            b.place_order(OrderRequest("bench-l1", "SPY", "BUY", 1, order_type="LMT", limit_price=400.0), now)
            b.place_order(OrderRequest("bench-l2", "QQQ", "SELL", 1, order_type="LMT", limit_price=500.0), now)
            store = MemoryStore()
            times = timed(lambda: reconcile(store, b, datetime.now(timezone.utc)), runs)
        finally:
            b.close()
    return figures("reconcile, IB (ib_async -> fake TWS)", times)


def bench_binance(runs: int, rate_limit: bool) -> str:
    """Reconcile latency against the fake Binance USD-M."""
    os.environ["BENCH_BN_KEY"], os.environ["BENCH_BN_SECRET"] = "bench-key", "bench-secret"
    with FakeBinanceUSDM("bench-key", "bench-secret") as fake:
        fake.seed_position("BTCUSDT", "0.1", "50000")
        fake.seed_position("ETHUSDT", "-1", "3200")
        cfg = CcxtAccount(exchange="binanceusdm", account="bench", api_key_env="BENCH_BN_KEY",
                          secret_env="BENCH_BN_SECRET", enable_rate_limit=rate_limit)
        b = build_broker(cfg, "paper", instruments={})
        fake.point_ccxt(b.exchange)
        b.place_order(OrderRequest("bench-l1", "ETH-USDT-PERP", "BUY", 0.01, order_type="LMT", limit_price=2900.0),
                      datetime.now(timezone.utc))
        store = MemoryStore()
        times = timed(lambda: reconcile(store, b, datetime.now(timezone.utc)), runs)
    return figures(f"reconcile, Binance USD-M (ccxt -> fake, rate limiter {'on' if rate_limit else 'off'})", times)


SPECS = {"SPY": InstrumentSpec(symbol="SPY", min_quantity=1), "VIXY": InstrumentSpec(symbol="VIXY", min_quantity=1),
         "BTC-USDT-PERP": InstrumentSpec(symbol="BTC-USDT-PERP", secType="PERP", lot_size=0.001, tick_size=0.1,
                                         max_leverage=5)}
PRICES = {"SPY": 500.0, "VIXY": 15.0, "BTC-USDT-PERP": 60_000.0}


def bench_sim(store, label: str, runs: int, fills: int) -> list[str]:
    """Reconcile latency and sequential fills per second of the paper broker on ``store``."""
    b = SimBroker(store, f"bench-{uuid.uuid4().hex[:6]}", lambda s, t: PRICES[s], SPECS, starting_cash=10_000_000)
    t = datetime(2024, 6, 3, 21, 30, tzinfo=timezone.utc)
    b.place_order(OrderRequest("seed-1", "VIXY", "SELL", 100), t)
    b.place_order(OrderRequest("seed-2", "BTC-USDT-PERP", "BUY", 0.5), t)
    b.place_order(OrderRequest("seed-3", "SPY", "BUY", 1, order_type="LMT", limit_price=400.0), t)
    out = [figures(f"reconcile, paper broker (sim, {label})", timed(lambda: reconcile(store, b, t), runs))]
    t0 = time.perf_counter()
    for i in range(fills):
        b.place_order(OrderRequest(f"fill-{i}", "SPY", "BUY" if i % 2 == 0 else "SELL", 1), t)
    dt = time.perf_counter() - t0
    out.append(f"paper broker fills ({label}): {fills} market orders in {dt:.2f} s = {fills / dt:.0f} fills/s "
               f"({dt / fills * 1000:.1f} ms each)")
    return out


def main() -> None:
    """Run every figure and print them."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--fills", type=int, default=200)
    args = ap.parse_args()
    lines = [bench_ib(args.runs), bench_binance(args.runs, False), bench_binance(max(3, args.runs // 10), True)]
    lines += bench_sim(MemoryStore(), "in-memory store", args.runs, args.fills * 10)
    with FirestoreEmulator("bench-brokers") as emu:
        os.environ["FIRESTORE_EMULATOR_HOST"] = emu.host
        lines += bench_sim(FirestoreStore(f"bench-{uuid.uuid4().hex[:8]}"), "Firestore emulator", args.runs,
                           args.fills)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
