"""Every allocation method, conflict policy and risk rule, with exact quantities and the recorded trail."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from bus.models import (
    Holding,
    InstrumentSpec,
    Intent,
    OpenOrder,
    PerformanceAllocation,
    PortfolioSnapshot,
    RiskLimits,
    StrategyConfig,
    TargetLine,
    TargetPosition,
    TradingConfig,
)
from commander.aggregate import aggregate
from commander.allocate import AllocationError, allocate, validate_allocations
from commander.decide import CommanderInputs, decide
from commander.risk import apply_global_risk

T = datetime(2024, 6, 3, 21, 30, tzinfo=timezone.utc)
PRICES = {"SPY": 500.0, "VIXY": 20.0, "QQQ": 400.0, "GLD": 200.0, "BTC": 50_000.0}
SPECS = {s: InstrumentSpec(symbol=s) for s in PRICES}
SPECS["BTC"] = InstrumentSpec(symbol="BTC", secType="CRYPTO", lot_size=0.001, max_leverage=5.0)
LOOSE = RiskLimits(max_gross_leverage=10, max_margin_use=1.0, max_symbol_exposure=10, max_open_positions=100)


def strat(sid, alloc=0.1, **rp):
    return StrategyConfig(strategy_id=sid, name=sid, capital_allocation=alloc, risk_parameters=rp)


def intent(sid, *targets):
    return Intent(intent_id=f"{sid}-i", strategy_id=sid, updated_at=T, as_of=T, status="success",
                  target_positions=list(targets))


def snap(nav=100_000.0, holdings=(), open_orders=()):
    return PortfolioSnapshot(
        snapshot_id="s", updated_at=T, as_of=T, broker="sim", account="a", mode="paper", net_liquidation=nav,
        available_funds=nav, cash=nav, open_orders=list(open_orders),
        holdings=[Holding(symbol=s, quantity=q, avg_cost=c, market_price=PRICES[s], market_value=q * PRICES[s])
                  for s, q, c in holdings])


def line(sym, qty, **contrib):
    return TargetLine(symbol=sym, quantity=qty, contributions=contrib or {"a": qty})


# ----------------------------------------------------------------- allocation

def test_performance_based_floor_cap_and_proportional_share():
    cfg = TradingConfig(allocation_method="performance_based", reserve_fraction=0.1,
                        performance=PerformanceAllocation(floor=0.05, cap=0.5))
    strategies = {s: strat(s, 0) for s in ("new", "loser", "good", "great")}
    sharpes = {"new": None, "loser": -0.7, "good": 1.0, "great": 3.0}
    cap = allocate(cfg, strategies, 1_000_000, sharpes)
    # Floors: new, loser -> 0.05 each. The rest of 0.9 is 0.8: good 0.8 x 1/4 = 0.2, great 0.6 capped at 0.5.
    assert cap == pytest.approx({"new": 50_000, "loser": 50_000, "good": 200_000, "great": 500_000})


def test_performance_based_refuses_floors_past_the_budget():
    cfg = TradingConfig(allocation_method="performance_based", reserve_fraction=0.5,
                        performance=PerformanceAllocation(floor=0.2, cap=0.5))
    with pytest.raises(AllocationError, match=r"3 strategies x floor 0.2 = 0.6 is past 1 - reserve = 0.5 \(a, b, c\)"):
        validate_allocations(cfg, [strat(s) for s in "abc"])


def test_custom_allocation_past_one_minus_reserve_names_the_strategies():
    with pytest.raises(AllocationError, match=r"sum to 0.96, past 1 - reserve = 0.95 \(a=0.5, b=0.46\)"):
        validate_allocations(TradingConfig(), [strat("a", 0.5), strat("b", 0.46)])


def test_equal_allocation_honours_the_reserve():
    cfg = TradingConfig(allocation_method="equal", reserve_fraction=0.1)
    assert allocate(cfg, {s: strat(s) for s in "abc"}, 90_000) == pytest.approx({"a": 27_000, "b": 27_000, "c": 27_000})


# ----------------------------------------------------------------- conflicts

BOOKS = {"a": {"VIXY": 100.0}, "b": {"VIXY": -40.0}, "c": {"VIXY": -10.0}}


def test_policy_net_sums_opposite_targets():
    lines, conflicts = aggregate(BOOKS, {}, "net", {"VIXY": 7.0})
    assert lines[0].quantity == 50.0 and lines[0].contributions == {"a": 100.0, "b": -40.0, "c": -10.0}
    c = conflicts[0]
    assert (c.type, c.symbol, c.strategies, c.policy, c.outcome) == ("direction", "VIXY", ["a", "b", "c"], "net", 50.0)
    assert c.wanted == {"a": 100.0, "b": -40.0, "c": -10.0}


def test_policy_highest_confidence_keeps_the_most_confident_side():
    conf = {("a", "VIXY"): 40.0, ("b", "VIXY"): 90.0, ("c", "VIXY"): 10.0}
    lines, conflicts = aggregate(BOOKS, {}, "highest_confidence", {}, confidence=conf)
    assert lines[0].quantity == -50.0 and lines[0].contributions == {"b": -40.0, "c": -10.0}
    assert conflicts[0].policy == "highest_confidence" and conflicts[0].outcome == -50.0


def test_policy_first_come_follows_the_priority_order():
    lines, conflicts = aggregate(BOOKS, {}, "first_come", {}, priority_order=["c", "a", "b"])
    assert lines[0].quantity == -50.0  # c comes first and is short: the short side wins
    lines, _ = aggregate(BOOKS, {}, "first_come", {}, priority_order=["a"])
    assert lines[0].quantity == 100.0 and lines[0].contributions == {"a": 100.0}


def test_policy_cancel_keeps_the_current_position():
    lines, conflicts = aggregate(BOOKS, {}, "cancel", {"VIXY": 7.0})
    assert lines[0].quantity == 7.0 and lines[0].contributions == {}
    assert conflicts[0].policy == "cancel" and conflicts[0].outcome == 7.0


def test_same_direction_targets_add_and_are_no_conflict():
    lines, conflicts = aggregate({"a": {"SPY": 10.0}, "b": {"SPY": 5.0}}, {}, "highest_confidence", {})
    assert lines[0].quantity == 15.0 and conflicts == []


def test_duplicate_listing_is_summed_and_recorded():
    strategies = {"a": strat("a", 0.5)}
    inp = CommanderInputs("x", T, TradingConfig(min_order_notional=0, rebalance_band=0), strategies,
                          {"a": intent("a", TargetPosition(symbol="SPY", quantity=10),
                                       TargetPosition(symbol="SPY", quantity=5))}, {}, snap(), PRICES, SPECS)
    plan = decide(inp)
    assert plan.decision.final_target[0].quantity == 15
    dup = [c for c in plan.decision.conflicts if c.type == "duplicate"][0]
    assert dup.symbol == "SPY" and dup.strategies == ["a"] and dup.outcome == 15


# ----------------------------------------------------------------- global risk

def cfg_with(**risk):
    return TradingConfig(risk=LOOSE.model_copy(update=risk))


def test_symbol_exposure_scales_pro_rata_and_records_a_resource_conflict():
    final, adj, conflicts = apply_global_risk([line("SPY", 150.0, a=100.0, b=50.0)], snap(), PRICES, SPECS,
                                              cfg_with(max_symbol_exposure=0.5))
    # 150 x 500 = 75,000 > 50,000: x 2/3
    assert final[0].quantity == pytest.approx(100.0)
    assert final[0].contributions == pytest.approx({"a": 66.6667, "b": 33.3333}, rel=1e-4)
    assert (adj[0].rule, adj[0].symbol, adj[0].before, adj[0].after) == ("max_symbol_exposure", "SPY", 150.0,
                                                                         pytest.approx(100.0))
    assert conflicts[0].type == "resource" and conflicts[0].strategies == ["a", "b"]


def test_max_open_positions_removes_the_smallest():
    lines = [line("SPY", 10.0), line("QQQ", 10.0), line("VIXY", 10.0)]  # 5,000 / 4,000 / 200
    final, adj, _ = apply_global_risk(lines, snap(), PRICES, SPECS, cfg_with(max_open_positions=2))
    assert [f.quantity for f in final] == [10.0, 10.0, 0.0]
    assert [(a.rule, a.symbol, a.after) for a in adj] == [("max_open_positions", "VIXY", 0.0)]


def test_margin_use_scales_everything():
    lines = [line("SPY", 100.0), line("BTC", 1.0)]  # margin 50,000 / 1 + 50,000 / 5 = 60,000
    final, adj, _ = apply_global_risk(lines, snap(), PRICES, SPECS, cfg_with(max_margin_use=0.3))
    assert [f.quantity for f in final] == pytest.approx([50.0, 0.5])  # x 30,000 / 60,000
    assert {a.rule for a in adj} == {"max_margin_use"}


def test_gross_leverage_scales_everything():
    lines = [line("SPY", 100.0), line("BTC", -2.0)]  # gross 50,000 + 100,000; margin 50,000 + 20,000 fits
    final, adj, _ = apply_global_risk(lines, snap(), PRICES, SPECS, cfg_with(max_gross_leverage=1.2))
    assert [f.quantity for f in final] == pytest.approx([80.0, -1.6])  # x 120,000 / 150,000
    assert [a.rule for a in adj] == ["max_gross_leverage", "max_gross_leverage"]


def test_daily_loss_halt_lets_only_reducing_orders_pass():
    s = snap(nav=94_000, holdings=[("SPY", 20.0, 500.0), ("VIXY", -50.0, 20.0)])
    lines = [line("SPY", 30.0), line("VIXY", -20.0), line("QQQ", 5.0)]
    final, adj, _ = apply_global_risk(lines, s, PRICES, SPECS, cfg_with(daily_loss_halt=0.05), prev_close_nav=100_000)
    assert [f.quantity for f in final] == [20.0, -20.0, 0.0]  # no increase, the reduction passes, nothing new
    assert [(a.rule, a.symbol, a.before, a.after) for a in adj] == [("daily_loss_halt", "SPY", 30.0, 20.0),
                                                                  ("daily_loss_halt", "QQQ", 5.0, 0.0)]
    # 5.9 % down is below a 6 % halt: nothing changes.
    final, adj, _ = apply_global_risk(lines, s, PRICES, SPECS, cfg_with(daily_loss_halt=0.07), prev_close_nav=100_000)
    assert [f.quantity for f in final] == [30.0, -20.0, 5.0] and adj == []


def test_unrealized_loss_halt():
    s = snap(nav=100_000, holdings=[("SPY", 100.0, 800.0)])  # unrealized (500 - 800) x 100 = -30,000
    final, adj, _ = apply_global_risk([line("SPY", 120.0)], s, PRICES, SPECS, cfg_with(unrealized_loss_halt=0.2))
    assert final[0].quantity == 100.0 and adj[0].rule == "unrealized_loss_halt"


def test_strategy_drawdown_isolation_only_reduces():
    strategies = {"a": strat("a", 0.5, max_drawdown=0.1)}
    inp = CommanderInputs("x", T, TradingConfig(min_order_notional=0, rebalance_band=0, risk=LOOSE), strategies,
                          {"a": intent("a", TargetPosition(symbol="SPY", quantity=40),
                                       TargetPosition(symbol="QQQ", quantity=5))},
                          {"a": {"SPY": 30.0, "GLD": 10.0}},
                          snap(holdings=[("SPY", 30.0, 500.0), ("GLD", 10.0, 200.0)]),
                          PRICES, SPECS, drawdowns={"a": 0.12})
    plan = decide(inp)
    final = {t.symbol: t.quantity for t in plan.decision.final_target}
    assert final == {"SPY": 30.0, "QQQ": 0.0, "GLD": 0.0}  # no increase, no new position, the exit passes
    rules = [(a.rule, a.symbol, a.before, a.after) for a in plan.decision.risk_adjustments]
    assert ("strategy_drawdown", "SPY", 40.0, 30.0) in rules and ("strategy_drawdown", "QQQ", 5.0, 0.0) in rules
    assert [(o.action, o.totalQuantity, o.symbol) for o in plan.orders] == [("SELL", 10.0, "GLD")]


def test_max_single_position_exposure_per_strategy():
    strategies = {"a": strat("a", 0.2, max_single_position_exposure=0.25)}
    inp = CommanderInputs("x", T, TradingConfig(min_order_notional=0, rebalance_band=0, risk=LOOSE), strategies,
                          {"a": intent("a", TargetPosition(symbol="SPY", weight=0.6))}, {}, snap(), PRICES, SPECS)
    plan = decide(inp)
    # capital 20,000; 0.6 -> 24 shares; cap 0.25 x 20,000 = 5,000 -> 10 shares
    assert plan.decision.final_target[0].quantity == pytest.approx(10.0)
    a = plan.decision.risk_adjustments[0]
    assert (a.rule, a.strategy_id, a.before, a.after) == ("max_single_position_exposure", "a", pytest.approx(24.0),
                                                          pytest.approx(10.0))


# ----------------------------------------------------------------- open orders

def test_pending_orders_count_and_expired_ones_are_cancelled_first():
    fresh = OpenOrder(orderId="1", client_order_id="fresh", symbol="SPY", action="BUY", totalQuantity=4,
                      created_at=T - timedelta(minutes=5))
    old = OpenOrder(orderId="2", client_order_id="old", symbol="QQQ", action="BUY", totalQuantity=3,
                    created_at=T - timedelta(hours=5))
    other = OpenOrder(orderId="3", client_order_id="manual", symbol="GLD", action="SELL", totalQuantity=1,
                      created_at=T - timedelta(hours=5))
    strategies = {"a": strat("a", 0.5)}
    inp = CommanderInputs("x", T, TradingConfig(min_order_notional=0, rebalance_band=0, risk=LOOSE), strategies,
                          {"a": intent("a", TargetPosition(symbol="SPY", quantity=10),
                                       TargetPosition(symbol="QQQ", quantity=10))},
                          {}, snap(open_orders=[fresh, old, other]), PRICES, SPECS)
    plan = decide(inp)
    assert [o.client_order_id for o in plan.cancels] == ["old"]  # GLD is not managed: left alone
    by = {d.symbol: d for d in plan.decision.diff}
    assert (by["SPY"].pending, by["SPY"].quantity) == (4.0, 6.0)
    assert (by["QQQ"].pending, by["QQQ"].quantity) == (0.0, 10.0)
