"""The audit record: assemble ``executions/{id}`` from what a run read and did (pure).

A record too large for one Firestore document is stored as a header plus parts under
``executions/{id}/parts`` (:func:`split_execution`, :func:`join_execution`).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Any, Literal, get_args

from bus import paths
from bus.models import Execution, ExecutionContext, ExecutionStatus, OrderRecord
from commander.decide import CommanderInputs, Plan
from commander.state import INVALID_INTENT, LoadedState

CODE_VERSION = "commander/2"
#: Orders the summary names one by one; it counts the rest.
SUMMARY_ORDERS = 50

#: What started a Commander run: the values of :attr:`bus.models.Execution.trigger`.
Trigger = Literal["scheduled", "manual", "backtest", "replay"]


def as_trigger(value: str) -> Trigger:
    """``value`` as a :data:`Trigger`.

    Raises:
        ValueError: not a trigger an execution records.
    """
    for trigger in get_args(Trigger):
        if value == trigger:
            return trigger
    raise ValueError(f"unknown trigger {value!r}; expected one of {', '.join(get_args(Trigger))}")


def _summary(dry_run: bool, orders: list[OrderRecord]) -> str:
    if not orders:
        return "No orders: holdings already match the targets."
    parts = ", ".join(f"{o.action} {o.totalQuantity:g} {o.symbol}"
                      + ("" if o.status in ("Filled", "DryRun", "Submitted") else f" ({o.status})")
                      for o in orders[:SUMMARY_ORDERS])
    if len(orders) > SUMMARY_ORDERS:  # the header stays small at any scale; orders_placed lists them all
        parts += f" and {len(orders) - SUMMARY_ORDERS} more"
    if dry_run:
        return f"Dry run: would place {len(orders)} orders: {parts}."
    return f"Placed {len(orders)} orders: {parts}."


def build_execution(execution_id: str, as_of: datetime, trigger: str, dry_run: bool, status: ExecutionStatus,
                    st: LoadedState,
                    plan: Plan | None, orders: list[OrderRecord], inputs: CommanderInputs | None = None,
                    reason: str | None = None, notes: tuple[str, ...] = (),
                    cancelled: list[OrderRecord] | None = None, external: dict[str, float] | None = None,
                    context: ExecutionContext | None = None) -> Execution:
    """Assemble the audit record (no I/O). ``inputs`` are recorded for replay; ``context``: the one
    :func:`execution_context` built of the same ``st`` and ``inputs`` earlier in the run (reused as it is)."""
    ctx = context if context is not None else execution_context(st, inputs)
    summary = _summary(dry_run, orders) if plan else (reason or "")
    if notes:
        summary = " ".join(notes) + ". " + summary
    ex = Execution(execution_id=execution_id, executed_at=datetime.now(timezone.utc), as_of=as_of,
                   trigger=as_trigger(trigger),
                   dry_run=dry_run, status=status, summary=summary, reason=reason, context=ctx,
                   orders_placed=orders, orders_cancelled=cancelled or [], external=external or {})
    if plan:
        c = plan.classification
        ex.decision = plan.decision
        ex.missing_strategies, ex.stale_strategies = c.missing, c.stale
        ex.strategy_reasons = dict(sorted(c.reasons.items()))
        ex.errored_strategies, ex.skipped_strategies = c.errored, c.skipped
        ex.unmanaged = plan.unmanaged
    return ex


def execution_context(st: LoadedState, inputs: CommanderInputs | None) -> ExecutionContext:
    """What a run read and decided on, as its execution records it (for replay): the snapshot and intents
    it used, the configuration, and with ``inputs`` the books, prices and specs of the decision."""
    snap = st.snapshot
    ctx = ExecutionContext(
        portfolio_snapshot_ref=paths.portfolio(snap.mode, snap.snapshot_id) if snap else None,
        strategy_intents_refs={s: paths.intent(s, i.intent_id) for s, i in st.intents.items()
                               if i and i.source.code_version != INVALID_INTENT},
        config_used=st.config.to_store(),
        strategy_configs={s: c.to_store() for s, c in st.strategies.items()},
        code_version=CODE_VERSION)
    if inputs:
        ctx.books_used, ctx.drawdowns, ctx.sharpes = inputs.books, inputs.drawdowns, inputs.sharpes
        ctx.book_capital = inputs.book_capital
        ctx.prev_close_nav, ctx.prices, ctx.specs = inputs.prev_close_nav, inputs.prices, inputs.specs
    return ctx


# --------------------------------------------------------------------------- a record too large for one document

#: A record whose encoded size is at most this stays one document, as it always was (bytes).
HEADER_LIMIT = 64 * 1024
#: A list or map field larger than this leaves the header of a split record (bytes).
FIELD_LIMIT = 1024
#: Largest encoded size of one part document (bytes; Firestore allows 1 MiB).
PART_LIMIT = 256 * 1024
#: Part documents per write batch: a commit stays at most 2 MiB, under the 4 MiB message the emulator
#: accepts (Firestore's API allows 10 MiB).
PARTS_PER_BATCH = 8
#: The sub-documents whose list and map fields may move to parts, besides the top level.
_NESTED = ("context", "decision")


def _encoded(value: Any) -> bytes:
    return json.dumps(value, default=str, separators=(",", ":")).encode()


def encoded_size(value: Any) -> int:
    """Bytes of ``value`` as compact JSON (times as text): an upper bound of Firestore's size for
    these documents, whose numbers Firestore stores in 8 bytes."""
    return len(_encoded(value))


def _chunks(value: list | dict, limit: int) -> list[list | dict]:
    """``value`` cut into consecutive chunks of at most ``limit`` encoded bytes (one item may pass it alone)."""
    items = list(value.items()) if isinstance(value, dict) else list(value)
    out: list[list] = []
    size = 0
    for item in items:
        n = encoded_size(item) + 1
        if not out or (out[-1] and size + n > limit):
            out.append([])
            size = 0
        out[-1].append(item)
        size += n
    if isinstance(value, dict):
        return [dict(c) for c in out]
    return list(out)


class ExecutionDumps:
    """A run's executions in their stored form (``Execution.to_store()``) with their encoded size
    (:func:`encoded_size`), the dumps of ``context`` and ``decision`` made once while the executions hold
    the same objects: a run writes its record ahead (``placing``) and again when it audits, with the same
    context and decision, the bulk of the record. The documents returned share those dumps: they are
    written and read, never changed (the stores replace a document, never change it in place).
    """

    #: The sub-documents whose dumps are reused.
    REUSED = ("context", "decision")

    def __init__(self) -> None:
        self._kept: dict[str, tuple[Any, dict[str, Any], int]] = {}

    def dump(self, ex: Execution) -> tuple[dict[str, Any], int]:
        """(``ex.to_store()``, its encoded size in bytes): the same document, keys in the same order."""
        kept = {}
        for name in self.REUSED:
            sub = getattr(ex, name)
            hit = self._kept.get(name)
            if hit is None or hit[0] is not sub:
                doc = sub.to_store()
                hit = self._kept[name] = (sub, doc, encoded_size(doc))
            kept[name] = hit
        rest = ex.model_dump(mode="python", by_alias=True, exclude=set(self.REUSED))
        # compact JSON of a map: {"k":v,...}; each reused field adds its key, a colon, its value and a comma
        size = encoded_size(rest) + sum(encoded_size(k) + hit[2] + 2 for k, hit in kept.items())
        doc = {k: (kept[k][1] if k in kept else rest[k]) for k in _field_names(type(ex))}
        return doc, size


def _field_names(model: type[Execution]) -> list[str]:
    """The keys of ``model``'s dump by alias, in order."""
    return [f.serialization_alias or f.alias or name for name, f in model.model_fields.items()]


def split_execution(doc: dict[str, Any], header_limit: int = HEADER_LIMIT, part_limit: int = PART_LIMIT,
                    size: int | None = None) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    """The stored form of an execution (``Execution.to_store()``): (header, part writes).

    A record of at most ``header_limit`` encoded bytes is returned whole, with no parts. A larger
    one keeps its scalars and small fields in the header, and each list or map field of more than
    :data:`FIELD_LIMIT` bytes, at the top level or in ``context``/``decision``, moves to
    ``executions/{id}/parts/{revision}-{field}.{k}`` (chunks of at most ``part_limit`` bytes:
    ``revision``, ``field``, ``index``, ``items``), its place in the header left empty and
    ``detail_parts[field]`` set to its number of chunks. ``revision`` (``detail_revision``) is a
    digest of the whole record, so rewriting a record (``placing``, then ``completed``) writes new
    parts and a header that was not rewritten still reads the complete set it was written with.
    :func:`join_execution` puts it back together. ``doc`` is not modified. ``size``: ``encoded_size(doc)``
    when the caller knows it already (:meth:`ExecutionDumps.dump`).
    """
    if size is not None and size <= header_limit:
        return doc, []
    whole = _encoded(doc)
    if len(whole) <= header_limit:
        return doc, []
    header = {k: (dict(v) if k in _NESTED and isinstance(v, dict) else v) for k, v in doc.items()}
    ex_id = str(header["execution_id"])
    revision = hashlib.sha256(whole).hexdigest()[:16]
    parts: list[tuple[str, dict[str, Any]]] = []
    counts: dict[str, int] = {}
    fields = [(header, k, k) for k in doc if k not in _NESTED]
    fields += [(header[n], k, f"{n}.{k}") for n in _NESTED if isinstance(header.get(n), dict) for k in header[n]]
    for parent, key, name in fields:
        value = parent[key]
        if not isinstance(value, (list, dict)) or not value or encoded_size(value) <= FIELD_LIMIT:
            continue
        chunks = _chunks(value, part_limit)
        parts += [(paths.execution_part(ex_id, revision, name, i),
                   {"execution_id": ex_id, "revision": revision, "field": name, "index": i, "items": chunk})
                  for i, chunk in enumerate(chunks)]
        counts[name] = len(chunks)
        parent[key] = [] if isinstance(value, list) else {}
    header["detail_parts"], header["detail_revision"] = counts, revision
    return header, parts


def part_paths(header: dict[str, Any]) -> list[str]:
    """Paths of the part documents a stored header refers to (none for a record in one document)."""
    ex_id, rev = header["execution_id"], header.get("detail_revision", "")
    return [paths.execution_part(ex_id, rev, name, i)
            for name, n in sorted((header.get("detail_parts") or {}).items()) for i in range(n)]


def join_execution(header: dict[str, Any], parts: dict[str, dict[str, Any] | None]) -> dict[str, Any]:
    """The whole stored execution from its header and its parts (path -> document), as :func:`split_execution`
    cut it; ``detail_parts`` is kept, so the record says it was split.

    Raises:
        LookupError: a part the header counts is missing.
    """
    missing = [p for p in part_paths(header) if parts.get(p) is None]
    if missing:
        raise LookupError(f"execution {header.get('execution_id')}: parts missing: {', '.join(missing[:5])}"
                          f"{' …' if len(missing) > 5 else ''}")
    doc = {k: (dict(v) if k in _NESTED and isinstance(v, dict) else v) for k, v in header.items()}
    for name, n in sorted((header.get("detail_parts") or {}).items()):
        chunks = [parts[paths.execution_part(header["execution_id"], header.get("detail_revision", ""), name, i)]
                  for i in range(n)]
        items = [c["items"] for c in chunks if c is not None]
        parent, key = (doc[name.split(".")[0]], name.split(".", 1)[1]) if "." in name else (doc, name)
        if isinstance(items[0], dict):
            parent[key] = {k: v for chunk in items for k, v in chunk.items()}
        else:
            parent[key] = [v for chunk in items for v in chunk]
    return doc
