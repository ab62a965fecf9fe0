"""Read API latency: ``GET /api/leaderboard`` and ``GET /api/executions?limit=50`` (and its next page).

Starts the Firestore emulator, runs the default configuration's pipeline once in a scratch
project (paper broker, bundled bars: one real execution, book, equity point and trade shape),
then seeds a fresh project directly (``FirestoreStore.write_batches``) with:

* ``--executions`` (1,000) clones of that execution record, each with a new id and
  ``executed_at`` / ``as_of`` one day apart (its parts too, if the record was split);
* ``--strategies`` (50) strategies cloned from the configured ones (their universes, so
  both calendars occur), each with a book, ``--points`` (250) daily equity points and
  ``--trades`` (20) closed trades.

It serves the functions with ``ops.server.LocalFunctions`` and times each route from the
client (``requests``, one keep-alive session; ``--warmup`` requests first, then ``--requests``
timed ones). Target: p95 at most 150 ms. Usage::

    python bench/api.py [--requests 200] [--warmup 10] [--executions 1000] [--strategies 50]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests

from bus import paths
from bus.emulator import FirestoreEmulator
from bus.models import Book, BookPosition, EquityPoint, Trade
from bus.store import FirestoreStore
from market.history import HistoryProvider
from ops.server import LocalFunctions
from pipeline.run import run_pipeline
from pipeline.settings import load_settings
from pipeline.wiring import as_of_on, make_broker

TARGET_P95_MS = 150.0
FIRST_DAY = date(2020, 3, 16)
#: Execution records per batch write while seeding.
EXECUTION_BATCH = 50


def real_run(settings: Any, provider: HistoryProvider) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    """One real pipeline run in a scratch project: (the stored execution header, its part documents)."""
    from commander.record import part_paths
    from pipeline.settings import apply_settings

    store = FirestoreStore(f"bench-api-src-{uuid.uuid4().hex[:8]}")
    apply_settings(store, settings)
    broker = make_broker(store, settings, provider)
    res = run_pipeline(store, provider, broker, settings.strategies, as_of_on(FIRST_DAY, settings))
    assert res.execution is not None and res.execution.status == "completed", res.execution
    header = store.get(paths.execution(res.execution.execution_id))
    assert header is not None
    parts = store.get_all(part_paths(header))
    return header, [(p, d) for p, d in parts.items() if d is not None]


def execution_writes(header: dict[str, Any], parts: list[tuple[str, dict[str, Any]]], n: int
                     ) -> list[tuple[str, dict[str, Any]]]:
    """``n`` clones of one stored execution (header and parts), one day apart, newest last."""
    src_id = header["execution_id"]
    t0 = header["executed_at"]
    writes = []
    for i in range(n):
        ex_id = f"{src_id}-b{i:04d}"
        shift = timedelta(days=i - n + 1)
        doc = {**header, "execution_id": ex_id, "executed_at": t0 + shift}
        if isinstance(header.get("as_of"), datetime):
            doc["as_of"] = header["as_of"] + shift
        writes.append((paths.execution(ex_id), doc))
        for p, d in parts:
            writes.append((p.replace(f"executions/{src_id}/", f"executions/{ex_id}/", 1), {**d, "execution_id": ex_id}))
    return writes


def strategy_writes(settings: Any, n: int, points: int, trades: int) -> list[tuple[str, dict[str, Any]]]:
    """``n`` strategies cloned from the configured ones, each with a book, ``points`` daily equity points
    (a random walk from 100,000) and ``trades`` closed trades."""
    import numpy as np

    rng = np.random.default_rng(15)
    writes: list[tuple[str, dict[str, Any]]] = []
    end = FIRST_DAY + timedelta(days=points - 1)
    now = datetime(end.year, end.month, end.day, 21, 30, tzinfo=timezone.utc)
    for k in range(n):
        base = settings.strategies[k % len(settings.strategies)]
        sid = f"{base.strategy_id}_{k:02d}"
        cfg = base.model_copy(update={"strategy_id": sid, "name": f"{base.name} #{k}"})
        writes.append((paths.strategy(sid), cfg.to_store()))
        start = 100_000.0
        curve = start * np.cumprod(1 + rng.normal(0.0003, 0.01, points))
        hwm = start
        for i, e in enumerate(curve):
            day = FIRST_DAY + timedelta(days=i)
            hwm = max(hwm, float(e))
            pt = EquityPoint(strategy_id=sid, date=day.isoformat(),
                             as_of=datetime(day.year, day.month, day.day, 21, 30, tzinfo=timezone.utc),
                             equity=float(e), cash=float(e) * 0.1, realized_pnl=0.0, unrealized_pnl=float(e) - start,
                             fees=1.5 * i, high_water_mark=hwm, drawdown=1 - float(e) / hwm,
                             gross_exposure=float(e) * 0.9)
            writes.append((paths.equity_point(sid, pt.date), pt.to_store()))
        symbol = (base.universe or ["SPY"])[0]
        for j in range(trades):
            closed = now - timedelta(days=j * (points // max(trades, 1)))
            tr = Trade(trade_id=f"{sid}-t{j:03d}", strategy_id=sid, symbol=symbol, side="long" if j % 3 else "short",
                       quantity=10.0, entry_price=100.0, exit_price=100.0 + float(rng.normal(0, 3)),
                       closed_at=closed, execution_id=f"bench-{j}", realized_pnl=float(rng.normal(20, 60)))
            writes.append((paths.trade(sid, tr.trade_id), tr.to_store()))
        eq = float(curve[-1])
        book = Book(strategy_id=sid, updated_at=now, execution_id=f"bench-{points - 1}", starting_cash=start,
                    cash=eq * 0.1, equity=eq, positions={s: BookPosition(quantity=10.0, avg_price=100.0)
                                                         for s in base.universe or ["SPY"]},
                    fees=1.5 * points, high_water_mark=hwm,
                    equity_curve={(FIRST_DAY + timedelta(days=i)).isoformat(): float(e)
                                  for i, e in enumerate(curve)})  # the Commander keeps 400 days
        writes.append((paths.book(sid), book.to_store()))
    return writes


def timed(session: requests.Session, url: str, warmup: int, n: int) -> tuple[list[float], int, float]:
    """Wall times (s) of ``n`` GETs of ``url`` after ``warmup`` untimed ones, the last body's length, and the
    time of the first warm-up request (s: for the leaderboard, a cold cache, as after each pipeline run)."""
    size, first = 0, 0.0
    for i in range(max(1, warmup)):
        t0 = time.perf_counter()
        r = session.get(url, timeout=300)
        if i == 0:
            first = time.perf_counter() - t0
        assert r.status_code == 200, (url, r.status_code, r.text[:500])
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = session.get(url, timeout=120)
        out.append(time.perf_counter() - t0)
        assert r.status_code == 200, (url, r.status_code, r.text[:500])
        size = len(r.content)
    return out, size, first


def figures(name: str, timing: tuple[list[float], int, float]) -> str:
    """One line: p50, p95 and max in ms, whether p95 meets the target, the body size and the first request."""
    times, size, first = timing
    ms = sorted(t * 1000 for t in times)
    p95 = ms[min(len(ms) - 1, int(0.95 * len(ms)))]
    verdict = "met" if p95 <= TARGET_P95_MS else "NOT met"
    return (f"{name}: n={len(ms)} p50={statistics.median(ms):.1f} ms  p95={p95:.1f} ms  max={ms[-1]:.1f} ms  "
            f"({size:,} bytes; first request {first * 1000:.0f} ms); target p95 <= {TARGET_P95_MS:.0f} ms: {verdict}")


def main() -> None:
    """Seed, serve, time, print."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--executions", type=int, default=1000)
    ap.add_argument("--strategies", type=int, default=50)
    ap.add_argument("--points", type=int, default=250)
    ap.add_argument("--trades", type=int, default=20)
    args = ap.parse_args()
    os.environ.pop("INTENT_BUS_TOKEN", None)  # no bearer token: the timing is the API's, not auth's
    settings = load_settings()
    provider = HistoryProvider()
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} (1 min) before the runs")
    with FirestoreEmulator("bench-api") as emu:
        os.environ["FIRESTORE_EMULATOR_HOST"] = emu.host
        header, parts = real_run(settings, provider)
        project = f"bench-api-{uuid.uuid4().hex[:8]}"
        os.environ["GOOGLE_CLOUD_PROJECT"] = project
        store = FirestoreStore(project)
        t0 = time.perf_counter()
        ex_writes = execution_writes(header, parts, args.executions)
        st_writes = strategy_writes(settings, args.strategies, args.points, args.trades)
        store.write_batches(ex_writes, size=EXECUTION_BATCH)  # ~20 KB each: stay under gRPC's 4 MiB a call
        store.write_batches(st_writes)
        size = len(json.dumps(header, default=str))
        print(f"seeded {args.executions} executions (each a clone of one real record: {size:,} bytes as JSON, "
              f"{len(parts)} parts) and "
              f"{args.strategies} strategies x {args.points} equity points x {args.trades} trades: "
              f"{len(ex_writes) + len(st_writes):,} documents in {time.perf_counter() - t0:.1f} s")
        with LocalFunctions() as fns, requests.Session() as s:
            api = f"{fns.base_url}/api"
            board = timed(s, f"{api}/leaderboard", args.warmup, args.requests)
            rows = s.get(f"{api}/leaderboard", timeout=120).json()["rows"]
            assert len(rows) == args.strategies, len(rows)
            first = s.get(f"{api}/executions?limit=50", timeout=120).json()
            assert len(first["items"]) == 50 and first["next_cursor"], first.get("next_cursor")
            page1 = timed(s, f"{api}/executions?limit=50", args.warmup, args.requests)
            page2 = timed(s, f"{api}/executions?limit=50&cursor={first['next_cursor']}", args.warmup, args.requests)
    print(f"load average {os.getloadavg()[0]:.2f} (1 min) after the runs")
    print(figures("GET /api/leaderboard", board))
    print(figures("GET /api/executions?limit=50", page1))
    print(figures("GET /api/executions?limit=50&cursor=<next_cursor>", page2))


if __name__ == "__main__":
    main()
