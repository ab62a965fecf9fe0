"""bus/firestore_codec.py, FirestoreStore.get_all and FirestoreStore.commit against the real emulator: the
fast encoding gives the client's exact protobuf bytes, decoding gives the client's values, and a commit of
writes and increments is one atomic round trip whose counters never lose a count."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from enum import Enum

import pytest
from google.cloud import firestore
from google.cloud.firestore_v1 import _helpers

from bus import firestore_codec
from bus.store import MemoryStore, StoreError

NAME = "projects/p/databases/(default)/documents/a/b"


class Side(str, Enum):
    LONG = "long"


def sample() -> dict:
    when = datetime(2024, 3, 1, 12, 30, 15, 123456, tzinfo=timezone.utc)
    return {"s": "text", "empty_s": "", "i": 7, "neg": -3, "big": 2**62, "f": 1.5, "zero": 0.0, "t": True,
            "fl": False, "none": None, "when": when, "naive": datetime(2024, 1, 1, 0, 0), "bytes": b"\x00\x01",
            "enum": Side.LONG, "map": {"a": 1, "nested": {"b": [1, "x", None, {"c": when}]}},
            "empty_map": {}, "list": [1, 2.5, "three", {"four": [4, 5]}, {"six": 6}], "empty_list": [], "tuple": (1, 2),
            "unicode": "é ✓ 😀", "dotted.key": "kept as one field", "geo": firestore.GeoPoint(1.5, -2.25)}


def test_fast_encoding_is_the_clients_exact_bytes():
    data = sample()
    expected = _helpers.pbs_for_set_no_merge(NAME, data)[0]._pb.SerializeToString(deterministic=True)
    assert firestore_codec.set_write(NAME, data).SerializeToString(deterministic=True) == expected


def test_a_transform_inside_the_data_is_left_to_the_client():
    with pytest.raises(firestore_codec.NotPlain):
        firestore_codec.set_write(NAME, {"a": {"b": firestore.SERVER_TIMESTAMP}})
    with pytest.raises(firestore_codec.NotPlain):
        firestore_codec.set_write(NAME, {"n": firestore.Increment(1)})


def test_decoding_gives_the_clients_values(store):
    data = sample()
    store.set("codec/doc", data)
    theirs = store.client.document("codec/doc").get().to_dict()  # decoded by the client
    mine = store.get_all(["codec/doc", "codec/missing"])  # decoded by bus.firestore_codec
    assert mine == {"codec/doc": theirs, "codec/missing": None}
    assert {k: type(v) for k, v in mine["codec/doc"].items()} == {k: type(v) for k, v in theirs.items()}
    assert store.get_all(["codec/doc"], fields=["i", "map"]) == {"codec/doc": {"i": 7, "map": theirs["map"]}}


def test_commit_writes_documents_and_increments_in_one_round_trip(store):
    store.set("codec/old", {"x": 1})
    before = store.stats["batch"]
    writes = [("codec/a", sample()), ("codec/old", {"y": 2}), ("codec/ts", {"at": firestore.SERVER_TIMESTAMP})]
    got = store.commit(writes, [("codec/n", {"count": 2, "cost": 0.5}, {"label": "n"}), ("codec/m", {"k": 1}, {})])
    assert store.stats["batch"] == before + 1
    assert got == [{"count": 2, "cost": 0.5}, {"k": 1}]
    assert store.get("codec/a") == store.get_all(["codec/a"])["codec/a"]
    a = store.get("codec/a")
    assert a["map"] == sample()["map"] and a["list"] == sample()["list"] and a["tuple"] == [1, 2]
    assert store.get("codec/old") == {"y": 2}  # replaced, not merged
    assert isinstance(store.get("codec/ts")["at"], datetime)
    assert store.get("codec/n") == {"count": 2, "cost": 0.5, "label": "n"}
    assert store.commit([], [("codec/n", {"count": 3}, {"label": "again"})]) == [{"count": 5}]
    assert store.get("codec/n") == {"count": 5, "cost": 0.5, "label": "again"}
    assert store.commit([]) == []


def test_commit_is_all_or_nothing(store):
    with pytest.raises(StoreError):  # a document over Firestore's 1 MiB limit: the whole commit is refused
        store.commit([("codec/ok", {"x": 1}), ("codec/huge", {"s": "x" * (1 << 20 + 1)})],
                     [("codec/count", {"n": 1}, {})])
    assert store.get_all(["codec/ok", "codec/huge", "codec/count"]) == {"codec/ok": None, "codec/huge": None,
                                                                       "codec/count": None}


def test_concurrent_commits_never_lose_a_count(store):
    def one(k: int) -> None:
        store.commit([(f"codec/doc{k}", {"k": k})], [("codec/total", {"n": 1, "tokens": k}, {})])

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(40)))
    assert store.get("codec/total") == {"n": 40, "tokens": sum(range(40))}


def test_the_memory_store_commits_alike():
    m = MemoryStore()
    m.set("c/n", {"count": 1, "label": "a"})
    assert m.commit([("c/a", {"x": [1]})], [("c/n", {"count": 2}, {"label": "b"}), ("c/new", {"k": 1.5}, {})]) == [
        {"count": 3}, {"k": 1.5}]
    assert m.get("c/n") == {"count": 3, "label": "b"} and m.get("c/new") == {"k": 1.5} and m.get("c/a") == {"x": [1]}
