"""Journal entries: kept whole, but well under Firestore's 1 MiB document limit.

:func:`fit` summarises long texts in place - the prompts, the raw response, the
decisions' free-text fields, the attempts' errors - keeping the head and the
tail of each and, between them, the number of characters left out and the
sha256 of the whole text, and lists the summarised fields in ``summarised``.
No field is dropped. It tightens the per-text limit until the entry's JSON is
at most :data:`DOC_LIMIT_BYTES` (a quarter of the 1 MiB limit). Market series
are never stored here: the prompt shows the last few values and
``market_refs`` names the bars they came from.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Sequence

from bus import paths
from bus.journal import JournalEntry, TraderState
from bus.store import Increment, Store

DOC_LIMIT_BYTES = 256 * 1024
TEXT_LIMIT_CHARS = 64_000
RECENT_DECISIONS = 200


def summarise_text(text: str, limit: int) -> tuple[str, bool]:
    """``text`` if it fits ``limit`` characters, else its head and tail around a marker naming what was left out."""
    if len(text) <= limit:
        return text, False
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    head, tail = int(limit * 0.6), int(limit * 0.3)
    marker = (f"\n[... {len(text) - head - tail} characters summarised; "
              f"whole text {len(text)} characters, sha256 {digest} ...]\n")
    return text[:head] + marker + text[len(text) - tail:], True


def size_bytes(entry: JournalEntry) -> int:
    """Size of the entry as JSON, UTF-8 (an upper bound of what Firestore stores for it)."""
    return len(json.dumps(entry.model_dump(mode="json"), ensure_ascii=False).encode("utf-8"))


def _shrink(entry: JournalEntry, limit: int) -> JournalEntry:
    e = entry.model_copy(deep=True)
    done: list[str] = list(e.summarised)

    def mark(name: str, changed: bool) -> None:
        if changed and name not in done:
            done.append(name)

    for name in ("system_prompt", "user_prompt", "raw_response", "error_message"):
        value = getattr(e, name)
        if isinstance(value, str):
            new, changed = summarise_text(value, limit)
            setattr(e, name, new)
            mark(name, changed)
    small = max(200, limit // 8)
    for i, d in enumerate(e.decisions):
        for k, v in list(d.items()):
            if isinstance(v, str):
                d[k], changed = summarise_text(v, small)
                mark(f"decisions[{i}].{k}", changed)
    for i, a in enumerate(e.attempts):
        if a.error:
            a.error, changed = summarise_text(a.error, small)
            mark(f"attempts[{i}].error", changed)
        if a.refusal:
            a.refusal, changed = summarise_text(a.refusal, limit)
            mark(f"attempts[{i}].refusal", changed)
    for i, r in enumerate(e.rejections):
        r.reason, changed = summarise_text(r.reason, small)
        mark(f"rejections[{i}].reason", changed)
    e.summarised = done
    return e


def _has_long_text(e: JournalEntry, limit: int) -> bool:
    """Would :func:`_shrink` at ``limit`` summarise any text of ``e`` (the same thresholds)?"""
    small = max(200, limit // 8)
    return (any(isinstance(v, str) and len(v) > limit
                for v in (e.system_prompt, e.user_prompt, e.raw_response, e.error_message))
            or any(isinstance(v, str) and len(v) > small for d in e.decisions for v in d.values())
            or any((a.error and len(a.error) > small) or (a.refusal and len(a.refusal) > limit) for a in e.attempts)
            or any(len(r.reason) > small for r in e.rejections))


def fit(entry: JournalEntry, max_bytes: int = DOC_LIMIT_BYTES) -> JournalEntry:
    """The entry with long texts summarised so that its JSON is at most ``max_bytes`` (``entry`` itself,
    not a copy, when nothing needs summarising).

    Raises:
        ValueError: it cannot be brought under ``max_bytes`` (too many decisions, say).
    """
    limit = TEXT_LIMIT_CHARS
    if not _has_long_text(entry, limit) and size_bytes(entry) <= max_bytes:
        return entry
    e = _shrink(entry, limit)
    while size_bytes(e) > max_bytes:
        if limit <= 500:
            raise ValueError(f"journal entry {entry.decision_id} is {size_bytes(e)} bytes even summarised; "
                             f"limit {max_bytes}")
        limit //= 2
        e = _shrink(entry, limit)
    return e


def write(store: Store, entry: JournalEntry, state: TraderState, extra: Sequence[tuple[str, dict]] = (),
          increments: Sequence[Increment] = ()) -> str:
    """Write the (fitted, :func:`compact`) entry, the trader's state, ``extra`` writes (the cache entry)
    and ``increments`` (the budget charges, :func:`strategies.llm.budget.charge`) in one commit
    (:meth:`bus.store.Store.commit`: one round trip, all or nothing); return the entry's path.

    Raises:
        bus.store.StoreError: the store is unreachable (nothing was written).
        ValueError: see :func:`fit`.
    """
    e = fit(entry)
    path = paths.journal(e.strategy_id, e.decision_id)
    kept = [d for d in state.recent_decisions if d != e.decision_id]
    state.recent_decisions = [*kept, e.decision_id][-RECENT_DECISIONS:]
    store.commit([*extra, (path, compact(e)), (paths.llm_state(e.strategy_id), compact(state))], list(increments))
    return path


def compact(doc: JournalEntry | TraderState) -> dict[str, Any]:
    """The document without its null fields (reading it back restores them as None).

    Every field of a Firestore document is indexed; leaving out the empty ones
    halves the write time of a journal entry on the emulator. The decisions
    are kept exactly as the model gave them, nulls included.
    """
    return doc.model_dump(mode="python", by_alias=True, exclude_none=True)


def read_recent(store: Store, strategy_id: str, last: int) -> list[JournalEntry]:
    """The last ``last`` journal entries of a trader, oldest first (read through its state's index)."""
    raw = store.get(paths.llm_state(strategy_id))
    if not raw:
        return []
    ids = TraderState.model_validate(raw).recent_decisions[-last:] if last > 0 else []
    docs: dict[str, Any] = store.get_all([paths.journal(strategy_id, d) for d in ids])
    return [JournalEntry.model_validate(docs[paths.journal(strategy_id, d)]) for d in ids
            if docs.get(paths.journal(strategy_id, d))]
