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

Inputs: the intents are made as the store returns them (a dict per target) and read
as the run reads them (``commander.state.load_state``): from ``ARRAY_MIN_TARGETS`` targets on,
validated into columns (``commander.targets``), one intent at a time, below it into objects;
``edge s`` is that reading (CPU seconds, not part of ``decide``). ``--objects``:
intents holding 2 M validated ``TargetPosition`` objects instead (the old bench,
1.6 GiB of inputs for the dense 1,000 × 2,000). Peak RSS (MiB, of the process, so
each stage's figure includes the ones before): after the inputs, after the ``decide``
runs, after ``decide`` + documents, and (``--record``) after one plan's audit record
is turned into its writes (``to_store`` and ``commander.record.split_execution``).
``--only dense-1000`` runs one case in a fresh process: its peak alone.

Round trips: one real Commander run against the Firestore emulator with 10
strategies, counting the store's calls by kind.

    python bench/commander_compute.py [--repeat 5] [--sparse K] [--only CASE] [--objects] [--record] [--no-store]
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
from dataclasses import dataclass
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
from commander.decide import ARRAY_MIN_TARGETS, CommanderInputs, decide
from commander.targets import parse_intent_columns

T = datetime(2024, 6, 3, 21, 30, tzinfo=timezone.utc)


def make_inputs(n_strat: int, n_sym: int, per_strategy: int | None = None, seed: int = 7,
                columns: bool = False) -> CommanderInputs:
    """Synthetic inputs (see the module docstring). ``columns``: each intent is made as the store returns it
    (``Intent.to_store()``: a dict per target, every field), read with
    :func:`commander.targets.parse_intent_columns` (validated, targets kept as columns) and its dict dropped,
    one intent at a time, as the run reads them; else the intents hold validated ``TargetPosition`` objects."""
    rnd = random.Random(seed)
    syms = [f"S{i:04d}" for i in range(n_sym)]
    prices = {s: rnd.uniform(5, 500) for s in syms}
    specs = {s: InstrumentSpec(symbol=s) for s in syms}
    k = per_strategy or n_sym
    strategies: dict[str, StrategyConfig] = {}
    intents: dict[str, Intent | None] = {}
    blank = TargetPosition(symbol="-", weight=0.0).to_store()
    for i in range(n_strat):
        sid = f"strat{i:04d}"
        strategies[sid] = StrategyConfig(strategy_id=sid, name=sid, capital_allocation=0.9 / n_strat)
        chosen = syms if k >= n_sym else rnd.sample(syms, k)
        if columns:  # a fresh str per symbol, as a decoded document has
            doc = {"intent_id": f"{sid}-i", "strategy_id": sid, "updated_at": T, "as_of": T, "status": "success",
                   "target_positions": [{**blank, "symbol": "".join(s), "weight": rnd.uniform(-1, 1) / k}
                                        for s in chosen]}
            intents[sid] = parse_intent_columns(sid, doc)
            del doc
            continue
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


@dataclass
class Timing:
    """Medians of one case: ``decide`` (wall, CPU seconds), then building its documents (``plan.decision``,
    ``plan.desired``; wall, CPU seconds); peak RSS (MiB) after the decide runs and after the document runs;
    the path ``decide`` took."""

    wall: float
    cpu: float
    docs_wall: float
    docs_cpu: float
    rss_decide: float
    rss_docs: float
    path: str


def time_decide(inp: CommanderInputs, repeat: int) -> Timing:
    """:class:`Timing` of ``decide(inp)`` over ``repeat`` runs, then of ``decide`` + its documents over ``repeat``
    more (one plan alive at a time)."""
    wall, cpu, docs, docs_cpu = [], [], [], []
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
        t1, c1 = time.perf_counter(), time.process_time()
        _ = plan.decision, plan.desired
        docs.append(time.perf_counter() - t1)
        docs_cpu.append(time.process_time() - c1)
        del plan, _
    med = statistics.median
    return Timing(med(wall), med(cpu), med(docs), med(docs_cpu), rss, peak_rss_mib(), path)


def record_cost(inp: CommanderInputs) -> tuple[float, float]:
    """(CPU seconds, peak RSS MiB after) of turning one plan's decision into the writes of its audit record:
    the stored form (``to_store``) cut into a header and parts (:func:`commander.record.split_execution`), as the
    run writes ``executions/{id}`` (the rest of an execution is small next to its decision)."""
    from commander.record import split_execution

    plan = decide(inp)
    c0 = time.process_time()
    header, parts = split_execution({"execution_id": "bench", "decision": plan.decision.to_store()})
    cpu = time.process_time() - c0
    del plan, header, parts
    return cpu, peak_rss_mib()


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


CASES = {"dense-10": ("dense", 10, 20, None, 2), "dense-200": ("dense", 200, 500, None, 50),
         "sparse-1000": ("sparse", 1000, 2000, 50, 100), "dense-1000": ("dense", 1000, 2000, None, 1000)}


def run_case(kind: str, s: int, n: int, k: int | None, target: float, args: argparse.Namespace) -> None:
    """Build one case's inputs, time them and print its line."""
    c0 = time.process_time()
    # As commander.state.load_state reads them: columns from ARRAY_MIN_TARGETS targets on, else objects.
    inp = make_inputs(s, n, k, columns=not args.objects and s * (k or n) >= ARRAY_MIN_TARGETS)
    edge = time.process_time() - c0
    rss_inputs = peak_rss_mib()
    if s * n <= 10_000:  # milliseconds: one call to warm up, then enough runs for a steady median
        decide(inp)
        repeat = max(args.repeat, 50)
    else:
        repeat = args.repeat if s < 1000 or k else max(1, args.repeat // 2)
    t = time_decide(inp, repeat)
    rec_cpu, rss_record = record_cost(inp) if args.record else (float("nan"), float("nan"))
    n_targets = sum(len(i.target_positions) for i in inp.intents.values() if i is not None)
    print(f"{kind:>6} {f'{s} x {n}':>11} {n_targets:>8} {t.path:>6} {edge:>7.2f} {t.wall * 1000:>8.1f} "
          f"{t.cpu * 1000:>8.1f} {target:>6} {'ok' if t.cpu * 1000 <= 0.85 * target else 'MISS':>4} "
          f"{t.docs_wall * 1000:>8.1f} {t.docs_cpu * 1000:>8.1f} {rss_inputs:>7.0f} {t.rss_decide:>7.0f} "
          f"{t.rss_docs:>7.0f} {rec_cpu * 1000:>8.0f} {rss_record:>7.0f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--sparse", type=int, default=0, help="targets per strategy instead of every symbol")
    ap.add_argument("--only", choices=sorted(CASES), help="one case (its peak RSS in a fresh process)")
    ap.add_argument("--objects", action="store_true",
                    help="intents holding validated TargetPosition objects, not read from documents into columns")
    ap.add_argument("--record", action="store_true", help="also time the audit record's writes (to_store + split)")
    ap.add_argument("--no-store", action="store_true", help="skip the round-trip count")
    args = ap.parse_args()
    print(f"inputs: {'TargetPosition objects' if args.objects else 'intent documents read as the run reads them'}; "
          "ok: CPU <= 85 % of the target; MiB: peak RSS of the process after inputs / decide / docs / record")
    print(f"{'case':>6} {'S x N':>11} {'targets':>8} {'path':>6} {'edge s':>7} {'wall ms':>8} {'cpu ms':>8} "
          f"{'target':>6} {'':>4} {'docs ms':>8} {'docs cpu':>8} {'inputs':>7} {'decide':>7} {'docs':>7} "
          f"{'rec cpu':>8} {'record':>7}")
    cases = [CASES[args.only]] if args.only else list(CASES.values())  # the largest last: its peak is the max
    if args.sparse:
        cases = [("sparse", s, n, args.sparse, t) for _, s, n, _, t in cases if t != 100]
    for kind, s, n, k, target in cases:
        run_case(kind, s, n, k, target, args)
    print(f"peak RSS of the process: {peak_rss_mib():.0f} MiB")
    if not args.no_store:
        print("store calls of one Commander run, 10 strategies x 20 symbols:", round_trips())


if __name__ == "__main__":
    main()
