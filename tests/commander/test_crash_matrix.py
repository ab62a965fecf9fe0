"""The crash-point matrix: a Commander killed (``os._exit``) at each point, then run again.

Points: after the write-ahead but before any order; after k of n orders; after all orders
but before the audit; while the books are written. After each crash the next run goes with
the same execution id or a new one, with or without a fresh reconcile, and a last run with
a fresh reconcile settles. Whatever the path: every order is sent once (the account holds
exactly the targets, one venue order per symbol), every venue order has its
``orders/{client_order_id}`` record, no fill is left unbooked, and the strategy's book
equals the account with an empty ``external`` book.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timezone

import pytest

from bus import paths
from bus.faults import CRASH_EXIT_CODE
from bus.orders import OrderLifecycle
from commander.run import run_commander
from reconcile import reconcile
from tests.fakes.commander_scenario import assert_books_match, write_scenario
from tests.fakes.fake_binance import FakeBinanceUSDM
from tests.fakes.fake_tws import FakeTWS
from tests.support.crash import PRICES, VenueSpec, crash

T = datetime(2024, 6, 3, 21, 30, tzinfo=timezone.utc)
TARGETS = {"SPY": 10.0, "QQQ": 5.0, "VIXY": 40.0}
POINTS = ["commander.before_orders", "commander.after_order#1", "commander.after_order#2",
          "commander.before_audit", "commander.books_write"]
RERUNS = list(itertools.product([True, False], [True, False]))  # (same execution id, fresh reconcile)


def settle_and_check(store, broker, t, targets: dict[str, float], venue_orders, venue_positions) -> None:
    reconcile(store, broker, t)
    last = run_commander(store, broker, t, execution_id="ex-settle")
    assert last.status == "completed", last.reason
    held = {s: q for s, q in venue_positions().items() if abs(q) > 1e-12}
    assert held == pytest.approx(targets)  # nothing doubled, nothing missing
    sent = venue_orders()  # (client order id, symbol) of every order the venue got
    assert sorted(s for _, s in sent) == sorted(targets)  # one venue order per symbol
    records = {c: OrderLifecycle.model_validate(d) for c, d in store.list_docs(paths.ORDERS)}
    assert {c for c, _ in sent} <= set(records)  # every venue order is on record
    assert all(not r.open for r in records.values()), [r for r in records.values() if r.open]
    assert all(r.booked_quantity == pytest.approx(r.filled_quantity) for r in records.values())  # all booked
    assert_books_match(store, held)  # the book is the account, external empty


def crash_then_rerun(store, project, emulator, venue, broker, t, point, same_id, fresh) -> None:
    code = crash(project, emulator.host, venue, t, "ex-1", point)
    assert code == CRASH_EXIT_CODE
    if fresh:
        reconcile(store, broker, t)
    again = run_commander(store, broker, t, execution_id="ex-1" if same_id else "ex-2")
    if not fresh and point != "commander.before_orders":
        # The snapshot predates the crashed run's orders: trading on it could double them.
        assert again.status == "skipped" and "reconcile" in (again.reason or "")


@pytest.mark.parametrize("point", POINTS)
@pytest.mark.parametrize("same_id,fresh", RERUNS, ids=lambda v: str(v))
def test_paper_broker_crash_matrix(emulator, project, store, point, same_id, fresh):
    venue = VenueSpec("sim")
    broker = venue.build(store)
    write_scenario(store, T, TARGETS)
    reconcile(store, broker, T)
    crash_then_rerun(store, project, emulator, venue, broker, T, point, same_id, fresh)
    settle_and_check(store, broker, T, TARGETS, lambda: [(o.client_order_id, o.symbol) for o in broker.order_records()],
                     lambda: broker.account_state().quantities())


@pytest.mark.parametrize("point", POINTS)
@pytest.mark.parametrize("same_id,fresh", RERUNS, ids=lambda v: str(v))
def test_ib_crash_matrix(emulator, project, store, point, same_id, fresh):
    with FakeTWS(cash=1_000_000.0) as tws:
        for sym, px in PRICES.items():
            tws.set_price(sym, px)
        # The crashing child connects as client 22 while this process stays connected as client 21.
        venue = VenueSpec("ib", tws.host, tws.port, client_id=22)
        broker = VenueSpec("ib", tws.host, tws.port, client_id=21).build(store)
        try:
            t = datetime.now(timezone.utc)  # a live venue answers only about the present
            write_scenario(store, t, TARGETS)
            reconcile(store, broker, t)
            crash_then_rerun(store, project, emulator, venue, broker, t, point, same_id, fresh)
            settle_and_check(store, broker, t, TARGETS,
                             lambda: [(o.orderRef, o.contract.symbol) for o in tws.orders],
                             lambda: {s: tws.position(s) for s in TARGETS})
        finally:
            broker.close()


BN_TARGETS = {"BTC-USDT-PERP": 0.01, "ETH-USDT-PERP": 0.1, "SOL-USDT-PERP": 2.0}
BN_IDS = {"BTCUSDT": "BTC-USDT-PERP", "ETHUSDT": "ETH-USDT-PERP", "SOLUSDT": "SOL-USDT-PERP"}


@pytest.mark.parametrize("point", POINTS)
@pytest.mark.parametrize("same_id,fresh", RERUNS, ids=lambda v: str(v))
def test_binance_crash_matrix(emulator, project, store, point, same_id, fresh):
    key, secret = "crash-bn-key-1", "crash-bn-secret-2"
    with FakeBinanceUSDM(key, secret, balances={"USDT": "100000"}, client_order_id_scope="open") as fake:
        venue = VenueSpec("binance", "127.0.0.1", int(fake.base_url.rsplit(":", 1)[1]), key=key, secret=secret)
        broker = venue.build(store)
        t = datetime.now(timezone.utc)  # a live venue answers only about the present
        write_scenario(store, t, BN_TARGETS, sec_type="PERP", exchange="BINANCEUSDM", currency="USDT", leverage=5.0)
        reconcile(store, broker, t)
        crash_then_rerun(store, project, emulator, venue, broker, t, point, same_id, fresh)
        settle_and_check(store, broker, t, BN_TARGETS,
                         lambda: [(o["clientOrderId"], BN_IDS[o["symbol"]]) for o in fake.orders()],
                         lambda: {BN_IDS[s]: float(fake.position(s)["positionAmt"]) for s in BN_IDS})
