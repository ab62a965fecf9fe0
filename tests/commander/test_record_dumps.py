"""commander.record.ExecutionDumps: the stored form of a run's executions with the context and decision dumped
once, the same documents and sizes as ``to_store()`` / ``encoded_size``; and the context a run builds once."""

from __future__ import annotations

from datetime import datetime, timezone

from brokers.sim import SimBroker
from bus import paths
from bus.models import Execution, InstrumentSpec
from bus.store import MemoryStore
from commander.record import ExecutionDumps, encoded_size, split_execution
from commander.run import run_commander
from reconcile import reconcile
from tests.fakes.commander_scenario import write_scenario

T = datetime(2024, 6, 3, 21, 30, tzinfo=timezone.utc)
PRICES = {"SPY": 500.0, "QQQ": 400.0}
SPECS = {s: InstrumentSpec(symbol=s, lot_size=1, min_quantity=1, min_notional=1) for s in PRICES}


def executed() -> Execution:
    """An execution of a real run that placed orders (its context and decision filled in)."""
    store = MemoryStore()
    write_scenario(store, T, {"SPY": 10, "QQQ": -5})
    broker = SimBroker(store, "acct", lambda s, t: PRICES[s], SPECS, starting_cash=100_000, fill_at="close")
    reconcile(store, broker, T)
    ex = run_commander(store, broker, T, execution_id="ex-1")
    assert ex.status == "completed" and ex.orders_placed and ex.decision.final_target and ex.context.prices
    stored = store.get(paths.execution("ex-1"))
    assert stored == ex.to_store()  # the record written is the execution's to_store(), key for key
    assert list(stored) == list(ex.to_store())
    return ex


def same(doc: dict, size: int, ex: Execution) -> None:
    full = ex.to_store()
    assert doc == full and list(doc) == list(full)
    assert size == encoded_size(full)


def test_dumps_are_to_store_and_sizes_exact_with_the_context_and_decision_dumped_once():
    ex = executed()
    dumps = ExecutionDumps()
    doc, size = dumps.dump(ex)
    same(doc, size, ex)
    # the audit's record: other fields, the same context and decision objects -> their dumps are reused
    audit = ex.model_copy(update={"status": "partial_success", "summary": "x" * 300, "orders_placed": []})
    doc2, size2 = dumps.dump(audit)
    same(doc2, size2, audit)
    assert doc2["context"] is doc["context"] and doc2["decision"] is doc["decision"]
    # another decision object (another run's) is dumped anew, never a stale dump
    other = audit.model_copy(update={"decision": ex.decision.model_copy(update={"allocations": {"s": 1.0}})})
    doc3, size3 = dumps.dump(other)
    same(doc3, size3, other)
    assert doc3["decision"]["allocations"] == {"s": 1.0} and doc3["context"] is doc["context"]


def test_a_known_size_splits_as_the_measured_one():
    ex = executed()
    ex = ex.model_copy(update={"strategy_reasons": {f"s{i}": "why " * 20 for i in range(50)}})  # a field > 1 KB
    doc, size = ExecutionDumps().dump(ex)
    assert split_execution(doc, size=size) == (doc, [])
    small = size - 1  # over the limit: the same header and parts as without the size
    assert split_execution(doc, header_limit=small, part_limit=400, size=size) == \
        split_execution(doc, header_limit=small, part_limit=400)
    assert split_execution(doc, header_limit=small, part_limit=400)[1]
