"""Venue faults, end to end: the real ``ib_async`` / ``ccxt`` clients against the project's fake venues on
loopback, strategies -> reconcile -> Commander (:mod:`tests.fakes.commander_scenario`) on the Firestore
emulator. Each test asserts the recorded order lifecycle (``orders/*``) and the books; after each
scenario the strategy books plus the ``external`` book equal the venue's positions, and ``external`` is
empty. No test sleeps to synchronise: fakes are scripted before the call that meets the fault.

Faults: IB after-hours hold (399) then a fill at the next open; IB 10349 on an order that fills; IB 1100
during an order, then 1102; a TWS restart between order and fill; a Binance order executed after the
client gave up; a Binance partial fill (``EXPIRED``); a Binance 429 / 418; a Hyperliquid order whose
answer and ``orderStatus`` carry no average price.
"""

from __future__ import annotations

import functools
import time
from datetime import datetime, timezone
from decimal import Decimal

import pytest

import commander.run
from brokers.base import NotConnected, OrderNotFound, OrderRequest, RateLimited
from brokers.ccxt_exchange import venue_client_id
from brokers.config import CcxtAccount
from brokers.errors import retry_after_seconds
from brokers.factory import build_broker
from brokers.ib import IBBroker
from bus import paths
from bus.models import Book, InstrumentSpec, PortfolioSnapshot
from bus.store import read
from commander import execute
from commander.orders import planned_orders
from reconcile import reconcile
from reconcile.resolve import resolve_orders
from tests.fakes.commander_scenario import (
    assert_books_match,
    book_units,
    order_doc,
    order_docs,
    run_scenario,
    write_scenario,
)
from tests.fakes.fake_binance import FakeBinanceUSDM
from tests.fakes.fake_hyperliquid import FakeHyperliquid
from tests.fakes.fake_tws import FakeTWS

INSTRUMENTS = {"SPY": InstrumentSpec(symbol="SPY", min_notional=1.0), "QQQ": InstrumentSpec(symbol="QQQ")}
BN_KEY, BN_SECRET = "bn-key-77d0e1", "bn-secret-5c2a9f44"
HL_WALLET, HL_KEY = "0x" + "ab" * 20, "0x" + "11" * 32
BTC, ETH = "BTC-USDT-PERP", "ETH-USDT-PERP"
PERP = dict(sec_type="PERP", exchange="BINANCEUSDM", currency="USDT")


def now() -> datetime:
    return datetime.now(timezone.utc)


def book(store, strategy_id: str = "scenario") -> Book:
    b = read(store, paths.book(strategy_id), Book)
    assert b is not None
    return b


# ---------------------------------------------------------------------------------------------- IB


@pytest.fixture
def tws():
    with FakeTWS(cash=100_000.0) as fake:
        yield fake
        assert fake.errors == [], fake.errors


@pytest.fixture
def ib_brokers(tws):
    """IB brokers on the fake TWS, all with client id 17 (a later process reuses it); closed at the end."""
    made: list[IBBroker] = []

    def make(order_wait: float = 8.0) -> IBBroker:
        b = IBBroker(tws.host, tws.port, client_id=17, mode="paper", instruments=INSTRUMENTS, connect_timeout=2,
                     request_timeout=3, order_wait=order_wait, reconnect_attempts=3, reconnect_wait=0.05)
        made.append(b)
        return b

    yield make
    for b in made:
        b.close()


def spy_position(tws: FakeTWS) -> dict[str, float]:
    return {"SPY": tws.position("SPY")}


def test_ib_after_hours_order_is_held_then_filled_at_the_open_and_booked_by_the_next_run(tws, ib_brokers, store):
    broker = ib_brokers(order_wait=8.0)
    tws.set_session("closed")  # 21:30 UTC: a market order waits for the next open (PreSubmitted + 399)
    t = now()
    write_scenario(store, t, {"SPY": 10})
    started = time.monotonic()
    ex = run_scenario(store, broker, t, "ex-ah-1")
    assert time.monotonic() - started < 6.0  # returned on the 399, not after order_wait (8 s)
    [o] = ex.orders_placed
    assert (ex.status, o.status, o.filled_quantity, o.fill_price, o.error) == ("completed", "PreSubmitted", 0.0,
                                                                                None, None)
    doc = order_doc(store, o.client_order_id)
    assert (doc.status, doc.venue_status, doc.open, doc.booked_quantity) == ("submitted", "PreSubmitted", True, 0.0)
    assert tws.open_orders()[0].status == "PreSubmitted" and tws.position("SPY") == 0
    assert_books_match(store, spy_position(tws))  # nothing held, nothing booked
    # the held order is an open order of the account, under our client order id, placed when we wrote it
    snap = reconcile(store, broker, now())
    [open_order] = snap.open_orders
    assert (open_order.client_order_id, open_order.totalQuantity) == (o.client_order_id, 10)
    assert open_order.created_at == doc.created_at

    tws.open_session(505.0)  # the next open: the held order fills at the open price
    t2 = now()
    write_scenario(store, t2, {"SPY": 10})
    ex2 = run_scenario(store, broker, t2, "ex-ah-2")
    assert ex2.orders_placed == [] and ex2.status == "completed"  # the strategy already holds its target
    [late] = ex2.late_fills
    assert (late.client_order_id, late.execution_id, late.quantity, late.price, late.commission) == (
        o.client_order_id, "ex-ah-1", 10.0, 505.0, 1.0)
    assert late.booked == {"scenario": pytest.approx(10.0)}
    doc = order_doc(store, o.client_order_id)
    assert (doc.status, doc.venue_status, doc.filled_quantity, doc.avg_fill_price, doc.commission) == (
        "filled", "Filled", 10.0, 505.0, 1.0)
    assert (doc.booked_quantity, doc.booked_commission, doc.open) == (10.0, 1.0, False)
    spy = book(store).positions["SPY"]
    assert (spy.quantity, spy.avg_price) == (10.0, 505.0)
    assert_books_match(store, spy_position(tws))
    assert len(tws.orders) == 1


def test_ib_10349_tif_preset_is_not_a_rejection_and_the_fill_is_booked(tws, ib_brokers, store):
    broker = ib_brokers()
    tws.tif_preset(every_order=True)  # "Order TIF was set to DAY based on order preset." before every order
    t = now()
    write_scenario(store, t, {"SPY": 10, "QQQ": -2})
    ex = run_scenario(store, broker, t, "ex-10349")
    assert ex.status == "completed"
    by_symbol = {o.symbol: o for o in ex.orders_placed}
    assert {s: (o.status, o.filled_quantity, o.fill_price, o.error) for s, o in by_symbol.items()} == {
        "SPY": ("Filled", 10.0, 500.0, None), "QQQ": ("Filled", 2.0, 430.0, None)}
    trades = broker._loop.call(lambda: _trades(broker), 5)
    assert all(10349 in [e.errorCode for e in t.log] for t in trades)  # the notice did arrive
    for o in ex.orders_placed:
        doc = order_doc(store, o.client_order_id)
        assert (doc.status, doc.booked_quantity, doc.open) == ("filled", o.totalQuantity, False)
        assert not any(e.status == "rejected" for e in doc.events)
    assert book_units(store) == {"SPY": pytest.approx(10.0), "QQQ": pytest.approx(-2.0)}
    assert_books_match(store, {"SPY": tws.position("SPY"), "QQQ": tws.position("QQQ")})


async def _trades(broker: IBBroker) -> list:
    return list(broker._ib.trades())


class _OnAppend(list):
    """A list that runs ``hook`` once, on its next append (the fake records each order it receives)."""

    def __init__(self, items: list, hook) -> None:
        super().__init__(items)
        self.hook = hook

    def append(self, item) -> None:
        super().append(item)
        hook, self.hook = self.hook, None
        if hook is not None:
            hook()


def test_ib_1100_during_an_order_is_unknown_until_1102_then_booked_once(tws, ib_brokers, store):
    broker = ib_brokers()
    t = now()
    write_scenario(store, t, {"SPY": 10})
    # TWS loses its link to IB as the order arrives: 1100 first, the fill is done but its report held back
    tws.placed = _OnAppend(tws.placed, lambda: tws.lose_connectivity(hold_fills=True))
    started = time.monotonic()
    ex = run_scenario(store, broker, t, "ex-1100-1")
    assert time.monotonic() - started < 6.0  # the 1100 ended the wait, not order_wait
    [o] = ex.orders_placed
    assert ex.status == "partial_success" and o.status == "Unknown" and "1100" in o.error
    doc = order_doc(store, o.client_order_id)
    assert (doc.status, doc.filled_quantity, doc.booked_quantity, doc.open) == ("unknown", 0.0, 0.0, True)
    assert tws.position("SPY") == 10 and book_units(store) == {} and book_units(store, "external") == {}

    # while the link is down, TWS's answers are stale: the next run does not trade on them
    t2 = now()
    write_scenario(store, t2, {"SPY": 10})
    ex2 = run_scenario(store, broker, t2, "ex-1100-2")
    assert ex2.status == "skipped" and "1100" in ex2.reason and ex2.orders_placed == []
    assert order_doc(store, o.client_order_id).status == "unknown" and len(tws.orders) == 1

    tws.restore_connectivity()  # 1102 "data maintained", then the held reports
    t3 = now()
    write_scenario(store, t3, {"SPY": 10})
    ex3 = run_scenario(store, broker, t3, "ex-1100-3")
    assert ex3.status == "completed" and ex3.orders_placed == []
    [late] = ex3.late_fills
    assert (late.client_order_id, late.quantity, late.price, late.commission) == (o.client_order_id, 10.0, 500.0, 1.0)
    doc = order_doc(store, o.client_order_id)
    assert (doc.status, doc.avg_fill_price, doc.booked_quantity, doc.open) == ("filled", 500.0, 10.0, False)
    assert [e.status for e in doc.events] == ["unknown", "filled"]
    assert_books_match(store, spy_position(tws))
    write_scenario(store, now(), {"SPY": 10})
    ex4 = run_scenario(store, broker, now(), "ex-1100-4")  # booked once: nothing more
    assert ex4.late_fills == [] and ex4.orders_placed == [] and book_units(store) == {"SPY": pytest.approx(10.0)}


def test_ib_order_placed_while_the_link_is_down_is_not_sent(tws, ib_brokers, store):
    broker = ib_brokers()
    broker.portfolio(now())  # connected, then TWS loses its link to IB
    tws.lose_connectivity()
    with pytest.raises(NotConnected, match="1100"):
        broker.place_order(OrderRequest("never-sent", "SPY", "BUY", 1), now())
    assert tws.placed == []
    tws.restore_connectivity()
    assert broker.place_order(OrderRequest("sent", "SPY", "BUY", 1), now()).status == "Filled"


def test_ib_restart_between_order_and_fill(tws, ib_brokers, store):
    first = ib_brokers()
    tws.set_session("closed")
    t = now()
    write_scenario(store, t, {"SPY": 10})
    ex = run_scenario(store, first, t, "ex-rs-1")
    [o] = ex.orders_placed
    assert o.status == "PreSubmitted"
    tws.restart()  # TWS restarts overnight: the held order survives, the client reconnects
    write_scenario(store, now(), {"SPY": 10})
    ex2 = run_scenario(store, first, now(), "ex-rs-2")
    assert first.connections == 2 and ex2.orders_placed == [] and ex2.late_fills == []
    doc = order_doc(store, o.client_order_id)
    assert (doc.status, doc.venue_status) == ("submitted", "PreSubmitted")  # found held, from reqAllOpenOrders
    first.close()

    tws.restart(stay_down=True)
    tws.open_session(503.0)  # the fill at the open, with no client connected
    tws.up()
    later = ib_brokers()  # the next day's process: a new client, same client id
    r = later.order_status(o.client_order_id)  # from completed orders and executions
    assert (r.status, r.filled_quantity, r.fill_price, r.commission) == ("Filled", 10.0, 503.0, 1.0)
    write_scenario(store, now(), {"SPY": 10})
    ex3 = run_scenario(store, later, now(), "ex-rs-3")
    assert ex3.orders_placed == []
    [late] = ex3.late_fills
    assert (late.quantity, late.price) == (10.0, 503.0)
    doc = order_doc(store, o.client_order_id)
    assert (doc.status, doc.booked_quantity, doc.avg_fill_price, doc.open) == ("filled", 10.0, 503.0, False)
    assert_books_match(store, spy_position(tws))
    with pytest.raises(OrderNotFound):
        later.order_status("never-placed")


def test_ib_fill_whose_executions_are_gone_has_no_price_and_is_not_booked(tws, ib_brokers, store):
    broker = ib_brokers()
    tws.set_session("closed")
    write_scenario(store, now(), {"SPY": 10})
    [o] = run_scenario(store, broker, now(), "ex-old-1").orders_placed
    broker.close()
    tws.restart(stay_down=True)
    tws.open_session(501.0)
    with tws._lock:
        tws.executions.clear()  # days later: TWS lists the completed order, but no longer its executions
    tws.up()
    later = ib_brokers()
    r = later.order_status(o.client_order_id)
    assert (r.status, r.filled_quantity, r.fill_price) == ("Filled", 10.0, None)  # never a price of 0
    res = resolve_orders(store, later, "paper")
    [doc] = res.changed
    assert (doc.status, doc.filled_quantity, doc.avg_fill_price, doc.booked_quantity, doc.open) == (
        "unknown", 10.0, None, 0.0, True)


# ---------------------------------------------------------------------------------------------- Binance


@pytest.fixture
def binance(monkeypatch):
    monkeypatch.setenv("T_BN_KEY", BN_KEY)
    monkeypatch.setenv("T_BN_SECRET", BN_SECRET)
    # client_order_id_scope="open": what Binance documents ("a unique id among open orders")
    with FakeBinanceUSDM(BN_KEY, BN_SECRET, balances={"USDT": "10000"}, client_order_id_scope="open") as server:
        yield server
        assert server.foreign_urls == [] and server.internal_errors == []


def binance_broker(fake: FakeBinanceUSDM, leverage: dict[str, int] | None = None, **kw):
    cfg = CcxtAccount(exchange="binanceusdm", account="bn-test", api_key_env="T_BN_KEY", secret_env="T_BN_SECRET",
                      leverage={BTC: 5, ETH: 3} if leverage is None else leverage, retries=1,
                      enable_rate_limit=False, **{"timeout_ms": 1500, **kw})
    broker = build_broker(cfg, "paper", instruments={})
    fake.point_ccxt(broker.exchange)
    broker.retry_wait = 0.01
    return broker


def binance_positions(fake: FakeBinanceUSDM) -> dict[str, float]:
    out = {}
    for sym, ours in (("BTCUSDT", BTC), ("ETHUSDT", ETH), ("SOLUSDT", "SOL-USDT-PERP")):
        out[ours] = float(Decimal(fake.position(sym)["positionAmt"]))
    return out


@pytest.mark.parametrize("answer", ["hold", "drop", "503"])
def test_binance_order_that_executes_after_the_client_gave_up_is_unknown_then_booked_once(binance, store, answer):
    broker = binance_broker(binance, timeout_ms=1000)
    t = now()
    write_scenario(store, t, {BTC: 0.01}, **PERP)
    # the order reaches the venue but is carried out only later; the client times out / is reset / gets a
    # 503 "execution status unknown"
    binance.execute_late_next(answer=answer)
    ex = run_scenario(store, broker, t, "ex-late-1")
    [o] = ex.orders_placed
    assert ex.status == "partial_success" and o.status == "Unknown" and o.error.startswith("answer lost")
    doc = order_doc(store, o.client_order_id)
    assert (doc.status, doc.filled_quantity, doc.booked_quantity, doc.open) == ("unknown", 0.0, 0.0, True)
    assert doc.venue_status is None and doc.error is None  # never "Rejected"
    assert binance.wait_held(1)
    assert_books_match(store, binance_positions(binance))  # nothing executed yet, nothing booked
    [late_answer] = binance.release_held()  # the venue carries it out now
    assert late_answer["status"] == "FILLED"

    later = binance_broker(binance, leverage={})  # the next run is a new process; no symbol configured
    binance.clear_requests()
    t2 = now()
    write_scenario(store, t2, {BTC: 0.01}, **PERP)
    ex2 = run_scenario(store, later, t2, "ex-late-2")
    assert ex2.orders_placed == [] and ex2.status == "completed"
    # found with one query: the symbol comes from the client order id itself
    lookups = [r for r in binance.requests("/fapi/v1/order", "GET") if r.params.get("origClientOrderId")]
    assert [r.params["symbol"] for r in lookups] == ["BTCUSDT"]
    [late] = ex2.late_fills
    assert (late.client_order_id, late.quantity, late.price) == (o.client_order_id, 0.01, 60_000.0)
    assert late.commission == pytest.approx(0.3)
    doc = order_doc(store, o.client_order_id)
    assert (doc.status, doc.filled_quantity, doc.avg_fill_price, doc.booked_quantity, doc.open) == (
        "filled", 0.01, 60_000.0, 0.01, False)
    assert len(binance.trades("BTCUSDT")) == 1 and len(binance.orders("BTCUSDT")) == 1  # never doubled
    assert_books_match(store, binance_positions(binance))
    write_scenario(store, now(), {BTC: 0.01}, **PERP)
    ex3 = run_scenario(store, later, now(), "ex-late-3")
    assert ex3.late_fills == [] and ex3.orders_placed == [] and book_units(store) == {BTC: pytest.approx(0.01)}


def test_binance_partial_fill_expired_is_booked_at_its_price_and_the_rest_ordered_next_run(binance, store):
    broker = binance_broker(binance)
    t = now()
    write_scenario(store, t, {BTC: 0.02}, **PERP)
    binance.partial_next("0.5", prices=["60000", "60100"])  # a market order that exhausts the book
    ex = run_scenario(store, broker, t, "ex-part-1")
    [o] = ex.orders_placed
    assert (o.status, o.filled_quantity, o.fill_price) == ("Expired", 0.01, pytest.approx(60_050.0))
    assert binance.orders("BTCUSDT")[0]["status"] == "EXPIRED"
    doc = order_doc(store, o.client_order_id)
    assert (doc.status, doc.filled_quantity, doc.booked_quantity, doc.open) == ("expired", 0.01, 0.01, False)
    assert doc.avg_fill_price == pytest.approx(60_050.0)
    assert doc.commission == pytest.approx(0.0005 * (0.005 * 60_000 + 0.005 * 60_100))
    pos = book(store).positions[BTC]
    assert (pos.quantity, pos.avg_price) == (pytest.approx(0.01), pytest.approx(60_050.0))
    assert_books_match(store, binance_positions(binance))

    t2 = now()
    write_scenario(store, t2, {BTC: 0.02}, **PERP)
    ex2 = run_scenario(store, broker, t2, "ex-part-2")
    [o2] = ex2.orders_placed
    assert (o2.action, o2.totalQuantity, o2.status, o2.fill_price) == ("BUY", 0.01, "Filled", 60_000.0)
    assert book_units(store) == {BTC: pytest.approx(0.02)}
    assert_books_match(store, binance_positions(binance))


@pytest.mark.parametrize("status,retry_after,expect_wait", [(429, 1, 1.0), (418, 120, 30.0)])
def test_binance_rate_limit_rejects_and_backs_off_before_the_next_order(binance, store, monkeypatch, status,
                                                                         retry_after, expect_wait):
    broker = binance_broker(binance)
    waits: list[float] = []

    def wait(seconds: float) -> None:
        waits.append(seconds)
        if seconds <= 2:
            time.sleep(seconds)  # what the Commander does by default; the fake times the next order

    monkeypatch.setattr(commander.run, "place", functools.partial(execute.place, wait=wait))
    t = now()
    write_scenario(store, t, {ETH: -0.5, BTC: 0.01}, **PERP)
    binance.fail_next(1, status=status, path="/fapi/v1/order", method="POST", retry_after=retry_after)
    ex = run_scenario(store, broker, t, "ex-rl-1")
    assert ex.status == "partial_success"
    sell, buy = ex.orders_placed  # sells first: the sell met the rate limit
    assert (sell.symbol, sell.status) == (ETH, "Rejected") and sell.error.startswith("RateLimited")
    assert (buy.symbol, buy.status, buy.filled_quantity) == (BTC, "Filled", 0.01)
    assert waits == [expect_wait]  # the venue's Retry-After (at most 30 s)
    posts = binance.requests("/fapi/v1/order", "POST")
    assert [r.status for r in posts] == [status, 200]
    if expect_wait <= 2:
        assert posts[1].time_ms - posts[0].time_ms >= 1000 * expect_wait
    doc = order_doc(store, sell.client_order_id)
    assert (doc.status, doc.venue_status, doc.open, doc.filled_quantity) == ("rejected", "RateLimited", False, 0.0)
    assert order_doc(store, buy.client_order_id).status == "filled"
    assert book_units(store) == {BTC: pytest.approx(0.01)}
    assert_books_match(store, binance_positions(binance))

    t2 = now()  # the next run places the order the venue did not take
    write_scenario(store, t2, {ETH: -0.5, BTC: 0.01}, **PERP)
    ex2 = run_scenario(store, broker, t2, "ex-rl-2")
    [again] = ex2.orders_placed
    assert (again.symbol, again.action, again.status) == (ETH, "SELL", "Filled")
    assert book_units(store) == {BTC: pytest.approx(0.01), ETH: pytest.approx(-0.5)}
    assert_books_match(store, binance_positions(binance))


def test_binance_order_status_in_a_later_process_finds_the_symbol_from_the_client_order_id(binance):
    from bus.ids import client_order_id, new_id

    long_id = client_order_id(new_id(now()), ETH)  # 36 characters: shortened with a digest
    short_id = client_order_id("ex-7", "SOL-USDT-PERP")
    assert len(long_id) == 36 and ETH not in long_id
    placer = binance_broker(binance)
    placer.place_order(OrderRequest(long_id, ETH, "SELL", 0.1), now())
    placer.place_order(OrderRequest(short_id, "SOL-USDT-PERP", "BUY", 1.0), now())
    later = binance_broker(binance, leverage={})  # no symbol configured, no memory of the orders
    assert later._symbols_from_id(long_id) == ["ETH/USDT:USDT"] and later._symbols_from_id("manual-1") == []
    binance.clear_requests()
    r = later.order_status(long_id)
    assert (r.status, r.filled_quantity, r.fill_price) == ("Filled", 0.1, 3000.0)
    assert later.order_status(short_id).fill_price == 150.0
    assert [q.params["symbol"] for q in binance.requests("/fapi/v1/order", "GET")] == ["ETHUSDT", "SOLUSDT"]
    with pytest.raises(OrderNotFound):
        later.order_status("manual-1")


def test_rate_limited_carries_retry_after(binance):
    broker = binance_broker(binance)
    broker.instrument_specs([BTC])
    binance.fail_next(1, status=429, retry_after=7)
    with pytest.raises(RateLimited) as err:
        broker.portfolio(now())
    assert err.value.retry_after == 7.0
    assert retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, now=1445412470.0) == 10.0
    assert retry_after_seconds({}, "IP(1.2.3.4) banned until 1700000030000. Please", now=1700000000.0) == 30.0
    assert retry_after_seconds(None, "no hint") is None


def test_binance_base_url_and_sandbox_send_every_request_there_with_the_venue_error_table(binance):
    cfg = CcxtAccount(exchange="binanceusdm", api_key_env="T_BN_KEY", secret_env="T_BN_SECRET", sandbox=True,
                      base_url=binance.base_url + "/", enable_rate_limit=False, timeout_ms=1500)
    broker = build_broker(cfg, "paper", instruments={})
    ex = broker.exchange
    assert ex.options["sandboxMode"] is True
    api = ex.urls["api"]
    assert api["fapiPrivate"] == binance.base_url + "/fapi/v1" and api["fapiPrivateV2"] == binance.base_url + "/fapi/v2"
    assert all(u.startswith(binance.base_url) for u in api.values() if isinstance(u, str))
    # the testnet's error table still applies: -2019 is InsufficientFunds, as from the venue's host
    binance.fail_next(1, status=400, body={"code": -2019, "msg": "Margin is insufficient."}, path="/fapi/v1/order",
                      method="POST")
    with pytest.raises(Exception) as err:
        broker.place_order(OrderRequest("bu-1", BTC, "BUY", 0.01), now())
    assert type(err.value).__name__ == "InsufficientFunds"
    r = broker.place_order(OrderRequest("bu-2", BTC, "BUY", 0.01), now())
    assert (r.status, r.filled_quantity, r.fill_price) == ("Filled", 0.01, 60_000.0)
    assert binance.requests("/fapi/v1/order", "POST")[-1].params["newClientOrderId"] == "bu-2"
    with pytest.raises(ValueError, match="credentials"):
        CcxtAccount(exchange="binanceusdm", api_key_env="A", secret_env="B", base_url="https://u:p@proxy.example")
    with pytest.raises(ValueError, match="http"):
        CcxtAccount(exchange="binanceusdm", api_key_env="A", secret_env="B", base_url="ftp://proxy.example")


# ---------------------------------------------------------------------------------------------- Hyperliquid


@pytest.fixture
def hyperliquid(monkeypatch):
    monkeypatch.setenv("T_HL_ADDR", HL_WALLET)
    monkeypatch.setenv("T_HL_KEY", HL_KEY)
    with FakeHyperliquid(HL_WALLET, usdc="10000") as server:
        yield server
        assert server.foreign_urls == [] and server.internal_errors == []


def hl_broker(fake: FakeHyperliquid):
    cfg = CcxtAccount(exchange="hyperliquid", account="hl-test", wallet_address_env="T_HL_ADDR",
                      private_key_env="T_HL_KEY", enable_rate_limit=False, timeout_ms=2000, retries=0)
    broker = build_broker(cfg, "paper", instruments={})
    fake.point_ccxt(broker.exchange)
    return broker


HL = dict(sec_type="PERP", exchange="HYPERLIQUID", currency="USDC")


def hl_positions(fake: FakeHyperliquid) -> dict[str, float]:
    out = {}
    for coin in ("BTC", "ETH", "SOL"):
        p = fake.position(coin)
        out[f"{coin}-USDC-PERP"] = float(p["position"]["szi"]) if p else 0.0
    return out


def test_hyperliquid_order_without_status_is_priced_from_user_fills(hyperliquid, store):
    broker = hl_broker(hyperliquid)
    t = now()
    write_scenario(store, t, {"ETH-USDC-PERP": 0.1}, **HL)
    hyperliquid.status_without_fill_next(mode="waitingForFill")  # carried out; the answer names no order
    ex = run_scenario(store, broker, t, "ex-hl-1")
    [o] = ex.orders_placed
    assert (o.status, o.filled_quantity, o.fill_price) == ("Filled", 0.1, 3000.0)  # orderStatus has no avgPx
    assert o.commission == pytest.approx(0.1 * 3000 * 0.00045)
    doc = order_doc(store, o.client_order_id)
    assert (doc.status, doc.avg_fill_price, doc.booked_quantity, doc.open) == ("filled", 3000.0, 0.1, False)
    pos = book(store).positions["ETH-USDC-PERP"]
    assert (pos.quantity, pos.avg_price) == (pytest.approx(0.1), pytest.approx(3000.0))
    assert_books_match(store, hl_positions(hyperliquid))


def test_hyperliquid_fill_without_any_price_is_not_booked_at_zero_then_resolved_from_user_fills(hyperliquid, store):
    broker = hl_broker(hyperliquid)
    t = now()
    write_scenario(store, t, {"ETH-USDC-PERP": 0.1}, **HL)
    hyperliquid.status_without_fill_next(mode="missing")  # an empty statuses list
    hyperliquid.fail_next(1, status=429, path="/info", kind="userFillsByTime")  # and the fills not readable now
    ex = run_scenario(store, broker, t, "ex-hl-nofill-1")
    [o] = ex.orders_placed
    assert (o.status, o.filled_quantity, o.fill_price) == ("Unknown", 0.1, None)  # filled, price unknown
    doc = order_doc(store, o.client_order_id)
    assert (doc.status, doc.venue_status, doc.filled_quantity, doc.avg_fill_price) == ("unknown", "Filled", 0.1,
                                                                                       None)
    assert (doc.booked_quantity, doc.booked_cost, doc.open) == (0.0, 0.0, True)
    assert book_units(store) == {} and book_units(store, "external") == {}  # nothing booked at 0
    assert hyperliquid.position("ETH")["position"]["szi"] == "0.1"

    t2 = now()
    write_scenario(store, t2, {"ETH-USDC-PERP": 0.1}, **HL)
    ex2 = run_scenario(store, hl_broker(hyperliquid), t2, "ex-hl-nofill-2")  # a new process
    assert ex2.orders_placed == []
    [late] = ex2.late_fills
    assert (late.quantity, late.price) == (0.1, 3000.0)
    doc = order_doc(store, o.client_order_id)
    assert (doc.status, doc.avg_fill_price, doc.booked_quantity, doc.open) == ("filled", 3000.0, 0.1, False)
    assert book(store).positions["ETH-USDC-PERP"].avg_price == pytest.approx(3000.0)
    assert_books_match(store, hl_positions(hyperliquid))


def test_hyperliquid_open_orders_keep_our_client_order_id_in_a_later_process(hyperliquid, store):
    placer = hl_broker(hyperliquid)
    t = now()
    cid = "ex-rest-1-ETH-USDC-PERP"
    r = placer.place_order(OrderRequest(cid, "ETH-USDC-PERP", "BUY", 0.1, order_type="LMT", limit_price=2900.0), t)
    assert r.status == "Submitted"
    [mine] = placer.portfolio(now()).open_orders
    assert mine.client_order_id == cid
    # our record of it, as the Commander wrote it
    from bus.models import OrderRecord

    rec = OrderRecord(client_order_id=cid, symbol="ETH-USDC-PERP", secType="PERP", action="BUY", totalQuantity=0.1,
                      status="DryRun")
    [doc] = planned_orders("ex-rest-1", "paper", [rec], {"ETH-USDC-PERP": {"scenario": 0.1}}, t)
    doc = doc.transition(t, "submitted", venue_status="Submitted", orderId=r.orderId)
    store.set(paths.order(cid), doc.to_store())
    later = hl_broker(hyperliquid)  # a new process knows the cloid only once it has asked for our id
    snap = reconcile(store, later, now())
    [o] = snap.open_orders
    assert (o.client_order_id, o.created_at) == (cid, doc.created_at)
    assert venue_client_id("hyperliquid", cid) != cid
    assert isinstance(read(store, paths.portfolio("paper"), PortfolioSnapshot), PortfolioSnapshot)
    assert order_docs(store)[cid].status == "submitted"
