"""How the Commander's shell writes its audit: through ``Store.write_batches``, the execution first,
and how a failure after the decision is recorded (in memory, with the paper broker)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

import commander.run as commander_run
from brokers.sim import SimBroker
from bus import paths
from bus import store as bus_store
from bus.models import Execution, InstrumentSpec
from bus.orders import OrderLifecycle
from bus.store import MemoryStore, StoreError
from commander.run import run_commander
from reconcile import reconcile
from tests.fakes.commander_scenario import STRATEGY, write_scenario

T = datetime(2024, 6, 3, 21, 30, tzinfo=timezone.utc)
PRICES = {"SPY": 500.0, "QQQ": 400.0}
SPECS = {s: InstrumentSpec(symbol=s, lot_size=1, min_quantity=1, min_notional=1) for s in PRICES}


class RecordingStore(MemoryStore):
    """Keeps the paths of every batch; with ``fail_audit`` set, refuses the audit batch (the one that
    writes the books), as a store that became unreachable after the orders went out would."""

    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[list[str]] = []
        self.fail_audit = False

    def write_batch(self, writes):
        if self.fail_audit and any(p.startswith("strategies/") for p, _ in writes):
            raise StoreError("firestore batch write failed: test")
        self.chunks.append([p for p, _ in writes])
        super().write_batch(writes)


def setup() -> tuple[RecordingStore, SimBroker]:
    store = RecordingStore()
    write_scenario(store, T, {"SPY": 10, "QQQ": -5})
    broker = SimBroker(store, "acct", lambda s, t: PRICES[s], SPECS, starting_cash=100_000, fill_at="close")
    reconcile(store, broker, T)
    store.chunks.clear()
    return store, broker


def audit_chunks(store: RecordingStore) -> list[list[str]]:
    """The batches the Commander wrote (the paper broker's own batches left out)."""
    return [c for c in store.chunks if not any(p.startswith("sim_accounts/") for p in c)]


def test_a_live_run_writes_ahead_then_audits_in_one_batch_execution_last():
    store, broker = setup()
    ex = run_commander(store, broker, T, execution_id="ex-1")
    assert ex.status == "completed" and len(ex.orders_placed) == 2
    ahead, audit = audit_chunks(store)
    orders = [paths.order(o.client_order_id) for o in ex.orders_placed]
    # Before any venue call: the execution (placing), every order (planned), the account's write-ahead time.
    assert ahead[0] == paths.execution("ex-1") and set(orders) <= set(ahead)
    assert ahead[-1] == paths.account_state("paper")
    # After: books, equity points, the orders marked booked, the account, and the execution last.
    assert paths.book(STRATEGY) in audit and set(orders) <= set(audit) and audit[-1] == paths.execution("ex-1")
    assert any(p.startswith(f"strategies/{STRATEGY}/equity/") for p in audit)
    for o in ex.orders_placed:
        doc = store.get(paths.order(o.client_order_id))
        assert doc["status"] == "filled" and doc["open"] is False
        assert doc["booked_quantity"] == doc["filled_quantity"] == o.totalQuantity
        assert [e["status"] for e in doc["events"]] == ["filled"]


def test_sells_go_before_buys():
    store, broker = setup()
    ex = run_commander(store, broker, T, execution_id="ex-1")
    assert [o.action for o in ex.orders_placed] == ["SELL", "BUY"]


def test_a_dry_run_writes_the_execution_alone():
    store, broker = setup()
    ex = run_commander(store, broker, T, dry_run=True, execution_id="ex-dry")
    assert ex.status == "completed" and ex.dry_run
    assert audit_chunks(store) == [[paths.execution("ex-dry")]]
    assert store.list_docs(paths.ORDERS) == []


def test_an_audit_too_large_for_one_batch_is_split_with_the_execution_last(monkeypatch):
    store, broker = setup()
    one = run_commander(store, broker, T, execution_id="ex-1")
    whole = audit_chunks(store)[-1]

    monkeypatch.setattr(bus_store, "BATCH_WRITES", 2)
    monkeypatch.setattr(commander_run, "FIRESTORE_BATCH_LIMIT", 2)
    store2, broker2 = setup()
    two = run_commander(store2, broker2, T, execution_id="ex-1")
    chunks = audit_chunks(store2)
    assert all(len(c) <= 2 for c in chunks)
    audit = [p for c in chunks for p in c][-len(whole):]
    assert audit == whole and audit[-1] == paths.execution("ex-1")  # same writes, same order
    assert two.decision == one.decision and two.status == one.status


def test_a_failed_audit_write_keeps_the_orders_on_record_and_the_next_run_books_them():
    store, broker = setup()
    store.fail_audit = True
    ex = run_commander(store, broker, T, execution_id="ex-f")
    assert ex.status == "failed" and ex.reason == "StoreError: firestore batch write failed: test"
    assert ex.context.prices == PRICES  # the decision's inputs are recorded for replay
    saved = Execution.model_validate(store.get(paths.execution("ex-f")))
    assert saved.status == "failed" and {o.symbol for o in saved.orders_placed} == {"SPY", "QQQ"}
    assert store.get(paths.lock("paper")) is None
    held = broker.account_state().quantities()
    docs = [OrderLifecycle.model_validate(d) for _, d in store.list_docs(paths.ORDERS)]
    assert all(d.status == "filled" and d.booked_quantity == 0 and d.open for d in docs)
    # The next run (fresh snapshot) books those fills to the strategy and sends nothing again.
    store.fail_audit = False
    reconcile(store, broker, T)
    nxt = run_commander(store, broker, T, execution_id="ex-g")
    assert nxt.status == "completed" and nxt.orders_placed == []
    assert {f.symbol: f.quantity for f in nxt.late_fills} == held
    book = store.get(paths.book(STRATEGY))
    assert {s: p["quantity"] for s, p in book["positions"].items()} == held
    assert nxt.external == {} and broker.account_state().quantities() == held
    assert all(not d["open"] for _, d in store.list_docs(paths.ORDERS))


def test_a_rerun_of_a_finished_execution_returns_its_record_and_writes_nothing():
    store, broker = setup()
    first = run_commander(store, broker, T, execution_id="ex-1")
    store.chunks.clear()
    before = dict(store.stats)
    again = run_commander(store, broker, T, execution_id="ex-1")
    assert again.execution_id == first.execution_id and again.status == first.status
    assert store.chunks == [] and store.stats["set"] == before.get("set", 0)
    assert store.stats["transaction"] == before.get("transaction", 0)  # no lease taken


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_skip_reason_records_a_skipped_execution_and_trades_nothing(dry_run):
    store, broker = setup()
    ex = run_commander(store, broker, T, dry_run=dry_run, execution_id="ex-s", skip_reason="reconcile failed: x")
    assert ex.status == "skipped" and ex.reason == "reconcile failed: x" and ex.orders_placed == []
    assert audit_chunks(store) == [] and store.get(paths.execution("ex-s"))["status"] == "skipped"
    assert store.get(paths.lock("paper")) is None


def test_a_run_where_no_symbol_has_a_price_is_skipped_with_that_reason():
    store, broker = setup()
    broker.prices = lambda s, t: (_ for _ in ()).throw(LookupError(f"no price for {s}"))
    ex = run_commander(store, broker, T, execution_id="ex-noprice")
    assert ex.status == "skipped" and ex.reason.startswith("no price for any of the 2 symbols")
    assert ex.orders_placed == [] and "holdings already match" not in ex.summary
