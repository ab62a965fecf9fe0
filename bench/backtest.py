"""Backtest throughput: steps per second, in memory and on the Firestore emulator, vs vectorbt.

One run prints:

1. the in-memory backtest of the four classic strategies over 2019-01-01 .. 2024-12-31
   (2,192 daily steps) under the paper account's fill model (``--fill-at``; default the
   shipped ``next_open``), without the second fill-model run of ``fill_sensitivity``: wall
   and CPU seconds, steps per second (target: 20 s or less on 2 cores);
2. the same configuration on the Firestore emulator over ``--emulator-days`` days (the
   emulator already up), extrapolated to 2,192 steps;
3. one strategy (``spy_macd_vixy``) over the same six years: our engine in memory, and
   vectorbt (the cross-check library, tests/backtest/test_crosscheck.py) on the same bars,
   both with the Commander's order rules (``from_order_func``, a Python callback per order)
   and as plain signal-day target orders (``from_orders``, compiled with numba);
4. the ratios.

Wall time on a shared machine includes other processes' load; CPU time does not: it is printed for this
process (all threads) and for its children (``RUSAGE_CHILDREN``: the strategy worker, reaped at the end of
each backtest). Usage:

    python bench/backtest.py [--emulator-days 60] [--no-emulator] [--only-memory] [--fill-at next_open|close]
                             [--strategy-workers 0|1]

Where the time went before (cProfile, 2021, 365 steps): a ``ThreadPoolExecutor`` built per
step for four CPU-bound classic strategies (thread start-up and GIL hand-offs, ~2 s of 10 s;
now they run inline unless an LLM trader is among them, :func:`strategies.runner.run_strategies`),
pandas ``searchsorted``/``iloc`` on tz-aware columns for every bar read (now binary search on
cached numpy arrays, :class:`backtest.horizon.HorizonView`), and a scan of every order ever
placed for the open ones, twice per step (now an equality index in
:class:`bus.store.MemoryStore`). Pydantic validation and dumps are ~10 %.

Then (issue 13 item 6, CPU seconds of [1] on this 2-core machine, measured side by side under the same load):
42-45 s -> 30-32 s (-29 %), results identical (``report.json`` of ``main.py backtest`` 2019..2024 the same but its
wall time; round trips compared as a multiset). Cut: the record of bars read (:mod:`market.usage`) keeps
windows of the provider's series instead of frames and hashes a slice of the series' packed rows, packed
once per series (:func:`market.bars.window_digest`, the same digest); ``require_fresh`` / ``last_price``
of a strategy's view answer from the backtest's numpy arrays; ``Path.resolve`` per series read is cached;
:class:`bus.store.MemoryStore` copies documents without a call per scalar, once per document of a batch,
only the fields asked for, and the engine validates the books it records without copying them; the
backtest's views are reused per as-of time; intents go to memory in one batch without JSON sizing.
What is left is mostly outside these files: the Commander (its books are deep-copied every run,
``commander.attribute.update_books``; the audit's dumps and writes), the paper broker's state loads
(``brokers.sim``), and pandas in the strategies.

Then the strategies ahead (issue 13 item 6, ``--strategy-workers 1``, the default on more than one CPU): a classic
strategy's intent depends only on its configuration and the market as of the step, so one worker process
(:mod:`backtest.strategy_worker`) computes the four strategies' intents for the next steps while this process
runs reconcile and the Commander; the main loop computes the first steps itself until the worker is ready (its
imports and bar loads, ~1-2 s), then takes the worker's. Measured back to back on this 2-core machine with four
other helpers' jobs running (load average 3-5), [1]: ``--strategy-workers 0``: 41.6-52.1 s wall, 24.2-27.4 s CPU;
``--strategy-workers 1``: 26.3-28.5 s wall, 15.0-15.3 s CPU here + 9.3 s in the worker (the loop waited 1.8-2.4 s
for it in all). Later, on a quiet machine (load 1.1) with the Commander-side cuts of the same issue in:
``--strategy-workers 0``: 16.2 s wall, 16.3 s CPU; ``--strategy-workers 1``: 10.4 s wall, 10.4 s CPU here + 6.2 s
in the worker (waited 0.25 s for it; it computed 2,162 of the 2,192 steps). ``report.json`` identical in every
run. The worker's share is below the main loop's, so the wall time is about the main loop's CPU time.
The machine's speed varies from day to day: on 2026-12-03 (load 0.6-1.0) ``--strategy-workers 1`` took
19.0-21.1 s wall, ``0`` 29.1-29.8 s, and the code before these cuts (5a14210), run in the same hour, 36.6 s;
the worker alone took 10.9-12.0 s CPU where it had taken 6.2 s. Intents are read into objects below
``commander.decide.ARRAY_MIN_TARGETS`` targets (the per-book path): reading the backtest's ~40 targets into
columns for the array path cost 21.1 s against 18.0 s in back-to-back runs.
Cheap cuts on the strategies' path, floats unchanged: a backtest view keeps each series' visible-bar count and
newest close time (:class:`backtest.horizon.HorizonView`; the paper broker asks the same view for the same
prices), and a :class:`market.usage.RecordingView` takes its base's as-of time instead of converting it again.

Then the steps' in-process part (issue 13 item 6: Commander, reconcile, paper broker, MemoryStore). [1] with the
strategy worker, this process's CPU / wall, three pairs back to back (load 2-4), before -> after: 23.5 -> 19.6 s /
50.4 -> 31.8 s, 23.5 -> 18.2 s / 29.3 -> 18.3 s, 20.5 -> 14.4 s / 20.4 -> 14.4 s (-17 to -30 % CPU); ``report.json``
identical. Cut: the Commander's state load, reconcile's open orders and the paper broker's reads validate the
stored documents without copying them, and their fresh ``to_store()`` dumps go to the store without a copy
(:mod:`bus.lent`: ``MemoryStore.peek*`` / ``adopt_batch``; the plain calls on Firestore); a run's write-ahead and
audit share one execution context, whose dump and the decision's are made and JSON-sized once per run
(:class:`commander.record.ExecutionDumps`); the paper broker's sources (:mod:`pipeline.wiring`) keep a price per
(symbol, as-of) on bars from files (~34 asks a step for ~10 prices), slice funding settlements from cached arrays
instead of pandas, and keep the next-open arrays and absent timeframes without asking the provider each step.
What is left in this process (per step, loaded machine): the Commander ~3.8 ms (audit 1.2: the execution's dump and
size 0.55 a record, ``update_books`` 0.3; write-ahead and placing 1.15; decide 0.6; state load 0.5), reconcile
~1.2 ms, the engine's record 0.4 ms; cyclic GC ~12 % (full collections rescan the store's documents:
``gc.freeze()`` every 50 steps cut it from 2.2 to 0.7 s over six years), and the leaderboard's first import of
empyrical/scipy (~1 s CPU) in ``_finish``.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import sys
import time
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import pandas as pd

from backtest.engine import open_backtest_store, run_backtest
from backtest.horizon import HorizonHistory, load_backtest_file
from bus.store import MemoryStore
from market.history import BUNDLED_DIR
from pipeline.settings import load_settings
from pipeline.wiring import as_of_on
from strategies.spy_macd_vixy import macd_histogram, target_weights

CONFIG = Path(__file__).resolve().parent.parent / "config" / "backtest"
START, END = date(2019, 1, 1), date(2024, 12, 31)


def children_cpu() -> float:
    """CPU seconds (user + system) of this process's reaped children: the strategy worker's."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def timed(fn):
    """(fn(), wall s, this process's CPU s, children's CPU s) of one call."""
    t0, c0, k0 = time.perf_counter(), time.process_time(), children_cpu()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0, children_cpu() - k0


def vectorbt_runs(settings, params: dict) -> tuple[float, float, float, int]:
    """(import s, from_order_func s, from_orders s after warm-up, orders) for spy_macd_vixy over START..END."""
    t0 = time.perf_counter()
    import vectorbt as vbt
    from vectorbt.portfolio import nb
    from vectorbt.portfolio.enums import NoOrder, SizeType

    t_import = time.perf_counter() - t0
    provider = HorizonHistory([BUNDLED_DIR], as_of_on(END, settings), {})
    spy, vixy = provider.frame("SPY"), provider.frame("VIXY")
    hist = macd_histogram(spy["close"]).dropna()
    hist.index = hist.index.tz_localize(None)
    close = pd.concat({"SPY": spy["close"], "VIXY": vixy["close"]}, axis=1).dropna()
    close.index = close.index.tz_localize(None)
    close = close.loc[str(START):str(END)]
    w = pd.DataFrame([target_weights(float(hist.loc[d]), params["long_weight"], params["defensive_weight"],
                                     params["hedge_weight"]) for d in close.index], index=close.index)[close.columns]
    w = w * 0.95
    band, min_notional = settings.trading.rebalance_band, settings.trading.min_order_notional
    wa = w.to_numpy()

    def order_func(c, wa, band, min_notional):  # same rule as the cross-check test
        price = c.close[c.i, c.col]
        value = c.last_cash[c.group] + sum(c.last_position[k] * c.close[c.i, k] for k in range(c.from_col, c.to_col))
        target = wa[c.i, c.col] * value / price
        held = c.last_position[c.col]
        closing = abs(target) < 1e-9
        qty = (target - held) if closing else float(np.round(target - held))
        if abs(qty) < 1e-9 or (abs(qty) * price < min_notional and not closing):
            return NoOrder
        if not closing and abs(held) > 1e-9 and abs(qty) * price < band * abs(target) * price:
            return NoOrder
        return nb.order_nb(size=qty, price=price, size_type=SizeType.Amount, fees=1e-4, slippage=2e-4)

    t0 = time.perf_counter()
    pf = vbt.Portfolio.from_order_func(close, order_func, wa, band, min_notional, use_numba=False, group_by=True,
                                       cash_sharing=True, init_cash=100_000.0, freq="1D")
    pf.total_return()
    t_func = time.perf_counter() - t0
    change = (w != w.shift()).any(axis=1)
    size = w.where(change, np.nan)

    def signal_orders():
        p = vbt.Portfolio.from_orders(close, size, size_type="targetpercent", group_by=True, cash_sharing=True,
                                      call_seq="auto", fees=1e-4, slippage=2e-4, size_granularity=1,
                                      init_cash=100_000.0, freq="1D")
        return p.total_return()

    signal_orders()  # numba compile (cached on disk after the first run ever)
    t0 = time.perf_counter()
    signal_orders()
    t_orders = time.perf_counter() - t0
    return t_import, t_func, t_orders, int(pf.orders.count().sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--emulator-days", type=int, default=60)
    ap.add_argument("--no-emulator", action="store_true")
    ap.add_argument("--only-memory", action="store_true", help="run [1] only")
    ap.add_argument("--fill-at", choices=["next_open", "close"], default=None)
    ap.add_argument("--strategy-workers", type=int, choices=[0, 1], default=None,
                    help="1: classic strategies computed ahead in a worker process; 0: in each step "
                         "(default: 1 with more than one CPU and 120 steps or more)")
    args = ap.parse_args()
    workers = args.strategy_workers
    logging.basicConfig(level=logging.WARNING, format="    %(name)s: %(message)s")
    logging.getLogger("backtest.strategy_worker").setLevel(logging.INFO)  # how long the loop waited for it
    settings, bfile = load_settings(CONFIG), load_backtest_file(CONFIG).model_copy(update={"fill_sensitivity": False})
    HorizonHistory([BUNDLED_DIR], as_of_on(END, settings), bfile.price_aliases)  # warm imports outside timings
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} (1 min) before the runs")

    res, wall, cpu, kids = timed(lambda: run_backtest(settings, bfile, START, END, MemoryStore(), fill_at=args.fill_at,
                                                      strategy_workers=workers))
    n = res.days
    print(f"[1] memory, 4 classic strategies, {START}..{END}, fill_at {res.fill_model}, strategy workers "
          f"{'default' if workers is None else workers}: {n} steps in {wall:.1f} s wall ({n / wall:.1f} steps/s), "
          f"{cpu:.1f} s CPU here + {kids:.1f} s CPU in the worker = {cpu + kids:.1f} s; target <= 20 s wall: "
          f"{'met' if wall <= 20 else 'NOT met'}")
    if args.only_memory:
        return
    emu_rate = None
    if not args.no_emulator:
        e_end = START + timedelta(days=args.emulator_days - 1)
        with open_backtest_store("emulator") as st:
            r2, w2, c2, k2 = timed(lambda: run_backtest(settings, bfile, START, e_end, st, store_kind="emulator",
                                                        strategy_workers=workers))
        emu_rate = r2.days / w2
        print(f"[2] emulator, same strategies, {START}..{e_end}: {r2.days} steps in {w2:.1f} s wall "
              f"({emu_rate:.2f} steps/s), {c2:.1f} + {k2:.1f} s CPU (here + worker); extrapolated to {n} steps: "
              f"{n / emu_rate:.0f} s")
    one = replace(settings, strategies=[next(s for s in settings.strategies if s.strategy_id == "spy_macd_vixy")
                                        .model_copy(update={"capital_allocation": 0.95})])
    r3, w3, c3, k3 = timed(lambda: run_backtest(one, bfile, START, END, MemoryStore(), strategy_workers=workers))
    print(f"[3] memory, spy_macd_vixy alone: {r3.days} steps in {w3:.1f} s wall ({r3.days / w3:.1f} steps/s), "
          f"{c3:.1f} + {k3:.1f} s CPU (here + worker)")
    params = one.strategies[0].params
    t_import, t_func, t_orders, lib_orders = vectorbt_runs(one, params)
    print(f"    vectorbt, same rule and bars: import {t_import:.1f} s; from_order_func (Commander's order rules, "
          f"Python callback) {t_func:.2f} s, {lib_orders} orders; from_orders (signal days, numba) {t_orders:.3f} s")
    print("ratios:")
    if emu_rate:
        print(f"  memory vs emulator throughput: {(n / wall) / emu_rate:.1f}x")
    print(f"  our one-strategy backtest vs vectorbt from_order_func: {w3 / t_func:.1f}x slower; "
          f"vs vectorbt from_orders: {w3 / t_orders:.0f}x slower")
    print(f"  4 strategies vs 1 strategy (memory): {wall / w3:.2f}x the time")


if __name__ == "__main__":
    main()
