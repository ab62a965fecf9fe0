"""The Firestore store on the real emulator: immutable copies, batched reads, the lease."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from bus import paths
from bus.models import Intent, TargetPosition
from bus.store import BATCH_WRITES, FIRESTORE_BATCH_LIMIT, MemoryStore, StoreError, read, read_many
from strategies.runner import write_intent


def make_intent(sid: str, iid: str) -> Intent:
    t = datetime(2024, 5, 1, 21, 30, tzinfo=timezone.utc)
    return Intent(intent_id=iid, strategy_id=sid, updated_at=t, as_of=t, status="success",
                  target_positions=[TargetPosition(symbol="SPY", weight=0.5)])


def test_intent_write_stores_latest_and_immutable_copy_in_one_batch(store):
    before = store.stats["batch"]
    write_intent(store, make_intent("s1", "id-1"))
    assert store.stats["batch"] == before + 1
    latest = read(store, paths.intent("s1"), Intent)
    copy = read(store, paths.intent("s1", "id-1"), Intent)
    assert latest == copy and latest.target_positions[0].weight == 0.5
    write_intent(store, make_intent("s1", "id-2"))
    assert read(store, paths.intent("s1"), Intent).intent_id == "id-2"
    assert read(store, paths.intent("s1", "id-1"), Intent).intent_id == "id-1"  # the old copy stays


def test_read_many_is_one_get_all_round_trip(store):
    for i in range(5):
        write_intent(store, make_intent(f"s{i}", f"id-{i}"))
    before = dict(store.stats)
    got = read_many(store, [paths.intent(f"s{i}") for i in range(6)], Intent)
    assert store.stats["get_all"] == before.get("get_all", 0) + 1
    assert store.stats["get"] == before.get("get", 0)
    assert [v.intent_id if v else None for v in got.values()] == ["id-0", "id-1", "id-2", "id-3", "id-4", None]


def test_datetimes_come_back_aware_utc(store):
    write_intent(store, make_intent("s1", "id-1"))
    got = read(store, paths.intent("s1"), Intent)
    assert got.as_of == datetime(2024, 5, 1, 21, 30, tzinfo=timezone.utc)


def test_lease_is_exclusive_until_released(store):
    for s in (store, MemoryStore()):
        ok1, _ = s.try_lease(paths.lock("paper"), "a", 60)
        ok2, held = s.try_lease(paths.lock("paper"), "b", 60)
        assert ok1 and not ok2 and held["holder"] == "a"
        s.release_lease(paths.lock("paper"), "b")  # not the holder: no effect
        assert not s.try_lease(paths.lock("paper"), "b", 60)[0]
        s.release_lease(paths.lock("paper"), "a")
        assert s.try_lease(paths.lock("paper"), "b", 60)[0]


def test_expired_lease_can_be_taken(store):
    assert store.try_lease(paths.lock("paper"), "a", 0.0)[0]
    assert store.try_lease(paths.lock("paper"), "b", 60)[0]


def test_write_batches_chunks_in_order_under_the_firestore_limit(store):
    """More writes than one Firestore batch takes: chunks of at most BATCH_WRITES, in order, all written."""
    assert BATCH_WRITES <= FIRESTORE_BATCH_LIMIT == 500
    for s in (store, MemoryStore()):
        writes = [(f"bulk/d{i:04d}", {"i": i}) for i in range(FIRESTORE_BATCH_LIMIT + 1)]
        before = s.stats["batch"]
        s.write_batches(writes)
        assert s.stats["batch"] == before + 2  # 501 writes with 400 per batch
        docs = s.list_docs("bulk")
        assert [d["i"] for _, d in docs] == list(range(FIRESTORE_BATCH_LIMIT + 1))


def test_write_batches_sizes_empty_and_bounds():
    class Recording(MemoryStore):
        def __init__(self) -> None:
            super().__init__()
            self.chunks: list[list[str]] = []

        def write_batch(self, writes):
            self.chunks.append([p for p, _ in writes])
            super().write_batch(writes)

    s = Recording()
    s.write_batches([])
    assert s.chunks == [] and s.stats["batch"] == 0  # no writes, no round trip
    s.write_batches([(f"c/d{i}", {"i": i}) for i in range(5)], size=2)
    assert s.chunks == [["c/d0", "c/d1"], ["c/d2", "c/d3"], ["c/d4"]]
    for bad in (0, 501):
        with pytest.raises(ValueError, match="batch size"):
            s.write_batches([("c/x", {})], size=bad)
    assert s.get("c/x") is None


def test_write_batches_stops_at_the_failing_chunk():
    class FailsSecond(MemoryStore):
        calls = 0

        def write_batch(self, writes):
            self.calls += 1
            if self.calls == 2:
                raise StoreError("refused")
            super().write_batch(writes)

    s = FailsSecond()
    with pytest.raises(StoreError):
        s.write_batches([(f"c/d{i}", {"i": i}) for i in range(5)], size=2)
    assert [i for i, _ in s.list_docs("c")] == ["d0", "d1"]  # the first chunk stays, the third is not tried
