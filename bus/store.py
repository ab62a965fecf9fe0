"""The store: where documents live. Firestore (real or emulator) and in memory.

Both stores take and return plain dicts keyed by document path
(``collection/doc[/collection/doc...]``). Typed access goes through
:func:`read` / :func:`read_many` with a model from :mod:`bus.models`.

Every store counts its round trips in ``stats`` so benchmarks and tests can
check that a run reads many documents in one ``get_all``.
"""

from __future__ import annotations

import copy
import logging
import os
import socket
import threading
import time
from abc import ABC, abstractmethod
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, TypeVar

from pydantic import BaseModel

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
#: ``decide`` of :meth:`Store.update_counters`: the document (None when missing) -> None, or
#: (increments: field -> number to add, fields: field -> value to set).
Decide = Callable[[dict[str, Any] | None], tuple[dict[str, float], dict[str, Any]] | None]
#: An increment of :meth:`Store.commit`: (document path, field -> number to add, field -> value to set).
Increment = tuple[str, dict[str, float], dict[str, Any]]
#: Attempts of one :meth:`FirestoreStore.update_counters` transaction under contention.
COUNTER_TX_ATTEMPTS = 50

#: Firestore refuses a batch (a commit) of more than this many writes.
FIRESTORE_BATCH_LIMIT = 500
#: Writes per batch in :meth:`Store.write_batches`: below the limit, with room to spare.
BATCH_WRITES = 400


#: Seconds one store call may take (one attempt), unless ``$INTENT_BUS_STORE_TIMEOUT`` says otherwise.
STORE_TIMEOUT_SECONDS = 10.0
#: Seconds all attempts of one store call may take together, unless ``$INTENT_BUS_STORE_DEADLINE`` says otherwise.
STORE_DEADLINE_SECONDS = 20.0
STORE_TIMEOUT_ENV = "INTENT_BUS_STORE_TIMEOUT"
STORE_DEADLINE_ENV = "INTENT_BUS_STORE_DEADLINE"


def _env_seconds(name: str, default: float) -> float:
    """A positive number of seconds from the environment, else ``default``."""
    try:
        value = float(os.environ.get(name, ""))
    except ValueError:
        return default
    return value if value > 0 else default


class StoreError(RuntimeError):
    """The store could not be reached or refused an operation."""


Writes = list[tuple[str, dict[str, Any]]]


def batches(writes: Writes, size: int | None = None) -> list[Writes]:
    """``writes`` in consecutive chunks of at most ``size`` (default :data:`BATCH_WRITES`), in order: the
    batches of :meth:`Store.write_batches`.

    Raises:
        ValueError: ``size`` is not within 1..:data:`FIRESTORE_BATCH_LIMIT`.
    """
    size = BATCH_WRITES if size is None else size
    if not 1 <= size <= FIRESTORE_BATCH_LIMIT:
        raise ValueError(f"batch size must be within 1..{FIRESTORE_BATCH_LIMIT}, got {size}")
    return [writes[start:start + size] for start in range(0, len(writes), size)]


class Store(ABC):
    """A document store. Paths have an even number of segments.

    ``stats`` counts round trips by kind: ``get``, ``get_all``, ``set``,
    ``batch``, ``list``, ``delete``, ``transaction``. Subclasses implement the
    abstract methods; :meth:`write_batches` (chunking over :meth:`write_batch`)
    is shared by every store.
    """

    def __init__(self) -> None:
        self.stats: Counter[str] = Counter()
        self._stats_lock = threading.Lock()
        #: Called with the paths of every committed write (``set``, ``write_batch``), after the commit.
        #: The embedded emulator uses it to save its state at the pipeline's commit points.
        self.on_commit: Callable[[list[str]], None] | None = None

    def _committed(self, paths: list[str]) -> None:
        if self.on_commit is not None:
            self.on_commit(paths)

    def _count(self, kind: str) -> None:
        with self._stats_lock:
            self.stats[kind] += 1

    @abstractmethod
    def get(self, path: str) -> dict[str, Any] | None:
        """One document, or None when it does not exist."""

    @abstractmethod
    def get_all(self, paths: Iterable[str], fields: list[str] | None = None) -> dict[str, dict[str, Any] | None]:
        """Many documents in one round trip: path -> data (None when missing). ``fields`` keeps only those
        top-level fields (a projection: a large map left out is not read)."""

    @abstractmethod
    def set(self, path: str, data: dict[str, Any]) -> None:
        """Create or replace one document."""

    @abstractmethod
    def write_batch(self, writes: list[tuple[str, dict[str, Any]]]) -> None:
        """Create or replace several documents atomically, in one round trip."""

    def write_batches(self, writes: list[tuple[str, dict[str, Any]]], size: int | None = None) -> None:
        """Create or replace any number of documents: :meth:`write_batch` on consecutive
        chunks of at most ``size`` writes (default :data:`BATCH_WRITES`), in order (one
        round trip each; nothing for no writes). Shared by :class:`MemoryStore` and
        :class:`FirestoreStore`, so a backtest batches exactly as the cloud does.

        Each chunk is atomic, the whole is not: when a chunk fails, the earlier ones stay
        written and the later ones are not tried (the error propagates).

        Raises:
            ValueError: ``size`` is not within 1..:data:`FIRESTORE_BATCH_LIMIT`.
            StoreError: a chunk could not be written.
        """
        for chunk in batches(writes, size):
            self.write_batch(chunk)

    @abstractmethod
    def list_docs(self, collection: str) -> list[tuple[str, dict[str, Any]]]:
        """All documents of a collection as (id, data), sorted by id."""

    @abstractmethod
    def list_where(self, collection: str, field: str, value: Any) -> list[tuple[str, dict[str, Any]]]:
        """Documents of a collection whose top-level ``field`` equals ``value``, as (id, data), sorted by id.

        One round trip (a Firestore equality query on a single-field index).
        """

    def list_page(self, collection: str, order_by: str, limit: int, start_after: str | None = None,
                  descending: bool = True, fields: list[str] | None = None) -> list[tuple[str, dict[str, Any]]]:
        """One page of a collection ordered by the top-level field ``order_by`` (then by id): at most
        ``limit`` (id, data), after the document ``start_after`` (a cursor: the last id of the previous
        page; an id that does not exist starts from the beginning), largest first when ``descending``.
        ``fields`` keeps only those top-level fields (a projection: large maps are not read).
        Documents without ``order_by`` are left out. One round trip, two with a cursor.

        This default sorts the whole collection (:class:`MemoryStore`); :class:`FirestoreStore` queries.
        """
        docs = [(i, d) for i, d in self.list_docs(collection) if d.get(order_by) is not None]
        docs.sort(key=lambda x: (x[1][order_by], x[0]), reverse=descending)
        ids = [i for i, _ in docs]
        if start_after is not None and start_after in ids:
            docs = docs[ids.index(start_after) + 1:]
        page = docs[:max(0, limit)]
        keep = set(fields) | {order_by} if fields is not None else None
        return [(i, {k: v for k, v in d.items() if keep is None or k in keep}) for i, d in page]

    @abstractmethod
    def delete(self, path: str) -> None:
        """Delete one document (no error when it does not exist)."""

    @abstractmethod
    def try_lease(self, path: str, holder: str, ttl_seconds: float) -> tuple[bool, dict[str, Any] | None]:
        """Take the lease at ``path`` for ``holder`` in a transaction.

        Succeeds when no lease exists, the existing one has expired (wall clock),
        or ``holder`` already holds it. Returns (taken, the lease document now
        in force).
        """

    @abstractmethod
    def release_lease(self, path: str, holder: str) -> None:
        """Release the lease if ``holder`` holds it."""

    @abstractmethod
    def update_counters(self, path: str, decide: Decide) -> tuple[bool, dict[str, Any] | None]:
        """Read one document and apply ``decide(document or None)`` to it in one transaction.

        ``decide`` returns None (write nothing) or ``(increments, fields)``: top-level numeric
        fields to add to (Firestore ``Increment``) and fields to set (merged). It may be called
        more than once when the transaction is retried after contention, so it must not have
        side effects. For counters that need no read, :meth:`increment` is one write and never
        contends (the emulator resolves contending transactions slowly).

        Returns (written, the document after the update, or as read when nothing was written).

        Raises:
            StoreError: the store is unreachable, or the transaction kept failing.
        """

    @abstractmethod
    def increment(self, path: str, deltas: dict[str, float], fields: dict[str, Any] | None = None,
                  appends: dict[str, list[Any]] | None = None) -> dict[str, float]:
        """Add ``deltas`` to top-level numeric fields of one document, atomically, in one write.

        Firestore ``Increment`` transforms: the server applies them in order, so concurrent
        writers in any number of processes never lose a count, and nothing is read first (no
        transaction to contend). A missing document or field counts from 0. ``fields`` are set
        (merged), ``appends`` add elements to array fields (Firestore ``ArrayUnion``: an element
        already there is not added twice).

        Returns the incremented fields' values right after this write (the server's transform
        results): what this writer's own delta brought them to. Like every write here it is
        retried on a transient error; a commit whose answer was lost would then count twice.

        Raises:
            StoreError: the store is unreachable.
        """

    @abstractmethod
    def commit(self, writes: list[tuple[str, dict[str, Any]]],
               increments: list[Increment] | None = None) -> list[dict[str, float]]:
        """Replace documents and add to counters, atomically, in one round trip (one commit).

        ``writes`` are (path, document) replacements, as :meth:`write_batch`; ``increments`` are
        (path, deltas, fields) counter updates, as :meth:`increment` without ``appends``: deltas
        added with ``Increment`` transforms (never a lost count across processes), ``fields`` merged.
        Either all of it is written or none. At most :data:`FIRESTORE_BATCH_LIMIT` writes in all.

        Returns, per increment in order, its incremented fields' values right after the commit.

        Raises:
            StoreError: the store is unreachable or refused the commit (nothing was written).
        """


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _lease_decision(current: dict[str, Any] | None, holder: str, now: datetime) -> bool:
    """May ``holder`` take the lease ``current``? Yes when there is none, it is its own, it has expired, or
    its holder was a process on this host that no longer exists (a ``kill -9``'d run: no need to wait
    for the expiry)."""
    if current is None:
        return True
    expires = current.get("expires_at")
    if current.get("holder") == holder:
        return True
    if expires is None or expires <= now:
        return True
    pid = current.get("pid")
    return bool(current.get("host") == socket.gethostname() and isinstance(pid, int) and pid != os.getpid()
                and not _alive(pid))


def _lease_doc(holder: str, now: datetime, ttl_seconds: float) -> dict[str, Any]:
    """The lease document: who holds it, until when, and which process (host, pid) took it."""
    return {"holder": holder, "taken_at": now, "expires_at": now + timedelta(seconds=ttl_seconds),
            "host": socket.gethostname(), "pid": os.getpid()}


#: Seconds an unreachable store is not asked again (every call fails at once meanwhile).
DOWN_SECONDS = 30.0
#: Conditional-write attempts of one lease take before it counts as refused.
LEASE_ATTEMPTS = 5

#: Values a document may hold that never change in place: shared, not copied.
_IMMUTABLE = (str, int, float, bool, type(None), datetime, bytes)
#: The exact types of :data:`_IMMUTABLE` (a ``type(v) in`` test is cheaper than ``isinstance`` per value).
_SCALAR_TYPES = frozenset(_IMMUTABLE)


def _copy(value: Any) -> Any:
    """Deep copy of a document value: dicts, lists and tuples are rebuilt, immutable
    scalars (str, numbers, bool, None, datetime, bytes) are shared, anything else
    goes through :func:`copy.deepcopy`. Same result as ``copy.deepcopy`` for
    documents, several times faster (no memo, no reduce protocol for datetimes, no
    call per scalar: :func:`_copy_dict` and :func:`_copy_list` test exact types inline)."""
    t = type(value)
    if t in _SCALAR_TYPES:
        return value
    if t is dict:
        return _copy_dict(value)
    if t is list:
        return _copy_list(value)
    if isinstance(value, _IMMUTABLE):  # subclasses (str enums, ...)
        return value
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_copy(v) for v in value)
    return copy.deepcopy(value)


def _copy_dict(d: dict[Any, Any]) -> dict[Any, Any]:
    """:func:`_copy` of a plain dict."""
    out = {}
    for k, v in d.items():
        t = type(v)
        if t in _SCALAR_TYPES:
            out[k] = v
        elif t is dict:
            out[k] = _copy_dict(v)
        elif t is list:
            out[k] = _copy_list(v)
        else:
            out[k] = _copy(v)
    return out


def _copy_list(items: list[Any]) -> list[Any]:
    """:func:`_copy` of a plain list."""
    out = []
    for v in items:
        t = type(v)
        if t in _SCALAR_TYPES:
            out.append(v)
        elif t is dict:
            out.append(_copy_dict(v))
        elif t is list:
            out.append(_copy_list(v))
        else:
            out.append(_copy(v))
    return out


def _hashable(value: Any) -> bool:
    """Whether ``value`` can key :class:`MemoryStore`'s equality index (scalars, not maps or lists)."""
    return isinstance(value, _IMMUTABLE)


def _applied(doc: dict[str, Any] | None, increments: dict[str, float], fields: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with ``fields`` set and ``increments`` added (a missing field counts as 0)."""
    out = _copy(doc) or {}
    out.update(_copy(fields))
    for k, v in increments.items():
        out[k] = (out.get(k) or 0) + v
    return out


class MemoryStore(Store):
    """In-process store for backtests and unit tests: deep copies in and out.

    Documents are kept by path, and each collection keeps the ids of its
    documents, so listing a collection costs its size, not the store's.
    """

    def __init__(self) -> None:
        super().__init__()
        self._docs: dict[str, dict[str, Any]] = {}
        self._collections: dict[str, dict[str, None]] = {}
        #: (collection, field) -> ids whose field holds a given value: built by the first
        #: :meth:`list_where` on them and kept up to date by every write (a backtest asks for the
        #: open orders every day; a scan would grow with every order ever placed).
        self._where: dict[tuple[str, str], dict[Any, dict[str, None]]] = {}
        self._lock = threading.RLock()

    def _index(self, collection: str, doc_id: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        for (coll, field), by_value in self._where.items():
            if coll != collection:
                continue
            if old is not None and _hashable(old.get(field)):
                by_value.get(old.get(field), {}).pop(doc_id, None)
            if new is not None and _hashable(new.get(field)):
                by_value.setdefault(new.get(field), {})[doc_id] = None

    def _put(self, path: str, data: dict[str, Any]) -> None:
        collection, _, doc_id = path.rpartition("/")
        old = self._docs.get(path)
        if old is None:
            self._collections.setdefault(collection, {})[doc_id] = None
        self._docs[path] = data
        if self._where:
            self._index(collection, doc_id, old, data)

    def _drop(self, path: str) -> None:
        old = self._docs.pop(path, None)
        if old is not None:
            collection, _, doc_id = path.rpartition("/")
            self._collections.get(collection, {}).pop(doc_id, None)
            if self._where:
                self._index(collection, doc_id, old, None)

    def get(self, path: str) -> dict[str, Any] | None:
        self._count("get")
        with self._lock:
            d = self._docs.get(path)
            return _copy(d) if d is not None else None

    def get_all(self, paths: Iterable[str], fields: list[str] | None = None) -> dict[str, dict[str, Any] | None]:
        self._count("get_all")
        with self._lock:
            if fields is None:
                return {p: _copy(self._docs.get(p)) for p in paths}
            docs = {p: self._docs.get(p) for p in paths}  # only the fields asked for are copied
            return {p: (_copy({k: v for k, v in d.items() if k in fields}) if d is not None else None)
                    for p, d in docs.items()}

    def peek_all(self, paths: Iterable[str]) -> dict[str, dict[str, Any] | None]:
        """Path -> the stored document itself (None when missing), **not** a copy: for an in-process reader
        that only reads it (validates it into a model) and drops it before the next write, such as the
        backtest engine's per-step record. Mutating a returned document corrupts the store. Counted as a
        ``get_all``."""
        self._count("get_all")
        with self._lock:
            return {p: self._docs.get(p) for p in paths}

    def set(self, path: str, data: dict[str, Any]) -> None:
        self._count("set")
        with self._lock:
            self._put(path, _copy(data))

    def write_batch(self, writes: list[tuple[str, dict[str, Any]]]) -> None:
        """Each write's document copied in; a document written to several paths of the batch is copied once
        and shared by them (the store never changes a stored document in place: it replaces it)."""
        self._count("batch")
        copies: dict[int, dict[str, Any]] = {}
        with self._lock:
            for path, data in writes:
                doc = copies.get(id(data))
                if doc is None:
                    doc = copies[id(data)] = _copy(data)
                self._put(path, doc)

    def list_docs(self, collection: str) -> list[tuple[str, dict[str, Any]]]:
        self._count("list")
        prefix = collection + "/"
        with self._lock:
            ids = self._collections.get(collection, {})
            out = [(i, _copy(self._docs[prefix + i])) for i in ids]
        return sorted(out, key=lambda x: x[0])

    def list_where(self, collection: str, field: str, value: Any) -> list[tuple[str, dict[str, Any]]]:
        self._count("list")
        with self._lock:
            return [(i, _copy(d)) for i, d in self._where_docs(collection, field, value)]

    def _where_docs(self, collection: str, field: str, value: Any) -> list[tuple[str, dict[str, Any]]]:
        """(id, stored document) of ``collection`` whose ``field`` equals ``value``, sorted by id (no copy;
        the caller holds the lock)."""
        prefix = collection + "/"
        ids = self._collections.get(collection, {})
        if not _hashable(value):
            out = [(i, self._docs[prefix + i]) for i in ids if self._docs[prefix + i].get(field) == value]
            return sorted(out, key=lambda x: x[0])
        by_value = self._where.get((collection, field))
        if by_value is None:
            by_value = self._where[(collection, field)] = {}
            for i in ids:
                v = self._docs[prefix + i].get(field)
                if _hashable(v):
                    by_value.setdefault(v, {})[i] = None
        out = [(i, d) for i in by_value.get(value, {}) if (d := self._docs[prefix + i]).get(field) == value]
        return sorted(out, key=lambda x: x[0])

    # ---------------------------------------------------------------- lent documents (no copies)
    # For in-process callers that keep to the terms of :mod:`bus.lent`: a document read is only read
    # (validated into a model) and never changed; a document written is handed over and never touched again.

    def peek(self, path: str) -> dict[str, Any] | None:
        """The stored document itself (None when missing), **not** a copy (see :meth:`peek_all`). Counted as
        a ``get``."""
        self._count("get")
        with self._lock:
            return self._docs.get(path)

    def peek_docs(self, collection: str) -> list[tuple[str, dict[str, Any]]]:
        """:meth:`list_docs` without the copies: (id, stored document) sorted by id; read-only. Counted as a
        ``list``."""
        self._count("list")
        prefix = collection + "/"
        with self._lock:
            out = [(i, self._docs[prefix + i]) for i in self._collections.get(collection, {})]
        return sorted(out, key=lambda x: x[0])

    def peek_where(self, collection: str, field: str, value: Any) -> list[tuple[str, dict[str, Any]]]:
        """:meth:`list_where` without the copies: (id, stored document) sorted by id; read-only. Counted as a
        ``list``."""
        self._count("list")
        with self._lock:
            return self._where_docs(collection, field, value)

    def adopt_batch(self, writes: list[tuple[str, dict[str, Any]]]) -> None:
        """:meth:`write_batch` that keeps the documents given instead of copies: the caller hands them over
        (a fresh ``to_store()`` dump it drops) and never changes them afterwards. Counted as a ``batch``."""
        self._count("batch")
        with self._lock:
            for path, data in writes:
                self._put(path, data)

    def delete(self, path: str) -> None:
        self._count("delete")
        with self._lock:
            self._drop(path)

    def try_lease(self, path: str, holder: str, ttl_seconds: float) -> tuple[bool, dict[str, Any] | None]:
        self._count("transaction")
        now = datetime.now(timezone.utc)
        with self._lock:
            current = self._docs.get(path)
            if not _lease_decision(current, holder, now):
                return False, _copy(current)
            doc = _lease_doc(holder, now, ttl_seconds)
            self._put(path, doc)
            return True, _copy(doc)

    def update_counters(self, path: str, decide: Decide) -> tuple[bool, dict[str, Any] | None]:
        self._count("transaction")
        with self._lock:
            current = self._docs.get(path)
            upd = decide(_copy(current))
            if upd is None:
                return False, _copy(current)
            doc = _applied(current, *upd)
            self._put(path, doc)
            return True, _copy(doc)

    def increment(self, path: str, deltas: dict[str, float], fields: dict[str, Any] | None = None,
                  appends: dict[str, list[Any]] | None = None) -> dict[str, float]:
        self._count("set")
        with self._lock:
            doc = _copy(self._docs.get(path)) or {}
            doc.update(_copy(fields or {}))
            for k, items in (appends or {}).items():
                doc[k] = list(doc.get(k) or []) + [x for x in items if x not in (doc.get(k) or [])]
            for k, v in deltas.items():
                doc[k] = (doc.get(k) or 0) + v
            self._put(path, doc)
            return {k: doc[k] for k in deltas}

    def release_lease(self, path: str, holder: str) -> None:
        self._count("transaction")
        with self._lock:
            if (self._docs.get(path) or {}).get("holder") == holder:
                self._drop(path)

    # The MemoryStore counterpart of Store.commit (one commit per LLM decision, issue 14).
    def commit(self, writes: list[tuple[str, dict[str, Any]]],
               increments: list[Increment] | None = None) -> list[dict[str, float]]:
        """The writes (copied in) and the increments under one lock: atomic like Firestore's commit."""
        self._count("batch")
        out = []
        with self._lock:
            for path, data in writes:
                self._put(path, _copy(data))
            for path, deltas, fields in increments or []:
                doc = _applied(self._docs.get(path), deltas, fields)
                self._put(path, doc)
                out.append({k: doc[k] for k in deltas})
        return out


class FirestoreStore(Store):
    """Store on ``google-cloud-firestore``: the emulator when ``FIRESTORE_EMULATOR_HOST``
    is set, real Firestore otherwise (credentials from the environment).

    Raises:
        StoreError: wrapping any client error, with the path involved.
    """

    def __init__(self, project: str, client: Any | None = None, timeout: float | None = None,
                 deadline: float | None = None) -> None:
        """Args:
            timeout: seconds one attempt of a call may take (default ``$INTENT_BUS_STORE_TIMEOUT``
                or :data:`STORE_TIMEOUT_SECONDS`).
            deadline: seconds all retries of a call may take together (default
                ``$INTENT_BUS_STORE_DEADLINE`` or :data:`STORE_DEADLINE_SECONDS`). The client's own
                default is 300 s a call: an unreachable store took minutes to report.
        """
        super().__init__()
        from google.api_core import retry as api_retry  # heavy imports kept at the edge
        from google.cloud import firestore

        self._fs = firestore
        self.project = project
        self.client = client or firestore.Client(project=project)
        self.timeout = timeout or _env_seconds(STORE_TIMEOUT_ENV, STORE_TIMEOUT_SECONDS)
        self.deadline = deadline or _env_seconds(STORE_DEADLINE_ENV, STORE_DEADLINE_SECONDS)
        from google.api_core import exceptions as api_exceptions

        def transient(exc: Exception) -> bool:  # the client's transient errors, and an attempt that timed out
            return api_retry.if_transient_error(exc) or isinstance(exc, api_exceptions.DeadlineExceeded)

        self._down: tuple[float, str] | None = None
        self._path_locks: dict[str, threading.Lock] = {}
        self._retry = api_retry.Retry(initial=0.1, maximum=1.0, multiplier=2.0, timeout=self.deadline,
                                      predicate=transient)

    @property
    def _call(self) -> dict[str, Any]:
        """The bounded ``retry`` and ``timeout`` every client call gets."""
        return {"retry": self._retry, "timeout": self.timeout}

    def _wrap(self, what: str, exc: Exception) -> StoreError:
        """A :class:`StoreError` for ``exc``; an unreachable store is remembered (see :meth:`_check_up`)."""
        if type(exc).__name__ in ("RetryError", "ServiceUnavailable", "DeadlineExceeded"):
            self._down = (time.monotonic(), f"{what}: {type(exc).__name__}")
        return StoreError(f"firestore {what} failed: {type(exc).__name__}: {exc}")

    def _check_up(self) -> None:
        """Fail fast after the store was found unreachable: for :data:`DOWN_SECONDS` every call raises at
        once instead of waiting out its own deadline (a run ends in seconds, not minutes).

        Raises:
            StoreError: the store was unreachable less than :data:`DOWN_SECONDS` ago.
        """
        if self._down is not None:
            when, what = self._down
            if time.monotonic() - when < DOWN_SECONDS:
                raise StoreError(f"firestore unreachable ({what}, {time.monotonic() - when:.0f} s ago)")
            self._down = None

    def get(self, path: str) -> dict[str, Any] | None:
        self._check_up()
        self._count("get")
        try:
            snap = self.client.document(path).get(**self._call)
        except Exception as exc:  # re-raised as StoreError
            raise self._wrap(f"get {path}", exc) from exc
        return snap.to_dict() if snap.exists else None

    def get_all(self, paths: Iterable[str], fields: list[str] | None = None) -> dict[str, dict[str, Any] | None]:
        self._check_up()
        paths = list(dict.fromkeys(paths))
        out: dict[str, dict[str, Any] | None] = {p: None for p in paths}
        if not paths:
            return out
        self._count("get_all")
        from bus import firestore_codec

        client = self.client
        names = {client.document(p)._document_path: p for p in paths}
        # The client's ``get_all`` request, its answers decoded from the raw protobuf (bus.firestore_codec:
        # the same values, without proto-plus wrappers and the snapshot's deep copy).
        request = {"database": client._database_string, "documents": list(names),
                   "mask": {"field_paths": list(fields)} if fields is not None else None, "transaction": None}
        try:
            for resp in client._firestore_api.batch_get_documents(request=request, metadata=client._rpc_metadata,
                                                                  **self._call):
                pb = resp._pb
                if pb.WhichOneof("result") == "found":
                    out[names[pb.found.name]] = firestore_codec.decode_fields(pb.found.fields, client)
        except Exception as exc:
            raise self._wrap(f"get_all of {len(paths)} documents", exc) from exc
        return out

    def set(self, path: str, data: dict[str, Any]) -> None:
        self._check_up()
        self._count("set")
        try:
            self.client.document(path).set(data, **self._call)
        except Exception as exc:
            raise self._wrap(f"set {path}", exc) from exc
        self._committed([path])

    def write_batch(self, writes: list[tuple[str, dict[str, Any]]]) -> None:
        self._check_up()
        if not writes:
            return
        self._count("batch")
        batch = self.client.batch()
        for path, data in writes:
            batch.set(self.client.document(path), data)
        try:
            batch.commit(**self._call)
        except Exception as exc:
            raise self._wrap(f"batch write of {[p for p, _ in writes]}", exc) from exc
        self._committed([p for p, _ in writes])

    def list_docs(self, collection: str) -> list[tuple[str, dict[str, Any]]]:
        self._check_up()
        self._count("list")
        try:
            snaps = list(self.client.collection(collection).stream(**self._call))
        except Exception as exc:
            raise self._wrap(f"list {collection}", exc) from exc
        return sorted(((s.id, s.to_dict()) for s in snaps), key=lambda x: x[0])

    def list_where(self, collection: str, field: str, value: Any) -> list[tuple[str, dict[str, Any]]]:
        self._check_up()
        self._count("list")
        try:
            from google.cloud.firestore_v1.base_query import FieldFilter

            query = self.client.collection(collection).where(filter=FieldFilter(field, "==", value))
            snaps = list(query.stream(**self._call))
        except Exception as exc:
            raise self._wrap(f"query {collection} where {field} == {value!r}", exc) from exc
        return sorted(((s.id, s.to_dict()) for s in snaps), key=lambda x: x[0])

    def list_page(self, collection: str, order_by: str, limit: int, start_after: str | None = None,
                  descending: bool = True, fields: list[str] | None = None) -> list[tuple[str, dict[str, Any]]]:
        """A query ordered by ``order_by`` with a limit, a cursor and a projection (see :meth:`Store.list_page`)."""
        self._check_up()
        self._count("list")
        fs = self._fs
        if limit <= 0:
            return []
        try:
            col = self.client.collection(collection)
            direction = fs.Query.DESCENDING if descending else fs.Query.ASCENDING
            query = col.order_by(order_by, direction=direction)
            if fields is not None:
                query = query.select(sorted(set(fields) | {order_by}))
            if start_after is not None:
                cursor = col.document(start_after).get(**self._call)
                if cursor.exists:
                    query = query.start_after(cursor)
            snaps = list(query.limit(limit).stream(**self._call))
        except Exception as exc:
            raise self._wrap(f"page of {collection}", exc) from exc
        return [(s.id, s.to_dict() or {}) for s in snaps]

    def delete(self, path: str) -> None:
        self._check_up()
        self._count("delete")
        try:
            self.client.document(path).delete(**self._call)
        except Exception as exc:
            raise self._wrap(f"delete {path}", exc) from exc

    def try_lease(self, path: str, holder: str, ttl_seconds: float) -> tuple[bool, dict[str, Any] | None]:
        """Take the lease with a conditional write, not a transaction: ``create`` when there is none
        (exactly one of many concurrent callers succeeds), else an update on the condition that the
        document is still the one just read. A caller that loses reads the lease again and is refused
        with the winner's name: twenty runs at once give one lease and nineteen refusals, never a
        transaction that gave up."""
        self._check_up()
        from google.api_core import exceptions as api_exceptions

        self._count("transaction")
        ref = self.client.document(path)
        for _ in range(LEASE_ATTEMPTS):
            try:
                snap = ref.get(**self._call)
                current = snap.to_dict() if snap.exists else None
                now = datetime.now(timezone.utc)
                if not _lease_decision(current, holder, now):
                    return False, current
                doc = _lease_doc(holder, now, ttl_seconds)
                if snap.exists:
                    ref.update(doc, option=self.client.write_option(last_update_time=snap.update_time), **self._call)
                else:
                    ref.create(doc, **self._call)
                return True, doc
            except (api_exceptions.AlreadyExists, api_exceptions.FailedPrecondition, api_exceptions.Conflict):
                continue  # someone else wrote it between our read and our write: read it again
            except Exception as exc:
                raise self._wrap(f"lease {path}", exc) from exc
        snap = ref.get(**self._call)
        return False, (snap.to_dict() if snap.exists else {"holder": "? (contended)"})

    def update_counters(self, path: str, decide: Decide) -> tuple[bool, dict[str, Any] | None]:
        """A Firestore transaction (read, then a merged ``set`` whose counters are ``Increment``
        transforms), retried up to :data:`COUNTER_TX_ATTEMPTS` times under contention. The threads
        of one process take turns on a path (a lock), so only other processes ever contend."""
        self._check_up()
        self._count("transaction")
        with self._stats_lock:
            lock = self._path_locks.setdefault(path, threading.Lock())
        with lock:
            return self._update_counters(path, decide)

    def _update_counters(self, path: str, decide: Decide) -> tuple[bool, dict[str, Any] | None]:
        fs, ref = self._fs, self.client.document(path)

        @fs.transactional
        def run(tx: Any) -> tuple[bool, dict[str, Any] | None]:
            snap = ref.get(transaction=tx)
            current = snap.to_dict() if snap.exists else None
            upd = decide(_copy(current))
            if upd is None:
                return False, current
            increments, fields = upd
            tx.set(ref, self._counter_data(increments, fields), merge=True)
            return True, _applied(current, increments, fields)

        try:
            written, doc = run(self.client.transaction(max_attempts=COUNTER_TX_ATTEMPTS))
        except Exception as exc:
            raise self._wrap(f"transaction on {path}", exc) from exc
        if written:
            self._committed([path])
        return written, doc

    def increment(self, path: str, deltas: dict[str, float], fields: dict[str, Any] | None = None,
                  appends: dict[str, list[Any]] | None = None) -> dict[str, float]:
        """One merged ``set`` with ``Increment`` (and ``ArrayUnion``) transforms. The client sends the
        transforms sorted by field path and the server returns their results in that order."""
        self._check_up()
        self._count("set")
        try:
            result = self.client.document(path).set(self._counter_data(deltas, fields, appends), merge=True,
                                                    **self._call)
        except Exception as exc:
            raise self._wrap(f"increment {path}", exc) from exc
        self._committed([path])
        return self._counter_values(result, deltas, appends)

    def _counter_data(self, deltas: dict[str, float], fields: dict[str, Any] | None = None,
                      appends: dict[str, list[Any]] | None = None) -> dict[str, Any]:
        """The merged ``set`` of a counter update: ``fields`` as they are, ``appends`` as ``ArrayUnion`` and
        ``deltas`` as ``Increment`` transforms."""
        fs = self._fs
        data: dict[str, Any] = dict(fields or {})
        data.update({k: fs.ArrayUnion(list(v)) for k, v in (appends or {}).items()})
        data.update({k: fs.Increment(v) for k, v in deltas.items()})
        return data

    def _counter_values(self, result: Any, deltas: dict[str, float],
                        appends: dict[str, list[Any]] | None = None) -> dict[str, float]:
        """The incremented fields' values from a write result of :meth:`_counter_data`: the client sends the
        transforms sorted by field path and the server returns their results in that order."""
        from google.cloud.firestore_v1 import _helpers

        names = sorted([*deltas, *(appends or {})])
        values = [_helpers.decode_value(v, self.client) for v in result.transform_results]
        return {k: v for k, v in zip(names, values, strict=True) if k in deltas and isinstance(v, (int, float))}

    def commit(self, writes: list[tuple[str, dict[str, Any]]],
               increments: list[Increment] | None = None) -> list[dict[str, float]]:
        """One batch commit: the writes encoded straight into protobuf (:mod:`bus.firestore_codec`, the
        same bytes as the client's ``set``, a third of its CPU), then each increment as a merged ``set``
        with ``Increment`` transforms, whose results the server returns sorted by field path."""
        self._check_up()
        increments = increments or []
        if not writes and not increments:
            return []
        self._count("batch")
        from google.cloud.firestore_v1.types import write as write_types

        from bus import firestore_codec

        batch = self.client.batch()
        for path, data in writes:
            ref = self.client.document(path)
            try:
                pb = firestore_codec.set_write(ref._document_path, data)
            except firestore_codec.NotPlain:  # a sentinel inside: the client's own encoding
                batch.set(ref, data)
                continue
            batch._add_write_pbs([write_types.Write.wrap(pb)])
        for path, deltas, fields in increments:
            batch.set(self.client.document(path), self._counter_data(deltas, fields), merge=True)
        try:
            results = batch.commit(**self._call)
        except Exception as exc:
            raise self._wrap(f"commit of {[p for p, _ in writes]} and increments of "
                             f"{[p for p, _, _ in increments]}", exc) from exc
        self._committed([p for p, _ in writes] + [p for p, _, _ in increments])
        return [self._counter_values(result, deltas)
                for (_, deltas, _), result in zip(increments, results[len(writes):], strict=True)]

    def release_lease(self, path: str, holder: str) -> None:
        """Delete the lease if ``holder`` holds it (conditional on the document read)."""
        self._check_up()
        from google.api_core import exceptions as api_exceptions

        self._count("transaction")
        ref = self.client.document(path)
        try:
            snap = ref.get(**self._call)
            if snap.exists and (snap.to_dict() or {}).get("holder") == holder:
                ref.delete(option=self.client.write_option(last_update_time=snap.update_time), **self._call)
        except (api_exceptions.FailedPrecondition, api_exceptions.NotFound, api_exceptions.Conflict):
            return  # taken over meanwhile (an expired lease): not ours to delete
        except Exception as exc:
            raise self._wrap(f"release {path}", exc) from exc


def read(store: Store, path: str, model: type[M]) -> M | None:
    """Read one document as ``model``; None when it does not exist.

    Raises:
        pydantic.ValidationError: when the stored document does not fit the model.
    """
    data = store.get(path)
    return model.model_validate(data) if data is not None else None


def read_many(store: Store, paths: list[str], model: type[M]) -> dict[str, M | None]:
    """Read many documents as ``model`` in one ``get_all`` round trip."""
    raw = store.get_all(paths)
    return {p: (model.model_validate(d) if d is not None else None) for p, d in raw.items()}
