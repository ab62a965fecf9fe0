"""Drive tests/fakes/fake_binance.py with the real ``ccxt.binanceusdm`` over loopback.

No real exchange is contacted: every exchange object is pointed at the fake's
127.0.0.1 URL with ``FakeBinanceUSDM.point_ccxt``, every ccxt API URL is checked
to be loopback before use, and a guard refuses (and records) any request to
another host; each test fails if one was attempted.

The exception classes asserted here are what ccxt (pinned: ccxt==4.5.90)
really raises for Binance's answers.
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
from urllib.parse import urlencode, urlsplit

import ccxt  # a missing package fails the suite, never skips it
import pytest

from tests.fakes.fake_binance import FakeBinanceUSDM, NonLoopbackRequest

API_KEY = "fake-api-key-7f3a9c"
SECRET = "fake-api-secret-51d0e2b4"
BTC = "BTC/USDT:USDT"
ETH = "ETH/USDT:USDT"
SOL = "SOL/USDT:USDT"


def _assert_all_loopback(exchange, fake: FakeBinanceUSDM) -> None:
    """Every URL ccxt could build a request from must point at the fake."""
    api_urls = exchange.urls["api"]
    for key, url in api_urls.items():
        assert url.startswith(fake.base_url + "/"), f"urls['api'][{key!r}] = {url!r} is not the fake"
    for section in exchange.api:  # every implicit-API section ccxt defines for this exchange
        assert section in api_urls, f"API section {section!r} has no URL"
    for extra in ("test", "demo"):
        for key, url in exchange.urls.get(extra, {}).items():
            assert urlsplit(url).hostname == "127.0.0.1", f"urls[{extra!r}][{key!r}] = {url!r}"


def make_exchange(fake: FakeBinanceUSDM, *, api_key: str = API_KEY, secret: str = SECRET, **point_kwargs):
    exchange = ccxt.binanceusdm({
        "apiKey": api_key,
        "secret": secret,
        "enableRateLimit": False,
        "timeout": 2000,
    })
    fake.point_ccxt(exchange, **point_kwargs)
    _assert_all_loopback(exchange, fake)
    return exchange


@pytest.fixture
def fake():
    with FakeBinanceUSDM(API_KEY, SECRET, balances={"USDT": "10000"}) as server:
        yield server
        assert server.foreign_urls == [], f"ccxt tried to leave loopback: {server.foreign_urls}"
        assert server.internal_errors == [], server.internal_errors


@pytest.fixture
def exchange(fake):
    ex = make_exchange(fake)
    yield ex
    assert fake.unhandled == [], f"ccxt called endpoints the fake does not serve: {fake.unhandled}"


def _position(positions, symbol):
    found = [p for p in positions if p["symbol"] == symbol]
    assert len(found) == 1, positions
    return found[0]


# ---------------------------------------------------------------------------- wiring


def test_point_ccxt_rewrites_every_api_url_and_refuses_other_hosts(fake, exchange):
    urls = exchange.urls["api"]
    expected_paths = {
        "fapiPublic": "/fapi/v1", "fapiPublicV2": "/fapi/v2", "fapiPublicV3": "/fapi/v3",
        "fapiPrivate": "/fapi/v1", "fapiPrivateV2": "/fapi/v2", "fapiPrivateV3": "/fapi/v3",
        "fapiData": "/futures/data", "sapi": "/sapi/v1", "public": "/api/v3", "private": "/api/v3",
    }
    for key, path in expected_paths.items():
        assert urls[key] == fake.base_url + path
    assert not any("binance" in url for url in urls.values())

    with pytest.raises(NonLoopbackRequest):
        exchange.fetch("https://fapi.binance.com/fapi/v1/time")
    assert fake.foreign_urls == ["https://fapi.binance.com/fapi/v1/time"]
    assert fake.requests() == []  # refused before any socket was opened
    fake.foreign_urls.clear()


# ---------------------------------------------------------------------------- markets and time


def test_load_markets_reflects_the_advertised_filters(fake, exchange):
    markets = exchange.load_markets()

    btc = markets[BTC]
    assert (btc["id"], btc["base"], btc["quote"], btc["settle"]) == ("BTCUSDT", "BTC", "USDT", "USDT")
    assert btc["swap"] and btc["linear"] and btc["contract"] and not btc["spot"]
    assert btc["contractSize"] == 1.0
    assert btc["precision"]["amount"] == 0.001
    assert btc["precision"]["price"] == 0.1
    assert btc["limits"]["amount"] == {"min": 0.001, "max": 1000.0}
    assert btc["limits"]["market"] == {"min": 0.001, "max": 120.0}
    assert btc["limits"]["price"] == {"min": 556.8, "max": 4529764.0}
    assert btc["limits"]["cost"]["min"] == 100.0
    assert markets[ETH]["limits"]["cost"]["min"] == 20.0
    assert markets[SOL]["precision"] == {"amount": 1.0, "price": 0.01, "base": 1e-08, "quote": 1e-08}

    assert exchange.amount_to_precision(BTC, 0.0129) == "0.012"  # truncated to the 0.001 step
    assert exchange.amount_to_precision(SOL, 2.9) == "2"
    assert exchange.price_to_precision(BTC, 60000.1234) == "60000.1"

    assert len(fake.requests("/fapi/v1/exchangeInfo")) == 1
    assert fake.requests("/sapi/v1/capital/config/getall")[0].signed  # ccxt's fetch_currencies, signed


def test_fetch_time_is_the_fake_servers_clock(fake, exchange):
    fake.clock_offset_ms = 3_600_000
    local_ms = int(time.time() * 1000)
    server_ms = exchange.fetch_time()
    assert abs(server_ms - (local_ms + 3_600_000)) < 2_000


# ---------------------------------------------------------------------------- account


def test_fetch_balance_and_positions_reflect_the_seeded_account(fake, exchange):
    fake.seed_position("BTCUSDT", "0.1", "50000")   # mark 60000: +1000 uPnL, 6000 notional
    fake.seed_position("ETHUSDT", "-1.5", "3200")   # mark 3000: +300 uPnL, 4500 notional
    # leverage 20: initial margin 300 + 225; margin balance 10000 + 1300

    balance = exchange.fetch_balance()
    usdt = balance["USDT"]
    assert (usdt["free"], usdt["used"], usdt["total"]) == (10775.0, 525.0, 11300.0)
    assert (balance["free"]["USDT"], balance["used"]["USDT"], balance["total"]["USDT"]) == (10775.0, 525.0, 11300.0)
    assert balance["info"]["totalWalletBalance"] == "10000.00000000"
    assert balance["info"]["totalUnrealizedProfit"] == "1300.00000000"
    assert "BNB" not in balance  # listed with updateTime 0, which ccxt skips as Binance intends

    positions = exchange.fetch_positions()
    assert sorted(p["symbol"] for p in positions) == [BTC, ETH]

    btc = _position(positions, BTC)
    assert btc["side"] == "long"
    assert btc["contracts"] == 0.1
    assert btc["entryPrice"] == 50000.0
    assert btc["markPrice"] == 60000.0
    assert btc["notional"] == 6000.0
    assert btc["unrealizedPnl"] == 1000.0
    assert btc["initialMargin"] == 300.0
    assert btc["maintenanceMargin"] == 24.0            # 0.4% of 6000, first BTC bracket
    assert btc["maintenanceMarginPercentage"] == 0.004
    assert btc["marginMode"] == "cross"
    assert btc["hedged"] is False
    assert btc["liquidationPrice"] is None             # so well funded it has none ("0")

    eth = _position(positions, ETH)
    assert eth["side"] == "short"
    assert eth["contracts"] == 1.5
    assert eth["entryPrice"] == 3200.0
    assert eth["notional"] == 4500.0
    assert eth["unrealizedPnl"] == 300.0
    assert eth["maintenanceMargin"] == 22.5            # 0.5% of 4500, first ETH bracket
    assert eth["liquidationPrice"] == float(fake.position("ETHUSDT")["liquidationPrice"])
    assert eth["liquidationPrice"] > 3200              # a short is liquidated above its entry


def test_set_leverage_and_margin_mode_reach_the_fake(fake, exchange):
    assert fake.leverage("ETHUSDT") == 20
    answer = exchange.set_leverage(7, ETH)
    assert answer["leverage"] == 7 and answer["symbol"] == "ETHUSDT"
    assert fake.leverage("ETHUSDT") == 7
    sent = fake.requests("/fapi/v1/leverage", "POST")[-1]
    assert sent.params["symbol"] == "ETHUSDT" and sent.params["leverage"] == "7" and sent.signed

    with pytest.raises(ccxt.BadRequest, match="-4028"):  # SOL tops out at 75x
        exchange.set_leverage(100, SOL)
    assert fake.leverage("SOLUSDT") == 20

    assert fake.margin_type("ETHUSDT") == "CROSSED"
    exchange.set_margin_mode("isolated", ETH)
    assert fake.margin_type("ETHUSDT") == "ISOLATED"
    with pytest.raises(ccxt.MarginModeAlreadySet):  # -4046; ccxt 4.5.90 throws it by default
        exchange.set_margin_mode("isolated", ETH)

    fake.seed_position("BTCUSDT", "0.1", "50000")
    with pytest.raises(ccxt.OperationRejected, match="-4048"):
        exchange.set_margin_mode("isolated", BTC)
    assert fake.margin_type("BTCUSDT") == "CROSSED"

    fake.seed_position("ETHUSDT", "2", "3000")  # opened under the new isolated mode
    eth = _position(exchange.fetch_positions([ETH]), ETH)
    assert eth["marginMode"] == "isolated"
    assert eth["initialMargin"] == pytest.approx(6000 / 7, abs=1e-6)


# ---------------------------------------------------------------------------- orders


def test_market_order_fills_and_a_resubmitted_client_order_id_is_not_doubled(fake, exchange):
    order = exchange.create_order(BTC, "market", "buy", 0.01, params={"clientOrderId": "intent-42-leg-1"})
    assert order["status"] == "closed"
    assert order["clientOrderId"] == "intent-42-leg-1"
    assert (order["filled"], order["remaining"], order["average"], order["cost"]) == (0.01, 0.0, 60000.0, 600.0)
    assert fake.requests("/fapi/v1/order", "POST")[-1].params["newClientOrderId"] == "intent-42-leg-1"
    position = _position(exchange.fetch_positions(), BTC)
    assert (position["side"], position["contracts"], position["entryPrice"]) == ("long", 0.01, 60000.0)
    assert fake.balance("USDT") == Decimal("9999.7")  # 0.05% taker fee on 600

    with pytest.raises(ccxt.InvalidOrder) as raised:
        exchange.create_order(BTC, "market", "buy", 0.01, params={"clientOrderId": "intent-42-leg-1"})
    assert type(raised.value) is ccxt.InvalidOrder  # not DuplicateOrderId: ccxt maps -4116 to InvalidOrder
    assert '"code":-4116' in str(raised.value) and "ClientOrderId is duplicated." in str(raised.value)

    assert _position(exchange.fetch_positions(), BTC)["contracts"] == 0.01  # not doubled
    assert fake.balance("USDT") == Decimal("9999.7")
    assert len(fake.orders("BTCUSDT")) == 1
    again = exchange.fetch_order(None, BTC, params={"clientOrderId": "intent-42-leg-1"})
    assert again["id"] == order["id"] and again["status"] == "closed"


def test_order_executed_but_answer_lost_is_not_doubled_on_retry(fake, exchange):
    exchange.load_markets()
    fake.fail_next(1, status=503, path="/fapi/v1/order", method="POST", process=True)
    with pytest.raises(ccxt.OperationFailed) as raised:
        exchange.create_order(ETH, "market", "sell", 0.5, params={"clientOrderId": "intent-7"})
    assert type(raised.value) is ccxt.OperationFailed  # 503 + code -1001: NOT a ccxt.NetworkError
    assert not isinstance(raised.value, ccxt.NetworkError)
    assert fake.position("ETHUSDT")["positionAmt"] == "-0.500"  # it did execute

    with pytest.raises(ccxt.InvalidOrder, match="-4116"):
        exchange.create_order(ETH, "market", "sell", 0.5, params={"clientOrderId": "intent-7"})
    found = exchange.fetch_order(None, ETH, params={"clientOrderId": "intent-7"})
    assert (found["status"], found["filled"], found["side"]) == ("closed", 0.5, "sell")
    assert fake.position("ETHUSDT")["positionAmt"] == "-0.500"
    assert len(fake.trades("ETHUSDT")) == 1


def test_concurrent_submissions_of_one_client_order_id_fill_once(fake):
    exchanges = [make_exchange(fake) for _ in range(6)]
    for ex in exchanges:
        ex.load_markets()
    barrier = threading.Barrier(len(exchanges))
    outcomes: list[str] = []
    lock = threading.Lock()

    def submit(ex):
        barrier.wait(timeout=5)
        try:
            ex.create_order(SOL, "market", "buy", 3, params={"clientOrderId": "race-1"})
            outcome = "filled"
        except ccxt.InvalidOrder as err:
            outcome = "duplicate" if "-4116" in str(err) else repr(err)
        except Exception as err:  # reported through the assertion below
            outcome = repr(err)
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=submit, args=(ex,)) for ex in exchanges]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert sorted(outcomes) == ["duplicate"] * 5 + ["filled"]
    assert fake.position("SOLUSDT")["positionAmt"] == "3"
    assert len(fake.trades("SOLUSDT")) == 1


def test_limit_order_rests_until_cancelled(fake, exchange):
    order = exchange.create_order(BTC, "limit", "buy", 0.01, 58000, params={"clientOrderId": "rest-1"})
    assert (order["status"], order["filled"], order["price"]) == ("open", 0.0, 58000.0)
    sent = fake.requests("/fapi/v1/order", "POST")[-1].params
    assert (sent["type"], sent["timeInForce"], sent["price"], sent["quantity"]) == ("LIMIT", "GTC", "58000", "0.01")

    open_orders = exchange.fetch_open_orders(BTC)
    assert [o["id"] for o in open_orders] == [order["id"]]
    assert open_orders[0]["clientOrderId"] == "rest-1"
    assert exchange.fetch_positions([BTC]) == []  # nothing filled: no position
    assert exchange.fetch_balance()["USDT"]["used"] == 29.0  # open-order margin: 580 / 20

    cancelled = exchange.cancel_order(order["id"], BTC)
    assert cancelled["status"] == "canceled"
    assert exchange.fetch_open_orders(BTC) == []
    assert exchange.fetch_order(order["id"], BTC)["status"] == "canceled"
    assert fake.position("BTCUSDT")["positionAmt"] == "0.000"
    assert fake.balance("USDT") == Decimal("10000")
    with pytest.raises(ccxt.OrderNotFound, match="-2011"):
        exchange.cancel_order(order["id"], BTC)


def test_resting_limit_order_fills_when_the_market_trades_through(fake, exchange):
    sell = exchange.create_order(ETH, "limit", "sell", 1, 3050)
    buy = exchange.create_order(ETH, "limit", "buy", 1, 2900)
    assert fake.fill_resting("ETHUSDT", "3060")[0]["orderId"] == int(sell["id"])

    filled = exchange.fetch_order(sell["id"], ETH)
    assert (filled["status"], filled["filled"], filled["average"]) == ("closed", 1.0, 3050.0)
    assert exchange.fetch_order(buy["id"], ETH)["status"] == "open"
    position = _position(exchange.fetch_positions([ETH]), ETH)
    assert (position["side"], position["contracts"], position["entryPrice"]) == ("short", 1.0, 3050.0)
    assert fake.balance("USDT") == Decimal("10000") - Decimal("0.61")  # 0.02% maker fee on 3050
    assert exchange.fetch_my_trades(ETH)[0]["takerOrMaker"] == "maker"


def test_below_minimum_notional_is_rejected_and_nothing_changes(fake, exchange):
    exchange.load_markets()
    with pytest.raises(ccxt.InvalidOrder) as raised:  # 0.001 BTC * 60000 = 60 < 100
        exchange.create_order(BTC, "market", "buy", 0.001)
    assert type(raised.value) is ccxt.InvalidOrder
    assert '"code":-4164' in str(raised.value)
    with pytest.raises(ccxt.InvalidOrder, match="-4164"):  # 0.005 ETH * 3000 = 15 < 20
        exchange.create_order(ETH, "limit", "buy", 0.005, 3000)

    # a quantity finer than the step: ccxt truncates it, the raw endpoint refuses it
    assert exchange.amount_to_precision(BTC, 0.0105) == "0.01"
    with pytest.raises(ccxt.BadRequest, match="-1111"):
        exchange.fapiPrivatePostOrder({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.0105"})

    assert fake.orders() == []
    assert fake.trades() == []
    assert fake.position("BTCUSDT")["positionAmt"] == "0.000"
    assert fake.position("ETHUSDT")["positionAmt"] == "0.000"
    assert fake.balance("USDT") == Decimal("10000")
    assert [r.code for r in fake.requests("/fapi/v1/order", "POST")] == [-4164, -4164, -1111]


# ---------------------------------------------------------------------------- authentication


def test_wrong_secret_or_unknown_key_is_authentication_error(fake):
    wrong_secret = make_exchange(fake, secret="not-the-secret")
    with pytest.raises(ccxt.AuthenticationError, match="-1022"):
        wrong_secret.fetch_balance()
    rejected = fake.requests()[-1]
    assert (rejected.status, rejected.code) == (400, -1022)

    unknown_key = make_exchange(fake, api_key="someone-elses-key")
    with pytest.raises(ccxt.AuthenticationError, match="-2015"):
        unknown_key.fetch_balance()
    assert (fake.requests()[-1].status, fake.requests()[-1].code) == (401, -2015)
    assert fake.requests("/fapi/v3/account") == []  # never got past the markets' signed calls

    recorded = json.dumps([r.__dict__ for r in fake.requests()])
    assert SECRET not in recorded and API_KEY not in recorded and "signature" not in recorded


def _raw(fake, method, path, query="", body="", api_key=API_KEY):
    request = urllib.request.Request(fake.base_url + path + ("?" + query if query else ""),
                                     data=body.encode() if body else None, method=method,
                                     headers={"X-MBX-APIKEY": api_key,
                                              "Content-Type": "application/x-www-form-urlencoded"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=2) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_signature_is_over_query_string_then_body_like_binance(fake):
    def sign(text, secret=SECRET):
        return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()

    now = int(time.time() * 1000)
    query = "symbol=ETHUSDT&leverage=5"
    body = urlencode({"timestamp": now, "recvWindow": 5000})
    # Binance signs totalParams = query string + request body, concatenated as sent
    status, answer = _raw(fake, "POST", "/fapi/v1/leverage", query, body + "&signature=" + sign(query + body))
    assert (status, answer["leverage"]) == (200, 5)
    assert fake.leverage("ETHUSDT") == 5

    tampered = "symbol=ETHUSDT&leverage=9"
    status, answer = _raw(fake, "POST", "/fapi/v1/leverage", tampered, body + "&signature=" + sign(query + body))
    assert (status, answer) == (400, {"code": -1022, "msg": "Signature for this request is not valid."})
    assert fake.leverage("ETHUSDT") == 5

    stale = f"symbol=ETHUSDT&leverage=9&timestamp={now - 10_000}&recvWindow=5000"
    status, answer = _raw(fake, "POST", "/fapi/v1/leverage", "", stale + "&signature=" + sign(stale))
    assert (status, answer["code"]) == (400, -1021)
    assert fake.leverage("ETHUSDT") == 5


# ---------------------------------------------------------------------------- failures


def test_rate_limit_and_outages_map_to_ccxt_network_errors(fake, exchange):
    exchange.load_markets()
    fake.fail_next(1, status=429)
    with pytest.raises(ccxt.DDoSProtection) as raised:
        exchange.fetch_balance()
    # ccxt's binance raises DDoSProtection for any 429; in ccxt 4.5.90 RateLimitExceeded is
    # not a subclass of DDoSProtection, so this is the class to catch.
    assert type(raised.value) is ccxt.DDoSProtection
    assert not isinstance(raised.value, ccxt.RateLimitExceeded)
    assert isinstance(raised.value, ccxt.NetworkError)
    assert fake.requests()[-1].status == 429
    assert exchange.last_response_headers["Retry-After"] == "1"
    assert exchange.fetch_balance()["USDT"]["total"] == 10000.0  # only the next request failed

    fake.down("refuse")
    with pytest.raises(ccxt.NetworkError):
        exchange.fetch_balance()
    fake.up()
    assert exchange.fetch_balance()["USDT"]["free"] == 10000.0

    fake.down("503")
    with pytest.raises(ccxt.OperationFailed):
        exchange.fetch_positions()
    fake.up()

    exchange.timeout = 300
    fake.delay_next(1, seconds=1.0)  # held longer than the client waits
    with pytest.raises(ccxt.RequestTimeout):
        exchange.fetch_balance()


def test_without_faithful_errors_ccxt_maps_binance_codes_by_host_name(fake):
    # ccxt picks its "linear" error table from the URL's host (fapi.binance.com); on a
    # loopback URL it falls back to the common table, where -4116 is unknown.
    exchange = make_exchange(fake, faithful_errors=False)
    exchange.create_order(BTC, "market", "buy", 0.01, params={"clientOrderId": "dup-1"})
    with pytest.raises(ccxt.ExchangeError) as raised:
        exchange.create_order(BTC, "market", "buy", 0.01, params={"clientOrderId": "dup-1"})
    assert type(raised.value) is ccxt.ExchangeError
    assert fake.position("BTCUSDT")["positionAmt"] == "0.010"


def test_async_ccxt_is_pointed_and_guarded_too(fake):
    import asyncio

    import ccxt.async_support as async_support

    async def scenario():
        exchange = async_support.binanceusdm(
            {"apiKey": API_KEY, "secret": SECRET, "enableRateLimit": False, "timeout": 2000})
        fake.point_ccxt(exchange)
        try:
            _assert_all_loopback(exchange, fake)
            order = await exchange.create_order(BTC, "market", "sell", 0.002, params={"clientOrderId": "async-1"})
            with pytest.raises(NonLoopbackRequest):
                await exchange.fetch("https://fapi.binance.com/fapi/v1/time")
            return order
        finally:
            await exchange.close()

    order = asyncio.run(scenario())
    assert (order["status"], order["filled"], order["clientOrderId"]) == ("closed", 0.002, "async-1")
    assert fake.position("BTCUSDT")["positionAmt"] == "-0.002"
    assert fake.foreign_urls == ["https://fapi.binance.com/fapi/v1/time"]
    fake.foreign_urls.clear()
