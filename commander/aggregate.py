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

The books are a :class:`Table` of (strategy, symbol, units) entries; :func:`net` computes the netted
quantities from it and :func:`documents` the target lines and conflicts, so a caller on arrays builds the
documents only when they are recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import compress

import numpy as np

from bus.models import Conflict, Instrument, TargetLine
from commander.arrays import by_column, row_sums


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
    table = Table.from_books(books)
    netted = net(table, policy, holdings, confidence, priority_order)
    return documents(table, netted, instruments, policy, duplicate_conflicts(duplicates, books))


def duplicate_conflicts(duplicates: dict[str, dict[str, int]] | None,
                        books: dict[str, dict[str, float]]) -> list[Conflict]:
    """A ``duplicate`` conflict per (strategy, symbol) listed more than once (``duplicates``: strategy id ->
    symbol -> times listed), its summed units read from ``books`` (strategy id -> symbol -> units)."""
    out = []
    for sid, dup in sorted((duplicates or {}).items()):
        for sym, n in sorted(dup.items()):
            out.append(Conflict(type="duplicate", symbol=sym, strategies=[sid], wanted={sid: books[sid][sym]},
                                policy="sum", outcome=books[sid][sym], note=f"listed {n} times; summed"))
    return out


@dataclass
class Netted:
    """The netted book: ``quantities[j]`` (units) of the table's symbol ``j``; ``kept[j]`` the contributions
    (strategy id -> units) a non-``net`` policy left on a symbol with a direction conflict."""

    quantities: list[float]
    kept: dict[int, dict[str, float]] = field(default_factory=dict)


def net(table: Table, policy: str, holdings: dict[str, float],
        confidence: dict[tuple[str, str], float] | Callable[[], dict[tuple[str, str], float]] | None = None,
        priority_order: list[str] | None = None) -> Netted:
    """The netted quantity of each symbol of ``table`` under ``policy`` (see the module docstring).

    ``confidence`` ((strategy id, symbol) -> 0..100) may be a function giving it: it is called only when
    ``highest_confidence`` has a conflict to settle.
    """
    out = Netted(list(table.totals))
    if policy == "net":
        return out
    order = {sid: i for i, sid in enumerate(priority_order or [])}
    conf: dict[tuple[str, str], float] | None = None
    for j in compress(range(len(table.symbols)), table.mixed):
        sym = table.symbols[j]
        if policy == "cancel":
            out.quantities[j] = holdings.get(sym, 0.0)
            out.kept[j] = {}
            continue
        wanted = table.nonzero(j)
        if policy == "highest_confidence":
            if conf is None:
                conf = (confidence() if callable(confidence) else confidence) or {}
            c = conf
            winner = max(wanted, key=lambda s: c.get((s, sym), 0.0))
        elif policy == "first_come":
            winner = min(wanted, key=lambda s: order.get(s, len(order)))
        else:
            continue
        longs = {s: q for s, q in wanted.items() if q > 0}
        kept = longs if winner in longs else {s: q for s, q in wanted.items() if q < 0}
        contrib = {s: q for s, q in table.contributions(j).items() if s in kept or q == 0}
        out.kept[j] = contrib
        out.quantities[j] = float(sum(contrib.values()))
    return out


def documents(table: Table, netted: Netted, instruments: dict[str, Instrument], policy: str,
              conflicts: list[Conflict] | None = None) -> tuple[list[TargetLine], list[Conflict]]:
    """(target lines sorted by symbol, ``conflicts`` + a ``direction`` conflict per symbol with longs and shorts)."""
    lines, conflicts = [], list(conflicts or [])
    for j, sym in enumerate(table.symbols):
        contrib = netted.kept[j] if j in netted.kept else table.contributions(j)
        total = netted.quantities[j]
        if table.mixed[j]:
            wanted = table.nonzero(j)  # the longs and the shorts, by strategy id
            conflicts.append(Conflict.model_construct(type="direction", symbol=sym, strategies=list(wanted),
                                                      wanted=wanted, policy=policy, outcome=float(total), note=""))
        inst = instruments.get(sym) or Instrument(symbol=sym)
        # Trusted values (floats computed here): construct without re-validating every contribution.
        lines.append(TargetLine.model_construct(symbol=sym, secType=inst.secType, exchange=inst.exchange,
                                                currency=inst.currency, contract_details=inst.contract_details,
                                                quantity=float(total), price=None, contributions=contrib))
    return lines, conflicts


class Table:
    """The books as (strategy, symbol, units) entries grouped by symbol (symbols sorted, strategies in
    ``sids`` order within each symbol).

    ``totals[j]`` is symbol ``j``'s sum added strategy by strategy in ``sids`` order from 0.0 (the same
    floating-point operations as Python's ``sum`` over the symbol's contributions, see
    :func:`commander.arrays.row_sums`); ``mixed[j]`` says whether it has both a long and a short.
    """

    def __init__(self, sids: list[str], symbols: list[str], row: np.ndarray, col: np.ndarray,
                 val: np.ndarray) -> None:
        """Entries ``(row[k], col[k], val[k])``: ``sids[row]`` holds ``val`` units of ``symbols[col]``
        (sorted symbols, each used by an entry; at most one entry per strategy and symbol)."""
        self.sids, self.symbols = sids, symbols
        n = len(symbols)
        order = by_column(row, col, len(sids), n)  # by symbol; within one, by strategy
        self._row, self._val = row[order], val[order]
        counts = np.bincount(col, minlength=n)
        self._bounds: list[int] = np.concatenate([[0], np.cumsum(counts)]).tolist()
        self.totals: list[float] = row_sums(self._val, np.array(self._bounds, dtype=np.int64)).tolist()
        self.mixed: list[bool] = ((np.bincount(col[val > 0], minlength=n) > 0)
                                  & (np.bincount(col[val < 0], minlength=n) > 0)).tolist()
        self._lists: tuple[list[str], list[float], list[bool]] | None = None

    @classmethod
    def from_books(cls, books: dict[str, dict[str, float]]) -> Table:
        """The table of ``books`` (strategy id -> symbol -> units)."""
        sids = sorted(books)
        symbols = sorted({sym for b in books.values() for sym in b})
        index = {sym: j for j, sym in enumerate(symbols)}
        rows: list[int] = []
        cols: list[int] = []
        vals: list[float] = []
        for i, sid in enumerate(sids):
            b = books[sid]
            rows += [i] * len(b)
            cols += map(index.__getitem__, b)
            vals += b.values()
        return cls(sids, symbols, np.array(rows, dtype=np.int64), np.array(cols, dtype=np.int64),
                   np.array(vals, dtype=float))

    @classmethod
    def from_entries(cls, sids: list[str], labels: list[str], row: np.ndarray, col: np.ndarray,
                     val: np.ndarray) -> Table:
        """The table of entries whose ``col`` indexes ``labels`` (sorted; labels no entry uses are left out)."""
        used = np.flatnonzero(np.bincount(col, minlength=len(labels)))
        remap = np.zeros(len(labels), dtype=np.int64)
        remap[used] = np.arange(len(used))
        return cls(sids, [labels[j] for j in used.tolist()], row, remap[col], val)

    def _entries(self) -> tuple[list[str], list[float], list[bool]]:
        if self._lists is None:
            self._lists = (np.array(self.sids, dtype=object)[self._row].tolist(), self._val.tolist(),
                           (self._val != 0).tolist())
        return self._lists

    def contributions(self, j: int) -> dict[str, float]:
        """Strategy id -> units of symbol ``j``, for every strategy listing it, in ``sids`` order."""
        a, b = self._bounds[j], self._bounds[j + 1]
        sids, units, _ = self._entries()
        return dict(zip(sids[a:b], units[a:b], strict=True))

    def nonzero(self, j: int) -> dict[str, float]:
        """Strategy id -> units of symbol ``j``, for the strategies wanting a non-zero position, in ``sids`` order."""
        a, b = self._bounds[j], self._bounds[j + 1]
        sids, units, nonzero = self._entries()
        nz = nonzero[a:b]
        return dict(zip(compress(sids[a:b], nz), compress(units[a:b], nz), strict=True))
