"""Protective exits at the venues (issue 14, item 4): ``STP`` / ``MIT`` legs in one OCA group, resting
between runs, read back by a later process, triggered by a price move the test drives.

Binance: the real ``ccxt.binanceusdm`` against the fake Binance USD-M (conditional orders on the Algo
Order API). Hyperliquid: the real ``ccxt.hyperliquid`` against the fake Hyperliquid (standalone trigger
orders, OCA emulated by the adapter). IB: the real ``ib_async`` client against the fake TWS. Client order
ids and OCA groups are the Commander's (:func:`commander.protect.exit_id` / :func:`commander.protect.oca_group`).
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest

from brokers.base import DuplicateOrder, OrderRejected, OrderRequest
from brokers.ccxt_exchange import CcxtBroker, venue_client_id
from brokers.config import CcxtAccount
from brokers.factory import build_broker
from brokers.ib import IBBroker
from brokers.protective import is_exit_id, oca_group_of, sibling_ids
from bus.models import InstrumentSpec
from commander.protect import exit_id, oca_group
from tests.brokers.test_ccxt import KEY, SECRET, make
from tests.fakes.fake_binance import FakeBinanceUSDM
from tests.fakes.fake_hyperliquid import FakeHyperliquid
from tests.fakes.fake_tws import FakeTWS

BTC = "BTC-USDT-PERP"
INSTRUMENTS = {"SPY": InstrumentSpec(symbol="SPY", min_notional=1.0), "QQQ": InstrumentSpec(symbol="QQQ")}


def now():
    return datetime.now(timezone.utc)


def legs(symbol: str, strategy: str = "trend", digest: str = "a1b2c3", execution: str = "ex-1"):
    """(stop id, take-profit id, OCA group) of one exit, as the Commander names them."""
    return (exit_id("stop", strategy, symbol, digest, execution), exit_id("take_profit", strategy, symbol, digest,
                                                                           execution),
            oca_group(strategy, symbol, digest, execution))


def stp(cid, symbol, action, qty, trigger, group):
    return OrderRequest(cid, symbol, action, qty, order_type="STP", trigger_price=trigger, reduce_only=True,
                        oca_group=group)


def mit(cid, symbol, action, qty, trigger, group):
    return OrderRequest(cid, symbol, action, qty, order_type="MIT", trigger_price=trigger, reduce_only=True,
                        oca_group=group)


def poll(check, what, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


# ---------------------------------------------------------------------- the id convention


@pytest.mark.parametrize("symbol", ["BTC-USDT-PERP", "SPY", "1000PEPE-USDT-PERP", "BROCCOLI714-USDT-PERP"])
def test_the_venues_read_the_commanders_leg_ids(symbol):
    """The brokers rebuild an exit's OCA group and sibling from a leg id alone, as commander.protect names
    them, also for ids shortened past 36 characters."""
    sl, tp, group = legs(symbol)
    assert is_exit_id(sl) and is_exit_id(tp) and not is_exit_id(f"ex-1-{symbol}")
    assert oca_group_of(sl, symbol) == oca_group_of(tp, symbol) == group
    assert sibling_ids(sl, symbol) == [tp] and sibling_ids(tp, symbol) == [sl]
    assert max(len(sl), len(tp), len(group)) <= 36


# ---------------------------------------------------------------------- Binance USD-M


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setenv("T_BN_KEY", KEY)
    monkeypatch.setenv("T_BN_SECRET", SECRET)
    with FakeBinanceUSDM(KEY, SECRET, balances={"USDT": "10000"}) as server:
        server.set_mark_price("BTCUSDT", "60000")
        yield server
        assert server.foreign_urls == [] and server.internal_errors == []


def long_btc(fake, broker, qty=0.01):
    r = broker.place_order(OrderRequest("entry-1-BTC-USDT-PERP", BTC, "BUY", qty), now())
    assert r.status == "Filled"
    return r


def test_binance_exit_rests_as_reduce_only_conditional_orders_a_later_process_reads(fake):
    broker = make(fake)
    assert broker.supports_protective
    long_btc(fake, broker)
    sl, tp, group = legs(BTC)
    r1 = broker.place_order(stp(sl, BTC, "SELL", 0.01, 57_000.0, group), now())
    r2 = broker.place_order(mit(tp, BTC, "SELL", 0.01, 66_000.0, group), now())
    assert (r1.status, r1.filled_quantity, r1.fill_price, r2.status) == ("Submitted", 0.0, None, "Submitted")
    at_venue = {a["clientAlgoId"]: a for a in fake.algo_orders()}
    assert {k: (a["orderType"], a["side"], a["quantity"], a["triggerPrice"], a["reduceOnly"], a["workingType"],
                a["algoStatus"]) for k, a in at_venue.items()} == {
        sl: ("STOP_MARKET", "SELL", "0.010", "57000.00", True, "MARK_PRICE", "NEW"),
        tp: ("TAKE_PROFIT_MARKET", "SELL", "0.010", "66000.00", True, "MARK_PRICE", "NEW")}
    assert fake.orders(open_only=True) == []  # conditional: nothing in the regular book
    later = make(fake)  # the next run: another process, nothing remembered
    snap = later.portfolio(now())
    got = {o.client_order_id: o for o in snap.open_orders}
    assert set(got) == {sl, tp}
    assert (got[sl].orderType, got[sl].auxPrice, got[sl].reduce_only, got[sl].ocaGroup, got[sl].protective,
            got[sl].action, got[sl].totalQuantity) == ("STP", 57_000.0, True, group, True, "SELL", 0.01)
    assert (got[tp].orderType, got[tp].auxPrice, got[tp].reduce_only, got[tp].ocaGroup) == ("MIT", 66_000.0, True,
                                                                                           group)
    assert later.order_status(sl).status == "Submitted"
    with pytest.raises(DuplicateOrder):
        later.place_order(stp(sl, BTC, "SELL", 0.01, 57_000.0, group), now())
    assert len(fake.algo_orders()) == 2


def test_binance_stop_triggers_between_runs_fills_worse_and_the_sibling_is_cancelled(fake):
    broker = make(fake)
    long_btc(fake, broker)
    sl, tp, group = legs(BTC)
    broker.place_order(stp(sl, BTC, "SELL", 0.01, 57_000.0, group), now())
    broker.place_order(mit(tp, BTC, "SELL", 0.01, 66_000.0, group), now())
    fake.set_mark_price("BTCUSDT", "56400")  # gaps through the stop: the market fill is worse than 57000
    assert fake.position("BTCUSDT")["positionAmt"] == "0.000"
    later = make(fake)
    r = later.order_status(sl)
    assert (r.status, r.filled_quantity, r.fill_price) == ("Filled", 0.01, 56_400.0)
    assert r.commission == pytest.approx(0.01 * 56_400 * float(fake.taker_fee))
    by_id = {a["clientAlgoId"]: a["algoStatus"] for a in fake.algo_orders()}
    assert by_id == {sl: "FINISHED", tp: "CANCELED"}  # OCA emulated by order_status
    assert later.order_status(tp).status == "Cancelled"
    assert later.portfolio(now()).open_orders == []


def test_binance_portfolio_cancels_the_sibling_of_a_triggered_leg(fake):
    broker = make(fake)
    long_btc(fake, broker)
    sl, tp, group = legs(BTC)
    broker.place_order(stp(sl, BTC, "SELL", 0.01, 57_000.0, group), now())
    broker.place_order(mit(tp, BTC, "SELL", 0.01, 66_000.0, group), now())
    fake.set_mark_price("BTCUSDT", "66100")  # the take-profit triggers
    snap = make(fake).portfolio(now())  # reconcile reads the account before anyone asks about the legs
    assert snap.open_orders == [] and snap.holdings == []
    assert {a["clientAlgoId"]: a["algoStatus"] for a in fake.algo_orders()} == {sl: "CANCELED", tp: "FINISHED"}
    r = make(fake).order_status(tp)
    assert (r.status, r.filled_quantity, r.fill_price) == ("Filled", 0.01, 66_100.0)


def test_binance_reduce_only_legs_never_flip_the_position(fake):
    broker = make(fake)
    long_btc(fake, broker, 0.01)
    sl, _, group = legs(BTC)
    broker.place_order(stp(sl, BTC, "SELL", 0.02, 57_000.0, group), now())  # bigger than the position
    fake.set_mark_price("BTCUSDT", "56900")
    assert fake.position("BTCUSDT")["positionAmt"] == "0.000"  # clipped at the position, never short
    r = make(fake).order_status(sl)
    assert r.filled_quantity == 0.01 and r.fill_price == 56_900.0
    # a leg left resting after the position is gone is refused at its trigger: still flat
    sl2, _, group2 = legs(BTC, digest="d4e5f6")
    long_btc_2 = broker.place_order(OrderRequest("entry-2-BTC-USDT-PERP", BTC, "BUY", 0.01), now())
    assert long_btc_2.status == "Filled"
    broker.place_order(stp(sl2, BTC, "SELL", 0.01, 55_000.0, group2), now())
    broker.place_order(OrderRequest("close-2-BTC-USDT-PERP", BTC, "SELL", 0.01), now())
    fake.set_mark_price("BTCUSDT", "54000")
    assert fake.position("BTCUSDT")["positionAmt"] == "0.000"
    assert make(fake).order_status(sl2).status == "Rejected"


def test_binance_partly_filled_stop_reports_its_fill_and_cancels_the_sibling(fake):
    broker = make(fake)
    long_btc(fake, broker, 0.02)
    sl, tp, group = legs(BTC)
    broker.place_order(stp(sl, BTC, "SELL", 0.02, 57_000.0, group), now())
    broker.place_order(mit(tp, BTC, "SELL", 0.02, 66_000.0, group), now())
    fake.partial_next("0.5", prices=["56800", "56600"])  # the triggered market order walks a thin book
    fake.set_mark_price("BTCUSDT", "56900")
    r = make(fake).order_status(sl)
    assert (r.status, r.filled_quantity) == ("Expired", 0.01)
    assert r.fill_price == pytest.approx(56_700.0)
    assert {a["clientAlgoId"]: a["algoStatus"] for a in fake.algo_orders()}[tp] == "CANCELED"
    assert fake.position("BTCUSDT")["positionAmt"] == "0.010"


def test_binance_refuses_exits_it_cannot_hold(fake):
    broker = make(fake)
    long_btc(fake, broker)
    sl, tp, group = legs(BTC)
    with pytest.raises(OrderRejected, match="reduce-only"):
        broker.place_order(OrderRequest(sl, BTC, "SELL", 0.01, order_type="STP", trigger_price=57_000.0), now())
    with pytest.raises(OrderRejected):  # -2021: the price is already through the trigger
        broker.place_order(stp(sl, BTC, "SELL", 0.01, 61_000.0, group), now())
    broker.place_order(stp(sl, BTC, "SELL", 0.01, 57_000.0, group), now())
    r = make(fake).cancel_order(sl)  # amended or no longer wanted: cancelled from another process
    assert r.status == "Cancelled"
    assert fake.algo_orders(open_only=True) == []


# ---------------------------------------------------------------------- Hyperliquid

HL_WALLET, HL_KEY = "0x" + "ab" * 20, "0x" + "11" * 32
HBTC = "BTC-USDC-PERP"


@pytest.fixture
def hl(monkeypatch):
    monkeypatch.setenv("T_HL_ADDR", HL_WALLET)
    monkeypatch.setenv("T_HL_KEY", HL_KEY)
    with FakeHyperliquid(HL_WALLET, usdc="10000") as server:
        yield server
        assert server.foreign_urls == [] and server.internal_errors == [] and server.unhandled == []


def make_hl(fake: FakeHyperliquid) -> CcxtBroker:
    """A new process: a broker that has remembered nothing."""
    cfg = CcxtAccount(exchange="hyperliquid", account="hl-test", wallet_address_env="T_HL_ADDR",
                      private_key_env="T_HL_KEY", enable_rate_limit=False, timeout_ms=2000, retries=0)
    broker = build_broker(cfg, "paper", instruments={})
    fake.point_ccxt(broker.exchange)
    return broker


def long_hl(broker, qty=0.01):
    r = broker.place_order(OrderRequest(f"entry-{qty}-{HBTC}", HBTC, "BUY", qty), now())
    assert r.status == "Filled"


def hl_exit(fake, broker, qty=0.01, stop=57_000.0, take=66_000.0, **kw):
    sl, tp, group = legs(HBTC, **kw)
    r1 = broker.place_order(stp(sl, HBTC, "SELL", qty, stop, group), now())
    r2 = broker.place_order(mit(tp, HBTC, "SELL", qty, take, group), now())
    return sl, tp, group, r1, r2


def hl_status(fake) -> dict[str, str]:
    """cloid -> the venue's status of every trigger order."""
    return {o["order"]["cloid"]: o["status"] for o in fake.orders() if o["order"]["isTrigger"]}


def test_hyperliquid_exit_rests_as_reduce_only_trigger_orders_a_later_process_reads(hl):
    broker = make_hl(hl)
    assert broker.supports_protective and not broker.exits_need_fill
    long_hl(broker)
    sl, tp, group, r1, r2 = hl_exit(hl, broker)
    assert (r1.status, r1.filled_quantity, r1.fill_price, r2.status) == ("Submitted", 0.0, None, "Submitted")
    sent = hl.actions("order")[-2:]
    assert [(a["grouping"], o["r"], o["t"], o["c"], o["p"], o["s"], o["b"]) for a in sent for o in a["orders"]] == [
        ("na", True, {"trigger": {"isMarket": True, "triggerPx": "57000", "tpsl": "sl"}},
         venue_client_id("hyperliquid", sl), "56430", "0.01", False),
        ("na", True, {"trigger": {"isMarket": True, "triggerPx": "66000", "tpsl": "tp"}},
         venue_client_id("hyperliquid", tp), "65340", "0.01", False)]
    assert hl.position("BTC")["position"]["szi"] == "0.01"  # nothing fired
    mine = {o.client_order_id: o for o in broker.portfolio(now()).open_orders}
    assert (mine[sl].orderType, mine[sl].auxPrice, mine[sl].ocaGroup, mine[tp].orderType) == ("STP", 57_000.0,
                                                                                               group, "MIT")
    # the next run: another process. Before it asks for our ids it sees the legs by the venue's order ids
    # (the Commander maps them back through its orders/* records); after, by our ids with their group
    later = make_hl(hl)
    first = {o.orderId: o for o in later.portfolio(now()).open_orders}
    assert set(first) == {r1.orderId, r2.orderId} and all(o.protective for o in first.values())
    assert later.order_status(sl).status == "Submitted" and later.order_status(tp).status == "Submitted"
    got = {o.client_order_id: o for o in later.portfolio(now()).open_orders}
    assert set(got) == {sl, tp}
    assert (got[sl].orderType, got[sl].auxPrice, got[sl].reduce_only, got[sl].ocaGroup, got[sl].protective,
            got[sl].action, got[sl].totalQuantity, got[sl].orderId) == ("STP", 57_000.0, True, group, True, "SELL",
                                                                        0.01, r1.orderId)
    assert (got[tp].orderType, got[tp].auxPrice, got[tp].reduce_only, got[tp].ocaGroup) == ("MIT", 66_000.0, True,
                                                                                           group)
    with pytest.raises(DuplicateOrder):
        later.place_order(stp(sl, HBTC, "SELL", 0.01, 57_000.0, group), now())
    assert len(hl.orders(open_only=True)) == 2


def test_hyperliquid_stop_triggers_between_runs_fills_worse_and_the_sibling_is_cancelled(hl):
    broker = make_hl(hl)
    long_hl(broker)
    sl, tp, group, _, _ = hl_exit(hl, broker)
    hl.set_mark_price("BTC", "56500")  # gaps through the stop: the market fill is worse than 57000
    assert hl.position("BTC") is None
    assert hl_status(hl) == {venue_client_id("hyperliquid", sl): "filled",
                             venue_client_id("hyperliquid", tp): "open"}  # the venue cancels no sibling
    later = make_hl(hl)
    r = later.order_status(sl)
    assert (r.status, r.filled_quantity, r.fill_price) == ("Filled", 0.01, 56_500.0)
    assert r.commission == pytest.approx(0.01 * 56_500 * float(hl.taker_fee))
    assert hl_status(hl)[venue_client_id("hyperliquid", tp)] == "canceled"  # OCA emulated by order_status
    assert later.order_status(tp).status == "Cancelled"
    assert later.portfolio(now()).open_orders == []


def test_hyperliquid_portfolio_cancels_the_sibling_of_a_triggered_leg(hl):
    broker = make_hl(hl)
    long_hl(broker)
    sl, tp, group, _, _ = hl_exit(hl, broker)
    hl.set_mark_price("BTC", "66100")  # the take-profit fires
    later = make_hl(hl)
    assert later.order_status(sl).status == "Submitted"  # reconcile asks for every open order, then reads
    snap = later.portfolio(now())
    assert snap.open_orders == [] and snap.holdings == []
    assert hl_status(hl) == {venue_client_id("hyperliquid", sl): "canceled",
                             venue_client_id("hyperliquid", tp): "filled"}
    r = make_hl(hl).order_status(tp)
    assert (r.status, r.filled_quantity, r.fill_price) == ("Filled", 0.01, 66_100.0)


def test_hyperliquid_reduce_only_legs_never_flip_the_position(hl):
    broker = make_hl(hl)
    long_hl(broker, 0.01)
    sl, _, group = legs(HBTC)
    broker.place_order(stp(sl, HBTC, "SELL", 0.02, 57_000.0, group), now())  # bigger than the position
    hl.set_mark_price("BTC", "56900")
    assert hl.position("BTC") is None  # clipped at the position, never short
    r = make_hl(hl).order_status(sl)
    assert (r.filled_quantity, r.fill_price) == (0.01, 56_900.0)
    # a leg left resting after its position is gone is cancelled when it fires: still flat
    hl.set_mark_price("BTC", "60000")
    long_hl(broker, 0.02)
    sl2, _, group2 = legs(HBTC, digest="d4e5f6")
    broker.place_order(stp(sl2, HBTC, "SELL", 0.02, 55_000.0, group2), now())
    assert broker.place_order(OrderRequest("close-2-BTC-USDC-PERP", HBTC, "SELL", 0.02), now()).status == "Filled"
    hl.set_mark_price("BTC", "54900")
    assert hl.position("BTC") is None
    r = make_hl(hl).order_status(sl2)
    assert (r.status, r.filled_quantity) == ("Cancelled", 0.0)


def test_hyperliquid_leg_whose_answer_is_lost_is_found_by_its_cloid_not_placed_twice(hl):
    broker = make_hl(hl)
    long_hl(broker)
    sl, _, group = legs(HBTC)
    hl.drop_next(path="/exchange", kind="order")  # carried out, the connection reset before the answer
    r = broker.place_order(stp(sl, HBTC, "SELL", 0.01, 57_000.0, group), now())
    assert (r.status, r.client_order_id, r.filled_quantity) == ("Submitted", sl, 0.0)
    assert [o["order"]["cloid"] for o in hl.orders(open_only=True)] == [venue_client_id("hyperliquid", sl)]
    with pytest.raises(DuplicateOrder):  # a retried step finds it and does not place it again
        make_hl(hl).place_order(stp(sl, HBTC, "SELL", 0.01, 57_000.0, group), now())
    assert len(hl.orders(open_only=True)) == 1


def test_hyperliquid_refuses_exits_it_cannot_hold(hl):
    broker = make_hl(hl)
    sl, tp, group = legs(HBTC)
    with pytest.raises(OrderRejected, match="Reduce only"):  # the venue: nothing held, nothing to reduce
        broker.place_order(stp(sl, HBTC, "SELL", 0.01, 57_000.0, group), now())
    long_hl(broker)
    with pytest.raises(OrderRejected, match="reduce-only"):  # ours: an exit may never open a position
        broker.place_order(OrderRequest(tp, HBTC, "SELL", 0.01, order_type="MIT", trigger_price=66_000.0), now())
    sl2, _, group2 = legs(HBTC, digest="d4e5f6")
    broker.place_order(stp(sl2, HBTC, "SELL", 0.01, 57_000.0, group2), now())
    r = make_hl(hl).cancel_order(sl2)  # amended or no longer wanted: cancelled from another process
    assert r.status == "Cancelled"
    assert hl.orders(open_only=True) == []
    assert hl.actions("cancel")[-1]["cancels"] == [{"a": 0, "o": int(r.orderId)}]


# ---------------------------------------------------------------------- IB


@pytest.fixture
def tws():
    with FakeTWS(cash=100_000.0) as fake:
        yield fake
        assert fake.errors == [], fake.errors


def ib(tws, client_id=17):
    return IBBroker(tws.host, tws.port, client_id=client_id, mode="paper", instruments=INSTRUMENTS,
                    connect_timeout=2, request_timeout=2, order_wait=2, reconnect_attempts=3, reconnect_wait=0.05)


@pytest.fixture
def broker(tws):
    b = ib(tws)
    yield b
    b.close()


def long_spy(broker, qty=10):
    r = broker.place_order(OrderRequest("entry-1-SPY", "SPY", "BUY", qty), now())
    assert r.status == "Filled"


def test_ib_exit_rests_presubmitted_in_an_oca_group_a_later_session_reads(tws, broker):
    assert broker.supports_protective
    long_spy(broker)
    sl, tp, group = legs("SPY")
    r1 = broker.place_order(stp(sl, "SPY", "SELL", 10, 480.004, group), now())
    r2 = broker.place_order(mit(tp, "SPY", "SELL", 10, 530.0, group), now())
    assert (r1.status, r2.status, r1.filled_quantity) == ("PreSubmitted", "PreSubmitted", 0.0)  # IB simulates them
    sent = {p["orderRef"]: p for p in tws.placed}
    assert (sent[sl]["orderType"], sent[tp]["orderType"]) == ("STP", "MIT")
    resting = {o.orderRef: o for o in tws.open_orders()}
    assert {k: (o.auxPrice, o.ocaGroup, o.ocaType, o.tif) for k, o in resting.items()} == {
        sl: (480.01, group, 1, "GTC"), tp: (530.0, group, 1, "GTC")}  # a SELL stop rounds up, toward the price
    later = ib(tws, client_id=23)
    try:
        got = {o.client_order_id: o for o in later.portfolio(now()).open_orders}
        assert (got[sl].orderType, got[sl].auxPrice, got[sl].ocaGroup, got[sl].reduce_only, got[sl].totalQuantity,
                got[sl].status) == ("STP", 480.01, group, True, 10.0, "Submitted")
        assert (got[tp].orderType, got[tp].auxPrice, got[tp].ocaGroup) == ("MIT", 530.0, group)
        assert later.order_status(sl).status == "PreSubmitted"
        with pytest.raises(DuplicateOrder):
            later.place_order(stp(sl, "SPY", "SELL", 10, 480.0, group), now())
    finally:
        later.close()


def test_ib_stop_triggers_between_runs_fills_worse_and_ib_cancels_the_sibling(tws, broker):
    long_spy(broker)
    sl, tp, group = legs("SPY")
    broker.place_order(stp(sl, "SPY", "SELL", 10, 480.0, group), now())
    broker.place_order(mit(tp, "SPY", "SELL", 10, 530.0, group), now())
    broker.close()  # the run ends
    tws.trigger_slippage(0.05)
    tws.set_price("SPY", 478.0)  # through the stop
    assert tws.position("SPY") == 0.0
    later = ib(tws, client_id=23)
    try:
        r = later.order_status(sl)
        assert (r.status, r.filled_quantity, r.fill_price, r.commission) == ("Filled", 10.0, 477.95, 1.0)
        assert later.order_status(tp).status == "Cancelled"
        assert later.portfolio(now()).open_orders == []
    finally:
        later.close()


def test_ib_late_oca_cancel_shows_the_sibling_working_until_it_arrives(tws, broker):
    long_spy(broker)
    sl, tp, group = legs("SPY")
    broker.place_order(stp(sl, "SPY", "SELL", 10, 480.0, group), now())
    broker.place_order(mit(tp, "SPY", "SELL", 10, 530.0, group), now())
    tws.late_oca_cancels(requests=4)  # portfolio() asks 3 things: the cancel comes after
    tws.set_price("SPY", 470.0)
    first = broker.portfolio(now())
    assert [o.client_order_id for o in first.open_orders] == [tp]  # stale: the cancel has not arrived
    assert first.holdings == []
    poll(lambda: broker.order_status(tp).status == "Cancelled", "the late OCA cancel")
    assert broker.portfolio(now()).open_orders == []
    assert broker.order_status(sl).fill_price == 470.0


def test_ib_partly_filled_stop_cancels_the_sibling_and_works_on(tws, broker):
    long_spy(broker)
    sl, tp, group = legs("SPY")
    tws.partial_next(4)
    broker.place_order(stp(sl, "SPY", "SELL", 10, 480.0, group), now())
    broker.place_order(mit(tp, "SPY", "SELL", 10, 530.0, group), now())
    tws.set_price("SPY", 479.0)
    r = broker.order_status(sl)
    assert (r.status, r.filled_quantity, r.fill_price) == ("Submitted", 4.0, 479.0)
    assert broker.order_status(tp).status == "Cancelled"  # ocaType 1 cancels on the first fill
    [o] = broker.portfolio(now()).open_orders
    assert (o.client_order_id, o.totalQuantity, o.orderType) == (sl, 6.0, "STP")
    tws.fill_rest(tws.open_orders()[0].orderId, price=478.0, client_id=17)
    r = poll(lambda: (s := broker.order_status(sl)).status == "Filled" and s, "the rest of the stop")
    assert r.filled_quantity == 10.0 and r.fill_price == pytest.approx((4 * 479 + 6 * 478) / 10)


def test_ib_gap_at_the_open_fills_the_stop_at_the_open_price(tws, broker):
    long_spy(broker)
    sl, tp, group = legs("SPY")
    broker.place_order(stp(sl, "SPY", "SELL", 10, 480.0, group), now())
    broker.place_order(mit(tp, "SPY", "SELL", 10, 530.0, group), now())
    tws.set_session("closed")
    tws.set_price("SPY", 450.0)  # after hours: a simulated stop does not trigger
    assert tws.position("SPY") == 10.0
    assert broker.order_status(sl).status == "PreSubmitted"
    tws.open_session(price={"SPY": 455.0})
    r = poll(lambda: (s := broker.order_status(sl)).status == "Filled" and s, "the stop at the open")
    assert r.fill_price == 455.0
    assert broker.order_status(tp).status == "Cancelled"


def test_ib_refuses_an_exit_that_could_open_or_flip_a_position(tws, broker):
    sl, tp, group = legs("QQQ")
    with pytest.raises(OrderRejected, match="needs a long position"):  # nothing held: a stop would open a short
        broker.place_order(stp(sl, "QQQ", "SELL", 5, 400.0, group), now())
    long_spy(broker, 10)
    sl, tp, group = legs("SPY")
    broker.place_order(stp(sl, "SPY", "SELL", 10, 480.0, group), now())
    broker.place_order(mit(tp, "SPY", "SELL", 10, 530.0, group), now())  # the same group counts once
    other_sl, _, other_group = legs("SPY", strategy="meanrev")
    with pytest.raises(OrderRejected, match="would pass the position 10"):
        broker.place_order(stp(other_sl, "SPY", "SELL", 1, 470.0, other_group), now())
    with pytest.raises(OrderRejected, match="needs a short position"):
        broker.place_order(stp(other_sl, "SPY", "BUY", 1, 520.0, other_group), now())
    assert {o.orderRef for o in tws.open_orders()} == {sl, tp}
