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

from itertools import compress

import numpy as np

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
    sids = sorted(books)
    table = _Table(sids, books)
    lines, conflicts = [], []
    for sid, dup in sorted((duplicates or {}).items()):
        for sym, n in sorted(dup.items()):
            conflicts.append(Conflict(type="duplicate", symbol=sym, strategies=[sid], wanted={sid: books[sid][sym]},
                                      policy="sum", outcome=books[sid][sym], note=f"listed {n} times; summed"))
    for j, sym in enumerate(table.symbols):
        contrib = table.contributions(j)
        total = table.totals[j]
        if table.mixed[j]:
            wanted = table.nonzero(j)  # the longs and the shorts, by strategy id
            kept: dict[str, float] = contrib
            if policy in ("highest_confidence", "first_come"):
                longs = {s: q for s, q in wanted.items() if q > 0}
                if policy == "highest_confidence":
                    winner = max(wanted, key=lambda s: confidence.get((s, sym), 0.0))
                else:
                    winner = min(wanted, key=lambda s: order.get(s, len(order)))
                kept = longs if winner in longs else {s: q for s, q in wanted.items() if q < 0}
            if policy == "cancel":
                total = holdings.get(sym, 0.0)
                contrib = {}
            elif policy != "net":
                contrib = {s: q for s, q in contrib.items() if s in kept or q == 0}
                total = sum(contrib.values())
            conflicts.append(Conflict.model_construct(type="direction", symbol=sym, strategies=list(wanted),
                                                      wanted=wanted, policy=policy, outcome=float(total), note=""))
        inst = instruments.get(sym) or Instrument(symbol=sym)
        # Trusted values (floats computed here): construct without re-validating every contribution.
        lines.append(TargetLine.model_construct(symbol=sym, secType=inst.secType, exchange=inst.exchange,
                                                currency=inst.currency, contract_details=inst.contract_details,
                                                quantity=float(total), price=None, contributions=contrib))
    return lines, conflicts


class _Table:
    """The books as (strategy, symbol, units) entries grouped by symbol (symbols sorted, strategies in
    ``sids`` order within each symbol).

    ``totals[j]`` is symbol ``j``'s sum added strategy by strategy in ``sids`` order (a dense matrix summed
    row by row: the same floating-point operations as Python's ``sum`` over the symbol's contributions, an
    absent entry adding 0.0); ``mixed[j]`` says whether it has both a long and a short.
    """

    def __init__(self, sids: list[str], books: dict[str, dict[str, float]]) -> None:
        self.symbols = sorted({sym for b in books.values() for sym in b})
        index = {sym: j for j, sym in enumerate(self.symbols)}
        rows: list[int] = []
        cols: list[int] = []
        vals: list[float] = []
        for i, sid in enumerate(sids):
            b = books[sid]
            rows += [i] * len(b)
            cols += map(index.__getitem__, b)
            vals += b.values()
        row, col, val = np.array(rows, dtype=np.int64), np.array(cols, dtype=np.int64), np.array(vals, dtype=float)
        units = np.zeros((len(sids), len(self.symbols)))
        units[row, col] = val
        totals = np.zeros(len(self.symbols))
        for r in units:  # row by row: the sequential sum, not numpy's pairwise one
            totals += r
        self.totals: list[float] = totals.tolist()
        mixed = np.asarray((units > 0).any(axis=0) & (units < 0).any(axis=0))
        self.mixed: list[bool] = mixed.tolist()
        order = np.argsort(col, kind="stable")  # by symbol; within one, rows stay in sids order
        self._bounds: list[int] = np.searchsorted(col[order], np.arange(len(self.symbols) + 1)).tolist()
        self._sids: list[str] = np.array(sids, dtype=object)[row[order]].tolist()
        self._units: list[float] = val[order].tolist()
        self._nonzero: list[bool] = (val[order] != 0).tolist()

    def contributions(self, j: int) -> dict[str, float]:
        """Strategy id -> units of symbol ``j``, for every strategy listing it, in ``sids`` order."""
        a, b = self._bounds[j], self._bounds[j + 1]
        return dict(zip(self._sids[a:b], self._units[a:b], strict=True))

    def nonzero(self, j: int) -> dict[str, float]:
        """Strategy id -> units of symbol ``j``, for the strategies wanting a non-zero position, in ``sids`` order."""
        a, b = self._bounds[j], self._bounds[j + 1]
        nz = self._nonzero[a:b]
        return dict(zip(compress(self._sids[a:b], nz), compress(self._units[a:b], nz), strict=True))
