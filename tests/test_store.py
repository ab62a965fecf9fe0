"""The Firestore store on the real emulator: immutable copies, batched reads, the lease."""

from __future__ import annotations

from datetime import datetime, timezone

from bus import paths
from bus.models import Intent, TargetPosition
from bus.store import MemoryStore, read, read_many
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
