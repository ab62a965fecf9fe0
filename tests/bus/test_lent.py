"""bus.lent: MemoryStore reads and writes without copies (lent documents), the plain Store calls elsewhere."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from bus import lent
from bus.store import MemoryStore, StoreError


def doc(n: int = 1) -> dict:
    return {"n": n, "open": True, "t": datetime(2024, 1, 2, tzinfo=timezone.utc), "rows": [{"q": 1.0}]}


def test_reads_lend_the_stored_documents_and_count_like_the_plain_calls():
    st = MemoryStore()
    st.write_batch([("c/a", doc(1)), ("c/b", doc(2) | {"open": False})])
    before = dict(st.stats)
    one = lent.read(st, "c/a")
    assert one == doc(1) and one is lent.read(st, "c/a")  # the stored document itself, not a copy
    assert lent.read(st, "c/none") is None
    many = lent.read_all(st, ["c/a", "c/none"])
    assert many["c/a"] is one and many["c/none"] is None
    assert [i for i, _ in lent.read_collection(st, "c")] == ["a", "b"]
    assert lent.read_collection(st, "c")[0][1] is one
    where = lent.read_where(st, "c", "open", True)
    assert [(i, d) for i, d in where] == [("a", doc(1))] and where[0][1] is one
    used = {k: st.stats[k] - before.get(k, 0) for k in st.stats}
    assert used == {"get": 3, "get_all": 1, "list": 3, "batch": 0}
    assert st.get("c/a") is not one  # the plain call still copies


def test_owned_writes_keep_the_documents_given_and_the_index_follows():
    st = MemoryStore()
    st.list_where("c", "open", True)  # builds the equality index
    d = doc(1)
    lent.write_owned(st, [("c/a", d), ("c/copy", d)])
    assert st.peek("c/a") is d and st.peek("c/copy") is d
    assert [i for i, _ in st.list_where("c", "open", True)] == ["a", "copy"]
    lent.write_owned(st, [("c/a", doc(1) | {"open": False})])
    assert [i for i, _ in st.list_where("c", "open", True)] == ["copy"]
    st.increment("c/copy", {"n": 1})  # replaces the document: the one shared with c/a's old version is untouched
    assert d == doc(1) and st.get("c/copy")["n"] == 2
    assert st.stats["batch"] == 2


def test_owned_batches_chunk_like_write_batches():
    st = MemoryStore()
    lent.write_owned_batches(st, [(f"c/{i}", doc(i)) for i in range(5)], size=2)
    assert st.stats["batch"] == 3 and len(st.list_docs("c")) == 5
    with pytest.raises(ValueError):
        lent.write_owned_batches(st, [("c/x", doc())], size=0)


class Failing(MemoryStore):
    """A store whose writes fail and whose reads are counted: its overrides must be called."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def get(self, path):
        self.reads += 1
        return super().get(path)

    def write_batch(self, writes):
        raise StoreError("firestore batch write failed: test")


def test_a_subclass_that_overrides_the_plain_call_gets_it_called():
    st = Failing()
    MemoryStore.write_batch(st, [("c/a", doc())])
    got = lent.read(st, "c/a")
    assert st.reads == 1 and got == doc() and got is not st.peek("c/a")  # its own get: a copy
    with pytest.raises(StoreError):
        lent.write_owned(st, [("c/b", doc())])
    with pytest.raises(StoreError):
        lent.write_owned_batches(st, [("c/b", doc())])
    assert lent.read(st, "c/b") is None


def test_a_method_replaced_on_the_instance_is_called():
    st = MemoryStore()
    st.set("c/a", doc())
    seen: list[str] = []
    get = st.get
    st.get = lambda path: seen.append(path) or get(path)  # type: ignore[method-assign]
    assert lent.read(st, "c/a") == doc() and seen == ["c/a"]
