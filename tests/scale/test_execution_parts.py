"""A record too large for one document: header plus parts on the emulator, joined back exactly."""

from __future__ import annotations

from bus import paths
from commander.record import encoded_size, join_execution, part_paths, split_execution
from commander.replay import ReplayError, load_execution, replay
from commander.run import run_commander
from reconcile import reconcile
from strategies.runner import run_strategies
from tests.scale import scenario


def _run(store, provider, n_strategies: int):
    strategies = scenario.configs(n_strategies, 300, 20)
    broker = scenario.setup(store, strategies, 300)
    run_strategies(store, strategies, provider, scenario.AS_OF)
    reconcile(store, broker, scenario.AS_OF)
    return run_commander(store, broker, scenario.AS_OF, dry_run=True, execution_id="parts-1")


def test_a_small_record_stays_one_document(store, provider):
    ex = _run(store, provider, 2)
    header = store.get(paths.execution(ex.execution_id))
    assert header is not None and header["detail_parts"] == {} and part_paths(header) == []
    assert header["decision"]["diff"], "the whole record is in the one document"


def test_a_large_record_is_a_small_header_and_parts_that_join_back_and_replay(store, provider):
    ex = _run(store, provider, 40)  # about 190 KB whole: past the 64 KB header limit
    whole = ex.to_store()
    assert encoded_size(whole) > 64 * 1024
    header = store.get(paths.execution(ex.execution_id))
    assert header is not None and encoded_size(header) < 64 * 1024
    assert {"decision.aggregated_target", "decision.diff", "context.strategy_configs"} <= set(header["detail_parts"])
    assert header["decision"]["diff"] == [] and header["status"] == "completed"
    parts = store.get_all(part_paths(header))
    assert all(p is not None and encoded_size(p) <= 256 * 1024 + 2048 for p in parts.values())
    again = load_execution(store, ex.execution_id)
    assert again is not None
    detail = {"detail_parts", "detail_revision"}
    assert again.model_dump(exclude=detail) == ex.model_dump(exclude=detail)
    assert replay(store, ex.execution_id).identical

    store.delete(part_paths(header)[0])
    try:
        load_execution(store, ex.execution_id)
    except ReplayError as exc:
        assert "parts missing" in str(exc)
    else:
        raise AssertionError("a missing part must be refused, not read as an empty field")


def test_split_then_join_is_the_identity_at_any_part_size():
    doc = {"execution_id": "x", "status": "completed", "summary": "s", "detail_parts": {},
           "decision": {"diff": [{"symbol": f"Z{i:04d}", "quantity": i * 0.5} for i in range(500)],
                        "allocations": {f"s{i}": i * 1.5 for i in range(300)}},
           "context": {"prices": {f"Z{i:04d}": float(i) for i in range(400)}, "code_version": "c"},
           "errored_strategies": [f"s{i}" for i in range(200)]}
    for part_limit in (64, 1000, 10_000):
        header, parts = split_execution(doc, header_limit=2000, part_limit=part_limit)
        assert doc["decision"]["diff"] and header["decision"]["diff"] == []  # the input is not modified
        assert len({p for p, _ in parts}) == len(parts) == sum(header["detail_parts"].values())
        joined = join_execution(header, dict(parts))
        assert {k: v for k, v in joined.items() if not k.startswith("detail_")} == \
            {k: v for k, v in doc.items() if not k.startswith("detail_")}
        assert list(joined["context"]["prices"]) == list(doc["context"]["prices"])  # order kept


def test_parts_of_a_later_write_never_mix_with_an_earlier_header(store):
    """A crash between a rewrite's parts and its header: the header still reads its own parts, whole."""
    def doc(n: int) -> dict:
        return {"execution_id": "x", "status": "placing" if n == 1 else "completed", "detail_parts": {},
                "orders_placed": [{"symbol": f"Z{i:04d}", "n": n} for i in range(300 * n)]}

    first_header, first_parts = split_execution(doc(1), header_limit=1000, part_limit=2000)
    store.write_batches(first_parts + [(paths.execution("x"), first_header)])
    _, later_parts = split_execution(doc(2), header_limit=1000, part_limit=2000)
    store.write_batches(later_parts)  # ... and the process dies before the header
    assert not {p for p, _ in first_parts} & {p for p, _ in later_parts}
    header = store.get(paths.execution("x"))
    joined = join_execution(header, store.get_all(part_paths(header)))
    assert joined["orders_placed"] == doc(1)["orders_placed"]
