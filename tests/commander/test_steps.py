"""The Commander's pure steps, each on hand-made documents."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from bus.models import (
    Book,
    BookPosition,
    Holding,
    InstrumentSpec,
    Intent,
    OpenOrder,
    PortfolioSnapshot,
    StrategyConfig,
    TargetLine,
    TargetPosition,
    TradingConfig,
)
from commander.aggregate import aggregate
from commander.allocate import AllocationError, allocate
from commander.attribute import EXTERNAL, Fill, update_books
from commander.classify import classify
from commander.decide import CommanderInputs, decide
from commander.diff import diff
from commander.gate import gate
from commander.size import size_targets, unit_values

T = datetime(2024, 6, 3, 21, 30, tzinfo=timezone.utc)
SPECS = {"SPY": InstrumentSpec(symbol="SPY", min_quantity=1, min_notional=1),
         "VIXY": InstrumentSpec(symbol="VIXY", min_quantity=1, min_notional=1),
         "BTC-USDT": InstrumentSpec(symbol="BTC-USDT", secType="CRYPTO", lot_size=0.001, min_notional=5)}
PRICES = {"SPY": 500.0, "VIXY": 20.0, "BTC-USDT": 50_000.0}


def strat(sid, alloc, **rp):
    return StrategyConfig(strategy_id=sid, name=sid, capital_allocation=alloc, risk_parameters=rp)


def intent(sid, targets, status="success", as_of=T):
    return Intent(intent_id=f"{sid}-1", strategy_id=sid, updated_at=as_of, as_of=as_of, status=status,
                  target_positions=targets, error_message=None if status == "success" else "boom")


def snapshot(holdings=(), open_orders=(), nav=100_000.0, as_of=T):
    return PortfolioSnapshot(snapshot_id="snap-1", updated_at=as_of, as_of=as_of, broker="sim", account="a",
                             mode="paper", net_liquidation=nav, available_funds=nav, cash=nav,
                             holdings=[Holding(symbol=s, quantity=q, market_price=PRICES[s], market_value=q * PRICES[s])
                                       for s, q in holdings],
                             open_orders=list(open_orders))


def test_gate_kill_switch_and_freshness():
    cfg = TradingConfig(tradingEnabled=False)
    g = gate(cfg, snapshot(), T, dry_run=False)
    assert g.dry_run and g.skip_reason is None and "kill switch" in g.notes[0]
    assert "no portfolio snapshot" in gate(TradingConfig(), None, T, False).skip_reason
    old = snapshot(as_of=T - timedelta(hours=2))
    assert "outside the allowed 3600 s" in gate(TradingConfig(), old, T, False).skip_reason
    assert "not positive" in gate(TradingConfig(), snapshot(nav=-5), T, False).skip_reason


def test_classify_fresh_stale_missing_errored():
    cfg = TradingConfig(default_max_intent_age_seconds=3600)
    strategies = {s: strat(s, 0.1) for s in ("a", "b", "c", "d")}
    intents = {"a": intent("a", []), "b": intent("b", [], as_of=T - timedelta(hours=2)), "c": None,
               "d": intent("d", [], status="error")}
    c = classify(cfg, strategies, intents, T)
    assert list(c.fresh) == ["a"] and c.stale == ["b"] and c.missing == ["c"] and c.errored == ["d"]
    assert c.reasons["d"] == "boom"


def test_custom_allocation_and_its_limit():
    cfg = TradingConfig(reserve_fraction=0.1)
    assert allocate(cfg, {"a": strat("a", 0.6), "b": strat("b", 0.3)}, 200_000) == {"a": 120_000, "b": 60_000}
    with pytest.raises(AllocationError, match=r"a=0.6, b=0.35"):
        allocate(cfg, {"a": strat("a", 0.6), "b": strat("b", 0.35)}, 200_000)
    assert allocate(TradingConfig(allocation_method="equal", reserve_fraction=0.2),
                    {"a": strat("a", 0), "b": strat("b", 0)}, 1000) == {"a": 400, "b": 400}


def test_sizing_weight_notional_quantity_and_caps():
    s = strat("a", 0.5, max_single_position_exposure=0.6, max_leverage=1.0)
    targets = [TargetPosition(symbol="SPY", weight=0.5), TargetPosition(symbol="VIXY", notional=-2000),
               TargetPosition(symbol="BTC-USDT", quantity=0.1)]
    sized = size_targets(s, targets, 50_000, unit_values(PRICES, SPECS))
    assert sized.quantities["SPY"] == pytest.approx(50.0)  # 0.5 x 50,000 / 500
    assert sized.quantities["VIXY"] == pytest.approx(-100.0)  # -2,000 / 20
    # BTC 0.1 x 50,000 = 5,000 <= 0.6 x capital; gross 25,000 + 2,000 + 5,000 <= 50,000: no cap binds
    assert sized.quantities["BTC-USDT"] == pytest.approx(0.1) and sized.adjustments == []
    big = size_targets(s, [TargetPosition(symbol="SPY", weight=0.9), TargetPosition(symbol="BTC-USDT", weight=0.6)],
                       50_000, unit_values(PRICES, SPECS))
    # SPY capped at 0.6 x 50,000 = 30,000 -> 60 shares; then gross 60,000 > 50,000 scales both by 5/6
    assert big.quantities["SPY"] == pytest.approx(50.0)
    assert big.quantities["BTC-USDT"] == pytest.approx(0.5)
    assert [a.rule for a in big.adjustments] == ["max_single_position_exposure", "strategy_max_leverage",
                                                 "strategy_max_leverage"]


def test_netting_records_the_direction_conflict():
    lines, conflicts = aggregate({"a": {"VIXY": 100.0, "SPY": 10.0}, "b": {"VIXY": -30.0, "SPY": 5.0}}, {}, "net", {})
    by = {line.symbol: line for line in lines}
    assert by["VIXY"].quantity == 70.0 and by["VIXY"].contributions == {"a": 100.0, "b": -30.0}
    assert by["SPY"].quantity == 15.0
    assert len(conflicts) == 1 and conflicts[0].symbol == "VIXY" and conflicts[0].outcome == 70.0
    assert conflicts[0].wanted == {"a": 100.0, "b": -30.0} and conflicts[0].policy == "net"


def test_diff_rounds_to_lots_counts_pending_and_leaves_unmanaged_alone():
    oo = OpenOrder(orderId="9", client_order_id="x", symbol="SPY", action="BUY", totalQuantity=3, created_at=T)
    snap = snapshot(holdings=[("SPY", 10), ("VIXY", 7)], open_orders=[oo])
    final = [TargetLine(symbol="SPY", quantity=20.6), TargetLine(symbol="BTC-USDT", quantity=0.12345),
             TargetLine(symbol="BTC-USDT2", quantity=0.0)]
    lines, unmanaged = diff(final, snap, SPECS, {**PRICES, "BTC-USDT2": 1.0}, TradingConfig(min_order_notional=25,
                                                                                             rebalance_band=0.0))
    by = {d.symbol: d for d in lines}
    assert by["SPY"].raw_quantity == pytest.approx(7.6) and by["SPY"].quantity == 8 and by["SPY"].pending == 3
    assert by["BTC-USDT"].quantity == pytest.approx(0.123)
    assert unmanaged == ["VIXY"]


def test_diff_drops_small_orders_with_a_reason():
    snap = snapshot(holdings=[("SPY", 100)])
    lines, _ = diff([TargetLine(symbol="SPY", quantity=101), TargetLine(symbol="VIXY", quantity=1)], snap, SPECS,
                    PRICES, TradingConfig(min_order_notional=25, rebalance_band=0.02))
    by = {d.symbol: d for d in lines}
    assert by["SPY"].quantity == 0 and "rebalance band" in by["SPY"].reason
    assert by["VIXY"].quantity == 0 and "below minimum 25.00" in by["VIXY"].reason


def test_decide_end_to_end_on_documents():
    cfg = TradingConfig(reserve_fraction=0.1, min_order_notional=0, rebalance_band=0)
    strategies = {"a": strat("a", 0.5), "b": strat("b", 0.3)}
    intents = {"a": intent("a", [TargetPosition(symbol="SPY", weight=0.5), TargetPosition(symbol="VIXY", weight=0.1)]),
               "b": intent("b", [TargetPosition(symbol="VIXY", quantity=-50)])}
    plan = decide(CommanderInputs("ex-1", T, cfg, strategies, intents, {}, snapshot(holdings=[("SPY", 10)]),
                                  PRICES, SPECS))
    by = {d.symbol: d for d in plan.decision.diff}
    assert by["SPY"].target == pytest.approx(50.0) and by["SPY"].quantity == 40  # 0.5 x 50,000 / 500 - 10 held
    assert by["VIXY"].target == pytest.approx(250.0 - 50.0)
    assert [(o.action, o.totalQuantity, o.symbol, o.client_order_id) for o in plan.orders] == [
        ("BUY", 40, "SPY", "ex-1-SPY"), ("BUY", 200, "VIXY", "ex-1-VIXY")]
    assert plan.decision.conflicts[0].symbol == "VIXY"


def test_a_strategy_without_a_fresh_intent_keeps_its_book():
    cfg = TradingConfig(min_order_notional=0, rebalance_band=0)
    strategies = {"a": strat("a", 0.5), "b": strat("b", 0.3)}
    books = {"b": {"SPY": 20.0}}
    intents = {"a": intent("a", [TargetPosition(symbol="SPY", quantity=5)]), "b": intent("b", [], status="error")}
    plan = decide(CommanderInputs("ex-2", T, cfg, strategies, intents, books, snapshot(holdings=[("SPY", 20)]),
                                  PRICES, SPECS))
    assert plan.classification.errored == ["b"]
    line = plan.decision.final_target[0]
    assert line.quantity == 25 and line.contributions == {"a": 5, "b": 20}
    assert plan.orders[0].totalQuantity == 5


def test_fills_split_pro_rata_and_the_rest_is_external():
    books = {"a": Book(strategy_id="a", updated_at=T, positions={"SPY": BookPosition(quantity=10, avg_price=400)})}
    desired = {"a": {"SPY": 40.0}, "b": {"SPY": 10.0}}
    # Wanted change: a +30, b +10; 40 filled. The broker also holds 3 VIXY nobody booked.
    upd = update_books(books, desired, {"SPY": Fill(40.0, 500.0, 2.0)}, {"SPY": 50.0, "VIXY": 3.0}, PRICES, SPECS,
                       {"a": 10_000, "b": 8_000}, T, "x")
    new, external = upd.books, upd.external
    assert new["a"].positions["SPY"].quantity == pytest.approx(40.0)
    assert new["a"].positions["SPY"].avg_price == pytest.approx((10 * 400 + 30 * 500) / 40)
    assert new["b"].positions["SPY"].quantity == pytest.approx(10.0)
    assert external == {"VIXY": 3.0} and new[EXTERNAL].positions["VIXY"].quantity == 3.0
    # b is new: it starts with its capital as cash and pays its 1/4 share of the commission.
    assert new["b"].cash == pytest.approx(8_000 - 10 * 500 - 0.5)
    assert new["b"].fees == pytest.approx(0.5) and new["a"].fees == pytest.approx(1.5)


def test_funding_is_charged_to_the_books_that_held_the_perpetual():
    from commander.attribute import split_funding
    books = {"long": Book(strategy_id="long", updated_at=T, cash=1000.0,
                          positions={"BTC": BookPosition(quantity=0.3, avg_price=50_000)}),
             "short": Book(strategy_id="short", updated_at=T, cash=1000.0,
                           positions={"BTC": BookPosition(quantity=-0.1, avg_price=50_000)}),
             "none": Book(strategy_id="none", updated_at=T, cash=1000.0)}
    # The account is net long 0.2 and paid 10 USD: the long book pays 15, the short book receives 5.
    assert split_funding(books, {"BTC": 10.0}) == pytest.approx({"long": 15.0, "short": -5.0})
    upd = update_books(books, {}, {}, {"BTC": 0.2}, PRICES, SPECS, {}, T, "x", funding={"BTC": 10.0})
    assert upd.books["long"].cash == pytest.approx(985.0) and upd.books["long"].funding == pytest.approx(15.0)
    assert upd.books["short"].cash == pytest.approx(1005.0) and upd.books["short"].funding == pytest.approx(-5.0)
    assert upd.books["none"].cash == 1000.0 and upd.books["none"].funding == 0.0


def test_the_recorded_triggers_are_those_an_execution_accepts():
    from typing import get_args

    from bus.models import Execution
    from commander.record import Trigger, as_trigger

    assert get_args(Trigger) == get_args(Execution.model_fields["trigger"].annotation)
    assert as_trigger("backtest") == "backtest"
    with pytest.raises(ValueError, match="unknown trigger 'cron'"):
        as_trigger("cron")
