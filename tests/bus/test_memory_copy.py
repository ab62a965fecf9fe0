"""MemoryStore's document copies: the same as a deep copy, independent of the caller's dicts."""

from __future__ import annotations

import copy
from datetime import datetime, timezone
from enum import Enum

from bus.store import MemoryStore, _copy


class Side(str, Enum):
    BUY = "BUY"


def doc() -> dict:
    return {"a": 1, "b": 2.5, "c": None, "d": True, "e": "x", "t": datetime(2024, 1, 2, tzinfo=timezone.utc),
            "side": Side.BUY, "raw": b"\x00", "nested": {"list": [1, {"k": [2, 3]}, (4, [5])], "empty": {}},
            "rows": [{"q": 1.0, "tags": ["a", "b"]}, [[]]], "obj": {1, 2}}


def test_copy_equals_deepcopy_and_shares_nothing_mutable():
    d = doc()
    c = _copy(d)
    assert c == copy.deepcopy(d) == d
    c["nested"]["list"][1]["k"].append(9)
    c["rows"][0]["tags"].append("z")
    c["nested"]["list"][2][1].append(6)
    c["obj"].add(3)
    assert d == doc()
    assert c["side"] is Side.BUY and type(c["nested"]["list"][2]) is tuple


def test_store_keeps_its_own_copy_and_peek_all_returns_it():
    st = MemoryStore()
    d = doc()
    st.set("c/x", d)
    d["nested"]["list"].append("caller's change")
    got = st.get("c/x")
    assert got == doc()
    got["rows"].clear()  # a reader's change stays the reader's
    assert st.get("c/x") == doc()
    peeked = st.peek_all(["c/x", "c/missing"])
    assert peeked["c/x"] == doc() and peeked["c/missing"] is None
    assert peeked["c/x"] is st.peek_all(["c/x"])["c/x"]  # not a copy: read-only by contract


def test_one_document_written_to_two_paths_of_a_batch_stays_two_documents():
    st = MemoryStore()
    d = doc()
    st.write_batch([("c/latest", d), ("c/id1", d)])
    st.increment("c/latest", {"a": 1}, appends={"rows": ["new"]})
    assert st.get("c/id1") == doc()
    assert st.get("c/latest")["a"] == 2
    assert st.get_all(["c/id1", "c/none"], fields=["a", "nested"]) == {
        "c/id1": {"a": 1, "nested": doc()["nested"]}, "c/none": None}
    part = st.get_all(["c/id1"], fields=["nested"])["c/id1"]
    part["nested"]["list"].clear()
    assert st.get("c/id1") == doc()
