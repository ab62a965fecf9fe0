"""Step 5: aggregate per symbol and settle conflicts between strategies.

Policies for strategies that disagree on direction (one long, one short):

* ``net`` (default): sum everything; opposite targets net out.
* ``highest_confidence``: the side of the most confident target wins (missing
  confidence counts as 0; ties go to the first strategy by id); the other
  side's contributions are dropped.
* ``first_come``: the side of the first strategy in ``priority_order``
  (unlisted strategies come after, by id) wins.
* ``cancel``: keep the current holding.

Same-direction targets always add up. Every direction conflict, and every
strategy listing one symbol twice (``duplicate``), is recorded.
"""

from __future__ import annotations

from bus.models import Conflict, Instrument, TargetLine


def aggregate(books: dict[str, dict[str, float]], instruments: dict[str, Instrument], policy: str,
              holdings: dict[str, float], confidence: dict[tuple[str, str], float] | None = None,
              priority_order: list[str] | None = None,
              duplicates: dict[str, dict[str, int]] | None = None) -> tuple[list[TargetLine], list[Conflict]]:
    """Net the strategies' books (units) into one target line per symbol.

    Args:
        books: strategy id -> symbol -> signed units.
        instruments: symbol -> instrument description.
        policy: one of ``net``, ``highest_confidence``, ``first_come``, ``cancel``.
        holdings: symbol -> units held now (for ``cancel``).
        confidence: (strategy id, symbol) -> 0..100.
        priority_order: strategy ids, first wins under ``first_come``.
        duplicates: strategy id -> symbol -> times listed (> 1 is a duplicate).

    Returns:
        (target lines sorted by symbol, conflicts).
    """
    confidence = confidence or {}
    order = {sid: i for i, sid in enumerate(priority_order or [])}
    by_symbol: dict[str, dict[str, float]] = {}
    for sid in sorted(books):
        for sym, q in books[sid].items():
            by_symbol.setdefault(sym, {})[sid] = q
    lines, conflicts = [], []
    for sid, dup in sorted((duplicates or {}).items()):
        for sym, n in sorted(dup.items()):
            conflicts.append(Conflict(type="duplicate", symbol=sym, strategies=[sid], wanted={sid: books[sid][sym]},
                                      policy="sum", outcome=books[sid][sym], note=f"listed {n} times; summed"))
    for sym in sorted(by_symbol):
        contrib = by_symbol[sym]
        total = sum(contrib.values())
        if any(q > 0 for q in contrib.values()) and any(q < 0 for q in contrib.values()):
            longs = {s: q for s, q in contrib.items() if q > 0}
            shorts = {s: q for s, q in contrib.items() if q < 0}
            kept = contrib
            if policy == "highest_confidence":
                best = max(sorted(longs | shorts), key=lambda s: confidence.get((s, sym), 0.0))
                kept = longs if best in longs else shorts
            elif policy == "first_come":
                first = min(sorted(longs | shorts), key=lambda s: order.get(s, len(order)))
                kept = longs if first in longs else shorts
            if policy == "cancel":
                total = holdings.get(sym, 0.0)
                contrib = {}
            elif policy != "net":
                contrib = {s: q for s, q in contrib.items() if s in kept or q == 0}
                total = sum(contrib.values())
            conflicts.append(Conflict(type="direction", symbol=sym, strategies=sorted(longs | shorts),
                                      wanted={s: q for s, q in sorted((longs | shorts).items())}, policy=policy,
                                      outcome=total))
        inst = instruments.get(sym) or Instrument(symbol=sym)
        # Trusted values (floats computed here): construct without re-validating every contribution.
        lines.append(TargetLine.model_construct(symbol=sym, secType=inst.secType, exchange=inst.exchange,
                                                currency=inst.currency, contract_details=inst.contract_details,
                                                quantity=float(total), price=None, contributions=dict(contrib)))
    return lines, conflicts
