"""The paper broker, persisted in the real emulator."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from brokers.base import DuplicateOrder, InsufficientFunds, NotConnected, OrderRejected, OrderRequest, UnknownInstrument
from brokers.sim import SimBroker
from bus.models import InstrumentSpec

T = datetime(2024, 6, 3, 21, 30, tzinfo=timezone.utc)
PRICES = {"SPY": 500.0, "BTC-USDT": 60_000.0}
SPECS = {"SPY": InstrumentSpec(symbol="SPY", lot_size=1, min_quantity=1, min_notional=1),
         "BTC-USDT": InstrumentSpec(symbol="BTC-USDT", secType="CRYPTO", exchange="BINANCE", currency="USDT",
                                    lot_size=0.001, min_quantity=0.001, min_notional=100)}


def price(symbol, as_of):
    if symbol not in PRICES:
        raise LookupError(symbol)
    return PRICES[symbol]


def broker(store, **kw):
    return SimBroker(store, "acct", price, SPECS, starting_cash=100_000, fee_bps=1.0, slippage_bps=2.0, **kw)


def buy(b, coid, sym, qty, action="BUY"):
    return b.place_order(OrderRequest(client_order_id=coid, symbol=sym, action=action, quantity=qty), T)


def test_market_order_fills_at_close_plus_slippage_with_fee(store):
    b = broker(store)
    r = buy(b, "c1", "SPY", 10)
    assert r.fill_price == pytest.approx(500.0 * 1.0002)
    assert r.commission == pytest.approx(10 * 500.1 * 0.0001)
    snap = broker(store).portfolio(T)  # a new instance reads the persisted account
    assert snap.cash == pytest.approx(100_000 - 5001.0 - 0.5001)
    assert snap.holdings[0].quantity == 10 and snap.holdings[0].avg_cost == pytest.approx(500.1)
    assert snap.net_liquidation == pytest.approx(100_000 - 1.0 - 0.5001)  # slippage 10 x 0.1 and the fee
    assert snap.available_funds == pytest.approx(snap.net_liquidation - 5000.0)


def test_sell_realizes_and_fills_below_close(store):
    b = broker(store)
    buy(b, "c1", "SPY", 10)
    r = buy(b, "c2", "SPY", 4, action="SELL")
    assert r.fill_price == pytest.approx(500.0 * 0.9998)
    st = b.state()
    assert st["positions"]["SPY"]["quantity"] == 6
    assert st["realized_pnl"] == pytest.approx((499.9 - 500.1) * 4)


def test_duplicate_client_order_id_is_refused_and_reported(store):
    b = broker(store)
    buy(b, "same", "SPY", 1)
    with pytest.raises(DuplicateOrder, match="same already used"):
        buy(b, "same", "SPY", 1)
    assert b.state()["positions"]["SPY"]["quantity"] == 1


def test_venue_rules(store):
    b = broker(store)
    with pytest.raises(OrderRejected, match="not a multiple of lot"):
        buy(b, "c1", "BTC-USDT", 0.0015)
    with pytest.raises(OrderRejected, match="below minimum"):
        buy(b, "c2", "BTC-USDT", 0.001)  # 60 USD < 100
    with pytest.raises(UnknownInstrument, match="'QQQ'"):
        buy(b, "c3", "QQQ", 1)
    with pytest.raises(InsufficientFunds):
        buy(b, "c4", "SPY", 300)
    assert b.state()["positions"] == {}


def test_time_cannot_run_backwards_on_one_account(store):
    b = broker(store)
    buy(b, "c1", "SPY", 1)
    with pytest.raises(NotConnected, match="earlier"):
        b.portfolio(datetime(2020, 1, 1, tzinfo=timezone.utc))
