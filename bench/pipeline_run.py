"""Wall time of one pipeline run (strategies -> reconcile -> Commander) with the emulator already up.

Starts the Firestore emulator once, then runs the default configuration on
consecutive trading days of 2020 (each a real run that trades), in a fresh
project per repetition, and prints the figures. Usage:

    python bench/pipeline_run.py [--runs 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bus.emulator import FirestoreEmulator
from bus.store import FirestoreStore
from market.history import HistoryProvider
from pipeline.run import run_pipeline
from pipeline.settings import apply_settings, load_settings
from pipeline.wiring import as_of_on, make_broker


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    settings = load_settings()
    provider = HistoryProvider()
    provider.view(as_of_on(date(2020, 3, 2), settings)).bars("SPY")  # parse the CSVs outside the timing
    for s in settings.instruments:
        provider.frame(s)
    with FirestoreEmulator("bench") as emu:
        os.environ["FIRESTORE_EMULATOR_HOST"] = emu.host
        store = FirestoreStore(f"bench-{uuid.uuid4().hex[:8]}")
        apply_settings(store, settings)
        broker = make_broker(store, settings, provider)
        run_pipeline(store, provider, broker, settings.strategies, as_of_on(date(2020, 3, 2), settings))  # warm-up
        times, stats = [], []
        day = date(2020, 3, 3)
        for _ in range(args.runs):
            before = dict(store.stats)
            t0 = time.perf_counter()
            res = run_pipeline(store, provider, broker, settings.strategies, as_of_on(day, settings))
            times.append(time.perf_counter() - t0)
            stats.append({k: v - before.get(k, 0) for k, v in store.stats.items()})
            assert res.execution and res.execution.status == "completed", res.execution
            day += timedelta(days=1)
    print(f"pipeline run, {len(settings.strategies)} strategies (LLM traders skipped: no keys), emulator up: "
          f"runs={args.runs} "
          f"median={statistics.median(times) * 1000:.0f} ms  min={min(times) * 1000:.0f} ms  "
          f"max={max(times) * 1000:.0f} ms")
    print("store round trips per run (last run):", dict(sorted(stats[-1].items())))


if __name__ == "__main__":
    main()
