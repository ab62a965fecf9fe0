"""The fake TWS is as unkind as the real one: the real ``ib_async`` client over loopback sees
held orders and warning 399 outside market hours, fills at the open (also with nobody
connected, or across a restart), partial fills, 10349, 1100/1101/1102, market-data
permission errors, and completed orders with their real fields.

No fixed sleeps: every wait polls ``ib_async``'s own ``waitOnUpdate`` against a deadline,
and a ``reqCurrentTime`` round trip is the barrier before asserting that something did
*not* arrive (the fake answers a connection's requests in order).
"""

from __future__ import annotations

import math
import time
from datetime import datetime, timedelta, timezone

import pytest
from ib_async import IB, LimitOrder, MarketOrder, Stock

from tests.fakes.fake_tws import FakeTWS

SPY, QQQ = Stock("SPY", "SMART", "USD"), Stock("QQQ", "SMART", "USD")
FRIDAY_EVENING = datetime(2024, 5, 31, 22, 0, tzinfo=timezone.utc)  # 18:00 US/Eastern, Friday
MONDAY_OPEN = datetime(2024, 6, 3, 13, 30, tzinfo=timezone.utc)  # 09:30 US/Eastern
FARM_NOTICES = {2103, 2104, 2105, 2106, 2158}


class Client:
    """A real ib_async client, with every error/warning it was sent and every completed-order state."""

    def __init__(self, tws: FakeTWS, client_id: int) -> None:
        self.ib = IB()
        self.errors: list[tuple[int, int, str]] = []
        self.completed: list[tuple] = []  # (order, orderState) as decoded from completedOrder (101)
        self.ib.errorEvent += lambda req_id, code, text, contract: self.errors.append((req_id, code, text))
        seen = self.ib.wrapper.completedOrder

        def completed(contract, order, state):  # the Trade ib_async builds drops completedTime/Status
            self.completed.append((order, state))
            seen(contract, order, state)

        self.ib.wrapper.completedOrder = completed  # type: ignore[method-assign]  # wraps ib_async's callback to see what it drops
        self.ib.connect(tws.host, tws.port, clientId=client_id, timeout=5)

    def codes(self, req_id: int) -> list[int]:
        """Error codes received for this request / order id (farm notices left out)."""
        return [code for r, code, _ in self.errors if r == req_id and code not in FARM_NOTICES]

    def text(self, code: int) -> str:
        [text] = [t for _, c, t in self.errors if c == code]
        return text

    def wait(self, cond, what: str, timeout: float = 5.0) -> None:
        """Let ib_async process the socket until ``cond()`` holds, failing after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            try:
                self.ib.waitOnUpdate(timeout=0.05)
            except ConnectionError:  # ib_async raises the fake dropping us out of the wait: cond() decides
                pass

    def barrier(self) -> None:
        """A round trip: everything the fake sent before it has been processed."""
        self.ib.reqCurrentTime()


@pytest.fixture
def tws():
    with FakeTWS() as fake:
        yield fake
        assert fake.errors == [], fake.errors
        assert fake.unhandled == [], fake.unhandled


@pytest.fixture
def client(tws):
    made: list[Client] = []

    def connect(client_id: int = 7) -> Client:
        made.append(Client(tws, client_id))
        return made[-1]

    yield connect
    for c in made:
        c.ib.disconnect()


def closed_for_the_weekend(tws: FakeTWS) -> None:
    tws.set_clock(FRIDAY_EVENING)
    tws.set_session("closed")
    assert tws.reopen_time == MONDAY_OPEN


def test_closed_session_holds_a_market_order_with_399_then_fills_it_at_the_open(tws, client):
    closed_for_the_weekend(tws)
    c = client()
    trade = c.ib.placeOrder(SPY, MarketOrder("BUY", 10, tif="DAY", orderRef="held-1"))
    c.wait(lambda: c.codes(trade.order.orderId) == [399], "warning 399")
    assert c.text(399) == ("Order Message:\nBUY 10 SPY ARCA\nWarning: Your order will not be placed at the exchange "
                           "until 2024-06-03 09:30:00 US/Eastern.")
    # TWS says PreSubmitted; ib_async files 399 as a warning and shows ValidationError until the next status
    assert [(e.status, e.errorCode) for e in trade.log] == [
        ("PendingSubmit", 0), ("PreSubmitted", 0), ("ValidationError", 399)]
    assert [(o.orderRef, o.status, o.filled) for o in tws.open_orders()] == [("held-1", "PreSubmitted", 0)]
    assert tws.position("SPY") == 0 and trade.fills == []

    assert [o.orderRef for o in tws.open_session(510.0)] == ["held-1"]
    c.wait(lambda: trade.orderStatus.status == "Filled", "the fill at the open")
    [fill] = trade.fills
    assert (fill.execution.shares, fill.execution.price, fill.execution.side) == (10, 510.0, "BOT")
    assert fill.commissionReport.commission == 1.0
    s = trade.orderStatus
    assert (s.filled, s.remaining, s.avgFillPrice, s.lastFillPrice) == (10, 0, 510.0, 510.0)
    assert tws.position("SPY") == 10 and tws.open_orders() == []
    [listed] = c.ib.reqExecutions()
    assert (listed.execution.time, listed.execution.price, listed.execution.orderRef) == (MONDAY_OPEN, 510.0, "held-1")


def test_a_fill_at_the_open_with_no_client_connected_is_found_by_the_next_connection(tws, client):
    closed_for_the_weekend(tws)
    c = client()
    trade = c.ib.placeOrder(SPY, MarketOrder("BUY", 10, tif="DAY", orderRef="overnight-1"))
    c.wait(lambda: 399 in c.codes(trade.order.orderId), "warning 399")
    perm = trade.order.permId
    c.ib.disconnect()
    c.wait(lambda: tws.client_ids() == [], "the fake to see the client go")

    tws.open_session(505.0)  # nobody to tell: the fill is only booked
    assert tws.position("SPY") == 10
    tws.set_clock(MONDAY_OPEN + timedelta(hours=3))

    later = client()  # ib_async's connect syncs completed orders, then executions
    [t] = [t for t in later.ib.trades() if t.order.permId == perm]
    assert t.orderStatus.status == "Filled"
    assert (t.order.orderRef, t.order.action, t.order.totalQuantity, t.order.filledQuantity, t.order.tif) == (
        "overnight-1", "BUY", 10, 10, "DAY")
    [f] = t.fills
    assert (f.execution.price, f.execution.shares, f.execution.orderRef, f.time) == (505.0, 10, "overnight-1",
                                                                                      MONDAY_OPEN)
    assert f.commissionReport.commission == 1.0
    [(order, state)] = later.completed
    assert (order.permId, state.status, state.completedStatus, state.completedTime) == (
        perm, "Filled", "Filled Size: 10", "20240603 09:30:00 US/Eastern")
    assert [(p.contract.symbol, p.position) for p in later.ib.positions()] == [("SPY", 10)]
    assert later.ib.openTrades() == []


def test_restart_between_order_and_fill_keeps_the_held_order_which_fills_at_the_next_open(tws, client):
    closed_for_the_weekend(tws)
    c = client()
    trade = c.ib.placeOrder(SPY, LimitOrder("BUY", 5, 520.0, tif="DAY", orderRef="restart-1"))
    c.wait(lambda: 399 in c.codes(trade.order.orderId), "warning 399")

    tws.restart()
    c.wait(lambda: not c.ib.isConnected(), "the restart to drop the client")
    again = client()
    [t] = again.ib.openTrades()
    assert (t.order.permId, t.order.orderRef, t.orderStatus.status, t.order.lmtPrice) == (
        trade.order.permId, "restart-1", "PreSubmitted", 520.0)

    tws.restart(stay_down=True)
    again.wait(lambda: not again.ib.isConnected(), "the second restart to drop the client")
    with pytest.raises(ConnectionRefusedError):
        IB().connect(tws.host, tws.port, clientId=7, timeout=2)
    tws.open_session(510.0)  # the limit crosses at the open: fills at the open price, nobody connected
    assert tws.position("SPY") == 5
    tws.up()

    last = client()
    [t] = [t for t in last.ib.trades() if t.order.permId == trade.order.permId]
    assert t.orderStatus.status == "Filled" and last.ib.openTrades() == []
    assert [(f.execution.shares, f.execution.price, f.time) for f in t.fills] == [(5, 510.0, MONDAY_OPEN)]


def test_partial_fill_then_the_rest_on_fill_rest(tws, client):
    c = client()
    tws.partial_next(0.4)
    trade = c.ib.placeOrder(SPY, MarketOrder("BUY", 10, orderRef="part-1"))
    c.wait(lambda: trade.orderStatus.filled == 4, "the partial fill")
    c.barrier()
    s = trade.orderStatus
    assert (s.status, s.filled, s.remaining, s.avgFillPrice) == ("Submitted", 4, 6, 500.0)
    assert trade in c.ib.openTrades()
    assert [(o.status, o.filled) for o in tws.open_orders()] == [("Submitted", 4)]

    tws.set_price("SPY", 502.0)  # the rest of a market order is no resting limit: nothing more fills by itself
    c.barrier()
    assert trade.orderStatus.filled == 4 and len(trade.fills) == 1

    tws.fill_rest(trade.order.orderId)
    c.wait(lambda: trade.orderStatus.status == "Filled", "the rest")
    assert [(f.execution.shares, f.execution.price, f.execution.cumQty) for f in trade.fills] == [
        (4, 500.0, 4), (6, 502.0, 10)]
    assert trade.orderStatus.avgFillPrice == pytest.approx(501.2)
    # IBKR Pro fixed: the USD 1 minimum is per order, so the second execution costs nothing more
    assert [f.commissionReport.commission for f in trade.fills] == [1.0, 0.0]
    assert tws.position("SPY") == 10


def test_a_partial_fill_that_stays_is_cancelled_or_expires_and_reqcompletedorders_lists_it(tws, client):
    tws.set_clock(datetime(2024, 6, 3, 19, 0, tzinfo=timezone.utc))  # 15:00 US/Eastern, Monday
    tws.seed_position("SPY", 20, 480.0)
    c = client()
    tws.partial_next(3)
    sell = c.ib.placeOrder(SPY, MarketOrder("SELL", 5, tif="DAY", orderRef="part-sell"))
    c.wait(lambda: sell.orderStatus.filled == 3, "the partial fill")
    c.barrier()
    assert (sell.orderStatus.status, sell.orderStatus.remaining) == ("Submitted", 2)
    c.ib.cancelOrder(sell.order)
    c.wait(lambda: sell.orderStatus.status == "Cancelled", "the cancel")
    assert sell.orderStatus.filled == 3 and 202 in c.codes(sell.order.orderId)
    assert tws.position("SPY") == 17

    tws.partial_next(0.5)
    buy = c.ib.placeOrder(QQQ, MarketOrder("BUY", 4, tif="DAY", orderRef="part-day"))
    c.wait(lambda: buy.orderStatus.filled == 2, "the partial fill")
    tws.set_clock(datetime(2024, 6, 3, 20, 0, tzinfo=timezone.utc))
    tws.set_session("closed")  # the close: the rest of the DAY order expires
    c.wait(lambda: buy.orderStatus.status == "Cancelled", "the DAY order to expire")
    assert (buy.orderStatus.filled, buy.orderStatus.remaining) == (2, 2)

    c.completed.clear()
    done = c.ib.reqCompletedOrders(apiOnly=True)
    assert sorted((t.order.orderRef, t.orderStatus.status, t.order.filledQuantity) for t in done) == [
        ("part-day", "Cancelled", 2), ("part-sell", "Cancelled", 3)]
    assert [(o.orderRef, s.completedStatus, s.completedTime) for o, s in c.completed] == [
        ("part-sell", "Cancelled by Trader", "20240603 15:00:00 US/Eastern"),
        ("part-day", "Cancelled by System:\n", "20240603 16:00:00 US/Eastern")]


def test_completed_orders_carry_their_real_fields(tws, client):
    tws.set_clock(MONDAY_OPEN + timedelta(minutes=5))
    c = client()
    filled = c.ib.placeOrder(QQQ, MarketOrder("BUY", 3, tif="DAY", orderRef="done-1"))
    resting = c.ib.placeOrder(QQQ, LimitOrder("BUY", 2, 400.0, tif="GTC", orderRef="done-2"))
    c.wait(lambda: filled.orderStatus.status == "Filled" and resting.orderStatus.status == "Submitted", "both")
    c.ib.cancelOrder(resting.order)
    c.wait(lambda: resting.orderStatus.status == "Cancelled", "the cancel")
    c.completed.clear()
    done = {t.order.orderRef: t for t in c.ib.reqCompletedOrders(apiOnly=False)}
    assert set(done) == {"done-1", "done-2"}
    f, r = done["done-1"], done["done-2"]
    assert (f.contract.conId, f.contract.symbol, f.contract.secType, f.contract.currency) == (
        320227571, "QQQ", "STK", "USD")
    assert (f.order.action, f.order.totalQuantity, f.order.orderType, f.order.tif, f.order.account) == (
        "BUY", 3, "MKT", "DAY", "DU1234567")
    assert (f.order.permId, f.order.filledQuantity, f.orderStatus.status) == (filled.order.permId, 3, "Filled")
    assert (r.order.orderType, r.order.lmtPrice, r.order.tif, r.order.filledQuantity, r.orderStatus.status) == (
        "LMT", 400.0, "GTC", 0, "Cancelled")
    assert f.order.orderId == 0 and f.order.clientId == 0  # TWS sends neither with a completed order
    assert [(o.orderRef, s.completedStatus, s.completedTime) for o, s in c.completed] == [
        ("done-1", "Filled Size: 3", "20240603 09:35:00 US/Eastern"),
        ("done-2", "Cancelled by Trader", "20240603 09:35:00 US/Eastern")]


def test_tif_preset_sends_10349_on_an_order_that_still_fills(tws, client):
    tws.tif_preset()
    c = client()
    trade = c.ib.placeOrder(SPY, MarketOrder("BUY", 2, orderRef="preset-1"))  # no TIF: the preset sets DAY
    c.wait(lambda: trade.orderStatus.status == "Filled", "the fill")
    assert c.codes(trade.order.orderId) == [10349]
    assert c.text(10349) == "Order TIF was set to DAY based on order preset."
    # ib_async 2.1.0 takes 10349 for an error: Cancelled until the next orderStatus says otherwise
    assert [(e.status, e.errorCode) for e in trade.log][:2] == [("PendingSubmit", 0), ("Cancelled", 10349)]
    assert [(f.execution.shares, f.execution.price) for f in trade.fills] == [(2, 500.0)]
    assert tws.orders[-1].tif == "DAY" and tws.position("SPY") == 2

    day = c.ib.placeOrder(SPY, MarketOrder("BUY", 1, tif="DAY"))  # already DAY: no message
    c.wait(lambda: day.orderStatus.status == "Filled", "the fill")
    c.barrier()
    assert c.codes(day.order.orderId) == []

    tws.tif_preset(every_order=True)
    every = c.ib.placeOrder(SPY, MarketOrder("BUY", 1, tif="DAY"))
    c.wait(lambda: every.orderStatus.status == "Filled", "the fill")
    assert c.codes(every.order.orderId) == [10349]


def test_connectivity_lost_holds_fills_until_1102(tws, client):
    c = client()
    tws.lose_connectivity()
    c.wait(lambda: 1100 in c.codes(-1), "error 1100")
    assert c.text(1100) == "Connectivity between IB and Trader Workstation has been lost."
    assert {2103, 2105} <= {code for _, code, _ in c.errors}

    trade = c.ib.placeOrder(SPY, MarketOrder("BUY", 3, orderRef="dark-1"))
    c.wait(lambda: trade.orderStatus.status == "Submitted", "the order to be acknowledged")
    c.barrier()
    assert trade.fills == [] and trade.orderStatus.status == "Submitted"
    assert tws.position("SPY") == 3  # booked at IB, unknown to TWS
    assert c.ib.reqExecutions() == [] and c.ib.reqCompletedOrders(apiOnly=True) == []

    summaries = tws.msg_ids().count(62)
    tws.restore_connectivity()
    c.wait(lambda: trade.orderStatus.status == "Filled", "the held fill")
    assert c.codes(-1)[-1] == 1102
    assert c.text(1102) == "Connectivity between IB and Trader Workstation has been restored - data maintained."
    assert [(f.execution.shares, f.execution.price) for f in trade.fills] == [(3, 500.0)]
    c.wait(lambda: tws.msg_ids().count(62) > summaries, "ib_async to ask for the account summary again on 1102")
    assert [f.execution.orderRef for f in c.ib.reqExecutions()] == ["dark-1"]


def test_connectivity_restored_with_data_lost_sends_1101(tws, client):
    c = client()
    tws.lose_connectivity(hold_fills=False)
    trade = c.ib.placeOrder(SPY, MarketOrder("BUY", 1))
    c.wait(lambda: trade.orderStatus.status == "Filled", "the fill (not held)")
    tws.restore_connectivity(data_lost=True)
    c.wait(lambda: 1101 in c.codes(-1), "error 1101")
    assert c.text(1101) == "Connectivity between IB and Trader Workstation has been restored - data lost."
    assert 1102 not in c.codes(-1)


def test_market_data_permission_errors(tws, client):
    day = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    tws.bars["SPY"] = [(day - timedelta(days=2), 498.0, 502.0, 497.0, 500.0, 1e6),
                       (day - timedelta(days=1), 500.0, 503.0, 499.0, 501.0, 1e6)]
    tws.deny_market_data("VIXY")
    c = client()
    vixy_c, spy_c, qqq_c = c.ib.qualifyContracts(Stock("VIXY", "SMART", "USD"), Stock("SPY", "SMART", "USD"),
                                                 Stock("QQQ", "SMART", "USD"))

    vixy, spy = c.ib.reqTickers(vixy_c, spy_c)
    assert spy.last == 500.0
    assert math.isnan(vixy.last) and math.isnan(vixy.bid)
    [(req_id, code, text)] = [e for e in c.errors if e[1] not in FARM_NOTICES]
    assert (code, text) == (10089, "Requested market data requires additional subscription for API. See link in "
                                   "'Market Data Connections' dialog for more details.Delayed market data is "
                                   "available.VIXY BATS/TOP/ALL")

    history = dict(endDateTime="", durationStr="5 D", barSizeSetting="1 day", whatToShow="TRADES", useRTH=True)
    assert list(c.ib.reqHistoricalData(vixy_c, **history)) == []
    assert c.text(162) == "Historical Market Data Service error message:No market data permissions for BATS STK"
    assert [b.close for b in c.ib.reqHistoricalData(spy_c, **history)] == [500.0, 501.0]

    c.ib.reqMarketDataType(3)  # delayed: served, with warning 10167
    [delayed] = c.ib.reqTickers(vixy_c)
    assert (delayed.last, delayed.marketDataType) == (15.0, 3)
    assert c.text(10167) == "Requested market data is not subscribed. Displaying delayed market data."

    c.ib.reqMarketDataType(1)
    tws.deny_market_data("QQQ", code=354)
    [qqq] = c.ib.reqTickers(qqq_c)
    assert math.isnan(qqq.last)
    assert c.text(354) == ("Requested market data is not subscribed.Delayed market data is available."
                           "Error&NASDAQ/STK/Top&NASDAQ/STK/Top")

    tws.allow_market_data("VIXY")
    [vixy] = c.ib.reqTickers(vixy_c)
    assert vixy.last == 15.0
