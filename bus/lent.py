"""Store reads and writes without :class:`~bus.store.MemoryStore`'s copies, for callers that keep to two terms.

MemoryStore copies every document in and out (its contract: a caller may change what it got or what it
wrote). Most in-process callers do neither: they validate what they read into a model at once, and
write fresh ``to_store()`` dumps they drop. For them the copies were a third of a backtest's store time.

Terms of the functions here:

* **read**: the documents returned are only read (validated into models, looked at) and never changed;
  a model validated from one shares the values of its untyped (``Any``) fields with the store (e.g.
  ``StrategyConfig.params``, ``Intent.order_details``): read those, never change them in place.
* **write**: the documents given are handed over: the caller never changes them afterwards (a fresh
  dump it drops). One document may go to several paths of a batch (the store never changes a stored
  document in place).

On any other store (Firestore) each function is the plain :class:`~bus.store.Store` call (its documents
are fresh anyway), so callers behave the same on both; round-trip counts (``Store.stats``) are the same too.
So is a subclass of MemoryStore that overrides the plain call (a test's recording or failing store), or an
instance whose method was replaced: the override is called.
"""

from __future__ import annotations

from typing import Any, Iterable, TypeGuard

from bus.store import MemoryStore, Store, batches

Doc = dict[str, Any]


def _lends(store: Store, method: str) -> TypeGuard[MemoryStore]:
    """Is ``store`` a MemoryStore whose ``method`` is MemoryStore's own (not overridden by a subclass, nor
    replaced on the instance)?"""
    return (isinstance(store, MemoryStore) and getattr(type(store), method) is getattr(MemoryStore, method)
            and method not in vars(store))


def read(store: Store, path: str) -> Doc | None:
    """``store.get(path)`` under the read terms (no copy in memory). Raises what ``get`` raises."""
    return store.peek(path) if _lends(store, "get") else store.get(path)


def read_all(store: Store, paths: Iterable[str]) -> dict[str, Doc | None]:
    """``store.get_all(paths)`` under the read terms: path -> document or None. Raises what ``get_all`` raises."""
    return store.peek_all(paths) if _lends(store, "get_all") else store.get_all(paths)


def read_collection(store: Store, collection: str) -> list[tuple[str, Doc]]:
    """``store.list_docs(collection)`` under the read terms: (id, document) sorted by id."""
    return store.peek_docs(collection) if _lends(store, "list_docs") else store.list_docs(collection)


def read_where(store: Store, collection: str, field: str, value: Any) -> list[tuple[str, Doc]]:
    """``store.list_where(collection, field, value)`` under the read terms: (id, document) sorted by id."""
    if _lends(store, "list_where"):
        return store.peek_where(collection, field, value)
    return store.list_where(collection, field, value)


def write_owned(store: Store, writes: list[tuple[str, Doc]]) -> None:
    """``store.write_batch(writes)`` under the write terms (one atomic batch, one round trip).

    Raises:
        bus.store.StoreError: the batch could not be written.
    """
    if _lends(store, "write_batch"):
        store.adopt_batch(writes)
    else:
        store.write_batch(writes)


def write_owned_batches(store: Store, writes: list[tuple[str, Doc]], size: int | None = None) -> None:
    """``store.write_batches(writes, size)`` under the write terms: chunks of at most ``size`` writes
    (default :data:`~bus.store.BATCH_WRITES`), in order, each one batch.

    Raises:
        ValueError: ``size`` is not within 1..:data:`~bus.store.FIRESTORE_BATCH_LIMIT`.
        bus.store.StoreError: a chunk could not be written (the earlier ones stay written).
    """
    if not _lends(store, "write_batch") or type(store).write_batches is not MemoryStore.write_batches:
        store.write_batches(writes, size=size)
        return
    for chunk in batches(writes, size):
        store.adopt_batch(chunk)
