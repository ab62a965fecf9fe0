"""Dust (issue 14): a book that closed a symbol another strategy nets keeps no residual below a lot.

Two strategies hold BTC; one closes while the other adds a little. The adder's buy is crossed
against the closer's sale in full (``split_fill``); the net order is rounded to the lot, so the closer's
share of the market fill misses its position by a fraction of a lot. That residual is snapped to zero and
moved to ``external``, recorded in both books and the update, and the books plus ``external`` still equal
the account.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from bus.models import Book, BookPosition, InstrumentSpec
from commander.attribute import EXTERNAL, Fill, update_books

T = datetime(2024, 3, 15, 21, 30, tzinfo=timezone.utc)
BTC = "BTC-USDT"
SPECS = {BTC: InstrumentSpec(symbol=BTC, secType="CRYPTO", exchange="BINANCE", currency="USDT", lot_size=0.001,
                             min_quantity=0.001)}
PRICE = 70_000.0


def _book(sid: str, units: float, cash: float) -> Book:
    equity = cash + units * 60_000.0
    return Book(strategy_id=sid, updated_at=T, starting_cash=equity, cash=cash, equity=equity, high_water_mark=equity,
                positions={BTC: BookPosition(quantity=units, avg_price=60_000.0)})


def _profit(b: Book) -> float:
    return b.equity - b.starting_cash - b.transfers


def _run(specs):
    books = {"closer": _book("closer", 0.05, 7_000.0), "adder": _book("adder", 0.03, 8_000.0)}
    desired = {"closer": {BTC: 0.0}, "adder": {BTC: 0.0304}}
    # Wanted: closer -0.05, adder +0.0004 -> net -0.0496, sent as -0.049 (whole lots), filled at 70,000.
    fill = Fill(-0.049, PRICE, commission=0.0)
    return update_books(books, desired, {BTC: fill}, {BTC: 0.031}, {BTC: PRICE}, specs, {}, T, "ex-1")


def test_the_closers_residual_below_a_lot_moves_to_external_and_is_recorded():
    upd = _run(SPECS)
    closer, adder, ext = upd.books["closer"], upd.books["adder"], upd.books[EXTERNAL]
    assert BTC not in closer.positions  # exactly zero
    residual = 0.05 - (0.049 + 0.0004)  # the closer sells the market's 0.049 plus the adder's crossed 0.0004
    assert adder.positions[BTC].quantity == pytest.approx(0.0304)  # the adder got its change in full
    [snap] = upd.dust
    assert (snap.strategy_id, snap.symbol, snap.execution_id) == ("closer", BTC, "ex-1")
    assert snap.quantity == pytest.approx(residual) and 0 < snap.quantity < 0.001
    assert snap.value == pytest.approx(residual * PRICE) and snap.price == PRICE
    assert closer.dust == [snap] and ext.dust == [snap] and adder.dust == []
    assert ext.positions[BTC].quantity == pytest.approx(residual)
    assert upd.external[BTC] == pytest.approx(residual)
    # Books + external = the account's 0.031 BTC.
    total = sum(b.positions[BTC].quantity for b in upd.books.values() if BTC in b.positions)
    assert total == pytest.approx(0.031, abs=1e-9)
    # The residual left as a transfer at the mark: the closer's profit is what selling it would have made.
    assert closer.transfers == pytest.approx(-residual * PRICE)
    assert _profit(closer) == pytest.approx((PRICE - 60_000.0) * 0.05)
    assert closer.equity == pytest.approx(closer.cash)


def test_without_an_instrument_spec_the_lot_is_unknown_and_nothing_is_snapped():
    upd = _run({})
    assert upd.dust == [] and upd.books["closer"].positions[BTC].quantity == pytest.approx(0.05 - 0.0494)
