"""Protective exits end to end (issue 14, item 4, must-show): a strategy's target carries a stop-loss; the
run places the exit at the venue; the next run with nothing changed sees the resting exit and keeps it (no
cancel, no duplicate); the price crosses the stop between runs; the run after books the fill to that strategy.

On the fake TWS (real ``ib_async``), the fake Binance USD-M and the fake Hyperliquid (real ``ccxt``),
strategies -> reconcile -> Commander (:mod:`tests.fakes.commander_scenario`) on the Firestore emulator.
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from brokers.ccxt_exchange import venue_client_id
from brokers.config import CcxtAccount
from brokers.factory import build_broker
from brokers.ib import IBBroker
from bus import paths
from bus.models import Intent, TargetPosition
from bus.store import Store
from tests.fakes.commander_scenario import (
    STRATEGY,
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

INSTRUMENTS = __import__("tests.brokers.test_venue_faults", fromlist=["INSTRUMENTS"]).INSTRUMENTS
BN_KEY, BN_SECRET = "bn-key-e2e-31", "bn-secret-e2e-77"
BTC = "BTC-USDT-PERP"


def now() -> datetime:
    return datetime.now(timezone.utc)


def write_protected(store: Store, as_of: datetime, symbol: str, qty: float, stop: float | None,
                    take: float | None = None, **kw) -> None:
    """:func:`write_scenario`, then the intent's one target with a stop-loss / take-profit."""
    write_scenario(store, as_of, {symbol: qty}, **kw)
    intent = Intent(intent_id=f"{STRATEGY}-1", strategy_id=STRATEGY, updated_at=as_of, as_of=as_of, status="success",
                    target_positions=[TargetPosition(symbol=symbol, secType=kw.get("sec_type", "STK"),
                                                     exchange=kw.get("exchange", "SMART"),
                                                     currency=kw.get("currency", "USD"), quantity=qty,
                                                     stop_loss=stop, take_profit=take)])
    store.write_batch([(paths.intent(STRATEGY), intent.to_store()),
                       (paths.intent(STRATEGY, intent.intent_id), intent.to_store())])


def exits_by_action(ex) -> dict[str, list]:
    out: dict[str, list] = {}
    for r in ex.protective_exits:
        out.setdefault(r.action, []).append(r)
    return out


def check_must_show(store, broker_for_run, venue_positions, symbol, qty, stop, take, move_through_stop,
                    resting_ids, kw):
    """Run 1 places the exit, run 2 keeps it, the stop triggers, run 3 books its fill to the strategy.
    Returns the stop leg's lifecycle record."""
    # run 1: the entry fills, then the exit goes out as two legs in one OCA group
    t1 = now()
    write_protected(store, t1, symbol, qty, stop, take, **kw)
    ex1 = run_scenario(store, broker_for_run(), t1, "ex-prot-1")
    assert ex1.status == "completed", ex1.summary
    placed = exits_by_action(ex1).get("place", [])
    assert {r.leg for r in placed} == {"stop", "take_profit"}, ex1.protective_exits
    stop_leg = next(r for r in placed if r.leg == "stop")
    assert stop_leg.trigger == pytest.approx(stop)
    assert set(resting_ids()) == {r.client_order_id for r in placed}
    doc = order_doc(store, stop_leg.client_order_id)
    assert (doc.orderType, doc.reduce_only, set(doc.shares)) == ("STP", True, {STRATEGY})  # the strategy's share
    assert abs(doc.shares[STRATEGY]) == pytest.approx(qty)
    assert_books_match(store, venue_positions())

    # run 2: nothing changed: the resting exit is seen and kept, not cancelled, not placed again
    t2 = now()
    write_protected(store, t2, symbol, qty, stop, take, **kw)
    ex2 = run_scenario(store, broker_for_run(), t2, "ex-prot-2")
    assert ex2.status == "completed", ex2.summary
    acts = exits_by_action(ex2)
    assert set(acts) == {"keep"}, ex2.protective_exits
    assert {r.client_order_id for r in acts["keep"]} == {r.client_order_id for r in placed}
    assert ex2.orders_placed == [] and set(resting_ids()) == {r.client_order_id for r in placed}

    # between runs the price crosses the stop: the venue fills it and cancels the take-profit
    move_through_stop()
    assert venue_positions()[symbol] == 0

    # run 3: the strategy now wants no position; the stop's fill is booked to it, the books add up
    t3 = now()
    write_protected(store, t3, symbol, 0, None, None, **kw)
    ex3 = run_scenario(store, broker_for_run(), t3, "ex-prot-3")
    assert ex3.status == "completed", ex3.summary
    booked = {f.client_order_id: f for f in ex3.late_fills}
    assert stop_leg.client_order_id in booked, ex3.late_fills
    fill = booked[stop_leg.client_order_id]
    assert fill.quantity == pytest.approx(-qty)  # signed: the long's stop sold
    assert fill.booked == {STRATEGY: pytest.approx(-qty)}
    assert ex3.orders_placed == [] and resting_ids() == []
    assert book_units(store) == {}
    assert_books_match(store, venue_positions())
    return order_doc(store, stop_leg.client_order_id), fill


# ---------------------------------------------------------------------------------------------- IB


@pytest.fixture
def tws():
    with FakeTWS(cash=100_000.0) as fake:
        yield fake
        assert fake.errors == [], fake.errors


@pytest.fixture
def ib_broker(tws):
    """Makes a new IBBroker per run (each run is a new process with the same client id: the last broker is
    closed first); every broker made is closed at the end."""
    made: list[IBBroker] = []

    def broker() -> IBBroker:
        for old in made:
            old.close()
        b = IBBroker(tws.host, tws.port, client_id=17, mode="paper", instruments=INSTRUMENTS, connect_timeout=2,
                     request_timeout=3, order_wait=5, reconnect_attempts=3, reconnect_wait=0.05)
        made.append(b)
        return b

    yield broker
    for b in made:
        b.close()


def test_ib_stop_rests_between_runs_triggers_and_is_booked_to_its_strategy(tws, ib_broker, store):
    def move():
        tws.trigger_slippage(0.03)
        tws.set_price("SPY", 478.0)

    doc, fill = check_must_show(
        store, ib_broker, lambda: {"SPY": tws.position("SPY")}, "SPY", 10, 480.0, 540.0, move,
        lambda: [o.orderRef for o in tws.open_orders()], {})
    assert fill.price == pytest.approx(477.97)  # worse than the trigger: the gap and the slippage
    assert (doc.status, doc.filled_quantity, doc.open) == ("filled", 10.0, False)
    assert [o.orderType for o in tws.oca_cancelled] == ["MIT"]


# ---------------------------------------------------------------------------------------------- Binance


@pytest.fixture
def binance(monkeypatch):
    monkeypatch.setenv("T_BN_KEY", BN_KEY)
    monkeypatch.setenv("T_BN_SECRET", BN_SECRET)
    with FakeBinanceUSDM(BN_KEY, BN_SECRET, balances={"USDT": "10000"}, client_order_id_scope="open") as server:
        server.set_mark_price("BTCUSDT", "60000")
        yield server
        assert server.foreign_urls == [] and server.internal_errors == []


def test_binance_stop_rests_between_runs_triggers_and_is_booked_to_its_strategy(binance, store):
    def broker():
        cfg = CcxtAccount(exchange="binanceusdm", account="bn-test", api_key_env="T_BN_KEY",
                          secret_env="T_BN_SECRET", leverage={BTC: 5}, retries=1, enable_rate_limit=False,
                          timeout_ms=1500)
        b = build_broker(cfg, "paper", instruments={})
        binance.point_ccxt(b.exchange)
        b.retry_wait = 0.01
        return b

    def position():
        return {BTC: float(Decimal(binance.position("BTCUSDT")["positionAmt"]))}

    doc, fill = check_must_show(
        store, broker, position, BTC, 0.05, 57_000.0, 66_000.0,
        lambda: binance.set_mark_price("BTCUSDT", "56500"),
        lambda: [a["clientAlgoId"] for a in binance.algo_orders(open_only=True)],
        dict(sec_type="PERP", exchange="BINANCEUSDM", currency="USDT"))
    assert fill.price == pytest.approx(56_500.0)
    assert (doc.status, doc.filled_quantity, doc.open) == ("filled", 0.05, False)
    assert {a["orderType"]: a["algoStatus"] for a in binance.algo_orders()} == {
        "STOP_MARKET": "FINISHED", "TAKE_PROFIT_MARKET": "CANCELED"}


# ---------------------------------------------------------------------------------------------- Hyperliquid

HL_WALLET, HL_KEY = "0x" + "ab" * 20, "0x" + "11" * 32
HBTC = "BTC-USDC-PERP"


@pytest.fixture
def hyperliquid(monkeypatch):
    monkeypatch.setenv("T_HL_ADDR", HL_WALLET)
    monkeypatch.setenv("T_HL_KEY", HL_KEY)
    with FakeHyperliquid(HL_WALLET, usdc="10000") as server:
        yield server
        assert server.foreign_urls == [] and server.internal_errors == [] and server.unhandled == []


def test_hyperliquid_stop_rests_between_runs_triggers_and_is_booked_to_its_strategy(hyperliquid, store):
    def broker():  # each run a new process: it knows the legs' cloids only once reconcile has asked for our ids
        cfg = CcxtAccount(exchange="hyperliquid", account="hl-test", wallet_address_env="T_HL_ADDR",
                          private_key_env="T_HL_KEY", leverage={HBTC: 5}, retries=1, enable_rate_limit=False,
                          timeout_ms=1500)
        b = build_broker(cfg, "paper", instruments={})
        hyperliquid.point_ccxt(b.exchange)
        b.retry_wait = 0.01
        return b

    def position():
        p = hyperliquid.position("BTC")
        return {HBTC: float(Decimal(p["position"]["szi"])) if p else 0.0}

    def resting():  # our ids of the trigger orders resting at the venue (a cloid no orders/* record names stays)
        ours = {venue_client_id("hyperliquid", cid): cid for cid in order_docs(store)}
        return sorted(ours.get(o["order"]["cloid"], o["order"]["cloid"]) for o in hyperliquid.orders(open_only=True)
                      if o["order"]["isTrigger"])

    doc, fill = check_must_show(
        store, broker, position, HBTC, 0.05, 57_000.0, 66_000.0,
        lambda: hyperliquid.set_mark_price("BTC", "56500"), resting,
        dict(sec_type="PERP", exchange="HYPERLIQUID", currency="USDC"))
    assert fill.price == pytest.approx(56_500.0)  # the mark it gapped to, worse than the trigger
    assert (doc.status, doc.filled_quantity, doc.open) == ("filled", 0.05, False)
    assert {o["order"]["orderType"]: o["status"] for o in hyperliquid.orders() if o["order"]["isTrigger"]} == {
        "Stop Market": "filled", "Take Profit Market": "canceled"}  # the take-profit cancelled by the adapter


def test_ib_after_hours_entry_gets_its_exit_at_the_run_after_the_fill_never_a_refusal(tws, ib_broker, store):
    """IB has no reduce-only for stocks (``exits_need_fill``): while the entry is held until the open, no exit
    goes out for units not yet held (an exit now would be refused, or open a short if it triggered), and the run
    is ``completed``, not ``partial_success``. The run after the open's fill places the exit for the position."""
    tws.set_session("closed")
    t1 = now()
    write_protected(store, t1, "SPY", 10, 480.0, 540.0)
    ex1 = run_scenario(store, ib_broker(), t1, "ex-ah-1")
    assert ex1.status == "completed", ex1.summary
    assert [o.status for o in ex1.orders_placed] == ["PreSubmitted"]
    assert exits_by_action(ex1).get("place", []) == [], ex1.protective_exits
    assert all(o.orderType not in ("STP", "MIT") for o in tws.orders), "no exit for units not held yet"
    tws.open_session(500.0)
    assert tws.position("SPY") == 10
    t2 = now()
    write_protected(store, t2, "SPY", 10, 480.0, 540.0)
    ex2 = run_scenario(store, ib_broker(), t2, "ex-ah-2")
    assert ex2.status == "completed", ex2.summary
    placed = exits_by_action(ex2).get("place", [])
    assert {(r.leg, r.quantity) for r in placed} == {("stop", 10), ("take_profit", 10)}, ex2.protective_exits
    assert all(r.status not in ("Rejected", "Unknown") for r in placed), ex2.protective_exits
    assert sorted(o.orderType for o in tws.orders if o.orderType in ("STP", "MIT")) == ["MIT", "STP"]
    assert_books_match(store, {"SPY": tws.position("SPY")})
