"""Store round trips of one pipeline run, at 10 and at 1,000 strategies.

One dry pipeline run (strategies -> reconcile -> Commander) of the synthetic scale
scenario (tests/scale/scenario.py: each strategy 50 weight targets over 2,000
symbols) on the Firestore emulator, counting the store's calls by kind
(``bus.store.Store.stats``), then the calls of ``replay``. Only the batched intent
writes and reads (``batch``, ``get_all``) and the execution's part batches may grow
with the number of strategies.

    python bench/store_round_trips.py [--strategies 10 1000] [--targets 50] [--symbols 2000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bus.emulator import FirestoreEmulator
from bus.store import FirestoreStore
from commander.replay import replay
from market.history import HistoryProvider
from pipeline.run import run_pipeline
from tests.scale import scenario


def one_run(n_strategies: int, n_symbols: int, per_strategy: int) -> tuple[dict[str, int], dict[str, int], float]:
    """(run's calls by kind, replay's calls by kind, run wall seconds) in a fresh project."""
    store = FirestoreStore(f"trips-{uuid.uuid4().hex[:8]}")
    strategies = scenario.configs(n_strategies, n_symbols, per_strategy)
    broker = scenario.setup(store, strategies, n_symbols)
    store.stats.clear()
    t0 = time.perf_counter()
    res = run_pipeline(store, HistoryProvider(), broker, strategies, scenario.AS_OF, dry_run=True,
                       execution_id=f"trips-{n_strategies}")
    wall = time.perf_counter() - t0
    assert res.execution is not None and res.execution.status == "completed", res.execution
    run_stats = dict(sorted(store.stats.items()))
    store.stats.clear()
    assert replay(store, res.execution.execution_id).identical
    return run_stats, dict(sorted(store.stats.items())), wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--strategies", type=int, nargs="+", default=[10, 1000])
    ap.add_argument("--targets", type=int, default=50)
    ap.add_argument("--symbols", type=int, default=2000)
    args = ap.parse_args()
    with FirestoreEmulator("bench") as emu:
        os.environ["FIRESTORE_EMULATOR_HOST"] = emu.host
        for n in args.strategies:
            run_stats, replay_stats, wall = one_run(n, args.symbols, args.targets)
            print(f"{n:>5} strategies x {args.targets} targets over {args.symbols} symbols: "
                  f"run {sum(run_stats.values())} round trips {run_stats} in {wall:.1f} s; "
                  f"replay {sum(replay_stats.values())} {replay_stats}")


if __name__ == "__main__":
    main()
