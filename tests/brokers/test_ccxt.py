"""The ccxt broker: the real ``ccxt.binanceusdm`` against the fake Binance USD-M server over loopback,
and the options set on ``ccxt.hyperliquid``."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from brokers.base import (
    DuplicateOrder,
    NotConnected,
    OrderRejected,
    OrderRequest,
    RateLimited,
    UnknownInstrument,
)
from brokers.ccxt_exchange import HYPERLIQUID_OPTIONS, venue_client_id
from brokers.config import CcxtAccount
from brokers.factory import build_broker
from bus import paths
from tests.fakes.commander_scenario import resubmit, run_scenario, write_scenario
from tests.fakes.fake_binance import FakeBinanceUSDM

KEY, SECRET = "bn-key-4c1e9a7d", "bn-secret-0f33b8e2a9"


def now():
    return datetime.now(timezone.utc)


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setenv("T_BN_KEY", KEY)
    monkeypatch.setenv("T_BN_SECRET", SECRET)
    with FakeBinanceUSDM(KEY, SECRET, balances={"USDT": "10000"}) as server:
        yield server
        assert server.foreign_urls == [] and server.internal_errors == []


def make(fake, **kw):
    cfg = CcxtAccount(exchange="binanceusdm", account="bn-test", api_key_env="T_BN_KEY", secret_env="T_BN_SECRET",
                      leverage={"BTC-USDT-PERP": 5, "ETH-USDT-PERP": 3}, retries=1, enable_rate_limit=False,
                      timeout_ms=1500, **kw)
    broker = build_broker(cfg, "paper", instruments={})
    fake.point_ccxt(broker.exchange)
    broker.retry_wait = 0.01
    return broker


@pytest.fixture
def broker(fake):
    return make(fake)


def test_snapshot_field_by_field(fake, broker):
    fake.seed_position("BTCUSDT", "0.1", entry_price="50000")
    fake.seed_position("ETHUSDT", "-1.5", entry_price="3200")
    broker.place_order(OrderRequest("rest-1", "ETH-USDT-PERP", "BUY", 0.01, order_type="LMT", limit_price=2900.0),
                       now())
    t = now()
    snap = broker.portfolio(t)
    assert (snap.broker, snap.account, snap.mode, snap.base_currency, snap.as_of) == (
        "binanceusdm", "bn-test", "paper", "USDT", t)
    # wallet 10000, unrealized +1000 (BTC 0.1 x (60000-50000)) +300 (ETH short 1.5 x (3200-3000))
    assert snap.cash == pytest.approx(10_000.0)
    assert snap.net_liquidation == pytest.approx(11_300.0)
    acct = fake._account_numbers()
    assert snap.available_funds == pytest.approx(float(acct["available"]))
    held = {h.symbol: h for h in snap.holdings}
    btc, eth = held["BTC-USDT-PERP"], held["ETH-USDT-PERP"]
    assert (btc.quantity, btc.avg_cost, btc.market_price, btc.market_value) == (0.1, 50_000.0, 60_000.0, 6_000.0)
    assert (eth.quantity, eth.avg_cost, eth.market_price, eth.market_value) == (-1.5, 3_200.0, 3_000.0, -4_500.0)
    assert (btc.secType, btc.exchange, btc.currency) == ("PERP", "BINANCEUSDM", "USDT")
    [o] = snap.open_orders
    assert (o.client_order_id, o.symbol, o.action, o.totalQuantity, o.orderType, o.lmtPrice) == (
        "rest-1", "ETH-USDT-PERP", "BUY", 0.01, "LMT", 2900.0)
    assert o.orderId == str(fake.orders(open_only=True)[0]["orderId"])


def test_specs_from_markets_loaded_once(fake, broker):
    specs = broker.instrument_specs(["BTC-USDT-PERP", "ETH-USDT-PERP"])
    btc = specs["BTC-USDT-PERP"]
    assert (btc.lot_size, btc.tick_size, btc.min_quantity, btc.min_notional, btc.multiplier, btc.max_leverage) == (
        0.001, 0.1, 0.001, 100.0, 1.0, 5.0)
    assert specs["ETH-USDT-PERP"].max_leverage == 3.0
    broker.quotes(["BTC-USDT-PERP"], now())
    broker.portfolio(now())
    assert len(fake.requests("/fapi/v1/exchangeInfo")) == 1
    with pytest.raises(UnknownInstrument, match="'DOGE-USDT-PERP'"):
        broker.instrument_specs(["DOGE-USDT-PERP"])
    with pytest.raises(UnknownInstrument, match="'SPY'"):
        broker.quotes(["SPY"], now())


def test_orders_leverage_margin_rounding_and_client_ids(fake, broker):
    t = now()
    r = broker.place_order(OrderRequest("c-1", "BTC-USDT-PERP", "BUY", 0.01), t)
    assert (r.status, r.filled_quantity, r.fill_price) == ("Filled", 0.01, 60_000.0)
    assert r.commission == pytest.approx(0.3)  # 0.05 % taker of 600
    sent = fake.requests("/fapi/v1/order", "POST")[-1].params
    assert sent["newClientOrderId"] == "c-1" and sent["quantity"] == "0.01"
    assert fake.leverage("BTCUSDT") == 5 and fake.margin_type("BTCUSDT") == "CROSSED"
    lmt = broker.place_order(OrderRequest("c-2", "BTC-USDT-PERP", "SELL", 0.002, order_type="LMT",
                                          limit_offset_bps=-25.0), t)
    assert (lmt.status, lmt.limit_price) == ("Submitted", 60_150.0)
    assert fake.requests("/fapi/v1/order", "POST")[-1].params["price"] == "60150"
    with pytest.raises(DuplicateOrder):
        broker.place_order(OrderRequest("c-1", "BTC-USDT-PERP", "BUY", 0.01), t)
    assert Decimal(fake.position("BTCUSDT")["positionAmt"]) == Decimal("0.010")
    with pytest.raises(OrderRejected, match="not a multiple of the step"):
        broker.place_order(OrderRequest("c-3", "BTC-USDT-PERP", "BUY", 0.0105), t)
    with pytest.raises(OrderRejected, match="-4164"):  # 0.001 x 60000 = 60 < 100 minimum notional
        broker.place_order(OrderRequest("c-4", "BTC-USDT-PERP", "BUY", 0.001), t)
    # a second broker (a later run) finds orders by client order id alone
    other = make(fake)
    assert other.order_status("c-2").status == "Submitted"
    assert other.order_status("c-1").status == "Filled"
    assert other.cancel_order("c-2").status == "Cancelled"
    assert fake.orders(open_only=True) == []
    isolated = make(fake, margin_mode="isolated")
    isolated.place_order(OrderRequest("c-5", "ETH-USDT-PERP", "BUY", 0.01), t)
    assert fake.margin_type("ETHUSDT") == "ISOLATED" and fake.leverage("ETHUSDT") == 3


def test_lost_answer_is_recorded_as_placed_not_doubled(fake, broker):
    broker.instrument_specs(["ETH-USDT-PERP"])
    fake.fail_next(1, status=503, path="/fapi/v1/order", method="POST", process=True)
    r = broker.place_order(OrderRequest("lost-1", "ETH-USDT-PERP", "SELL", 0.5), now())
    assert (r.status, r.filled_quantity) == ("Filled", 0.5)
    assert fake.position("ETHUSDT")["positionAmt"] == "-0.500" and len(fake.trades("ETHUSDT")) == 1


def test_commander_scenario_partial_success_and_no_duplicates(fake, broker, store):
    t = now()
    write_scenario(store, t, {"BTC-USDT-PERP": 0.02, "ETH-USDT-PERP": -0.5, "SOL-USDT-PERP": 4},
                   sec_type="PERP", exchange="BINANCEUSDM", currency="USDT")
    # the venue refuses the first order placed for lack of margin (Binance -2019)
    fake.fail_next(1, status=400, body={"code": -2019, "msg": "Margin is insufficient."}, path="/fapi/v1/order",
                   method="POST")
    ex = run_scenario(store, broker, t)
    assert ex.status == "partial_success", ex.summary
    rejected = [o for o in ex.orders_placed if o.status == "Rejected"]
    filled = [o for o in ex.orders_placed if o.status == "Filled"]
    assert len(rejected) == 1 and rejected[0].error.startswith("InsufficientFunds") and len(filled) == 2
    for o in filled:
        amt = Decimal(fake.position(o.symbol.replace("-PERP", "").replace("-", ""))["positionAmt"])
        assert float(amt) == (o.totalQuantity if o.action == "BUY" else -o.totalQuantity)
        assert o.commission > 0
    n_trades = len(fake.trades())
    again = resubmit(broker, ex, t)
    # Recognised, not doubled: recorded with the venue's own status.
    assert all(o.status == "Filled" and o.error.startswith("Duplicate: already at the venue")
               for o in again if o.symbol in {f.symbol for f in filled})
    assert len(fake.trades()) == n_trades + 1  # only the order refused the first time goes through now


def test_broker_down_or_slow_fails_closed(fake, broker, store):
    t = now()
    write_scenario(store, t, {"BTC-USDT-PERP": 0.01}, sec_type="PERP", exchange="BINANCEUSDM", currency="USDT")
    fake.down("refuse")
    ex = run_scenario(store, broker, t)
    assert ex.status == "skipped" and ex.orders_placed == [] and "NotConnected" in ex.reason
    assert store.get(paths.portfolio("paper")) is None
    fake.up()
    broker.instrument_specs(["BTC-USDT-PERP"])
    fake.delay_next(10, seconds=2.5)  # every read held longer than the 1.5 s timeout, retry included
    ex = run_scenario(store, broker, t, execution_id="ex-slow")
    assert ex.status == "skipped" and "RequestTimeout" in ex.reason
    assert fake.orders() == []


def test_rate_limit_maps_to_rate_limited(fake, broker):
    broker.instrument_specs(["BTC-USDT-PERP"])
    fake.fail_next(1, status=429)
    with pytest.raises(RateLimited):
        broker.portfolio(now())
    fake.fail_next(1, status=503)  # a 5xx on a read is retried once
    assert broker.portfolio(now()).net_liquidation == 10_000.0
    fake.down("503")
    with pytest.raises(NotConnected):
        broker.portfolio(now())


def test_hyperliquid_builder_fee_and_referrer_are_off_and_market_orders_get_a_price(monkeypatch):
    monkeypatch.setenv("T_HL_ADDR", "0x" + "11" * 20)
    monkeypatch.setenv("T_HL_KEY", "0x" + "5a" * 32)
    cfg = CcxtAccount(exchange="hyperliquid", wallet_address_env="T_HL_ADDR", private_key_env="T_HL_KEY",
                      market_slippage=0.02)
    b = build_broker(cfg, "paper", instruments={})
    ex = b.exchange
    for k, v in HYPERLIQUID_OPTIONS.items():
        assert ex.options[k] == v
    assert ex.options["defaultSlippage"] == 0.02
    sent = []
    ex.fetch = lambda *a, **kw: sent.append(a) or {"status": "ok", "response": {"type": "default"}}
    assert ex.handle_builder_fee_approval() is True and ex.set_ref() is True
    assert sent == []  # neither approveBuilderFee nor setReferrer was signed and sent
    ex.set_markets([{"id": "0", "symbol": "BTC/USDC:USDC", "base": "BTC", "quote": "USDC", "settle": "USDC",
                     "baseId": "0", "quoteId": "USDC", "settleId": "USDC", "type": "swap", "swap": True,
                     "spot": False, "contract": True, "linear": True, "active": True, "contractSize": 1.0,
                     "precision": {"amount": 0.00001, "price": 1.0}, "limits": {"amount": {"min": None},
                                                                                  "cost": {"min": 10.0}},
                     "info": {"szDecimals": "5", "maxLeverage": "40"}, "baseName": "BTC"}])
    req = ex.create_orders_request([{"symbol": "BTC/USDC:USDC", "type": "market", "side": "buy", "amount": 0.001,
                                     "price": 60_000.0,
                                     "params": {"clientOrderId": venue_client_id("hyperliquid", "ex-1-BTC")}}])
    action = req["action"]
    assert "builder" not in action  # no builder attached, not even at 0 %
    [order] = action["orders"]
    assert order["p"] == "61200" and order["t"] == {"limit": {"tif": "Ioc"}}  # 60000 x 1.02: the worst price
    assert order["c"] == venue_client_id("hyperliquid", "ex-1-BTC") and len(order["c"]) == 34
    assert json.dumps(req).count(str(ex.privateKey)) == 0


def test_hyperliquid_market_order_is_sent_with_the_quote_and_slippage(monkeypatch):
    import ccxt

    monkeypatch.setenv("T_HL_ADDR", "0x" + "22" * 20)
    monkeypatch.setenv("T_HL_KEY", "0x" + "6b" * 32)
    cfg = CcxtAccount(exchange="hyperliquid", wallet_address_env="T_HL_ADDR", private_key_env="T_HL_KEY",
                      market_slippage=0.01, leverage={"BTC-USDC-PERP": 4})
    b = build_broker(cfg, "paper", instruments={})
    ex = b.exchange
    ex.set_markets([{"id": "0", "symbol": "BTC/USDC:USDC", "base": "BTC", "quote": "USDC", "settle": "USDC",
                     "baseId": "0", "quoteId": "USDC", "settleId": "USDC", "type": "swap", "swap": True, "spot": False,
                     "contract": True, "linear": True, "active": True, "contractSize": 1.0,
                     "precision": {"amount": 0.00001, "price": 1.0},
                     "limits": {"amount": {"min": None}, "cost": {"min": 10.0}}, "info": {}}])
    calls = {}

    def missing(*a, **kw):
        raise ccxt.OrderNotFound("none")

    ex.fetch_ticker = lambda sym, params={}: {"last": 60_000.0}
    ex.fetch_order = missing
    ex.set_leverage = lambda lev, sym, params={}: calls.setdefault("leverage", (lev, sym, params))
    answer = {"id": "1", "status": "closed", "filled": 0.001, "average": 60_010.0, "fee": {"cost": 0.02},
              "type": "market"}
    ex.create_order = lambda *a: (calls.__setitem__("order", a), answer)[1]
    r = b.place_order(OrderRequest("ex-9-BTC", "BTC-USDC-PERP", "BUY", 0.001), now())
    sym, kind, side, amount, price, params = calls["order"]
    assert (sym, kind, side, amount, price) == ("BTC/USDC:USDC", "market", "buy", 0.001, 60_000.0)
    assert params == {"clientOrderId": venue_client_id("hyperliquid", "ex-9-BTC"), "slippage": "0.01"}
    assert calls["leverage"] == (4, "BTC/USDC:USDC", {"marginMode": "cross"})
    assert (r.status, r.fill_price, r.commission) == ("Filled", 60_010.0, 0.02)
