"""The IB broker: the real ``ib_async`` client against the fake TWS over loopback."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from brokers.base import (
    BrokerError,
    DuplicateOrder,
    NotConnected,
    OrderNotFound,
    OrderRejected,
    OrderRequest,
    UnknownInstrument,
)
from brokers.ib import IBBroker
from bus import paths
from bus.models import Execution, InstrumentSpec, PortfolioSnapshot
from bus.store import read
from tests.fakes.commander_scenario import resubmit, run_scenario, write_scenario
from tests.fakes.fake_tws import FakeTWS

INSTRUMENTS = {"SPY": InstrumentSpec(symbol="SPY", min_notional=1.0), "VIXY": InstrumentSpec(symbol="VIXY"),
               "QQQ": InstrumentSpec(symbol="QQQ")}


def now():
    return datetime.now(timezone.utc)


@pytest.fixture
def tws():
    with FakeTWS(cash=100_000.0) as fake:
        yield fake
        assert fake.errors == [], fake.errors


@pytest.fixture
def broker(tws):
    b = IBBroker(tws.host, tws.port, client_id=17, mode="paper", instruments=INSTRUMENTS, connect_timeout=2,
                 request_timeout=2, order_wait=2, reconnect_attempts=3, reconnect_wait=0.05)
    yield b
    b.close()


def test_snapshot_field_by_field(tws, broker):
    tws.seed_position("SPY", 10, 480.0)
    tws.seed_position("VIXY", -100, 16.5)
    t = now()
    broker.place_order(OrderRequest("rest-1", "QQQ", "BUY", 2, order_type="LMT", limit_price=400.0), t)
    snap = broker.portfolio(t)
    assert isinstance(snap, PortfolioSnapshot)
    assert (snap.broker, snap.account, snap.mode, snap.base_currency, snap.as_of) == (
        "ib", "DU1234567", "paper", "USD", t)
    # cash 100000; SPY 10 x 500 = 5000; VIXY -100 x 15 = -1500 -> NAV 103500; Reg T initial 50 % of 6500 gross
    assert snap.cash == 100_000.0
    assert snap.net_liquidation == 103_500.0
    assert snap.available_funds == 103_500.0 - 0.5 * 6_500.0
    held = {h.symbol: h for h in snap.holdings}
    assert set(held) == {"SPY", "VIXY"}
    spy, vixy = held["SPY"], held["VIXY"]
    assert (spy.quantity, spy.avg_cost, spy.market_price, spy.market_value) == (10, 480.0, 500.0, 5_000.0)
    assert (spy.secType, spy.exchange, spy.currency) == ("STK", "SMART", "USD")
    assert (vixy.quantity, vixy.avg_cost, vixy.market_price, vixy.market_value) == (-100, 16.5, 15.0, -1_500.0)
    [o] = snap.open_orders
    assert (o.client_order_id, o.symbol, o.action, o.totalQuantity, o.orderType, o.lmtPrice, o.status) == (
        "rest-1", "QQQ", "BUY", 2, "LMT", 400.0, "Submitted")
    assert o.orderId == str(tws.open_orders()[0].permId)


def test_specs_quotes_and_unknown_symbol(broker):
    spec = broker.instrument_specs(["SPY"])["SPY"]
    assert (spec.tick_size, spec.lot_size, spec.min_quantity, spec.multiplier, spec.min_notional) == (
        0.01, 1.0, 1.0, 1.0, 1.0)
    assert spec.contract_details["conId"] == 756733
    assert broker.quotes(["SPY", "VIXY"], now()) == {"SPY": 500.0, "VIXY": 15.0}
    with pytest.raises(UnknownInstrument, match="'NOPE'"):
        broker.instrument_specs(["NOPE"])
    assert broker.instrument_specs(["VIXY"])["VIXY"].tick_size == 0.01  # the connection survived the error


def test_orders_carry_order_ref_fill_rest_cancel_and_are_not_doubled(tws, broker):
    t = now()
    r = broker.place_order(OrderRequest("c-mkt", "SPY", "BUY", 5), t)
    assert (r.status, r.filled_quantity, r.fill_price, r.commission) == ("Filled", 5, 500.0, 1.0)  # min USD 1
    assert tws.placed[-1]["orderRef"] == "c-mkt" and tws.placed[-1]["orderType"] == "MKT"
    lmt = broker.place_order(OrderRequest("c-lmt", "SPY", "SELL", 2, order_type="LMT", limit_offset_bps=-50), t)
    assert (lmt.status, lmt.limit_price) == ("Submitted", 502.5)  # 500 x 1.005, a sell rounded up to the tick
    with pytest.raises(DuplicateOrder, match="c-mkt"):
        broker.place_order(OrderRequest("c-mkt", "SPY", "BUY", 5), t)
    with pytest.raises(DuplicateOrder, match="c-lmt"):
        broker.place_order(OrderRequest("c-lmt", "SPY", "SELL", 2, order_type="LMT", limit_price=502.5), t)
    assert tws.position("SPY") == 5 and len(tws.open_orders()) == 1
    assert broker.order_status("c-lmt").status == "Submitted"
    assert broker.cancel_order("c-lmt").status == "Cancelled"
    assert tws.open_orders() == []
    with pytest.raises(OrderRejected, match="not working"):
        broker.cancel_order("c-lmt")
    with pytest.raises(OrderNotFound):
        broker.order_status("never-placed")
    with pytest.raises(OrderRejected, match="lot"):
        broker.place_order(OrderRequest("c-frac", "SPY", "BUY", 0.5), t)


def test_a_resting_limit_fills_when_the_price_crosses_it(tws, broker):
    t = now()
    broker.place_order(OrderRequest("c-dip", "SPY", "BUY", 3, order_type="LMT", limit_price=495.0), t)
    tws.set_price("SPY", 494.0)
    time.sleep(0.2)
    r = broker.order_status("c-dip")
    assert (r.status, r.filled_quantity, r.fill_price) == ("Filled", 3, 495.0)
    assert broker.portfolio(now()).holdings[0].quantity == 3


def test_commander_scenario_partial_success_and_no_duplicates(tws, broker, store):
    t = now()
    write_scenario(store, t, {"SPY": 20, "VIXY": -200, "QQQ": 5})
    tws.reject_next(201, "Order rejected - reason:YOUR ORDER IS NOT ACCEPTED. IN ORDER TO OBTAIN THE DESIRED "
                         "POSITION YOUR EQUITY WITH LOAN VALUE [1 USD] MUST EXCEED THE INITIAL MARGIN [2 USD]")
    ex = run_scenario(store, broker, t)
    assert ex.status == "partial_success"
    by_symbol = {o.symbol: o for o in ex.orders_placed}
    assert set(by_symbol) == {"SPY", "VIXY", "QQQ"}
    rejected = [o for o in ex.orders_placed if o.status == "Rejected"]
    assert len(rejected) == 1 and rejected[0].error.startswith("InsufficientFunds")
    placed = {o.symbol: o for o in ex.orders_placed if o.status == "Filled"}
    assert len(placed) == 2
    for sym, o in placed.items():
        assert tws.position(sym) == (o.totalQuantity if o.action == "BUY" else -o.totalQuantity)
        assert o.client_order_id in {p["orderRef"] for p in tws.placed}
    assert read(store, paths.execution(ex.execution_id), Execution).status == "partial_success"
    # The same execution's orders again: IB would take them; the broker recognises the ids and refuses.
    before = {s: tws.position(s) for s in by_symbol}
    n_orders = len(tws.orders)
    again = resubmit(broker, ex, t)
    for o in again:
        if o.symbol in placed:  # recognised, not doubled: recorded with the venue's own status
            assert o.status == "Filled" and o.error.startswith("Duplicate: already at the venue")
    assert {s: tws.position(s) for s in by_symbol} == before
    new = [o for o in again if o.status == "Filled" and not (o.error or "").startswith("Duplicate")]
    assert len(tws.orders) == n_orders + len(new)


def test_broker_down_fails_closed(tws, broker, store):
    t = now()
    write_scenario(store, t, {"SPY": 10})
    tws.down("refuse")
    started = time.monotonic()
    ex = run_scenario(store, broker, t)
    assert time.monotonic() - started < 5
    assert ex.status == "skipped" and ex.orders_placed == [] and "NotConnected" in ex.reason
    assert store.get(paths.portfolio("paper")) is None
    tws.up()
    broker.instrument_specs(["SPY"])  # connected again
    tws.stall()  # then a request times out mid-run
    started = time.monotonic()
    ex = run_scenario(store, broker, t, execution_id="ex-stall")
    assert ex.status == "skipped" and "request: timed out" in ex.reason and ex.orders_placed == []
    assert time.monotonic() - started < 4  # one request timeout (2 s), not a hang
    assert tws.orders == []


def test_connect_that_never_answers_times_out_as_not_connected(tws):
    tws.down("silent")
    b = IBBroker(tws.host, tws.port, 18, connect_timeout=0.3, reconnect_attempts=2, reconnect_wait=0.01)
    try:
        with pytest.raises(NotConnected, match="timed out|TimeoutError"):
            b.portfolio(now())
    finally:
        b.close()


def test_nightly_reset_is_followed_by_a_reconnect_and_a_correct_snapshot(tws, broker):
    t = now()
    broker.place_order(OrderRequest("pre-reset", "SPY", "BUY", 4), t)
    assert broker.connections == 1
    tws.drop_connections()  # TWS's nightly restart closes the socket
    time.sleep(0.1)
    tws.set_price("SPY", 510.0)
    snap = broker.portfolio(now())
    assert broker.connections == 2 and tws.connect_count == 2
    [h] = snap.holdings
    assert (h.symbol, h.quantity, h.market_price, h.market_value) == ("SPY", 4, 510.0, 2_040.0)
    assert snap.cash == 100_000.0 - 4 * 500.0 - 1.0
    assert snap.net_liquidation == snap.cash + 2_040.0
    # executions of the day survive the reconnect: the old id is still recognised
    assert broker.order_status("pre-reset").status == "Filled"
    with pytest.raises(DuplicateOrder):
        broker.place_order(OrderRequest("pre-reset", "SPY", "BUY", 4), now())


def test_reconnect_waits_out_a_short_outage(tws):
    b = IBBroker(tws.host, tws.port, 19, connect_timeout=1, reconnect_attempts=4, reconnect_wait=0.1)
    try:
        b.portfolio(now())
        tws.down("refuse")
        import threading

        threading.Timer(0.25, tws.up).start()
        assert b.portfolio(now()).net_liquidation == 100_000.0  # attempts at +0, +0.1, +0.3 s: the third gets in
    finally:
        b.close()


def test_paper_vs_live_is_checked_against_the_account(tws):
    live = IBBroker(tws.host, tws.port, 20, mode="live", reconnect_attempts=1)
    try:
        with pytest.raises(BrokerError, match="paper account but this run's mode is live"):
            live.portfolio(now())
    finally:
        live.close()
    assert tws.orders == []


def test_a_historical_as_of_is_refused_by_a_live_broker(broker):
    with pytest.raises(BrokerError, match="live broker answers only within"):
        broker.portfolio(now() - timedelta(days=3))
