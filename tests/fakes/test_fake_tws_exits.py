"""The fake TWS's protective orders as the real ``ib_async`` client sees them over loopback: ``STP`` /
``MIT`` resting ``PreSubmitted`` with their ``auxPrice`` and OCA group, a trigger that fills worse than the
trigger price, the sibling cancelled by IB (also late, also on a partial fill), no trigger after hours,
and ``ocaType`` 2 reducing the sibling instead. Waits poll ``waitOnUpdate`` against a deadline."""

from __future__ import annotations

import pytest
from ib_async import Order

from tests.fakes.fake_tws import FakeTWS
from tests.fakes.test_fake_tws_unkind import SPY, Client


@pytest.fixture
def tws():
    with FakeTWS(cash=100_000.0) as fake:
        fake.seed_position("SPY", 10, 490.0)
        yield fake
        assert fake.errors == [] and fake.unhandled == [], (fake.errors, fake.unhandled)


@pytest.fixture
def client(tws):
    c = Client(tws, 31)
    yield c
    c.ib.disconnect()


def exit_pair(c: Client, qty=10, stop=480.0, take=530.0, oca_type=1):
    common = dict(action="SELL", totalQuantity=qty, ocaGroup="grp-1", ocaType=oca_type, tif="GTC")
    sl = c.ib.placeOrder(SPY, Order(orderType="STP", auxPrice=stop, orderRef="sl", **common))
    tp = c.ib.placeOrder(SPY, Order(orderType="MIT", auxPrice=take, orderRef="tp", **common))
    c.wait(lambda: sl.orderStatus.status == tp.orderStatus.status == "PreSubmitted", "both legs resting")
    return sl, tp


def test_legs_rest_presubmitted_with_trigger_and_group_in_open_orders(tws, client):
    exit_pair(client)
    trades = {t.order.orderRef: t for t in client.ib.reqAllOpenOrders()}
    assert {k: (t.order.orderType, t.order.auxPrice, t.order.ocaGroup, t.order.ocaType, t.order.tif,
                t.orderStatus.status) for k, t in trades.items()} == {
        "sl": ("STP", 480.0, "grp-1", 1, "GTC", "PreSubmitted"),
        "tp": ("MIT", 530.0, "grp-1", 1, "GTC", "PreSubmitted")}
    tws.set_price("SPY", 481.0)  # near, not through
    client.ib.reqCurrentTime()
    assert tws.position("SPY") == 10 and len(tws.open_orders()) == 2


def test_stop_fills_worse_than_its_trigger_and_ib_cancels_the_sibling(tws, client):
    sl, tp = exit_pair(client)
    tws.trigger_slippage(0.04)
    tws.set_price("SPY", 479.0)
    client.wait(lambda: sl.orderStatus.status == "Filled" and tp.orderStatus.status == "Cancelled", "OCA")
    assert sl.orderStatus.avgFillPrice == pytest.approx(478.96) and sl.orderStatus.filled == 10
    assert [e.status for e in tp.log][-2:] == ["PreSubmitted", "Cancelled"]
    assert tws.position("SPY") == 0
    client.ib.reqCompletedOrders(True)
    done = {o.orderRef: s for o, s in client.completed}
    assert done["tp"].completedStatus == "Cancelled by System:\n"
    assert done["sl"].completedStatus == "Filled Size: 10"


def test_a_late_oca_cancel_leaves_the_sibling_working_for_a_while(tws, client):
    sl, tp = exit_pair(client)
    tws.late_oca_cancels(requests=2)
    tws.set_price("SPY", 530.5)  # the take-profit touches
    client.wait(lambda: tp.orderStatus.status == "Filled", "the take-profit fill")
    client.ib.reqCurrentTime()  # one request answered: the cancel still waits
    assert sl.orderStatus.status == "PreSubmitted" and [o.orderRef for o in tws.open_orders()] == ["sl"]
    client.ib.reqCurrentTime()
    client.wait(lambda: sl.orderStatus.status == "Cancelled", "the late OCA cancel")


def test_a_partial_stop_fill_cancels_the_sibling_and_the_rest_works_on(tws, client):
    tws.partial_next(3)
    sl, tp = exit_pair(client)
    tws.set_price("SPY", 470.0)
    client.wait(lambda: sl.orderStatus.filled == 3 and tp.orderStatus.status == "Cancelled", "partial + OCA")
    assert sl.orderStatus.status == "Submitted" and sl.orderStatus.remaining == 7
    tws.fill_rest(sl.order.orderId, client_id=31)
    client.wait(lambda: sl.orderStatus.status == "Filled", "the rest")
    assert tws.position("SPY") == 0


def test_no_trigger_after_hours_and_a_gap_at_the_open_fills_at_the_open(tws, client):
    sl, tp = exit_pair(client)
    tws.set_session("closed")
    tws.set_price("SPY", 460.0)
    client.ib.reqCurrentTime()
    assert sl.orderStatus.status == "PreSubmitted" and tws.position("SPY") == 10  # GTC: not expired either
    tws.open_session(price={"SPY": 462.0})
    client.wait(lambda: sl.orderStatus.status == "Filled" and tp.orderStatus.status == "Cancelled", "the open")
    assert sl.orderStatus.avgFillPrice == 462.0


def test_oca_type_2_reduces_the_sibling_instead(tws, client):
    tws.partial_next(4)
    sl, tp = exit_pair(client, oca_type=2)
    tws.set_price("SPY", 479.0)
    client.wait(lambda: sl.orderStatus.filled == 4, "the partial stop fill")
    client.ib.reqAllOpenOrders()
    assert {o.orderRef: o.totalQuantity for o in tws.open_orders()} == {"sl": 10, "tp": 6}
