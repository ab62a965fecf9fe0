"""The paper broker, persisted in the real emulator."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal

import pytest

from brokers.base import (
    AsOfRefused,
    DuplicateOrder,
    InsufficientFunds,
    NotConnected,
    OrderNotFound,
    OrderRejected,
    OrderRequest,
    UnknownInstrument,
)
from brokers.config import SimAccount
from brokers.sim import SimBroker
from brokers.sim_costs import CostModel
from bus.models import InstrumentSpec, TradingConfig
from pipeline.settings import Settings
from pipeline.wiring import make_broker

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
    """The paper broker filling market orders at once at the as-of close (``fill_at="close"``): the tests
    about costs, rules and time; the next-open default has its own tests below."""
    kw.setdefault("fill_at", "close")
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
    st = b.account_state()
    assert st.positions["SPY"].quantity == 6
    assert st.realized_pnl == pytest.approx((499.9 - 500.1) * 4)


def test_duplicate_client_order_id_is_refused_and_reported(store):
    b = broker(store)
    buy(b, "same", "SPY", 1)
    with pytest.raises(DuplicateOrder, match="same already used"):
        buy(b, "same", "SPY", 1)
    assert b.account_state().positions["SPY"].quantity == 1


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
    assert b.account_state().positions == {}


def test_time_cannot_run_backwards_on_one_account(store):
    b = broker(store)
    buy(b, "c1", "SPY", 1)
    with pytest.raises(AsOfRefused, match="earlier"):
        b.portfolio(datetime(2020, 1, 1, tzinfo=timezone.utc))


def test_an_account_and_order_stored_by_the_first_version_still_load(store):
    from bus import paths

    # What the first paper broker wrote: no resting orders, funding, accrual time, limit price or maker flag.
    store.set(paths.sim_account("acct"), {
        "account": "acct", "cash": 94_998.5, "starting_cash": 100_000.0, "fees_paid": 0.5, "realized_pnl": 0.0,
        "positions": {"SPY": {"quantity": 10.0, "avg_cost": 500.1}}, "order_count": 1,
        "created_at": T, "updated_at": T, "last_as_of": T})
    store.set(paths.sim_order("acct", "old-1"), {
        "orderId": "sim-1", "client_order_id": "old-1", "symbol": "SPY", "action": "BUY", "totalQuantity": 10.0,
        "orderType": "MKT", "status": "Filled", "filled_quantity": 10.0, "fill_price": 500.1, "commission": 0.5,
        "as_of": T, "placed_at": T})
    b = broker(store)
    st = b.account_state()
    assert st.open_orders == {} and st.funding_paid == 0.0 and st.accrued_to is None
    assert st.positions["SPY"].quantity == 10 and st.positions["SPY"].funding == 0.0
    old = b.order_record("old-1")
    assert old is not None and old.lmtPrice is None and old.maker is None
    assert b.order_status("old-1").fill_price == 500.1
    assert b.portfolio(T).holdings[0].quantity == 10
    assert buy(b, "new-1", "SPY", 2).orderId == "sim-2"  # numbering goes on
    st = b.account_state()
    assert st.positions["SPY"].quantity == 12 and st.order_count == 2 and st.accrued_to == T
    assert b.order_record("new-1").maker is False and b.order_record("nope") is None


# --------------------------------------------------------------------------- realism: costs, limits, margin, funding

PERP = InstrumentSpec(symbol="BTC-USDT-PERP", secType="PERP", exchange="BINANCEUSDM", currency="USDT", lot_size=0.001,
                      tick_size=0.1, min_quantity=0.001, min_notional=100, max_leverage=125)


def cents(x) -> Decimal:
    return Decimal(str(x)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def test_costs_half_spread_impact_and_tick():
    c = CostModel(taker_fee_bps=5, maker_fee_bps=2, half_spread_bps=1, impact_bps=10, impact_ref_notional=1_000_000)
    # 4 BTC at 62,500 = 250,000 notional: impact 10 x sqrt(0.25) = 5 bps, plus 1 bp half-spread
    assert c.slippage_bps(250_000) == pytest.approx(6.0)
    assert c.market_fill("BUY", 62_500.0, 4, 1.0, 0.1) == 62_537.5  # 62500 x 1.0006
    assert c.market_fill("SELL", 62_500.03, 4, 1.0, 0.1) == 62_462.5  # 62462.52 rounded down to the tick
    assert c.fee(10_000, maker=True) == pytest.approx(2.0) and c.fee(10_000, maker=False) == pytest.approx(5.0)


def test_limit_order_rests_fills_as_maker_when_crossed_and_cancels(store):
    prices = {"SPY": 500.0}
    b = SimBroker(store, "lim", lambda s, t: prices[s], SPECS, fee_bps=1.0, maker_fee_bps=0.5)
    r = b.place_order(OrderRequest("l1", "SPY", "BUY", 10, order_type="LMT", limit_offset_bps=-100), T)
    assert (r.status, r.limit_price) == ("Submitted", 495.0)
    b.place_order(OrderRequest("l2", "SPY", "SELL", 5, order_type="LMT", limit_price=520.0), T)
    snap = b.portfolio(T)
    assert [(o.client_order_id, o.lmtPrice, o.totalQuantity) for o in snap.open_orders] == [("l1", 495.0, 10),
                                                                                         ("l2", 520.0, 5)]
    # the buy reserves 10 x 495 of margin (cash account, leverage 1); the sell adds short exposure 5 x 520
    assert snap.available_funds == pytest.approx(100_000 - 4_950 - 2_600)
    prices["SPY"] = 494.0
    later = T + timedelta(days=1)
    snap = SimBroker(store, "lim", lambda s, t: prices[s], SPECS, fee_bps=1.0, maker_fee_bps=0.5).portfolio(later)
    assert [o.client_order_id for o in snap.open_orders] == ["l2"]
    assert snap.holdings[0].quantity == 10 and snap.holdings[0].avg_cost == 495.0
    assert snap.cash == pytest.approx(100_000 - 4_950 - 4_950 * 0.5e-4)  # maker fee
    st = b.order_status("l1")
    assert (st.status, st.fill_price, st.commission) == ("Filled", 495.0, pytest.approx(0.2475))
    assert b.cancel_order("l2").status == "Cancelled" and b.portfolio(later).open_orders == []
    with pytest.raises(OrderRejected, match="not working"):
        b.cancel_order("l1")
    with pytest.raises(OrderNotFound):
        b.order_status("nope")
    # a marketable limit fills at once as a taker, never worse than its limit
    r = b.place_order(OrderRequest("l3", "SPY", "BUY", 1, order_type="LMT", limit_price=499.0), later)
    assert (r.status, r.fill_price) == ("Filled", pytest.approx(494.1))  # 494 x 1.0002 rounded up
    with pytest.raises(OrderRejected, match="tick"):
        b.place_order(OrderRequest("l4", "SPY", "BUY", 1, order_type="LMT", limit_price=480.005), later)


def test_perpetual_is_margined_with_leverage(store):
    px = {"BTC-USDT-PERP": 60_000.0}
    b = SimBroker(store, "perp", lambda s, t: px[s], {"BTC-USDT-PERP": PERP}, starting_cash=10_000, fee_bps=0,
                  slippage_bps=0, leverage={"BTC-USDT-PERP": 5}, fill_at="close")
    assert b.instrument_specs(["BTC-USDT-PERP"])["BTC-USDT-PERP"].max_leverage == 5
    b.place_order(OrderRequest("p1", "BTC-USDT-PERP", "BUY", 0.5), T)  # 30,000 notional, 6,000 margin at 5x
    snap = b.portfolio(T)
    assert snap.cash == 10_000 and snap.net_liquidation == 10_000  # a contract: nothing paid but fees
    assert snap.available_funds == pytest.approx(4_000)
    px["BTC-USDT-PERP"] = 61_000.0
    snap = b.portfolio(T)
    assert snap.net_liquidation == pytest.approx(10_500) and snap.holdings[0].market_value == pytest.approx(30_500)
    with pytest.raises(InsufficientFunds):
        b.place_order(OrderRequest("p2", "BTC-USDT-PERP", "BUY", 0.4), T)  # +24,400 notional, 4,880 margin > 4,400
    b.place_order(OrderRequest("p3", "BTC-USDT-PERP", "SELL", 0.5), T)
    assert b.portfolio(T).cash == pytest.approx(10_500)  # realized into the wallet


WEEK_START = datetime(2024, 3, 4, 4, 0, tzinfo=timezone.utc)
MID_WEEK = datetime(2024, 3, 6, 4, 0, tzinfo=timezone.utc)
WEEK_END = datetime(2024, 3, 11, 4, 0, tzinfo=timezone.utc)
# Funding settlements of the BTC-USDT perpetual in (WEEK_START, WEEK_END], from
# market/data/binanceusdm_BTC-USDT-PERP_funding.csv, each with the mark the paper broker
# uses: the close of the 4h bar that closed at the settlement (binanceusdm_BTC-USDT-PERP_4h.csv).
SETTLEMENTS = [  # (settlement, mark, rate)
    ("2024-03-04T08:00", "64120.6", "0.00046833"), ("2024-03-04T16:00", "66505.4", "0.0006362"),
    ("2024-03-05T00:00", "68296.4", "0.0004896"), ("2024-03-05T08:00", "66223.8", "0.00082969"),
    ("2024-03-05T16:00", "66841.3", "0.00088148"), ("2024-03-06T00:00", "63747.4", "0.0003628"),
    ("2024-03-06T08:00", "66759.4", "0.00033876"), ("2024-03-06T16:00", "66541.3", "0.00049354"),
    ("2024-03-07T00:00", "66128.1", "0.00030311"), ("2024-03-07T08:00", "66447.8", "0.00040984"),
    ("2024-03-07T16:00", "67317.1", "0.00054217"), ("2024-03-08T00:00", "66870.0", "0.00034819"),
    ("2024-03-08T08:00", "67308.5", "0.00043497"), ("2024-03-08T16:00", "67685.8", "0.00062913"),
    ("2024-03-09T00:00", "68180.2", "0.00019134"), ("2024-03-09T08:00", "68336.3", "0.00031281"),
    ("2024-03-09T16:00", "68341.6", "0.00026407"), ("2024-03-10T00:00", "68360.1", "0.0003101"),
    ("2024-03-10T08:00", "69430.0", "0.00063451"), ("2024-03-10T16:00", "69254.7", "0.00054479"),
    ("2024-03-11T00:00", "69001.8", "0.00035489"),
]


def test_a_scripted_week_of_btc_perpetual_matches_a_hand_computation_to_the_cent(store, provider):
    """Buy 0.150 BTC perp at market, rest a sell of 0.100 at 66,000, add 0.050 at market mid-week; a week of
    real 4h bars and 8-hourly funding; everything checked against arithmetic written out here."""
    acct = SimAccount(account="week", starting_cash=10_000.0, price_timeframes=["4h"], leverage={"BTC-USDT-PERP": 5},
                      fill_at="close",
                      costs={"BTC-USDT-PERP": {"taker_fee_bps": 5.0, "maker_fee_bps": 2.0, "half_spread_bps": 1.0}},
                      instruments={"BTC-USDT-PERP": PERP.model_dump(exclude={"symbol"})})
    b = make_broker(store, Settings(TradingConfig(), [], acct, {}), provider)
    D = Decimal
    # 1. as of Mon 04:00 the last close is 63523.9 (bar 00:00-04:00); a buy pays 1 bp, rounded up to the 0.1 tick
    r1 = b.place_order(OrderRequest("w-1", "BTC-USDT-PERP", "BUY", 0.15), WEEK_START)
    fill1 = D("63530.3")  # 63523.9 x 1.0001 = 63530.25239 -> 63530.3
    fee1 = D("0.15") * fill1 * D("0.0005")  # taker 5 bps = 4.7647725
    assert (D(str(r1.fill_price)), cents(r1.commission)) == (fill1, cents(fee1))
    # 2. a sell limit at 66,000 rests (the market is below it); bar Mon 12:00-16:00 trades up to 66,666.6
    r2 = b.place_order(OrderRequest("w-2", "BTC-USDT-PERP", "SELL", 0.1, order_type="LMT", limit_price=66_000.0),
                       WEEK_START)
    assert r2.status == "Submitted"
    fee2 = D("0.1") * D("66000") * D("0.0002")  # maker 2 bps = 1.32
    realized = (D("66000") - fill1) * D("0.1")  # 246.97
    # 3. mid-week (Wed 04:00, last close 63323.6) buy 0.050 more at market
    r3 = b.place_order(OrderRequest("w-3", "BTC-USDT-PERP", "BUY", 0.05), MID_WEEK)
    fill3 = D("63330.0")  # 63323.6 x 1.0001 = 63329.93236 -> 63330.0
    fee3 = D("0.05") * fill3 * D("0.0005")  # 1.58325
    assert D(str(r3.fill_price)) == fill3
    st2 = b.order_status("w-2")
    assert (st2.status, st2.fill_price, cents(st2.commission)) == ("Filled", 66_000.0, cents(fee2))
    # funding: the position held at each settlement pays quantity x mark x rate; the resting fill in the bar
    # closing Mon 16:00 comes before Mon 16:00's settlement
    funding = D(0)
    for when, mark, rate in SETTLEMENTS:
        t = datetime.fromisoformat(when).replace(tzinfo=timezone.utc)
        qty = D("0.15") if t < datetime(2024, 3, 4, 16, tzinfo=timezone.utc) else (
            D("0.05") if t <= MID_WEEK else D("0.10"))
        funding += qty * D(mark) * D(rate)
    snap = b.portfolio(WEEK_END)
    avg = (D("0.05") * fill1 + D("0.05") * fill3) / D("0.1")  # 63430.15
    mark_end = D("68657.4")  # close of the bar Mon 00:00-04:00, a week later
    cash = D("10000") - fee1 - fee2 - fee3 + realized - funding
    unrealized = D("0.1") * (mark_end - avg)
    [h] = snap.holdings
    assert (D(str(h.quantity)), cents(h.avg_cost), D(str(h.market_price))) == (D("0.1"), cents(avg), mark_end)
    assert cents(b.account_state().funding_paid) == cents(funding) == D("56.57")
    assert cents(b.account_state().fees_paid) == cents(fee1 + fee2 + fee3) == D("7.67")
    assert cents(snap.cash) == cents(cash)
    assert cents(snap.net_liquidation) == cents(cash + unrealized)
    assert cents(snap.available_funds) == cents(cash + unrealized - D("0.1") * mark_end / 5)
    # reading the account again applies nothing twice
    assert cents(b.portfolio(WEEK_END).net_liquidation) == cents(cash + unrealized)


def test_perpetual_without_funding_history_fails_closed(store, provider, tmp_path):
    from market.funding import FundingHistory

    spec = PERP.model_copy(update={"symbol": "XRP-USDT-PERP", "lot_size": 0.1, "tick_size": 0.0001,
                                   "min_quantity": 0.1, "min_notional": 5})
    acct = SimAccount(account="nofund", price_timeframes=["4h"], fill_at="close",
                      instruments={"XRP-USDT-PERP": spec.model_dump(exclude={"symbol"})})
    b = make_broker(store, Settings(TradingConfig(), [], acct, {}), provider)
    b.place_order(OrderRequest("x-1", "XRP-USDT-PERP", "BUY", 100), WEEK_START)
    snap = b.portfolio(WEEK_END)  # XRP funding is bundled: 21 settlements applied
    assert snap.holdings[0].quantity == 100 and b.account_state().funding_paid != 0
    empty = make_broker(store, Settings(TradingConfig(), [], acct, {}), provider, funding=FundingHistory([tmp_path]))
    with pytest.raises(NotConnected, match="no funding history for 'XRP-USDT'"):
        empty.portfolio(WEEK_END + timedelta(days=1))
    assert empty.account_state().last_as_of == WEEK_END  # nothing was applied or saved


# ---------------------------------------------------------------------- fill_at: next_open (the default)
def _bar(path, when: str) -> dict[str, float]:
    """The bar of a bundled CSV opened at ``when`` (its timestamp column), read straight from the file."""
    import csv

    with open(path) as f:
        row = next(r for r in csv.DictReader(f) if r["timestamp"] == when)
    return {k: float(v) for k, v in row.items() if k != "timestamp"}


def _up(x: float, tick: float) -> float:
    return float((Decimal(str(x)) / Decimal(str(tick))).to_integral_value(rounding="ROUND_CEILING")
                 * Decimal(str(tick)))


def _etf_broker(store, provider, name="etf"):
    acct = SimAccount(account=name, price_timeframes=["1d"], fee_bps=1.0, slippage_bps=2.0,
                      instruments={"SPY": {"secType": "STK", "lot_size": 1, "min_quantity": 1, "min_notional": 1}})
    assert acct.fill_at == "next_open"  # the default
    return make_broker(store, Settings(TradingConfig(), [], acct, {}), provider)


def at(y, m, d, hh=21, mm=30):
    return datetime(y, m, d, hh, mm, tzinfo=timezone.utc)


def test_an_etf_market_order_waits_for_the_next_session_open_over_weekends_and_holidays(store, provider):
    """A 21:30 UTC order rests ``Submitted``; Saturday, Sunday and the 4th of July fill nothing; it fills at
    the next XNYS session's open (exchange_calendars: 13:30 UTC in summer) plus the half-spread, taker fee."""
    from market.history import BUNDLED_DIR

    b = _etf_broker(store, provider)
    assert b.fill_model == "next_open"
    friday = b.place_order(OrderRequest("f-1", "SPY", "BUY", 10), at(2024, 6, 28))
    assert (friday.status, friday.filled_quantity, friday.fill_price) == ("Submitted", 0.0, None)
    snap = b.portfolio(at(2024, 6, 28))
    assert snap.holdings == [] and [(o.client_order_id, o.orderType, o.lmtPrice) for o in snap.open_orders] == [
        ("f-1", "MKT", None)]
    for day in (29, 30):  # the weekend: no session, no fill at a stale close
        b.catch_up(at(2024, 6, day))
        assert b.order_status("f-1").status == "Submitted"
    b.catch_up(at(2024, 7, 1))
    monday = _bar(BUNDLED_DIR / "yahoo_SPY_1d.csv", "2024-07-01T00:00:00Z")
    r = b.order_status("f-1")
    assert (r.status, r.filled_quantity) == ("Filled", 10)
    assert r.fill_price == pytest.approx(_up(monday["open"] * 1.0002, 0.01))
    assert r.commission == pytest.approx(10 * r.fill_price * 1e-4)
    assert b.order_record("f-1").filled_as_of == datetime(2024, 7, 1, 13, 30, tzinfo=timezone.utc)
    # the 3rd's order skips Independence Day and fills at the 5th's open
    b.place_order(OrderRequest("h-1", "SPY", "SELL", 4), at(2024, 7, 3))
    b.catch_up(at(2024, 7, 4))
    assert b.order_status("h-1").status == "Submitted"
    snap = b.portfolio(at(2024, 7, 5))
    fifth = _bar(BUNDLED_DIR / "yahoo_SPY_1d.csv", "2024-07-05T00:00:00Z")
    rec = b.order_record("h-1")
    assert rec.filled_as_of == datetime(2024, 7, 5, 13, 30, tzinfo=timezone.utc)
    assert rec.fill_price == pytest.approx(float((Decimal(str(fifth["open"] * 0.9998)) / Decimal("0.01"))
                                                 .to_integral_value(rounding="ROUND_FLOOR") * Decimal("0.01")))
    assert snap.holdings[0].quantity == 6 and snap.open_orders == []


@pytest.mark.parametrize("hourly", [True, False])
def test_a_crypto_market_order_fills_at_the_next_hour_open_or_else_the_next_4h_open(store, hourly):
    """21:30 UTC: with 1h bars the fill is the 22:00 bar's open, without them the 4h bar opening at 00:00."""
    from backtest.engine import HOURLY_DIR
    from market.history import BUNDLED_DIR, HistoryProvider

    prov = HistoryProvider([BUNDLED_DIR, HOURLY_DIR] if hourly else [BUNDLED_DIR])
    acct = SimAccount(account="btc", price_timeframes=["1d"], fee_bps=10.0, slippage_bps=1.0,
                      instruments={"BTC-USDT": SPECS["BTC-USDT"].model_dump(exclude={"symbol"})})
    b = make_broker(store, Settings(TradingConfig(), [], acct, {}), prov)
    b.place_order(OrderRequest("b-1", "BTC-USDT", "BUY", 0.1), at(2024, 3, 4))
    b.catch_up(at(2024, 3, 4, 21, 59))
    assert b.order_status("b-1").status == "Submitted"  # nothing has opened since the order
    b.catch_up(at(2024, 3, 5))
    opened = "2024-03-04T22:00:00Z" if hourly else "2024-03-05T00:00:00Z"
    path = (HOURLY_DIR / "binance_BTC-USDT_1h.csv") if hourly else (BUNDLED_DIR / "binance_BTC-USDT_4h.csv")
    rec = b.order_record("b-1")
    assert rec.filled_as_of == datetime.fromisoformat(opened.replace("Z", "+00:00"))
    assert rec.fill_price == pytest.approx(_up(_bar(path, opened)["open"] * 1.0001, 0.1))
    assert rec.commission == pytest.approx(0.1 * rec.fill_price * 10e-4)


def test_resting_sells_free_the_cash_that_later_buys_need(store):
    """Nearly all in SPY: a buy before the sell is refused for funds; the Commander's order (sells first)
    is taken, both rest, and they fill in placement order at the next price."""
    broker(store).place_order(OrderRequest("in", "SPY", "BUY", 190), T)  # 95,000 of 100,000 invested
    b = broker(store, fill_at="next_open")
    with pytest.raises(InsufficientFunds):
        b.place_order(OrderRequest("buy-first", "BTC-USDT", "BUY", 0.5), T)
    assert b.place_order(OrderRequest("s", "SPY", "SELL", 190), T).status == "Submitted"
    assert b.place_order(OrderRequest("b", "BTC-USDT", "BUY", 0.5), T).status == "Submitted"
    b.catch_up(T + timedelta(days=1))  # no open source: the next call's as-of price
    st = b.account_state()
    assert st.open_orders == {} and st.positions["SPY"].quantity == 0 and st.positions["BTC-USDT"].quantity == 0.5
    assert st.cash > 0
    assert b.order_record("s").fill_price == pytest.approx(499.9) and b.order_record("b").fill_price == 60_012.0


def test_a_resting_market_order_can_be_cancelled_and_its_funds_are_released(store):
    b = broker(store, fill_at="next_open")
    b.place_order(OrderRequest("m", "SPY", "BUY", 150), T)
    assert b.portfolio(T).available_funds == pytest.approx(100_000 - 150 * 500.0)  # reserved at the as-of price
    assert b.cancel_order("m").status == "Cancelled"
    b.catch_up(T + timedelta(days=1))
    assert b.order_status("m").status == "Cancelled" and b.account_state().positions == {}


def test_fill_at_is_validated():
    with pytest.raises(ValueError, match="fill_at"):
        SimBroker(None, "x", price, SPECS, fill_at="tomorrow")  # type: ignore[arg-type]
