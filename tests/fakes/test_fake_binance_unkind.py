"""The unkind side of tests/fakes/fake_binance.py, driven by the real ``ccxt.binanceusdm`` (ccxt==4.5.90).

Partial fills, orders carried out after the client gave up, late fills of resting
orders, client-order-id reuse, rate limits and bans, and conditional (Algo Service)
orders, each checked through what ccxt parses and through Binance's raw fields.

No test sleeps to synchronise: requests the fake parks are awaited with
``FakeBinanceUSDM.wait_held`` and released with ``release_held``; anything that
happens on the fake's own timer is polled with a deadline.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import urllib.error
import urllib.request
from decimal import Decimal
from urllib.parse import urlencode

import ccxt  # a missing package fails the suite, never skips it
import pytest

from tests.fakes.fake_binance import FakeBinanceUSDM

API_KEY = "fake-api-key-unkind-3b7e"
SECRET = "fake-api-secret-unkind-91c4d2"
BTC = "BTC/USDT:USDT"
ETH = "ETH/USDT:USDT"
TOO_MANY = ("Too many requests; current limit of IP(127.0.0.1) is 2400 requests per minute. "
            "Please use the websocket for live updates to avoid polling the API.")


def make_exchange(fake: FakeBinanceUSDM, timeout: int = 2000):
    exchange = ccxt.binanceusdm({"apiKey": API_KEY, "secret": SECRET, "enableRateLimit": False, "timeout": timeout})
    fake.point_ccxt(exchange)
    return exchange


def _new_fake(**kwargs) -> FakeBinanceUSDM:
    return FakeBinanceUSDM(API_KEY, SECRET, balances={"USDT": "10000"}, **kwargs)


@pytest.fixture
def fake():
    with _new_fake() as server:
        yield server
        assert server.foreign_urls == [], server.foreign_urls
        assert server.internal_errors == [], server.internal_errors


@pytest.fixture
def exchange(fake):
    ex = make_exchange(fake)
    ex.load_markets()
    yield ex
    assert fake.unhandled == [], f"ccxt called endpoints the fake does not serve: {fake.unhandled}"


def _eventually(check, timeout: float = 5.0):
    """Poll ``check`` until it returns something truthy, or fail at the deadline."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, "condition not met before the deadline"
        pause.wait(0.02)


def _raw(fake: FakeBinanceUSDM, method: str, path: str, params: dict | None = None, signed: bool = False):
    """One HTTP request without ccxt: (status, JSON body, headers)."""
    query = urlencode(params or {})
    if signed:
        query = (query + "&" if query else "") + f"timestamp={int(time.time() * 1000)}"
        query += "&signature=" + hmac.new(SECRET.encode(), query.encode(), hashlib.sha256).hexdigest()
    request = urllib.request.Request(fake.base_url + path + ("?" + query if query else ""), method=method,
                                     headers={"X-MBX-APIKEY": API_KEY})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, json.loads(answer.read()), dict(answer.headers)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read()), dict(err.headers)


def _error_body(exc: Exception) -> dict:
    """The Binance JSON body ccxt put at the end of its exception message."""
    text = str(exc)
    return json.loads(text[text.index("{"):])


# ---------------------------------------------------------------------------- partial fills


def test_partial_market_fill_expires_with_trades_and_average_price(fake, exchange):
    fake.partial_next("0.4", prices=["60000", "60010"])  # walks two levels, then liquidity is gone
    order = exchange.create_order(BTC, "market", "buy", 0.01, params={"clientOrderId": "part-1"})
    assert (order["status"], order["amount"], order["filled"], order["remaining"]) == ("expired", 0.01, 0.004, 0.006)
    assert order["average"] == 60005.0 and order["cost"] == pytest.approx(240.02)
    info = order["info"]
    assert (info["status"], info["origQty"], info["executedQty"], info["cumQuote"], info["avgPrice"]) == (
        "EXPIRED", "0.010", "0.004", "240.02000", "60005.00000")

    again = exchange.fetch_order(None, BTC, params={"clientOrderId": "part-1"})  # GET /fapi/v1/order
    assert (again["id"], again["status"], again["filled"], again["average"]) == (
        order["id"], "expired", 0.004, 60005.0)
    assert again["info"]["updateTime"] >= again["info"]["time"] and again["lastUpdateTimestamp"] > 0
    [listed] = exchange.fetch_orders(BTC)  # GET /fapi/v1/allOrders
    assert {k: listed["info"][k] for k in ("status", "executedQty", "cumQuote", "avgPrice", "updateTime")} == {
        k: again["info"][k] for k in ("status", "executedQty", "cumQuote", "avgPrice", "updateTime")}

    trades = exchange.fetch_my_trades(BTC)  # GET /fapi/v1/userTrades
    assert [(t["order"], t["price"], t["amount"], t["takerOrMaker"]) for t in trades] == [
        (order["id"], 60000.0, 0.002, "taker"), (order["id"], 60010.0, 0.002, "taker")]
    assert [t["info"]["commission"] for t in trades] == ["0.06000000", "0.06001000"]  # 0.05 % taker
    assert [t["info"]["realizedPnl"] for t in trades] == ["0.00000000", "0.00000000"]
    assert all(t["fee"]["currency"] == "USDT" and t["timestamp"] == t["info"]["time"] for t in trades)
    assert fake.position("BTCUSDT")["positionAmt"] == "0.004"
    assert fake.balance() == Decimal("10000") - Decimal("0.12001")

    # the next order is whole again: the rule was for one order only
    assert exchange.create_order(ETH, "market", "buy", 0.1)["status"] == "closed"

    # a partial reduce-only close realises PnL on what did fill
    fake.set_mark_price("BTCUSDT", "61000")
    fake.partial_next("0.5", symbol="BTCUSDT")
    close = exchange.create_order(BTC, "market", "sell", 0.004,
                                  params={"reduceOnly": True, "clientOrderId": "part-2"})
    assert (close["status"], close["filled"], close["average"], close["reduceOnly"]) == (
        "expired", 0.002, 61000.0, True)
    last = exchange.fetch_my_trades(BTC)[-1]
    assert (last["info"]["realizedPnl"], last["info"]["orderId"], last["side"]) == (
        "1.99000000", int(close["id"]), "sell")  # (61000 - 60005) x 0.002
    assert fake.position("BTCUSDT")["positionAmt"] == "0.002"


def test_partial_ioc_expires_and_fok_fills_nothing(fake, exchange):
    fake.partial_next("0.5")
    ioc = exchange.create_order(BTC, "limit", "buy", 0.01, 60100, params={"timeInForce": "IOC"})
    assert (ioc["status"], ioc["filled"], ioc["average"], ioc["info"]["status"]) == (
        "expired", 0.005, 60000.0, "EXPIRED")

    fake.partial_next("0.5")
    fok = exchange.create_order(BTC, "limit", "buy", 0.01, 60100, params={"timeInForce": "FOK"})
    assert (fok["status"], fok["filled"], fok["info"]["executedQty"], fok["info"]["avgPrice"]) == (
        "expired", 0.0, "0.000", "0.00")
    assert [t["order"] for t in exchange.fetch_my_trades(BTC)] == [ioc["id"]]
    assert fake.position("BTCUSDT")["positionAmt"] == "0.005"

    fake.partial_next(0)  # no liquidity at all: a market order expires unfilled
    empty = exchange.create_order(BTC, "market", "sell", 0.005)
    assert (empty["status"], empty["filled"]) == ("expired", 0.0)


def test_partial_fill_of_a_marketable_limit_rests_the_remainder(fake, exchange):
    fake.partial_next("0.25")
    order = exchange.create_order(BTC, "limit", "buy", 0.004, 60100, params={"clientOrderId": "rest-1"})
    assert (order["status"], order["filled"], order["remaining"], order["info"]["status"]) == (
        "open", 0.001, 0.003, "PARTIALLY_FILLED")
    [still_open] = exchange.fetch_open_orders(BTC)
    assert (still_open["id"], still_open["info"]["status"], still_open["filled"]) == (
        order["id"], "PARTIALLY_FILLED", 0.001)

    done = fake.fill_order("rest-1")  # the rest fills later, at its limit, as a maker
    assert done["status"] == "FILLED"
    final = exchange.fetch_order(order["id"], BTC)
    assert (final["status"], final["filled"], final["average"]) == ("closed", 0.004, 60075.0)  # (60000 + 3 x 60100) / 4
    trades = exchange.fetch_my_trades(BTC)
    assert [(t["price"], t["amount"], t["takerOrMaker"]) for t in trades] == [(60000.0, 0.001, "taker"),
                                                                              (60100.0, 0.003, "maker")]
    assert [t["info"]["commission"] for t in trades] == ["0.03000000", "0.03606000"]  # taker 0.05 %, maker 0.02 %
    assert final["info"]["updateTime"] == trades[-1]["timestamp"]


# ---------------------------------------------------------------------------- late fills of a resting order


def test_late_fills_of_a_resting_order_show_in_user_trades_with_times(fake, exchange):
    order = exchange.create_order(ETH, "limit", "sell", 0.3, 3050, params={"clientOrderId": "late-fill-1"})
    assert (order["status"], order["filled"]) == ("open", 0.0)
    placed = exchange.fetch_order(order["id"], ETH)["timestamp"]
    assert exchange.fetch_my_trades(ETH) == []

    fake.fill_order("late-fill-1", qty="0.1")
    part = exchange.fetch_order(None, ETH, params={"clientOrderId": "late-fill-1"})
    assert (part["status"], part["info"]["status"], part["filled"], part["remaining"]) == (
        "open", "PARTIALLY_FILLED", 0.1, 0.2)

    fake.fill_order(int(order["id"]), price="3055")  # the rest, at a better price
    final = exchange.fetch_order(order["id"], ETH)
    # 0.1 x 3050 + 0.2 x 3055
    assert (final["status"], final["filled"], final["cost"]) == ("closed", 0.3, pytest.approx(916.0))
    assert final["average"] == pytest.approx(3053.33333)

    trades = exchange.fetch_my_trades(ETH, since=placed)  # startTime / endTime
    assert [(t["order"], t["price"], t["amount"], t["takerOrMaker"], t["side"]) for t in trades] == [
        (order["id"], 3050.0, 0.1, "maker", "sell"), (order["id"], 3055.0, 0.2, "maker", "sell")]
    times = [t["timestamp"] for t in trades]
    assert placed <= times[0] <= times[1] == final["info"]["updateTime"]
    assert [t["info"]["commission"] for t in trades] == ["0.06100000", "0.12220000"]
    by_order = exchange.fetch_my_trades(ETH, params={"orderId": order["id"]})
    assert [t["id"] for t in by_order] == [t["id"] for t in trades]
    assert exchange.fetch_my_trades(ETH, since=times[1] + 1) == []
    from_id = exchange.fetch_my_trades(ETH, params={"fromId": trades[1]["id"]})
    assert [t["id"] for t in from_id] == [trades[1]["id"]]


# ---------------------------------------------------------------------------- executed after the client gave up


def test_order_held_past_the_client_timeout_is_carried_out_later(fake, exchange):
    fake.execute_late_next()
    exchange.timeout = 300
    with pytest.raises(ccxt.RequestTimeout):
        exchange.create_order(BTC, "market", "buy", 0.01, params={"clientOrderId": "held-1"})
    exchange.timeout = 2000
    assert fake.wait_held(1, timeout=5)
    [parked] = fake.held()
    assert (parked.method, parked.path, parked.params["newClientOrderId"]) == ("POST", "/fapi/v1/order", "held-1")
    with pytest.raises(ccxt.OrderNotFound):  # not at the venue yet
        exchange.fetch_order(None, BTC, params={"clientOrderId": "held-1"})
    assert fake.position("BTCUSDT")["positionAmt"] == "0.000"

    [answer] = fake.release_held()
    assert (answer["status"], answer["clientOrderId"], answer["executedQty"]) == ("FILLED", "held-1", "0.010")
    found = exchange.fetch_order(None, BTC, params={"clientOrderId": "held-1"})
    assert (found["status"], found["filled"], found["average"], found["id"]) == (
        "closed", 0.01, 60000.0, str(answer["orderId"]))
    assert fake.held() == [] and fake.position("BTCUSDT")["positionAmt"] == "0.010"
    assert len(exchange.fetch_my_trades(BTC)) == 1


def test_a_retry_before_the_late_order_lands_is_not_doubled(fake, exchange):
    fake.execute_late_next(answer="drop")  # the connection is reset, the order is on its way anyway
    with pytest.raises(ccxt.NetworkError):
        exchange.create_order(ETH, "market", "sell", 0.5, params={"clientOrderId": "retry-1"})
    assert fake.wait_held(1)
    retried = exchange.create_order(ETH, "market", "sell", 0.5, params={"clientOrderId": "retry-1"})
    assert retried["status"] == "closed"
    [late] = fake.release_held()  # the first attempt reaches the matching engine now
    assert late == {"code": -4116, "msg": "ClientOrderId is duplicated."}
    assert fake.position("ETHUSDT")["positionAmt"] == "-0.500"
    assert len(exchange.fetch_my_trades(ETH)) == 1


def test_execution_unknown_503_then_the_order_appears_by_itself(fake, exchange):
    fake.execute_late_next(answer="503", after=0.2)
    with pytest.raises(ccxt.ExchangeNotAvailable) as raised:
        exchange.create_order(BTC, "market", "sell", 0.01, params={"clientOrderId": "unknown-1"})
    body = _error_body(raised.value)
    assert body["msg"] == "Unknown error, please check your request or try again later." and "code" not in body
    assert body["path"] == "/fapi/v1/order" and exchange.last_http_response is not None

    def filled():
        try:
            return exchange.fetch_order(None, BTC, params={"clientOrderId": "unknown-1"})
        except ccxt.OrderNotFound:
            return None

    found = _eventually(filled)
    assert (found["status"], found["filled"], found["side"]) == ("closed", 0.01, "sell")


def test_a_parked_request_never_released_does_not_hang_stop():
    with _new_fake() as server:
        ex = make_exchange(server, timeout=300)
        ex.load_markets()
        server.execute_late_next()
        with pytest.raises(ccxt.RequestTimeout):
            ex.create_order(BTC, "market", "buy", 0.01)
        assert server.wait_held(1)
    assert not server.running and server.orders() == []


# ---------------------------------------------------------------------------- client order ids


def test_client_order_id_scope_open_refuses_ids_only_while_the_order_is_open():
    with _new_fake(client_order_id_scope="open") as server:
        ex = make_exchange(server)
        first = ex.create_order(BTC, "market", "buy", 0.01, params={"clientOrderId": "cid-1"})
        second = ex.create_order(BTC, "market", "buy", 0.01, params={"clientOrderId": "cid-1"})  # filled: free again
        assert first["id"] != second["id"] and second["status"] == "closed"
        assert ex.fetch_order(None, BTC, params={"clientOrderId": "cid-1"})["id"] == second["id"]  # the newest

        resting = ex.create_order(BTC, "limit", "buy", 0.01, 59000, params={"clientOrderId": "cid-2"})
        with pytest.raises(ccxt.InvalidOrder) as raised:
            ex.create_order(BTC, "limit", "buy", 0.01, 59000, params={"clientOrderId": "cid-2"})
        assert _error_body(raised.value) == {"code": -4116, "msg": "ClientOrderId is duplicated."}
        ex.cancel_order(resting["id"], BTC)
        assert ex.create_order(BTC, "limit", "buy", 0.01, 59000, params={"clientOrderId": "cid-2"})["status"] == "open"

        server.seed_position("ETHUSDT", "1")
        stop = ex.create_order(ETH, "market", "sell", 1, params={"stopPrice": 2900, "reduceOnly": True,
                                                                 "clientOrderId": "sl-1"})
        with pytest.raises(ccxt.InvalidOrder, match="-4116"):  # clientAlgoId: unique among open algo orders
            ex.create_order(ETH, "market", "sell", 1, params={"stopPrice": 2800, "reduceOnly": True,
                                                              "clientOrderId": "sl-1"})
        ex.cancel_order(stop["id"], ETH, params={"trigger": True})
        assert ex.create_order(ETH, "market", "sell", 1, params={"stopPrice": 2800, "reduceOnly": True,
                                                                 "clientOrderId": "sl-1"})["status"] == "open"
        assert server.internal_errors == []


def test_default_scope_all_never_reuses_a_client_order_id(fake, exchange):
    exchange.create_order(BTC, "market", "buy", 0.01, params={"clientOrderId": "once-1"})
    with pytest.raises(ccxt.InvalidOrder, match="-4116"):
        exchange.create_order(BTC, "market", "buy", 0.01, params={"clientOrderId": "once-1"})
    assert fake.position("BTCUSDT")["positionAmt"] == "0.010"


# ---------------------------------------------------------------------------- rate limits and headers


def test_429_and_418_answers_have_binances_bodies_and_headers(fake, exchange):
    fake.fail_next(1, status=429)
    with pytest.raises(ccxt.DDoSProtection) as raised:
        exchange.fetch_balance()
    assert _error_body(raised.value) == {"code": -1003, "msg": TOO_MANY}
    headers = exchange.last_response_headers
    assert headers["Retry-After"] == "1" and int(headers["X-MBX-USED-WEIGHT-1M"]) > 0

    fake.fail_next(1, status=418)
    before = int(time.time() * 1000)
    with pytest.raises(ccxt.DDoSProtection) as raised:
        exchange.fetch_positions()
    body = _error_body(raised.value)
    assert body["code"] == -1003 and body["msg"].startswith("Way too many requests; IP(127.0.0.1) banned until ")
    assert body["msg"].endswith(". Please use the websocket for live updates to avoid bans.")
    until = int(body["msg"].split("banned until ")[1].split(".")[0])
    assert before + 119_000 <= until <= int(time.time() * 1000) + 121_000  # the shortest ban: 2 minutes
    assert exchange.last_response_headers["Retry-After"] == "120"
    assert "X-MBX-USED-WEIGHT-1M" in exchange.last_response_headers


def test_used_weight_header_is_on_every_answer_with_binances_weights(fake):
    status, _, headers = _raw(fake, "GET", "/fapi/v1/time")
    assert status == 200 and headers["X-MBX-USED-WEIGHT-1M"] == "1"
    status, _, headers = _raw(fake, "GET", "/fapi/v1/userTrades", {"symbol": "BTCUSDT"}, signed=True)
    assert status == 200 and headers["X-MBX-USED-WEIGHT-1M"] == "6"  # userTrades weighs 5
    status, body, headers = _raw(fake, "GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "orderId": "1"}, signed=True)
    assert (status, body["code"], headers["X-MBX-USED-WEIGHT-1M"]) == (400, -2013, "7")
    status, body, headers = _raw(fake, "GET", "/fapi/v1/nowhere")
    assert (status, body["code"], headers["X-MBX-USED-WEIGHT-1M"]) == (404, -5000, "8")
    market_buy = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01"}
    status, body, headers = _raw(fake, "POST", "/fapi/v1/order", market_buy, signed=True)
    assert status == 200 and headers["X-MBX-USED-WEIGHT-1M"] == "8"  # an order weighs 0 on the IP limit ...
    assert (headers["X-MBX-ORDER-COUNT-10S"], headers["X-MBX-ORDER-COUNT-1M"]) == ("1", "1")  # ... and 1 here
    fake.down("503")
    status, body, headers = _raw(fake, "GET", "/fapi/v1/time")
    assert (status, body["code"], headers["X-MBX-USED-WEIGHT-1M"]) == (503, -1001, "9")
    fake.up()
    fake.unhandled.clear()


def test_weight_limit_answers_429_then_bans_with_418(fake):
    exchange = make_exchange(fake)
    fake.limit_weight(10, ban_after=1, ban_seconds=60)
    for _ in range(10):
        exchange.fetch_time()  # GET /fapi/v1/time weighs 1
    with pytest.raises(ccxt.DDoSProtection) as raised:
        exchange.fetch_time()
    assert _error_body(raised.value) == {"code": -1003, "msg": TOO_MANY.replace("2400", "10")}
    assert 1 <= int(exchange.last_response_headers["Retry-After"]) <= 60
    assert exchange.last_response_headers["X-MBX-USED-WEIGHT-1M"] == "11"

    with pytest.raises(ccxt.DDoSProtection) as raised:  # it did not back off: banned
        exchange.fetch_time()
    assert "banned until" in _error_body(raised.value)["msg"]
    assert exchange.last_response_headers["Retry-After"] == "60"
    status, body, headers = _raw(fake, "GET", "/fapi/v1/ping")
    assert status == 418 and body["code"] == -1003 and 1 <= int(headers["Retry-After"]) <= 60
    assert [r.status for r in fake.requests("/fapi/v1/time")][-3:] == [200, 429, 418]

    fake.limit_weight(None)
    assert exchange.fetch_time() > 0


# ---------------------------------------------------------------------------- conditional orders (Algo Service)


def test_conditional_types_are_refused_on_the_order_endpoint(fake):
    status, body, _ = _raw(fake, "POST", "/fapi/v1/order", {
        "symbol": "BTCUSDT", "side": "SELL", "type": "STOP_MARKET", "quantity": "0.01", "stopPrice": "58000",
        "reduceOnly": "true"}, signed=True)
    assert (status, body) == (400, {"code": -4120, "msg": "Order type not supported for this endpoint. "
                                                          "Please use the Algo Order API endpoints instead."})


def test_stop_market_reduce_only_rests_then_triggers_and_fills_as_market(fake, exchange):
    fake.seed_position("BTCUSDT", "0.1", entry_price="50000")
    stop = exchange.create_order(BTC, "market", "sell", 0.1, params={"stopPrice": 58000, "reduceOnly": True,
                                                                    "clientOrderId": "stop-1"})
    sent = fake.requests("/fapi/v1/algoOrder", "POST")[-1].params
    keys = ("algoType", "type", "side", "quantity", "triggerPrice", "reduceOnly", "clientAlgoId")
    assert {k: sent[k] for k in keys} == {"algoType": "CONDITIONAL", "type": "STOP_MARKET", "side": "SELL",
                                          "quantity": "0.1", "triggerPrice": "58000", "reduceOnly": "true",
                                          "clientAlgoId": "stop-1"}
    assert fake.requests("/fapi/v1/order", "POST") == []
    assert (stop["status"], stop["triggerPrice"], stop["clientOrderId"], stop["reduceOnly"]) == (
        "open", 58000.0, "stop-1", True)
    assert (stop["info"]["algoStatus"], stop["info"]["orderType"], stop["info"]["workingType"]) == (
        "NEW", "STOP_MARKET", "CONTRACT_PRICE")

    assert exchange.fetch_open_orders(BTC) == []  # not a regular order ...
    [listed] = exchange.fetch_open_orders(BTC, params={"trigger": True})  # ... an algo one
    assert listed["id"] == stop["id"]

    assert fake.set_mark_price("BTCUSDT", "58500") == []  # not reached
    [fired] = fake.set_mark_price("BTCUSDT", "57990")
    assert fired["algoStatus"] == "FINISHED" and fired["actualOrderId"]

    algo = exchange.fetch_order(stop["id"], BTC, params={"trigger": True})  # GET /fapi/v1/algoOrder
    assert (algo["status"], algo["info"]["algoStatus"], algo["info"]["actualPrice"]) == (
        "closed", "FINISHED", "57990.00000")
    assert algo["info"]["triggerTime"] >= algo["info"]["createTime"] > 0
    actual = exchange.fetch_order(algo["info"]["actualOrderId"], BTC)  # the market order it became
    assert (actual["status"], actual["filled"], actual["average"], actual["reduceOnly"], actual["clientOrderId"]) == (
        "closed", 0.1, 57990.0, True, "stop-1")
    assert (actual["info"]["type"], actual["info"]["origType"], actual["info"]["stopPrice"]) == (
        "MARKET", "STOP_MARKET", "58000.00")
    [trade] = exchange.fetch_my_trades(BTC)
    assert (trade["order"], trade["price"], trade["amount"], trade["info"]["realizedPnl"]) == (
        actual["id"], 57990.0, 0.1, "799.00000000")  # (57990 - 50000) x 0.1
    assert fake.position("BTCUSDT")["positionAmt"] == "0.000"
    assert exchange.fetch_open_orders(BTC, params={"trigger": True}) == []


def test_take_profit_cancel_close_position_and_immediate_trigger(fake, exchange):
    fake.seed_position("ETHUSDT", "-2", entry_price="3100")
    tp = exchange.create_order(ETH, "market", "buy", 1, params={"takeProfitPrice": 2900, "reduceOnly": True})
    assert fake.requests("/fapi/v1/algoOrder", "POST")[-1].params["type"] == "TAKE_PROFIT_MARKET"
    assert (tp["status"], tp["takeProfitPrice"]) == ("open", 2900.0)
    exchange.cancel_order(tp["id"], ETH, params={"trigger": True})  # DELETE /fapi/v1/algoOrder
    assert exchange.fetch_order(tp["id"], ETH, params={"trigger": True})["status"] == "canceled"
    with pytest.raises(ccxt.OrderNotFound):
        exchange.cancel_order(tp["id"], ETH, params={"trigger": True})

    with pytest.raises(ccxt.OrderImmediatelyFillable) as raised:  # a buy stop below the market
        exchange.create_order(ETH, "market", "buy", 1, params={"stopPrice": 2950, "reduceOnly": True})
    assert _error_body(raised.value) == {"code": -2021, "msg": "Order would immediately trigger."}

    close_all = exchange.create_order(ETH, "market", "buy", None, params={"stopPrice": 3200, "closePosition": True})
    assert "quantity" not in fake.requests("/fapi/v1/algoOrder", "POST")[-1].params
    fake.set_mark_price("ETHUSDT", "3210")
    algo = exchange.fetch_order(close_all["id"], ETH, params={"trigger": True})
    actual = exchange.fetch_order(algo["info"]["actualOrderId"], ETH)
    assert (algo["status"], actual["filled"], actual["side"], actual["info"]["closePosition"]) == (
        "closed", 2.0, "buy", True)
    assert fake.position("ETHUSDT")["positionAmt"] == "0.000"
    history = exchange.fetch_orders(ETH, params={"trigger": True})  # GET /fapi/v1/allAlgoOrders
    assert [(o["id"], o["info"]["algoStatus"]) for o in history] == [(tp["id"], "CANCELED"),
                                                                      (close_all["id"], "FINISHED")]


def test_a_triggered_stop_that_cannot_reduce_is_rejected_and_a_partial_one_expires(fake, exchange):
    orphan = exchange.create_order(BTC, "market", "buy", 0.01, params={"stopPrice": 61000, "reduceOnly": True})
    assert orphan["status"] == "open"  # the Algo Service checks nothing until the trigger
    fake.set_mark_price("BTCUSDT", "61500")
    rejected = exchange.fetch_order(orphan["id"], BTC, params={"trigger": True})
    assert (rejected["status"], rejected["info"]["actualOrderId"]) == ("rejected", "")
    assert exchange.fetch_orders(BTC) == [] and exchange.fetch_my_trades(BTC) == []

    fake.seed_position("BTCUSDT", "0.02", entry_price="61000")
    stop = exchange.create_order(BTC, "market", "sell", 0.02, params={"stopPrice": 60000, "reduceOnly": True})
    fake.partial_next("0.5")  # the book is thin when the stop fires
    fake.set_mark_price("BTCUSDT", "59900")
    algo = exchange.fetch_order(stop["id"], BTC, params={"trigger": True})
    actual = exchange.fetch_order(algo["info"]["actualOrderId"], BTC)
    assert (algo["info"]["algoStatus"], actual["status"], actual["filled"], actual["remaining"]) == (
        "FINISHED", "expired", 0.01, 0.01)
    assert fake.position("BTCUSDT")["positionAmt"] == "0.010"  # half the position is still unprotected
