"""The Commander against the real emulator: replay, the lease, manual trades, books, cancels."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from brokers.base import Broker, OrderResult
from brokers.sim import SimBroker
from bus import paths
from bus.models import Book, EquityPoint, Execution, InstrumentSpec, Intent, OpenOrder, PortfolioSnapshot, Trade
from bus.store import read
from commander.replay import replay
from commander.run import lease_refused, run_commander
from pipeline.run import run_pipeline
from pipeline.settings import apply_settings
from pipeline.wiring import make_broker
from reconcile import reconcile

ROOT = Path(__file__).resolve().parents[2]
DAYS = [datetime(2020, 3, d, 21, 30, tzinfo=timezone.utc) for d in (16, 17, 18, 19, 20)]


@pytest.fixture
def env(store, settings, provider):
    settings.instruments["XRP-USDT"] = InstrumentSpec(symbol="XRP-USDT", secType="CRYPTO", exchange="BINANCE",
                                                      currency="USDT", lot_size=0.1, min_notional=5)
    apply_settings(store, settings)
    return store, settings, provider, make_broker(store, settings, provider)


def run(env, as_of, dry_run=False):
    store, settings, provider, broker = env
    return run_pipeline(store, provider, broker, settings.strategies, as_of, dry_run=dry_run).execution


def test_replay_reproduces_every_execution_and_catches_an_edited_intent(env, project, emulator):
    store = env[0]
    executions = [run(env, d) for d in DAYS[:3]] + [run(env, DAYS[3], dry_run=True)]
    assert sum(len(e.orders_placed) for e in executions) > 0
    for ex in executions:
        res = replay(store, ex.execution_id)
        assert res.replayable and res.identical, res.differences
    # Edit an immutable intent the last execution referred to: replay must notice.
    ex = executions[-1]
    ref = ex.context.strategy_intents_refs["test_signal_generator"]
    doc = store.get(ref)
    doc["target_positions"][0]["quantity"] = 99.0
    store.set(ref, doc)
    res = replay(store, ex.execution_id)
    assert not res.identical
    assert any("decision.aggregated_target" in d and "99" not in d.split("!=")[0] for d in res.differences)
    env_vars = {**os.environ, "GOOGLE_CLOUD_PROJECT": project, "FIRESTORE_EMULATOR_HOST": emulator.host}
    cli = subprocess.run([sys.executable, "main.py", "replay", ex.execution_id], cwd=ROOT, env=env_vars,
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 1 and "DIFFERENT" in cli.stdout and "decision." in cli.stdout
    ok = subprocess.run([sys.executable, "main.py", "replay", executions[0].execution_id], cwd=ROOT, env=env_vars,
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "identical" in ok.stdout


class SlowSim(SimBroker):
    """The paper broker, slowed down so two Commanders surely overlap."""

    def place_order(self, order, as_of):
        time.sleep(0.3)
        return super().place_order(order, as_of)


def test_two_commanders_at_once_only_one_trades(env):
    store, settings, provider, _ = env
    broker = make_broker(store, settings, provider)
    slow = SlowSim(store, broker.account, broker.prices, broker.specs, starting_cash=broker.starting_cash)
    from strategies.runner import run_strategies
    run_strategies(store, settings.strategies, provider, DAYS[0])
    reconcile(store, slow, DAYS[0])
    barrier = threading.Barrier(2)
    results: list[Execution] = []

    def one():
        barrier.wait()
        results.append(run_commander(store, slow, DAYS[0]))

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    traded = [e for e in results if e.orders_placed]
    refused = [e for e in results if lease_refused(e)]
    assert len(traded) == 1 and len(refused) == 1
    assert refused[0].status == "skipped" and "lease refused" in refused[0].reason
    assert read(store, paths.execution(refused[0].execution_id), Execution).status == "skipped"
    assert store.get(paths.lock("paper")) is None  # released


def test_manual_trade_goes_to_external_and_is_left_alone(env):
    store, _, _, broker = env
    run(env, DAYS[0])
    broker.set_position("XRP-USDT", 100.0, 0.15)  # a manual trade nobody manages
    spy = broker.account_state().positions["SPY"].quantity
    broker.set_position("SPY", spy + 5, 230.0)  # and 5 SPY bought by hand
    ex = run(env, DAYS[1])
    assert "XRP-USDT" in ex.unmanaged
    assert "XRP-USDT" not in {o.symbol for o in ex.orders_placed}
    assert ex.external["XRP-USDT"] == 100.0
    # SPY is managed: the diff brings the account to the strategies' target, so the part of its sale beyond
    # their own change sells the 5 hand-bought units and is external's (split_fill), not the strategies'.
    [diff] = [d for d in ex.decision.diff if d.symbol == "SPY"]
    account = broker.account_state().positions["SPY"].quantity
    books = [read(store, paths.book(sid), Book) for sid in ex.context.strategy_intents_refs]
    in_books = sum(b.positions["SPY"].quantity for b in books if "SPY" in b.positions)
    assert diff.holding == spy + 5 and diff.quantity < 0 and abs(in_books - diff.target) <= 0.5  # half a lot
    assert ex.external["SPY"] == pytest.approx(account - in_books) and 0 < ex.external["SPY"] < 5
    ext = read(store, paths.book("external"), Book)
    assert ext.positions["XRP-USDT"].quantity == 100.0
    assert broker.account_state().positions["XRP-USDT"].quantity == 100.0  # never traded away
    ex2 = run(env, DAYS[2])
    assert "XRP-USDT" in ex2.unmanaged and "XRP-USDT" not in {o.symbol for o in ex2.orders_placed}


def test_books_equity_points_and_trades_are_written(env):
    store, settings, _, broker = env
    for d in DAYS:
        run(env, d)
    book = read(store, paths.book("spy_macd_vixy"), Book)
    alloc = next(s.capital_allocation for s in settings.strategies if s.strategy_id == "spy_macd_vixy")
    assert book.starting_cash == pytest.approx(alloc * 100_000.0)
    last_ex = read(store, paths.execution(book.execution_id), Execution)
    marks = last_ex.context.prices
    assert book.positions and book.equity == pytest.approx(
        book.cash + sum(p.quantity * marks[s] for s, p in book.positions.items()))
    assert book.unrealized_pnl == pytest.approx(
        sum((marks[s] - p.avg_price) * p.quantity for s, p in book.positions.items()))
    points = store.list_docs("strategies/spy_macd_vixy/equity")
    assert [d for d, _ in points] == [d.date().isoformat() for d in DAYS]
    last = EquityPoint.model_validate(points[-1][1])
    assert last.equity == pytest.approx(book.equity) and last.high_water_mark == pytest.approx(book.high_water_mark)
    trades = [Trade.model_validate(t) for s in settings.strategy_ids() for _, t in
              store.list_docs(f"strategies/{s}/trades")]
    assert trades and all(t.quantity > 0 for t in trades)
    # Books add up to the paper account, symbol by symbol.
    held = broker.account_state().quantities()
    booked: dict[str, float] = {}
    for sid in [*settings.strategy_ids(), "external"]:
        b = read(store, paths.book(sid), Book)
        for s, p in (b.positions if b else {}).items():
            booked[s] = booked.get(s, 0.0) + p.quantity
    assert booked == pytest.approx(held)


class RestingBroker(Broker):
    """A hand-written broker with one resting order, for the time-to-live rule."""

    name, account, mode = "stub", "stub", "paper"

    def __init__(self, created_at):
        self.open = [OpenOrder(orderId="7", client_order_id="old-SPY", symbol="SPY", action="BUY", totalQuantity=3,
                               orderType="LMT", lmtPrice=1.0, created_at=created_at)]
        self.cancelled: list[str] = []
        self.placed: list[str] = []

    def portfolio(self, as_of):
        return PortfolioSnapshot(snapshot_id="", updated_at=as_of, as_of=as_of, broker="stub", account="stub",
                                 mode="paper", net_liquidation=100_000, available_funds=100_000, cash=100_000,
                                 open_orders=list(self.open))

    def instrument_specs(self, symbols):
        return {s: InstrumentSpec(symbol=s) for s in symbols}

    def quotes(self, symbols, as_of):
        return {s: 100.0 for s in symbols}

    def place_order(self, order, as_of):
        self.placed.append(f"{order.action} {order.quantity:g} {order.symbol}")
        return OrderResult(orderId="9", client_order_id=order.client_order_id, status="Filled",
                           filled_quantity=order.quantity, fill_price=100.0)

    def cancel_order(self, client_order_id):
        self.cancelled.append(client_order_id)
        self.open = [o for o in self.open if o.client_order_id != client_order_id]
        return OrderResult(orderId="7", client_order_id=client_order_id, status="Cancelled")

    def order_status(self, client_order_id):
        raise NotImplementedError


def test_expired_open_orders_are_cancelled_before_new_ones(store, settings):
    apply_settings(store, settings)
    t = DAYS[0]
    store.write_batch([(paths.intent("test_signal_generator"), Intent(
        intent_id="i", strategy_id="test_signal_generator", updated_at=t, as_of=t, status="success",
        target_positions=[{"symbol": "SPY", "quantity": 10}]).to_store())])
    ttl = timedelta(seconds=settings.trading.open_order_ttl_seconds)
    broker = RestingBroker(created_at=t - ttl - timedelta(hours=1))
    reconcile(store, broker, t)
    ex = run_commander(store, broker, t)
    assert broker.cancelled == ["old-SPY"]
    assert [(o.client_order_id, o.status) for o in ex.orders_cancelled] == [("old-SPY", "Cancelled")]
    assert broker.placed == ["BUY 10 SPY"]  # the cancelled 3 no longer count as pending
    young = RestingBroker(created_at=t - timedelta(minutes=10))
    reconcile(store, young, t)
    ex = run_commander(store, young, t)
    assert young.cancelled == [] and young.placed == ["BUY 7 SPY"]  # 10 - 3 pending


def test_leaderboard_ranks_every_book_by_total_return(env):
    from pipeline.leaderboard import leaderboard
    store, settings, _, _ = env
    for d in DAYS:
        run(env, d)
    rows = leaderboard(store)
    assert [r["strategy_id"] for r in rows] and {r["strategy_id"] for r in rows} == set(settings.strategy_ids())
    returns = [r["total_return"] for r in rows]
    assert returns == sorted(returns, reverse=True) and [r["rank"] for r in rows] == list(range(1, len(rows) + 1))
    for r in rows:
        book = read(store, paths.book(r["strategy_id"]), Book)
        assert r["equity"] == pytest.approx(book.equity)
        assert r["total_return"] == pytest.approx(book.equity / book.starting_cash - 1)
        assert r["trades"] == len(store.list_docs(f"strategies/{r['strategy_id']}/trades"))


def test_performance_allocation_reads_sharpe_from_the_books(env):
    from commander.state import inputs_from_state, load_state
    store, settings, _, _ = env
    for d in DAYS:
        run(env, d)
    cfg = store.get(paths.TRADING_CONFIG)
    # Books are sub-accounts: the method's fractions move capital only at a rebalance, here the config change.
    cfg.update(allocation_method="performance_based", rebalance="on_config_change",
               performance={"min_history_days": 3, "lookback_days": 30, "floor": 0.05, "cap": 0.5})
    store.set(paths.TRADING_CONFIG, cfg)
    st = load_state(store)
    inp = inputs_from_state(st, "x", DAYS[-1], {}, {})
    from bus.metrics import curve_sharpe
    ppy = st.config.performance.periods_per_year
    for sid, b in st.books.items():
        if sid in st.strategies:
            assert inp.sharpes[sid] == curve_sharpe(b.equity_curve, 30, 3, ppy)
    assert any(v is not None for v in inp.sharpes.values())
    ex = run(env, DAYS[-1] + timedelta(days=3))
    alloc = ex.decision.allocations
    nav = read(store, ex.context.portfolio_snapshot_ref, PortfolioSnapshot).net_liquidation
    moves = {m.strategy_id: m for m in ex.decision.capital_moves}
    assert set(moves) == set(ex.context.sharpes) and {m.kind for m in moves.values()} == {"rebalance"}
    for sid, sharpe in ex.context.sharpes.items():
        assert alloc[sid] == pytest.approx(moves[sid].fraction * nav) == pytest.approx(moves[sid].equity_after)
        if sharpe is None or sharpe <= 0:
            assert alloc[sid] == pytest.approx(0.05 * nav)
        else:
            assert 0.05 * nav - 1e-6 <= alloc[sid] <= 0.5 * nav + 1e-6


def test_a_retried_commander_step_does_not_double_orders(env):
    store, settings, provider, broker = env
    from strategies.runner import run_strategies
    run_strategies(store, settings.strategies, provider, DAYS[0])
    reconcile(store, broker, DAYS[0])
    first = run_commander(store, broker, DAYS[0], execution_id="retry-1")
    positions = broker.account_state().positions
    assert first.orders_placed and first.status == "completed"
    again = run_commander(store, broker, DAYS[0], execution_id="retry-1")  # the same step, retried
    assert again == first and broker.account_state().positions == positions
    # Even with the execution and the account state lost, the orders' own records (orders/{id}) say they
    # were sent: the retry sends none of them again and says why.
    store.delete(paths.execution("retry-1"))
    store.delete(paths.account_state("paper"))
    crashed = run_commander(store, broker, DAYS[0], execution_id="retry-1")
    assert broker.account_state().positions == positions
    assert crashed.status == "completed" and not crashed.orders_placed
    assert set(crashed.blocked) == {o.symbol for o in first.orders_placed}
    assert all("not sent again" in why for why in crashed.blocked.values())


def test_a_snapshot_taken_before_the_last_fills_is_refused(env):
    store, settings, provider, broker = env
    from strategies.runner import run_strategies
    run_strategies(store, settings.strategies, provider, DAYS[0])
    reconcile(store, broker, DAYS[0])
    first = run_commander(store, broker, DAYS[0])  # trades on the snapshot
    assert first.orders_placed
    positions = broker.account_state().positions
    second = run_commander(store, broker, DAYS[0])  # a new execution on the same, now outdated, snapshot
    assert second.status == "skipped" and "before the fills of the last execution" in second.reason
    assert broker.account_state().positions == positions
    reconcile(store, broker, DAYS[0])
    third = run_commander(store, broker, DAYS[0])
    assert third.status == "completed" and third.orders_placed == []
