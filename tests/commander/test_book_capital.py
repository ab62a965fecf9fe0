"""Books are sub-accounts: each strategy is sized on its own book's equity; the allocation moves capital
only when a book opens and at recorded rebalances; isolation is released; small targets are flagged."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bus.models import Book, BookCapital, BookPosition, StrategyRiskParameters, TargetPosition, TradingConfig
from commander.allocate import book_capital, rebalance_due
from commander.attribute import update_books
from commander.decide import CommanderInputs, decide
from commander.risk import isolation
from commander.size import hold_small_changes
from pipeline.settings import ConfigError, load_settings
from tests.commander.test_steps import PRICES, SPECS, T, intent, snapshot, strat

OPEN = TradingConfig(min_order_notional=0, rebalance_band=0)


def cap(cash, alloc=None, on=None, since=None) -> BookCapital:
    return BookCapital(cash=cash, capital_allocation=alloc, capital_set_on=on, isolated_since=since)


def test_a_strategy_is_sized_on_its_own_book_equity_whatever_the_others_made():
    strategies = {"a": strat("a", 0.5), "b": strat("b", 0.4)}
    intents = {"a": intent("a", [TargetPosition(symbol="SPY", weight=1.0)]), "b": intent("b", [])}
    # a's book: 10 SPY (5,000) + 15,000 cash = 20,000; b's book made a fortune: NAV is 200,000.
    books = {"a": {"SPY": 10.0}, "b": {}}
    capital = {"a": cap(15_000.0, 0.5, "2024-06-01"), "b": cap(170_000.0, 0.4, "2024-06-01")}
    for nav in (200_000.0, 60_000.0):  # the account's NAV does not enter a's sizing
        snap = snapshot(holdings=[("SPY", 10)], nav=nav)
        plan = decide(CommanderInputs("x", T, OPEN, strategies, intents, books, snap, PRICES, SPECS,
                                      book_capital=capital))
        assert plan.decision.allocations["a"] == pytest.approx(20_000.0)
        assert plan.desired["a"] == {"SPY": pytest.approx(40.0)}  # 1.0 x 20,000 / 500, not 0.5 x NAV
        assert plan.decision.capital_moves == []


def test_a_new_book_opens_at_its_allocation_capped_at_the_cash_no_book_holds():
    cfg = TradingConfig()
    strategies = {"a": strat("a", 0.5), "new": strat("new", 0.4)}
    # NAV 100,000; a's book already holds 70,000 of it: only 30,000 is free for the new book.
    capital, moves = book_capital(cfg, strategies, 100_000.0, {"a": cap(70_000.0, 0.5, "2024-06-01")},
                                  {"a": 70_000.0}, 0.0, T)
    assert capital == {"a": 70_000.0, "new": pytest.approx(30_000.0)}
    (m,) = moves
    assert (m.strategy_id, m.kind, m.amount, m.fraction) == ("new", "open", pytest.approx(30_000.0), 0.4)
    assert "capped" in m.reason
    # The first run: every book opens at fraction x NAV.
    capital, moves = book_capital(cfg, strategies, 100_000.0, {}, {}, 0.0, T)
    assert capital == {"a": 50_000.0, "new": 40_000.0} and [m.kind for m in moves] == ["open", "open"]


@pytest.mark.parametrize("rule,set_on,alloc,due", [
    ("never", "2020-01-01", 0.1, False),
    ("monthly", "2024-06-01", 0.5, False),       # T is 2024-06-03: same month
    ("monthly", "2024-05-31", 0.5, True),
    ("on_config_change", "2020-01-01", 0.5, False),
    ("on_config_change", "2024-06-01", 0.3, True),
])
def test_when_a_rebalance_is_due(rule, set_on, alloc, due):
    cfg = TradingConfig(rebalance=rule)
    assert bool(rebalance_due(cfg, {"a": cap(1.0, alloc, set_on)}, {"a": 0.5}, T)) is due


def test_a_rebalance_moves_cash_between_books_is_recorded_and_the_books_still_add_up():
    cfg = TradingConfig(rebalance="monthly", min_order_notional=0, rebalance_band=0)
    strategies = {"a": strat("a", 0.5), "b": strat("b", 0.4)}
    intents = {"a": intent("a", [TargetPosition(symbol="SPY", weight=0.5)]), "b": intent("b", [])}
    # a's book: 40 SPY (20,000) + 40,000 cash; b's: 30,000 cash; NAV 100,000 (10,000 unallocated).
    units = {"a": {"SPY": 40.0}, "b": {}}
    capital = {"a": cap(40_000.0, 0.5, "2024-05-01"), "b": cap(30_000.0, 0.4, "2024-05-01")}
    plan = decide(CommanderInputs("x", T, cfg, strategies, intents, units, snapshot(holdings=[("SPY", 40)]),
                                  PRICES, SPECS, book_capital=capital))
    moves = {m.strategy_id: m for m in plan.decision.capital_moves}
    assert moves["a"].kind == "rebalance" and moves["a"].amount == pytest.approx(-10_000.0)
    assert moves["b"].amount == pytest.approx(10_000.0) and "monthly" in moves["b"].reason
    assert plan.decision.allocations == {"a": pytest.approx(50_000.0), "b": pytest.approx(40_000.0)}
    assert plan.desired["a"] == {"SPY": pytest.approx(50.0)}  # 0.5 x 50,000 / 500
    books = {"a": Book(strategy_id="a", updated_at=T, starting_cash=60_000, cash=40_000, equity=60_000,
                       high_water_mark=61_000, positions={"SPY": BookPosition(quantity=40, avg_price=500)}),
             "b": Book(strategy_id="b", updated_at=T, starting_cash=30_000, cash=30_000, equity=30_000,
                       high_water_mark=30_000)}
    upd = update_books(books, {}, {}, {"SPY": 40.0}, PRICES, SPECS, plan.decision.allocations, T, "x",
                       moves=plan.decision.capital_moves)
    a, b = upd.books["a"], upd.books["b"]
    assert (a.cash, a.transfers, a.equity, a.high_water_mark) == (30_000, -10_000, 50_000, 51_000)
    assert (b.cash, b.transfers, b.equity, b.capital_set_on, b.capital_allocation) == (
        40_000, 10_000, 40_000, "2024-06-03", 0.4)
    assert a.equity + b.equity == pytest.approx(60_000 + 30_000)  # cash moved, none created
    assert a.drawdown == pytest.approx(1 - 50_000 / 51_000)  # the transfer is neither a gain nor a loss


def test_drawdown_isolation_is_released_by_recovery_or_after_the_cooldown_with_the_high_water_mark_reset():
    rp = StrategyRiskParameters(max_drawdown=0.1, drawdown_cooldown_days=30)
    assert isolation("a", 0.05, None, rp, T) is None
    start = isolation("a", 0.12, None, rp, T)
    assert (start.status, start.since, start.release_on) == ("locked", "2024-06-03", "2024-07-03")
    assert isolation("a", 0.12, "2024-06-03", rp, T + timedelta(days=29)).status == "locked"
    back = isolation("a", 0.08, "2024-06-03", rp, T + timedelta(days=5))
    assert back.status == "released" and not back.high_water_mark_reset
    over = isolation("a", 0.12, "2024-06-03", rp, T + timedelta(days=30))
    assert over.status == "released" and over.high_water_mark_reset
    # The books carry it: isolated_since while locked, cleared and the high-water mark reset on release.
    book = Book(strategy_id="a", updated_at=T, cash=88_000, equity=88_000, high_water_mark=100_000)
    locked = update_books({"a": book}, {}, {}, {}, PRICES, SPECS, {}, T, "x", isolation=[start]).books["a"]
    assert locked.isolated_since == "2024-06-03" and locked.high_water_mark == 100_000
    freed = update_books({"a": locked}, {}, {}, {}, PRICES, SPECS, {}, T + timedelta(days=30), "y",
                         isolation=[over]).books["a"]
    assert freed.isolated_since is None and freed.high_water_mark == 88_000 and freed.drawdown == 0.0


def test_a_locked_strategy_only_reduces_and_trades_again_after_the_cooldown():
    strategies = {"a": strat("a", 0.5, max_drawdown=0.1, drawdown_cooldown_days=10)}
    intents = {"a": intent("a", [TargetPosition(symbol="SPY", quantity=40)])}
    units, snap = {"a": {"SPY": 30.0}}, snapshot(holdings=[("SPY", 30)])

    def plan(as_of, since):
        return decide(CommanderInputs("x", as_of, OPEN, strategies, {"a": intents["a"].model_copy(
            update={"as_of": as_of, "updated_at": as_of})}, units, snap.model_copy(update={"as_of": as_of}),
            PRICES, SPECS, drawdowns={"a": 0.2}, book_capital={"a": cap(20_000.0, 0.5, "2024-01-01", since)}))

    assert plan(T, "2024-06-01").desired["a"] == {"SPY": 30.0}
    later = plan(T + timedelta(days=8), "2024-06-01")
    assert later.desired["a"] == {"SPY": 40.0} and later.decision.isolation[0].high_water_mark_reset


def test_a_target_under_half_a_lot_is_flagged_in_the_decision():
    strategies = {"a": strat("a", 0.5)}
    # 0.1 x 50,000 = 5,000 of BTC at 50,000 = 0.1 BTC (fine); 0.0002 x 50,000 = 10 USD of SPY = 0.02 shares.
    intents = {"a": intent("a", [TargetPosition(symbol="SPY", weight=0.0002),
                                 TargetPosition(symbol="BTC-USDT", weight=0.1)])}
    plan = decide(CommanderInputs("x", T, OPEN, strategies, intents, {}, snapshot(), PRICES, SPECS))
    assert plan.decision.zero_lots == {"a": {"SPY": pytest.approx(0.02)}}
    assert {d.symbol: d.quantity for d in plan.decision.diff}["SPY"] == 0.0


def test_the_band_holds_small_changes_per_book_but_never_above_its_leverage_cap():
    cfg = TradingConfig(min_order_notional=25, rebalance_band=0.05)
    values = {"SPY": 500.0, "VIXY": 20.0}
    # +2 SPY on 100 held is 2 % of the target: held. A new VIXY position is opened.
    out = hold_small_changes({"SPY": 102.0, "VIXY": 10.0}, {"SPY": 100.0}, values, SPECS, cfg, 1e9)
    assert out == {"SPY": 100.0, "VIXY": 10.0}
    # The book lost money: its capped target is 98 SPY (2 % less than held), but holding 100 would be
    # 50,000 of gross on a cap of 49,000: the reduction goes through.
    assert hold_small_changes({"SPY": 98.0}, {"SPY": 100.0}, values, SPECS, cfg, 49_000.0) == {"SPY": 98.0}


def test_a_book_that_cannot_be_valued_errs_its_strategy_and_nothing_moves():
    strategies = {"a": strat("a", 0.5), "b": strat("b", 0.3)}
    intents = {"a": intent("a", [TargetPosition(symbol="SPY", weight=0.5)]),
               "b": intent("b", [TargetPosition(symbol="SPY", weight=0.5)])}
    plan = decide(CommanderInputs("x", T, TradingConfig(rebalance="monthly"), strategies, intents,
                                  {"a": {"QQQ": 3.0}}, snapshot(), PRICES, SPECS,
                                  book_capital={"a": cap(1_000.0, 0.5, "2024-01-01")}))
    assert plan.classification.errored == ["a", "b"] and "QQQ" in plan.classification.reasons["a"]
    assert plan.decision.capital_moves == [] and "no capital" in plan.classification.reasons["b"]


def test_settings_refuse_an_unknown_or_a_daily_rebalance_on_one_line(tmp_path):
    import shutil

    from tests.support.backtest import BACKTEST_CONFIG

    shutil.copytree(BACKTEST_CONFIG, tmp_path, dirs_exist_ok=True)
    trading = tmp_path / "trading.yaml"
    text = trading.read_text()
    trading.write_text(text.replace("rebalance: never", "rebalance: weekly"))
    with pytest.raises(ConfigError, match=r"trading.yaml.*rebalance") as e:
        load_settings(tmp_path)
    assert "\n" not in str(e.value)
    trading.write_text(text.replace("rebalance: never", "rebalance: on_config_change")
                       .replace("allocation_method: custom", "allocation_method: performance_based"))
    with pytest.raises(ConfigError, match="every run"):
        load_settings(tmp_path)
    trading.write_text(text.replace("rebalance: never", "rebalance: monthly"))
    assert load_settings(tmp_path).trading.rebalance == "monthly"


def test_the_hedge_of_spy_macd_vixy_is_a_parameter():
    from backtest.horizon import HorizonHistory
    from market.history import BUNDLED_DIR
    from strategies.runner import compute_intent
    from tests.support.backtest import backtest_settings

    settings, _ = backtest_settings()
    cfg = next(s for s in settings.strategies if s.strategy_id == "spy_macd_vixy")
    assert cfg.params["hedge_symbol"] == "VIXY"
    as_of = T.replace(year=2020, month=3, day=16)  # the COVID crash: momentum down, the hedge is on
    provider = HorizonHistory([BUNDLED_DIR], as_of, {})
    shipped = compute_intent(cfg, provider.view(as_of))
    assert {t.symbol: t.weight for t in shipped.target_positions} == {"SPY": 0.3, "VIXY": 0.1}
    gld = cfg.model_copy(update={"params": {**cfg.params, "hedge_symbol": "GLD"}, "universe": ["SPY", "GLD"]})
    intent = compute_intent(gld, provider.view(as_of))
    assert intent.status == "success", intent.error_message
    assert {t.symbol: t.weight for t in intent.target_positions} == {"SPY": 0.3, "GLD": 0.1}
    assert intent.metadata.indicators["hedge_level"] == provider.view(as_of).last_price("GLD")
    assert "vixy_level" not in intent.metadata.indicators
