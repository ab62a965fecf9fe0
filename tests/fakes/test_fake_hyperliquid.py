"""Drive tests/fakes/fake_hyperliquid.py with the real ``ccxt.hyperliquid`` (pinned 4.5.90) over loopback.

Every exchange object is pointed at the fake with ``FakeHyperliquid.point_ccxt``; a guard
refuses any request to a non-loopback host and each test checks none was attempted.  The
key and wallet are made up at run time; the fake does not verify signatures.  No test
sleeps to synchronise: a delayed request is awaited with ``wait_for_requests``.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import ccxt  # a missing package fails the suite, never skips it
import pytest

from tests.fakes.fake_hyperliquid import MSG_DESERIALIZE, FakeHyperliquid

PRIVATE_KEY = "0x" + "11" * 32  # a valid secp256k1 scalar that is nobody's key
WALLET = "0x" + "ab" * 20
OTHER_USER = "0x" + "cd" * 20
BTC, ETH = "BTC/USDC:USDC", "ETH/USDC:USDC"
HOUR = 3_600_000
#: What the project sets (brokers/ccxt_exchange.py HYPERLIQUID_OPTIONS); on its own it is not enough, see below.
PROJECT_OPTIONS = {"builderFee": False, "approvedBuilderFee": False, "refSet": True}


def cloid(n: int) -> str:
    return "0x" + f"{n:032x}"


class QuietHyperliquid(ccxt.hyperliquid):
    """ccxt's client with the two hooks replaced as brokers/ccxt_exchange.py does."""

    def handle_builder_fee_approval(self) -> bool:
        return True

    def set_ref(self) -> bool:
        return True


def make_client(fake: FakeHyperliquid, cls: type = QuietHyperliquid, options: dict | None = None,
                timeout_ms: int = 3000) -> ccxt.hyperliquid:
    ex = cls({"walletAddress": WALLET, "privateKey": PRIVATE_KEY, "enableRateLimit": False, "timeout": timeout_ms,
              "options": dict(PROJECT_OPTIONS if options is None else options)})
    fake.point_ccxt(ex)
    for section, url in ex.urls["api"].items():
        assert url == fake.base_url, f"urls['api'][{section!r}] = {url!r}"
    return ex


def post(fake: FakeHyperliquid, path: str, body: object) -> tuple[int, str, str]:
    """A raw POST to the fake: (status, content type, body text)."""
    req = urllib.request.Request(fake.base_url + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read().decode()


@pytest.fixture
def fake():
    with FakeHyperliquid(WALLET, usdc="10000") as f:
        yield f
        assert f.foreign_urls == []
        assert f.internal_errors == []


@pytest.fixture
def client(fake):
    ex = make_client(fake)
    ex.load_markets()
    return ex


def test_load_markets_reads_the_venue_metadata(fake, client):
    btc, eth = client.market(BTC), client.market(ETH)
    assert (btc["id"], btc["baseName"], btc["settle"]) == ("0", "BTC", "USDC")
    assert btc["precision"] == {"amount": 1e-05, "price": 1.0}  # szDecimals 5; 5 significant figures at 60000
    assert eth["precision"] == {"amount": 0.0001, "price": 0.1}
    assert btc["limits"]["leverage"]["max"] == 40
    assert "PURR/USDC" in client.markets
    kinds = [r.kind for r in fake.requests("/info")]
    assert {"spotMeta", "spotMetaAndAssetCtxs", "metaAndAssetCtxs", "perpDexs", "userAbstraction"} <= set(kinds)
    assert fake.requests("/exchange") == []
    assert fake.unhandled == []
    assert client.fetch_ticker(BTC)["close"] == 60000.0


def test_balance_and_positions(fake, client):
    fake.seed_position("ETH", "0.5", "2800")
    fake.set_mark_price("ETH", "3000")
    usdc = client.fetch_balance()["USDC"]
    assert usdc["total"] == pytest.approx(10100.0)  # cash + unrealised PnL
    assert usdc["used"] == pytest.approx(0.5 * 3000 / 20)
    (pos,) = client.fetch_positions()
    assert (pos["symbol"], pos["side"], pos["contracts"], pos["entryPrice"]) == (ETH, "long", 0.5, 2800.0)
    assert pos["markPrice"] == 3000.0 and pos["unrealizedPnl"] == pytest.approx(100.0)
    assert pos["marginMode"] == "cross" and pos["leverage"] == 20
    raw = json.loads(post(fake, "/info", {"type": "clearinghouseState", "user": WALLET})[2])
    assert set(raw) == {"marginSummary", "crossMarginSummary", "crossMaintenanceMarginUsed", "withdrawable",
                        "assetPositions", "time"}
    assert raw["marginSummary"]["accountValue"] == "10100.0"
    assert raw["assetPositions"][0]["position"]["szi"] == "0.5"
    other = json.loads(post(fake, "/info", {"type": "clearinghouseState", "user": OTHER_USER})[2])
    assert other["assetPositions"] == [] and other["marginSummary"]["accountValue"] == "0.0"
    spot = json.loads(post(fake, "/info", {"type": "spotClearinghouseState", "user": WALLET})[2])
    assert spot == {"balances": []}


def test_market_order_with_client_order_id_then_order_status_and_fills(fake, client):
    client.set_leverage(5, BTC, {"marginMode": "cross"})
    assert fake.leverage("BTC") == (5, True)
    cid = cloid(1)
    placed = client.create_order(BTC, "market", "buy", 0.01, 60000, {"clientOrderId": cid, "slippage": "0.01"})
    assert placed["filled"] == 0.01 and placed["average"] == 60000.0 and placed["id"]
    (action,) = fake.actions("order")
    (wire,) = action["orders"]
    assert wire == {"a": 0, "b": True, "p": "60600", "s": "0.01", "r": False, "t": {"limit": {"tif": "Ioc"}}, "c": cid}
    assert "builder" not in action
    assert fake.requests("/exchange", "order")[0].signed
    # orderStatus: filled, limitPx is the slippage price, and no average price at all
    order = client.fetch_order(None, BTC, {"clientOrderId": cid})
    assert (order["id"], order["status"], order["filled"]) == (placed["id"], "closed", 0.01)
    assert order["clientOrderId"] == cid
    assert order["price"] == 60600.0 and order["average"] is None
    assert "avgPx" not in json.dumps(order["info"])
    assert client.fetch_order(placed["id"], BTC)["status"] == "closed"
    # the price is in userFills
    (trade,) = client.fetch_my_trades(BTC)
    assert (trade["order"], trade["price"], trade["amount"], trade["side"]) == (placed["id"], 60000.0, 0.01, "buy")
    assert trade["fee"]["cost"] == pytest.approx(0.27) and trade["takerOrMaker"] == "taker"
    assert trade["info"]["cloid"] == cid and trade["info"]["dir"] == "Open Long"
    assert float(fake.balance()) == pytest.approx(10000 - 0.27)
    assert fake.position("BTC")["position"]["szi"] == "0.01"
    # closing it realises PnL
    fake.set_mark_price("BTC", "61000")
    client.create_order(BTC, "market", "sell", 0.01, 61000, {"clientOrderId": cloid(2)})
    assert fake.position("BTC") is None
    close = fake.fills()[-1]
    assert (close["dir"], close["closedPnl"], close["startPosition"]) == ("Close Long", "10.0", "0.01")


def test_resting_order_open_orders_cancel_and_cloid_reuse(fake, client):
    cid = cloid(3)
    rest = client.create_order(ETH, "limit", "buy", 0.1, 2900, {"clientOrderId": cid})
    assert rest["id"] and rest["filled"] is None  # {"resting": {"oid"}} says nothing of fills
    (open_order,) = client.fetch_open_orders(ETH)
    assert (open_order["id"], open_order["clientOrderId"], open_order["status"]) == (rest["id"], cid, "open")
    assert open_order["price"] == 2900.0 and open_order["remaining"] == 0.1
    # a cloid of an open order is refused
    with pytest.raises(ccxt.ExchangeError, match="duplicate cloid"):
        client.create_order(ETH, "limit", "buy", 0.1, 2800, {"clientOrderId": cid})
    assert len(fake.orders(open_only=True)) == 1
    # cancel by cloid, then the same cancel again
    client.cancel_order(None, ETH, {"clientOrderId": cid})
    assert fake.actions("cancelByCloid")[0]["cancels"] == [{"asset": 1, "cloid": cid}]
    assert client.fetch_order(None, ETH, {"clientOrderId": cid})["status"] == "canceled"
    with pytest.raises(ccxt.OrderNotFound):
        client.cancel_order(rest["id"], ETH)
    assert fake.actions("cancel")[0]["cancels"] == [{"a": 1, "o": int(rest["id"])}]
    # the cloid of a finished order may be used again (cloid_scope="open"); orderStatus answers the newest
    again = client.create_order(ETH, "limit", "buy", 0.1, 2850, {"clientOrderId": cid})
    assert client.fetch_order(None, ETH, {"clientOrderId": cid})["id"] == again["id"] != rest["id"]
    client.cancel_order(again["id"], ETH)
    assert client.fetch_open_orders(ETH) == []


def test_cloid_scope_all_refuses_any_used_cloid():
    with FakeHyperliquid(WALLET, cloid_scope="all") as fake:
        client = make_client(fake)
        client.create_order(ETH, "market", "buy", 0.01, 3000, {"clientOrderId": cloid(4)})
        with pytest.raises(ccxt.ExchangeError, match="duplicate cloid"):
            client.create_order(ETH, "market", "buy", 0.01, 3000, {"clientOrderId": cloid(4)})
        assert len(fake.fills()) == 1


def test_resting_order_fills_when_the_mark_crosses(fake, client):
    placed = client.create_order(ETH, "limit", "buy", 0.1, 2900, {"clientOrderId": cloid(5)})
    assert fake.set_mark_price("ETH", "2950") == []
    (touched,) = fake.set_mark_price("ETH", "2895")
    assert touched["status"] == "filled"
    order = client.fetch_order(placed["id"], ETH)
    assert order["status"] == "closed" and order["filled"] == 0.1
    (trade,) = client.fetch_my_trades(ETH)
    assert trade["price"] == 2900.0 and trade["takerOrMaker"] == "maker"
    assert trade["fee"]["cost"] == pytest.approx(0.1 * 2900 * 0.00015)


def test_ioc_that_cannot_match_is_refused_and_reported_rejected(fake, client):
    with pytest.raises(ccxt.InvalidOrder, match="could not immediately match"):
        client.create_order(ETH, "limit", "buy", 0.1, 2900, {"clientOrderId": cloid(6), "timeInForce": "IOC"})
    assert fake.requests("/exchange", "order")[0].outcome.startswith("Order could not immediately match")
    order = client.fetch_order(None, ETH, {"clientOrderId": cloid(6)})
    assert order["status"] == "rejected" and order["info"]["status"] == "iocCancelRejected"
    assert fake.fills() == []


def test_venue_checks(fake, client):
    with pytest.raises(ccxt.InvalidOrder, match="minimum value of \\$10"):
        client.create_order(ETH, "market", "buy", 0.001, 3000, {"clientOrderId": cloid(7)})
    with pytest.raises(ccxt.InvalidOrder, match="Reduce only"):
        client.create_order(ETH, "market", "sell", 0.01, 3000, {"clientOrderId": cloid(8), "reduceOnly": True})
    with pytest.raises(ccxt.InsufficientFunds):
        client.create_order(BTC, "market", "buy", 5, 60000, {"clientOrderId": cloid(9)})
    assert fake.fills() == []
    assert [o["status"] for o in fake.orders()] == ["minTradeNtlRejected", "reduceOnlyRejected", "perpMarginRejected"]


def test_partial_fill_of_an_ioc_cancels_the_rest(fake, client):
    fake.partial_next("0.5")
    placed = client.create_order(BTC, "market", "buy", 0.02, 60000, {"clientOrderId": cloid(10)})
    assert placed["filled"] == 0.01
    order = client.fetch_order(None, BTC, {"clientOrderId": cloid(10)})
    assert (order["status"], order["filled"], order["remaining"]) == ("canceled", 0.01, 0.01)
    assert fake.position("BTC")["position"]["szi"] == "0.01"


# ---------------------------------------------------------------------- trigger (TP/SL) orders


def long_btc(client, qty=0.02):
    placed = client.create_order(BTC, "market", "buy", qty, 60000, {"clientOrderId": cloid(100), "slippage": "0.01"})
    assert placed["filled"] == qty


def test_trigger_orders_rest_in_the_venues_shapes(fake, client):
    """ccxt's stopLossPrice / takeProfitPrice + reduceOnly: standalone trigger orders, listed back as the venue
    lists them (isTrigger, triggerPx, orderType, triggerCondition) and parsed by ccxt as stops / take-profits."""
    long_btc(client)
    sl = client.create_order(BTC, "market", "sell", 0.02, 57000, {"clientOrderId": cloid(101), "slippage": "0.01",
                                                                  "stopLossPrice": 57000, "reduceOnly": True})
    tp = client.create_order(BTC, "market", "sell", 0.02, 66000, {"clientOrderId": cloid(102), "slippage": "0.01",
                                                                  "takeProfitPrice": 66000, "reduceOnly": True})
    assert sl["id"] and tp["id"] and sl["filled"] is None  # {"resting": {"oid"}}: not filled, not triggered
    action = fake.actions("order")[-2]
    assert action["grouping"] == "na"
    assert action["orders"] == [{"a": 0, "b": False, "p": "56430", "s": "0.02", "r": True, "c": cloid(101),
                                 "t": {"trigger": {"isMarket": True, "triggerPx": "57000", "tpsl": "sl"}}}]
    rows = {r["cloid"]: r for r in json.loads(post(fake, "/info", {"type": "frontendOpenOrders", "user": WALLET})[2])}
    assert {k: (r["isTrigger"], r["triggerPx"], r["orderType"], r["triggerCondition"], r["reduceOnly"], r["tif"],
                r["limitPx"]) for k, r in rows.items()} == {
        cloid(101): (True, "57000.0", "Stop Market", "Price below 57000.0", True, None, "56430.0"),
        cloid(102): (True, "66000.0", "Take Profit Market", "Price above 66000.0", True, None, "65340.0")}
    got = {o["clientOrderId"]: o for o in client.fetch_open_orders()}
    assert (got[cloid(101)]["triggerPrice"], got[cloid(101)]["stopLossPrice"], got[cloid(101)]["type"]) == (
        57000.0, 57000.0, "market")
    assert (got[cloid(102)]["triggerPrice"], got[cloid(102)]["takeProfitPrice"]) == (66000.0, 66000.0)
    assert client.fetch_order(None, BTC, {"clientOrderId": cloid(101)})["status"] == "open"
    assert fake.fills()[-1]["oid"] == int(fake.orders()[0]["order"]["oid"])  # only the entry has filled
    assert len(fake.fills()) == 1


def test_a_stop_fires_when_the_mark_crosses_it_and_the_venue_cancels_no_sibling(fake, client):
    long_btc(client)
    for n, key, px in ((101, "stopLossPrice", 57000), (102, "takeProfitPrice", 66000)):
        client.create_order(BTC, "market", "sell", 0.02, px, {"clientOrderId": cloid(n), "slippage": "0.01",
                                                              key: px, "reduceOnly": True})
    assert fake.set_mark_price("BTC", "57100") == []  # above the stop: nothing fires
    (fired,) = fake.set_mark_price("BTC", "56800")  # through it: a market order at the mark, same oid and cloid
    assert (fired["status"], fired["order"]["cloid"]) == ("filled", cloid(101))
    order = client.fetch_order(None, BTC, {"clientOrderId": cloid(101)})
    assert (order["status"], order["filled"]) == ("closed", 0.02)
    trade = client.fetch_my_trades(BTC)[-1]
    assert (trade["order"], trade["price"], trade["amount"], trade["takerOrMaker"]) == (order["id"], 56800.0, 0.02,
                                                                                         "taker")
    assert trade["info"]["cloid"] == cloid(101) and trade["info"]["dir"] == "Close Long"
    assert fake.position("BTC") is None
    # Hyperliquid has no OCA for standalone trigger orders: the take-profit still rests
    (left,) = client.fetch_open_orders()
    assert (left["clientOrderId"], left["status"]) == (cloid(102), "open")
    # and when it fires with nothing to reduce, it is cancelled, never opening a short
    (gone,) = fake.set_mark_price("BTC", "66500")
    assert gone["status"] == "reduceOnlyCanceled" and fake.position("BTC") is None


def test_a_reduce_only_trigger_is_clipped_to_the_position(fake, client):
    long_btc(client, 0.01)
    client.create_order(BTC, "market", "sell", 0.01, 57000, {"clientOrderId": cloid(103), "slippage": "0.01",
                                                             "stopLossPrice": 57000, "reduceOnly": True})
    client.create_order(BTC, "market", "sell", 0.01, 3000, {"clientOrderId": cloid(104), "slippage": "0.01"})
    client.create_order(BTC, "market", "buy", 0.005, 60000, {"clientOrderId": cloid(105), "slippage": "0.01"})
    fake.set_mark_price("BTC", "56900")  # the position is 0.005 now: the stop sells that much
    order = client.fetch_order(None, BTC, {"clientOrderId": cloid(103)})
    assert (order["filled"], order["remaining"], order["info"]["status"]) == (0.005, 0.005, "reduceOnlyCanceled")
    assert fake.position("BTC") is None


def test_a_buy_stop_covers_a_short_and_a_gap_past_the_worst_price_cancels_it(fake, client):
    fake.seed_position("ETH", "-0.5", "3000")
    client.create_order(ETH, "market", "buy", 0.5, 3100, {"clientOrderId": cloid(106), "slippage": "0.01",
                                                          "stopLossPrice": 3100, "reduceOnly": True})
    row = fake.orders(open_only=True)[0]["order"]
    assert (row["triggerCondition"], row["limitPx"], row["side"]) == ("Price above 3100.0", "3131.0", "B")
    (gone,) = fake.set_mark_price("ETH", "3200")  # beyond the order's worst price 3131
    assert gone["status"] == "iocCancelRejected"
    assert fake.position("ETH")["position"]["szi"] == "-0.5"


def test_trigger_order_checks(fake, client):
    with pytest.raises(ccxt.InvalidOrder, match="Reduce only"):  # nothing to reduce
        client.create_order(BTC, "market", "sell", 0.01, 57000, {"clientOrderId": cloid(107), "stopLossPrice": 57000,
                                                                 "reduceOnly": True})
    long_btc(client, 0.01)
    with pytest.raises(ccxt.ExchangeError, match="Invalid TP/SL price"):  # a sell's worst price above its trigger
        client.create_order(BTC, "limit", "sell", 0.01, 58000, {"clientOrderId": cloid(108), "stopLossPrice": 57000,
                                                                "reduceOnly": True})
    assert [o["status"] for o in fake.orders()] == ["reduceOnlyRejected", "filled", "badTriggerPxRejected"]
    wire = {"a": 0, "b": False, "p": "56000", "s": "0.01", "r": True,
            "t": {"trigger": {"isMarket": True, "triggerPx": "57000", "tpsl": "sl"}}}
    body = {"action": {"type": "order", "orders": [wire], "grouping": "positionTpsl"}, "nonce": 1,
            "signature": {"r": "0x1", "s": "0x2", "v": 27}}
    status, _, text = post(fake, "/exchange", body)
    assert status == 200 and "grouping na" in json.loads(text)["response"]["data"]["statuses"][0]["error"]
    bad = {**wire, "t": {"trigger": {"isMarket": True, "triggerPx": 57000, "tpsl": "sl"}}}  # a number, not text
    assert post(fake, "/exchange", {**body, "action": {**body["action"], "orders": [bad]}})[0] == 422
    # a trigger the mark has already reached fires at once
    client.create_order(BTC, "market", "sell", 0.01, 60200, {"clientOrderId": cloid(109), "slippage": "0.01",
                                                             "stopLossPrice": 60200, "reduceOnly": True})
    assert client.fetch_order(None, BTC, {"clientOrderId": cloid(109)})["status"] == "closed"
    assert fake.position("BTC") is None


def test_ohlcv_serves_the_forming_candle(fake, client):
    now = int(time.time() * 1000)
    current = now // HOUR * HOUR
    rows = [(current - i * HOUR, 100 + i, 110 + i, 90 + i, 105 + i, "12.5", 7) for i in (3, 2, 1, 0)]
    fake.set_candles("BTC", "1h", rows)
    candles = client.fetch_ohlcv(BTC, "1h", since=current - 3 * HOUR)
    assert [c[0] for c in candles] == [current - 3 * HOUR, current - 2 * HOUR, current - HOUR, current]
    assert candles[0][1:] == [103.0, 113.0, 93.0, 108.0, 12.5]
    (req,) = fake.requests("/info", "candleSnapshot")
    assert req.body["req"]["coin"] == "BTC" and req.body["req"]["interval"] == "1h"
    raw = json.loads(post(fake, "/info", {"type": "candleSnapshot", "req": {
        "coin": "BTC", "interval": "1h", "startTime": current - HOUR, "endTime": now}})[2])
    assert [set(c) for c in raw] == [{"t", "T", "s", "i", "o", "c", "h", "l", "v", "n"}] * 2
    forming = raw[-1]
    assert forming["t"] == current and forming["T"] == current + HOUR - 1 > now  # still forming
    assert forming["o"] == "100.0" and forming["v"] == "12.5" and forming["n"] == 7 and forming["s"] == "BTC"


def test_funding_rate_history(fake, client):
    now = int(time.time() * 1000)
    start = now // HOUR * HOUR - 3 * HOUR
    fake.set_funding_history("ETH", [(start + i * HOUR + 31, f"0.0000{i + 1}", "0.0003") for i in range(3)])
    history = client.fetch_funding_rate_history(ETH, since=start)
    assert [h["fundingRate"] for h in history] == [0.00001, 0.00002, 0.00003]
    assert history[0]["timestamp"] == start + 31 and history[0]["symbol"] == ETH
    raw = json.loads(post(fake, "/info", {"type": "fundingHistory", "coin": "ETH", "startTime": start})[2])
    assert raw[0] == {"coin": "ETH", "fundingRate": "0.00001", "premium": "0.0003", "time": start + 31}


def test_rate_limit_and_server_error(fake, client):
    fake.fail_next(status=429, path="/info", kind="clearinghouseState")
    with pytest.raises(ccxt.RateLimitExceeded):
        client.fetch_balance()
    assert client.fetch_balance()["USDC"]["total"] == 10000.0
    assert [r.status for r in fake.requests("/info", "clearinghouseState")] == [429, 200]
    fake.fail_next(status=500, path="/info")
    with pytest.raises(ccxt.ExchangeNotAvailable):
        client.fetch_positions()


@pytest.mark.parametrize("script", ["drop", "500"])
def test_lost_answer_of_an_executed_order(fake, client, script):
    cid = cloid(11)
    if script == "drop":
        fake.drop_next(path="/exchange", kind="order")
    else:
        fake.fail_next(status=500, path="/exchange", kind="order", process=True)
    with pytest.raises(ccxt.NetworkError):
        client.create_order(ETH, "market", "buy", 0.1, 3000, {"clientOrderId": cid})
    (req,) = fake.requests("/exchange", "order")
    assert req.status == (0 if script == "drop" else 500)
    order = client.fetch_order(None, ETH, {"clientOrderId": cid})  # the order exists: it was executed
    assert order["status"] == "closed" and order["filled"] == 0.1
    assert fake.position("ETH")["position"]["szi"] == "0.1"


def test_delayed_answer_times_out_but_the_order_is_executed(fake):
    client = make_client(fake, timeout_ms=300)
    client.load_markets()
    fake.delay_next(seconds=2.0, path="/exchange", kind="order")
    with pytest.raises(ccxt.RequestTimeout):
        client.create_order(ETH, "market", "buy", 0.1, 3000, {"clientOrderId": cloid(12)})
    fake.wait_for_requests("/exchange", "order", count=1, timeout=10)
    assert client.fetch_order(None, ETH, {"clientOrderId": cloid(12)})["status"] == "closed"


@pytest.mark.parametrize("mode", ["waitingForFill", "missing"])
def test_answer_without_filled_or_resting_status(fake, client, mode):
    cid = cloid(13)
    fake.status_without_fill_next(mode=mode)
    placed = client.create_order(ETH, "market", "buy", 0.1, 3000, {"clientOrderId": cid})
    # ccxt cannot tell what happened: no id, no fill (and None when the list is empty)
    assert placed is None if mode == "missing" else (placed["id"], placed["filled"]) == (None, None)
    order = client.fetch_order(None, ETH, {"clientOrderId": cid})
    assert order["status"] == "closed" and order["filled"] == 0.1 and order["average"] is None
    trades = [t for t in client.fetch_my_trades(ETH) if t["order"] == order["id"]]
    assert [t["price"] for t in trades] == [3000.0]


def test_exchange_requires_signature_nonce_and_action(fake, client):
    wire = {"a": 1, "b": True, "p": "3030", "s": "0.1", "r": False, "t": {"limit": {"tif": "Ioc"}}}
    action = {"type": "order", "orders": [wire], "grouping": "na"}
    sig = {"r": "0x" + "1" * 64, "s": "0x" + "2" * 64, "v": 27}
    for body in ({"action": action, "nonce": 1}, {"action": action, "signature": sig},
                 {"action": action, "nonce": 1, "signature": {"r": sig["r"], "s": sig["s"]}},
                 {"nonce": 1, "signature": sig},
                 {"action": {**action, "orders": [{**wire, "c": "not-a-cloid"}]}, "nonce": 1, "signature": sig}):
        status, ctype, text = post(fake, "/exchange", body)
        assert (status, text) == (422, MSG_DESERIALIZE) and ctype.startswith("text/plain")
    assert fake.fills() == [] and fake.orders() == []
    status, _, text = post(fake, "/exchange", {"action": action, "nonce": 1, "signature": sig})
    assert status == 200 and json.loads(text)["response"]["data"]["statuses"][0]["filled"]["totalSz"] == "0.1"
    assert [r.signed for r in fake.requests("/exchange")] == [False, True, False, True, True, True]
    assert all("signature" not in r.body for r in fake.requests("/exchange"))


def test_unknown_requests_and_other_users(fake, client):
    status, _, text = post(fake, "/info", {"type": "l2Book", "coin": "BTC"})
    assert (status, text) == (422, MSG_DESERIALIZE)
    assert post(fake, "/info", {"type": "orderStatus", "user": WALLET, "oid": 123})[2] == '{"status":"unknownOid"}'
    assert post(fake, "/info", {"type": "frontendOpenOrders", "user": "nobody"})[0] == 422
    assert [r.kind for r in fake.unhandled] == ["l2Book"]
    with pytest.raises(ccxt.OrderNotFound):
        client.fetch_order("123", BTC)
    assert client.fetch_balance({"user": OTHER_USER})["USDC"]["total"] == 0.0


def test_the_project_hooks_send_neither_builder_approval_nor_referrer(fake, client):
    client.fetch_balance()
    client.create_order(BTC, "market", "buy", 0.01, 60000, {"clientOrderId": cloid(14)})
    assert fake.actions("approveBuilderFee") == [] and fake.actions("setReferrer") == []
    assert all("builder" not in a for a in fake.actions("order"))


def test_the_project_adapter_class_sends_neither():
    from brokers.ccxt_exchange import HYPERLIQUID_OPTIONS, _hyperliquid_class

    with FakeHyperliquid(WALLET) as fake:
        client = make_client(fake, cls=_hyperliquid_class(), options=HYPERLIQUID_OPTIONS)
        client.load_markets()
        client.create_order(BTC, "market", "buy", 0.01, 60000, {"clientOrderId": cloid(15)})
        assert [r.kind for r in fake.requests("/exchange")] == ["order"]
        assert "builder" not in fake.actions("order")[0]


@pytest.mark.parametrize("options, expected_kinds, builder", [
    ({}, ["approveBuilderFee", "setReferrer", "order"], {"f": 10}),  # ccxt's defaults
    ({"builderFee": False, "refSet": True}, ["approveBuilderFee", "order"], {"f": 0}),  # still approves, at 0%
    ({"builderFee": False, "approvedBuilderFee": True, "refSet": True}, ["order"], {"f": 0}),  # builder attached
])
def test_plain_ccxt_options_alone_do_not_switch_the_builder_off(options, expected_kinds, builder):
    """Documents ccxt 4.5.90: no combination of options avoids both the approval and the builder."""
    with FakeHyperliquid(WALLET) as fake:
        client = make_client(fake, cls=ccxt.hyperliquid, options=options)
        client.load_markets()
        client.create_order(BTC, "market", "buy", 0.01, 60000, {"clientOrderId": cloid(16)})
        assert [r.kind for r in fake.requests("/exchange")] == expected_kinds
        order_action = fake.actions("order")[0]
        assert order_action["builder"]["f"] == builder["f"]
        if "approveBuilderFee" in expected_kinds:
            assert fake.actions("approveBuilderFee")[0]["maxFeeRate"] == ("0%" if options else "0.01%")
        assert fake.foreign_urls == []


def test_refused_builder_approval_and_referrer_are_recorded():
    with FakeHyperliquid(WALLET, refuse_user_actions=True) as fake:
        client = make_client(fake, cls=ccxt.hyperliquid, options={})
        client.load_markets()  # ccxt swallows both refusals
        assert [r.outcome.startswith("err:") for r in fake.requests("/exchange")] == [True, True]
        assert client.options["builderFee"] is False
