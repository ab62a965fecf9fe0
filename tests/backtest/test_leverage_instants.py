"""A book's gross leverage at the Commander's decision and right after its fills (backtest.engine)."""

from __future__ import annotations

from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from backtest.engine import StepFill, leverage_after_fills, leverage_at_decision
from bus.models import Book, BookPosition, TargetLine

T = datetime(2024, 1, 2, 21, 30, tzinfo=timezone.utc)


def execution(lines, allocations, prices):
    return SimpleNamespace(decision=SimpleNamespace(final_target=lines, allocations=allocations),
                           context=SimpleNamespace(prices=prices))


def test_decision_leverage_is_the_final_target_over_the_capital_sized_on():
    lines = [TargetLine(symbol="SPY", quantity=12.0, contributions={"a": 10.0, "b": 2.0}),
             TargetLine(symbol="TLT", quantity=-5.0, contributions={"a": -5.0}),
             TargetLine(symbol="BTC-PERP", quantity=1.0, price=50.0, contributions={"b": 1.0})]
    ex = execution(lines, {"a": 2_000.0, "b": 500.0, "c": 100.0}, {"SPY": 100.0, "TLT": 80.0, "BTC-PERP": 40.0})
    got = leverage_at_decision(ex, {"BTC-PERP": 2.0})
    assert got == pytest.approx({"a": (1000 + 400) / 2000, "b": (200 + 100) / 500})  # line price wins, x mult
    assert leverage_at_decision(None, {}) == {}
    no_price = execution([TargetLine(symbol="X", quantity=1.0, contributions={"a": 1.0})], {"a": 1.0}, {})
    assert leverage_at_decision(no_price, {}) == {}


def test_fill_leverage_marks_filled_symbols_at_the_fill_and_the_rest_at_the_decision():
    book = Book(strategy_id="a", updated_at=T, cash=-100.0,
                positions={"SPY": BookPosition(quantity=10.0, avg_price=90.0),
                           "TLT": BookPosition(quantity=-5.0, avg_price=70.0)})
    fills = [StepFill("SPY", "BUY", 2.0, 110.0, 0.1, late=True)]
    got = leverage_after_fills({"a": book}, fills, {"SPY": 100.0, "TLT": 80.0}, {})
    gross, equity = 10 * 110 + 5 * 80, -100 + 10 * 110 - 5 * 80
    assert got == pytest.approx({"a": gross / equity})
    broke = book.model_copy(update={"cash": -10_000.0})
    assert leverage_after_fills({"a": broke}, fills, {"TLT": 80.0}, {}) == {}
