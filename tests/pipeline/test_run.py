"""The whole pipeline in-process against the real emulator, the paper broker and the bundled bars."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from brokers.base import NotConnected
from bus import paths
from bus.models import Book, Execution, Intent, PortfolioSnapshot
from bus.store import read
from pipeline.run import run_pipeline
from pipeline.settings import apply_settings
from pipeline.wiring import make_broker, resolve_as_of

AS_OF = datetime(2020, 3, 16, 21, 30, tzinfo=timezone.utc)


@pytest.fixture
def env(store, settings, provider):
    apply_settings(store, settings)
    return store, settings, provider, make_broker(store, settings, provider)


def run(env, dry_run=False, as_of=AS_OF):
    store, settings, provider, broker = env
    return run_pipeline(store, provider, broker, settings.strategies, as_of, dry_run=dry_run)


def test_first_run_trades_and_audits(env):
    store, settings, _, broker = env
    res = run(env)
    ex = res.execution
    assert ex.status == "completed" and not ex.dry_run
    assert set(res.intents) == set(settings.strategy_ids())
    assert all(i.status == ("skipped" if s.kind == "llm" else "success")
               for s in settings.strategies for i in [res.intents[s.strategy_id]])
    assert ex.orders_placed and all(o.status == "Filled" for o in ex.orders_placed)
    # The paper account now holds what the diff asked for.
    held = {h.symbol: h.quantity for h in broker.portfolio(AS_OF).holdings}
    for d in ex.decision.diff:
        assert held.get(d.symbol, 0.0) == pytest.approx(d.holding + d.quantity)
    # The execution refers to immutable documents that exist and match.
    stored = read(store, paths.execution(ex.execution_id), Execution)
    assert stored == ex
    snap = read(store, ex.context.portfolio_snapshot_ref, PortfolioSnapshot)
    assert snap.snapshot_id == res.snapshot.snapshot_id
    for sid, ref in ex.context.strategy_intents_refs.items():
        assert ref == paths.intent(sid, res.intents[sid].intent_id)
        assert read(store, ref, Intent) == res.intents[sid]
    # Client order ids derive from the execution id and symbol.
    assert all(o.client_order_id == f"{ex.execution_id}-{o.symbol}".replace(".", "_") for o in ex.orders_placed)
    # The books add up to the broker's holdings.
    books = [read(store, paths.book(s), Book) for s in [*res.intents, "external"]]
    booked = {}
    for b in books:
        for s, p in (b.positions if b else {}).items():
            booked[s] = booked.get(s, 0.0) + p.quantity
    assert booked == pytest.approx({s: q for s, q in held.items() if q})


def test_second_run_at_the_same_as_of_places_no_orders(env):
    first = run(env).execution
    assert first.orders_placed
    second = run(env).execution
    assert second.status == "completed" and second.orders_placed == []
    assert second.summary.startswith("No orders")


def test_dry_run_places_nothing_and_lists_would_be_orders(env):
    store, _, _, broker = env
    before = broker.account_state()
    res = run(env, dry_run=True)
    ex = read(store, paths.execution(res.execution.execution_id), Execution)
    assert ex.dry_run is True and ex.orders_placed
    assert all(o.status == "DryRun" and o.orderId is None for o in ex.orders_placed)
    assert broker.account_state().positions == before.positions and broker.account_state().cash == before.cash
    assert store.get(paths.book("spy_macd_vixy")) is None  # books move only on fills


def test_kill_switch_turns_the_run_into_a_dry_run(env):
    store, settings, provider, broker = env
    settings.trading.tradingEnabled = False
    apply_settings(store, settings)
    ex = run(env).execution
    assert ex.dry_run and "kill switch" in ex.summary and broker.account_state().positions == {}


def test_broker_down_skips_the_commander(env):
    store, settings, provider, broker = env
    run(env)  # holdings to price

    def down(symbol, as_of):
        raise NotConnected("connection refused")

    broker.prices = down
    positions = broker.account_state().positions
    res = run(env)
    assert res.reconcile_error and "connection refused" in res.reconcile_error
    assert res.execution.status == "skipped" and res.execution.orders_placed == []
    assert "reconcile failed" in res.execution.reason
    assert broker.account_state().positions == positions


def test_a_failing_strategy_writes_an_error_intent_and_keeps_its_book(env):
    store, settings, provider, broker = env
    run(env)
    book_before = read(store, paths.book("crypto_trend"), Book)
    late = datetime(2026, 6, 4, 21, 30, tzinfo=timezone.utc)  # crypto data ends 2026-05-15: stale
    res = run(env, as_of=late)
    assert res.intents["crypto_trend"].status == "error"
    assert "stale" in res.intents["crypto_trend"].error_message
    ex = res.execution
    assert "crypto_trend" in ex.errored_strategies
    lines = {t.symbol: t for t in ex.decision.final_target}
    for sym, pos in book_before.positions.items():
        assert lines[sym].contributions["crypto_trend"] == pytest.approx(pos.quantity)


def test_default_as_of_is_the_last_day_all_bundled_series_cover(settings, provider):
    assert resolve_as_of(None, settings, provider) == datetime(2026, 5, 16, 21, 30, tzinfo=timezone.utc)
