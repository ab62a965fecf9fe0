"""The order lifecycle's pure rules (bus/orders.py, commander/orders.py): statuses, fills, blocking."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from bus.models import OrderRecord
from bus.orders import OrderLifecycle, lifecycle_status
from commander.orders import blocked_symbols, mark_booked, planned_orders, sells_first, unbooked_fills

T = datetime(2024, 6, 3, 21, 30, tzinfo=timezone.utc)


def order(symbol: str = "SPY", action: str = "BUY", qty: float = 10, coid: str | None = None) -> OrderRecord:
    return OrderRecord(client_order_id=coid or f"ex-{symbol}", symbol=symbol, action=action, totalQuantity=qty,
                       status="DryRun")


def planned(symbol: str = "SPY", action: str = "BUY", qty: float = 10, shares=None) -> OrderLifecycle:
    [doc] = planned_orders("ex", "paper", [order(symbol, action, qty)], {symbol: shares or {"a": qty}}, T)
    return doc


@pytest.mark.parametrize("venue,filled,total,expected", [
    ("Filled", 10, 10, "filled"), ("Filled", 6, 10, "filled"), ("PreSubmitted", 0, 10, "submitted"),
    ("Submitted", 4, 10, "partially_filled"), ("Submitted", 0, 10, "submitted"), ("Cancelled", 3, 10, "cancelled"),
    ("Inactive", 0, 10, "rejected"), ("Expired", 2, 10, "expired"), ("whatever", 0, 10, "unknown"),
])
def test_venue_words_map_to_lifecycle_statuses(venue, filled, total, expected):
    assert lifecycle_status(venue, filled, total) == expected


def test_planned_orders_keep_each_strategys_share_and_start_open():
    [doc] = planned_orders("ex", "paper", [order()], {"SPY": {"a": 7.0, "b": 3.0, "c": 0.0}}, T)
    assert doc.status == "planned" and doc.open and doc.shares == {"a": 7.0, "b": 3.0}
    assert doc.needs_resolution and doc.unbooked_quantity == 0


def test_a_fill_without_a_price_is_never_unbooked_at_zero():
    doc = planned().transition(T, "unknown", venue_status="Filled", filled_quantity=10, avg_fill_price=None)
    assert doc.unbooked_quantity == 0 and unbooked_fills([doc]) == [] and doc.open
    priced = doc.transition(T, "filled", venue_status="Filled", filled_quantity=10, avg_fill_price=101.0)
    [f] = unbooked_fills([priced])
    assert f.quantity == 10 and f.price == 101.0


def test_booking_in_steps_reproduces_the_venues_average_price():
    doc = planned(qty=10).transition(T, "partially_filled", venue_status="Submitted", filled_quantity=4,
                                     avg_fill_price=100.0, commission=1.0)
    [first] = unbooked_fills([doc])
    assert (first.quantity, first.price, first.commission) == (4, 100.0, 1.0)
    [doc] = mark_booked([first])
    assert doc.open  # still working at the venue
    # The rest fills at 110: the venue's average over 10 units is 106.
    doc = doc.transition(T + timedelta(hours=12), "filled", venue_status="Filled", filled_quantity=10,
                         avg_fill_price=106.0, commission=1.5)
    [second] = unbooked_fills([doc])
    assert second.quantity == pytest.approx(6) and second.price == pytest.approx(110.0)
    assert second.commission == pytest.approx(0.5)
    [doc] = mark_booked([second])
    assert not doc.open and doc.booked_quantity == pytest.approx(10) and unbooked_fills([doc]) == []


def test_a_sell_is_booked_with_negative_units():
    doc = planned(action="SELL").transition(T, "filled", venue_status="Filled", filled_quantity=10,
                                            avg_fill_price=50.0)
    assert unbooked_fills([doc])[0].quantity == -10


def test_fills_only_grow_and_every_change_is_an_event():
    doc = planned().transition(T, "partially_filled", filled_quantity=5, avg_fill_price=10.0)
    doc = doc.transition(T, "partially_filled", filled_quantity=3, avg_fill_price=None)  # a venue that forgot
    assert doc.filled_quantity == 5 and doc.avg_fill_price == 10.0
    assert [e.status for e in doc.events] == ["partially_filled", "partially_filled"]


def test_planned_and_unknown_orders_block_their_symbol_others_do_not():
    a = planned("SPY")
    b = planned("QQQ").transition(T, "unknown", message="timeout")
    c = planned("TLT").transition(T, "submitted", venue_status="PreSubmitted")
    d = planned("GLD").transition(T, "filled", filled_quantity=10, avg_fill_price=1.0)
    assert blocked_symbols([a, b, c, d]) == {"SPY": a.client_order_id, "QQQ": b.client_order_id}


def test_sells_go_first():
    out = sells_first([order("A", "BUY"), order("B", "SELL"), order("C", "BUY"), order("D", "SELL")])
    assert [(o.symbol, o.action) for o in out] == [("B", "SELL"), ("D", "SELL"), ("A", "BUY"), ("C", "BUY")]
