"""The Commander's compute time alone (no I/O), and the store round trips of one run.

Compute: ``commander.decide.decide`` on synthetic inputs of S strategies × N
symbols, each strategy targeting every symbol (dense: S × N target positions,
the worst case), with holdings in half the symbols and an open order in a
tenth; then sparse, 50 targets per strategy. Targets (issue 16): dense 10 × 20
≤ 2 ms, 200 × 500 ≤ 50 ms, 1,000 × 2,000 ≤ 1 s; sparse 1,000 × 2,000 ≤ 100 ms.
Prints the median wall time and the median CPU time of this process (the
machine is shared: CPU time is the steadier figure), and the peak RSS. A case
of at most 10,000 cells is warmed up once and run at least 50 times.

What ``decide`` includes: classification, capital, sizing, caps, order minimums,
netting, global limits, the diff and the orders. From ``ARRAY_MIN_TARGETS`` target
positions on it runs on arrays and leaves the audit documents (``plan.decision``:
target lines with their contributions, conflicts, adjustments, zero lots; and
``plan.desired``) to be built when first read, as the run does when it records;
``docs ms`` is that build, timed apart (``decide + docs`` is what a recorded run
pays). ``path`` says which path ran.

Round trips: one real Commander run against the Firestore emulator with 10
strategies, counting the store's calls by kind.

    python bench/commander_compute.py [--repeat 5] [--sparse K] [--no-store]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bus.models import (
    Holding,
    InstrumentSpec,
    Intent,
    OpenOrder,
    PortfolioSnapshot,
    StrategyConfig,
    TargetPosition,
    TradingConfig,
)
from commander.decide import CommanderInputs, decide

T = datetime(2024, 6, 3, 21, 30, tzinfo=timezone.utc)


def make_inputs(n_strat: int, n_sym: int, per_strategy: int | None = None, seed: int = 7) -> CommanderInputs:
    rnd = random.Random(seed)
    syms = [f"S{i:04d}" for i in range(n_sym)]
    prices = {s: rnd.uniform(5, 500) for s in syms}
    specs = {s: InstrumentSpec(symbol=s) for s in syms}
    k = per_strategy or n_sym
    strategies, intents = {}, {}
    for i in range(n_strat):
        sid = f"strat{i:04d}"
        strategies[sid] = StrategyConfig(strategy_id=sid, name=sid, capital_allocation=0.9 / n_strat)
        chosen = syms if k >= n_sym else rnd.sample(syms, k)
        targets = [TargetPosition(symbol=s, weight=rnd.uniform(-1, 1) / k) for s in chosen]
        intents[sid] = Intent(intent_id=f"{sid}-i", strategy_id=sid, updated_at=T, as_of=T, status="success",
                              target_positions=targets)
    nav = 10_000_000.0
    holdings = [Holding(symbol=s, quantity=float(rnd.randint(-50, 50)), avg_cost=prices[s], market_price=prices[s],
                        market_value=0.0) for s in syms[::2]]
    orders = [OpenOrder(orderId=str(i), client_order_id=f"o{i}", symbol=s, action="BUY", totalQuantity=1,
                        created_at=T - timedelta(minutes=5)) for i, s in enumerate(syms[::10])]
    snap = PortfolioSnapshot(snapshot_id="p", updated_at=T, as_of=T, broker="sim", account="a", mode="paper",
                             net_liquidation=nav, available_funds=nav, cash=nav, holdings=holdings, open_orders=orders)
    cfg = TradingConfig(risk={"max_open_positions": max(10, n_sym)})
    return CommanderInputs("bench", T, cfg, strategies, intents, {}, snap, prices, specs)


def time_decide(inp: CommanderInputs, repeat: int) -> tuple[float, float, float, float, str]:
    """Median (wall seconds, CPU seconds) of ``decide(inp)`` over ``repeat`` runs, then the peak RSS (MiB), then
    the median wall seconds of building a plan's documents (``plan.decision``, ``plan.desired``) over
    ``repeat`` more, and the path ``decide`` took."""
    wall, cpu, docs = [], [], []
    path = "dicts"
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        plan = decide(inp)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        path = "arrays" if callable(getattr(plan, "_decision", None)) else "dicts"
        del plan
    rss = peak_rss_mib()
    for _ in range(repeat):
        plan = decide(inp)
        t1 = time.perf_counter()
        _ = plan.decision, plan.desired
        docs.append(time.perf_counter() - t1)
        del plan, _
    return statistics.median(wall), statistics.median(cpu), rss, statistics.median(docs), path


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (MiB; Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def round_trips() -> dict[str, int]:
    """Store calls of one Commander run with 10 strategies on the emulator."""
    from brokers.sim import SimBroker
    from bus import paths
    from bus.emulator import FirestoreEmulator
    from bus.store import FirestoreStore
    from commander.run import run_commander
    from reconcile import reconcile
    from strategies.runner import write_intent

    inp = make_inputs(10, 20)
    with FirestoreEmulator("bench") as emu:
        os.environ["FIRESTORE_EMULATOR_HOST"] = emu.host
        store = FirestoreStore(f"bench-{uuid.uuid4().hex[:8]}")
        store.set(paths.TRADING_CONFIG, inp.config.to_store())
        for sid, s in inp.strategies.items():
            store.set(paths.strategy(sid), s.to_store())
            write_intent(store, inp.intents[sid])
        broker = SimBroker(store, "acct", lambda s, t: inp.prices[s], inp.specs, starting_cash=1_000_000)
        reconcile(store, broker, T)
        store.stats.clear()
        ex = run_commander(store, broker, T, dry_run=True)
        assert ex.status == "completed", ex.reason
        return dict(sorted(store.stats.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--sparse", type=int, default=0, help="targets per strategy instead of every symbol")
    ap.add_argument("--no-store", action="store_true", help="skip the round-trip count")
    args = ap.parse_args()
    print(f"{'case':>8} {'strategies x symbols':>22} {'targets':>9} {'path':>7} {'wall ms':>9} {'cpu ms':>9} "
          f"{'target ms':>10} {'':>4} {'inputs MiB':>10} {'decide MiB':>10} {'docs ms':>9} {'+docs MiB':>9}")
    cases = [("dense", 10, 20, None, 2), ("dense", 200, 500, None, 50), ("sparse", 1000, 2000, 50, 100),
             ("dense", 1000, 2000, None, 1000)]  # the largest last: its peak RSS is the one printed
    if args.sparse:
        cases = [("sparse", s, n, args.sparse, t) for _, s, n, _, t in cases[:2] + cases[3:]]
    for kind, s, n, k, target in cases:
        inp = make_inputs(s, n, k)
        rss_inputs = peak_rss_mib()
        if s * n <= 10_000:  # milliseconds: one call to warm up, then enough runs for a steady median
            decide(inp)
            repeat = max(args.repeat, 50)
        else:
            repeat = args.repeat if s < 1000 or k else max(1, args.repeat // 2)
        wall, cpu, rss, docs, path = time_decide(inp, repeat)
        n_targets = sum(len(i.target_positions) for i in inp.intents.values())
        print(f"{kind:>8} {f'{s} x {n}':>22} {n_targets:>9} {path:>7} {wall * 1000:>9.1f} {cpu * 1000:>9.1f} "
              f"{target:>10} {'ok' if wall * 1000 <= target else 'OVER':>4} {rss_inputs:>10.0f} {rss:>10.0f} "
              f"{docs * 1000:>9.1f} {peak_rss_mib():>9.0f}")
        del inp
    print(f"peak RSS of the compute runs: {peak_rss_mib():.0f} MiB (peaks of the process so far: after building the "
          f"inputs, after decide, after decide + documents)")
    if not args.no_store:
        print("store calls of one Commander run, 10 strategies x 20 symbols:", round_trips())


if __name__ == "__main__":
    main()
