"""Step 4 on arrays: many books sized at once (:func:`size_books`), as :mod:`commander.size` does one.

The targets of every book become flat arrays, one entry per target position, books one after the
other (``row``: the book; ``col``: the symbol in :class:`Columns`). Every per-entry operation is the
same IEEE operation :mod:`commander.size` performs on one float, and every per-book sum is added in
the book's order (:func:`row_sums`), so the results are equal to the bit. Books that need what the
arrays do not model (a symbol listed twice) are handed back for :mod:`commander.size`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain
from operator import attrgetter

import numpy as np

from bus.constants import LIMIT_EPS, QTY_EPS
from bus.models import DEFAULT_SPEC, InstrumentSpec, RiskAdjustment, StrategyConfig, TargetPosition, TradingConfig
from commander.size import negative_capital
from commander.targets import TargetColumns

_SYMBOL = attrgetter("symbol")
_WEIGHT = attrgetter("weight")


@dataclass
class Columns:
    """The symbols (sorted) and what sizing reads of each, as arrays indexed like ``symbols``.

    ``value``: base currency per unit (price × multiplier; 0.0 without a price); ``lot``, ``min_qty``
    (units) and ``min_notional`` (base currency) from the symbol's spec or :data:`DEFAULT_SPEC`.
    """

    symbols: list[str]
    index: dict[str, int]
    value: np.ndarray
    lot: np.ndarray
    min_qty: np.ndarray
    min_notional: np.ndarray

    @classmethod
    def build(cls, symbols: Sequence[str], values: dict[str, float], specs: dict[str, InstrumentSpec]) -> Columns:
        """Columns for ``symbols`` (any order, no repeats), ``values`` symbol -> base currency per unit."""
        syms = sorted(symbols)
        sp = [specs.get(s) or DEFAULT_SPEC for s in syms]
        return cls(syms, {s: j for j, s in enumerate(syms)}, np.array([values.get(s, 0.0) for s in syms], dtype=float),
                   np.array([s.lot_size for s in sp], dtype=float), np.array([s.min_quantity for s in sp], dtype=float),
                   np.array([s.min_notional for s in sp], dtype=float))


@dataclass
class Book:
    """One strategy's input to :func:`size_books`: its targets (objects, or :class:`commander.targets.TargetColumns`
    whose columns are then read directly) and their symbols (in order), the capital it is sized on (base
    currency) and its book (symbol -> units); ``weights``: the targets' weights (fractions, None where not
    given), read from ``targets`` when not given."""

    strategy: StrategyConfig
    targets: Sequence[TargetPosition]
    symbols: list[str]
    capital: float
    book: dict[str, float]
    weights: list[float | None] | None = None


@dataclass
class SizedBooks:
    """What :func:`size_books` decided, for the books it sized (``sids``, in input order).

    ``row``/``col``/``units``: each book's desired units per symbol, in the order :mod:`commander.size`
    gives them (the book's symbols first, then the new targets); ``held``: the book's units of the
    same entries. ``zero_*``: the targets of less than half a lot (:func:`commander.size.zero_lots`), in
    target order. ``adjustments``: strategy id -> the caps that bound, in order. ``errors``: strategy
    id -> why it cannot be sized. ``fallback``: strategy ids left to :mod:`commander.size` (a symbol
    listed twice).
    """

    sids: list[str]
    row: np.ndarray
    col: np.ndarray
    units: np.ndarray
    held: np.ndarray
    zero_row: np.ndarray
    zero_col: np.ndarray
    zero_units: np.ndarray
    adjustments: dict[str, list[RiskAdjustment]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    fallback: list[str] = field(default_factory=list)


def row_sums(x: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Per-row sums of ``x`` (rows are ``x[starts[i]:starts[i+1]]``, ``starts`` ending with ``len(x)``), each
    added left to right from 0.0 as Python's ``sum`` does (``np.sum`` adds pairwise, so it is not used;
    ``np.cumsum`` adds in order).

    A sum started from the row's first entry instead of 0.0 differs only when every entry is -0.0
    (-0.0 instead of 0.0), and so does one padded with trailing zeros: adding 0.0 at the end settles both.
    """
    counts = np.diff(starts)
    n_rows, longest = len(counts), int(counts.max(initial=0))
    if n_rows == 0 or longest == 0:
        return np.zeros(n_rows)
    if n_rows * longest == len(x):  # every row as long: a matrix as it is
        return np.cumsum(x.reshape(n_rows, longest), axis=1)[:, -1] + 0.0
    if n_rows * longest <= 4 * len(x) + 4096:  # rows side by side, padded with zeros: one cumsum
        padded = np.zeros((n_rows, longest))
        row = np.repeat(np.arange(n_rows), counts)
        padded[row, np.arange(len(x)) - starts[row]] = x
        return np.cumsum(padded, axis=1)[:, -1] + 0.0
    out = np.zeros(n_rows)
    if longest < n_rows:  # the k-th entry of every row at once
        for k in range(longest):
            rows = np.flatnonzero(counts > k)
            out[rows] += x[starts[rows] + k]
        return out
    bounds = starts.tolist()
    for i in range(n_rows):
        if bounds[i + 1] > bounds[i]:
            out[i] = np.cumsum(x[bounds[i]:bounds[i + 1]])[-1] + 0.0
    return out


def by_column(row: np.ndarray, col: np.ndarray, n_rows: int, n_cols: int) -> np.ndarray:
    """The permutation sorting entries by column, then row (at most one entry per cell)."""
    key = col * n_rows + row
    if n_rows * n_cols <= 16 * len(key) + 1_000_000:  # a slot per cell: no comparison sort
        slot = np.full(n_rows * n_cols, -1, dtype=np.int64)
        slot[key] = np.arange(len(key))
        return slot[slot >= 0]
    return np.argsort(key)


def _read(books: list[Book], cols: Columns
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(row, col, quantity, weight, notional) per target, NaN for a size not given, and per book whether it
    lists the same symbols, in the same order, as the book before it (bool). Books whose targets are
    :class:`commander.targets.TargetColumns` are read from their columns, all at once."""
    counts = [len(b.targets) for b in books]
    total = sum(counts)
    row = np.repeat(np.arange(len(books)), counts)
    repeated = [i > 0 and b.symbols == books[i - 1].symbols for i, b in enumerate(books)]
    if any(repeated):  # books often list the same symbols in the same order: map each list once
        parts: list[np.ndarray] = []
        for b, again in zip(books, repeated, strict=True):
            parts.append(parts[-1] if again else np.fromiter(map(cols.index.__getitem__, b.symbols), np.int64,
                                                             len(b.symbols)))
        col = np.concatenate(parts)
    else:
        col = np.fromiter(map(cols.index.__getitem__, chain.from_iterable(b.symbols for b in books)), np.int64,
                          total)
    tables = [b.targets for b in books if isinstance(b.targets, TargetColumns)]
    if len(tables) == len(books) and books:  # columns already: no target is read one by one
        weight = np.concatenate([t.weight for t in tables])
        if np.isnan(weight).any():  # exactly one size per target: NaN in the others
            return (row, col, np.concatenate([t.quantity for t in tables]), weight,
                    np.concatenate([t.notional for t in tables]), np.array(repeated, dtype=bool))
        return row, col, np.full(total, np.nan), weight, np.full(total, np.nan), np.array(repeated, dtype=bool)
    weights = (map(_WEIGHT, b.targets) if b.weights is None else b.weights for b in books)
    weight = np.fromiter(chain.from_iterable(weights), float, total)  # None: NaN
    qty, notional = np.full(total, np.nan), np.full(total, np.nan)
    other = np.flatnonzero(np.isnan(weight))
    if len(other):
        starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        for k, r in zip(other.tolist(), row[other].tolist(), strict=True):
            t = books[r].targets[k - int(starts[r])]
            if t.quantity is not None:
                qty[k] = t.quantity
            elif t.notional is not None:
                notional[k] = t.notional
    return row, col, qty, weight, notional, np.array(repeated, dtype=bool)


def _errors(books: list[Book], row: np.ndarray, value: np.ndarray, qty: np.ndarray, weight: np.ndarray,
            notional: np.ndarray) -> dict[int, str]:
    """Row -> the :class:`commander.size.SizingError` message of its first target that cannot be sized
    (``value``: base currency per unit of each target's symbol, 0.0 without a price)."""
    sized_by_value = np.isnan(qty)
    no_price = sized_by_value & (value == 0)
    no_size = sized_by_value & ~no_price & np.isnan(weight) & np.isnan(notional)
    bad = np.flatnonzero(no_price | no_size)
    out = {r: why for r, b in enumerate(books) if (why := negative_capital(b.strategy, b.capital)) is not None}
    for k in bad.tolist():
        r = int(row[k])
        if r not in out:
            sym = books[r].symbols[k - int(np.searchsorted(row, r))]
            out[r] = (f"no price for {sym}: cannot size a weight/notional target" if no_price[k] else
                      f"target {sym} has no size: one of quantity, weight, notional is required")
    return out


def _duplicated_rows(row: np.ndarray, col: np.ndarray, n_cols: int, repeated: np.ndarray) -> set[int]:
    """Rows listing a column more than once. ``repeated`` (bool per row): the row lists the same columns, in the
    same order, as the row before it, so only the first row of each such run is checked (its answer is theirs)."""
    first = ~repeated
    if not first.all():
        leader = np.cumsum(first) - 1  # each row's run, numbered from 0
        keep = first[row]
        runs = _duplicated_rows(leader[row[keep]], col[keep], n_cols, np.zeros(int(leader[-1]) + 1, dtype=bool))
        if not runs:
            return set()
        return set(np.flatnonzero(np.isin(leader, np.array(sorted(runs), dtype=np.int64))).tolist())
    # rows come one after the other, so the keys are runs in order: a stable sort (a merge of runs) is near linear
    key = np.sort(row * n_cols + col, kind="stable")
    twice = key[1:] == key[:-1]
    return set((key[1:][twice] // n_cols).tolist()) if twice.any() else set()


def size_books(books: list[Book], cols: Columns, config: TradingConfig) -> SizedBooks:
    """Size every book, cap it (``max_single_position_exposure``, ``max_leverage``), hold its changes under the
    order minimums and flag its zero lots: :func:`commander.size.size_targets`, then
    :func:`commander.size.hold_small_changes` and :func:`commander.size.zero_lots` on each book, at once.

    Returns:
        the books' desired units and what was recorded on the way (:class:`SizedBooks`); a book that
        cannot be sized is in ``errors``, one that lists a symbol twice in ``fallback``, neither has entries.
    """
    row, col, qty, weight, notional, repeated = _read(books, cols)
    value = cols.value[col]
    errors = _errors(books, row, value, qty, weight, notional)
    fallback = _duplicated_rows(row, col, len(cols.symbols), repeated) - set(errors)
    if errors or fallback:
        keep = ~np.isin(row, np.array(sorted(set(errors) | fallback), dtype=np.int64))
        row, col, value = row[keep], col[keep], value[keep]
        qty, weight, notional = qty[keep], weight[keep], notional[keep]
    capital = np.array([b.capital for b in books], dtype=float)
    by_weight = ~np.isnan(weight)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # only unsized targets divide by 0
        if by_weight.all():  # (weight × capital) / value, in place
            q = capital[row]
            q *= weight
            q /= value
        else:
            amount = np.where(by_weight, weight * capital[row], notional)
            q = np.where(np.isnan(qty), amount / value, qty)
    starts = np.searchsorted(row, np.arange(len(books) + 1))
    q, adjustments = _caps(books, cols, row, col, q, value, starts)
    size = np.abs(q)
    small = (size > QTY_EPS) & (size < (0.5 * cols.lot)[col])
    zero = (row[small], col[small], q[small])
    w_row, w_col, wanted, held = _with_books(books, cols, row, col, q, set(errors) | fallback)
    units = _hold_small_changes(books, cols, config, w_row, w_col, wanted, held,
                                value if w_col is col else cols.value[w_col])
    return SizedBooks([b.strategy.strategy_id for b in books], w_row, w_col, units, held, *zero,
                      adjustments=adjustments,
                      errors={books[r].strategy.strategy_id: m for r, m in errors.items()},
                      fallback=[books[r].strategy.strategy_id for r in sorted(fallback)])


def _caps(books: list[Book], cols: Columns, row: np.ndarray, col: np.ndarray, q: np.ndarray, value: np.ndarray,
          starts: np.ndarray) -> tuple[np.ndarray, dict[str, list[RiskAdjustment]]]:
    """The per-book caps of :func:`commander.size.size_targets` on sized units ``q`` (``value``: base currency
    per unit of each entry's symbol)."""
    cap_pos = np.array([b.strategy.risk_parameters.max_single_position_exposure * b.capital for b in books])
    cap_gross = np.array([b.strategy.risk_parameters.sizing_leverage * b.capital for b in books])
    v = np.abs(q)
    v *= value
    capped = v > (cap_pos + LIMIT_EPS)[row]
    new, q1, exposure = q, q, v
    if capped.any():
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # used where capped only
            new = q * cap_pos[row] / v
        q1, exposure = np.where(capped, new, q), np.where(capped, cap_pos[row], v)
    gross = row_sums(exposure, starts)
    levered = gross > cap_gross + LIMIT_EPS
    scaled = levered[row] & (q1 != 0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # unused where not levered
        factor = cap_gross / gross
        q2 = np.where(scaled, q1 * factor[row], q1)
    adjustments: dict[str, list[RiskAdjustment]] = {}
    for r in np.unique(row[capped | scaled]).tolist():
        sid, a, b = books[r].strategy.strategy_id, int(starts[r]), int(starts[r + 1])
        adj = adjustments[sid] = []
        for k in np.flatnonzero(capped[a:b]).tolist():
            adj.append(RiskAdjustment(rule="max_single_position_exposure", symbol=cols.symbols[col[a + k]],
                                      strategy_id=sid, before=float(q[a + k]), after=float(new[a + k]),
                                      note=f"position {v[a + k]:.2f} > {cap_pos[r]:.2f}"))
        for k in np.flatnonzero(scaled[a:b]).tolist():
            adj.append(RiskAdjustment(rule="strategy_max_leverage", symbol=cols.symbols[col[a + k]],
                                      strategy_id=sid, before=float(q1[a + k]), after=float(q2[a + k]),
                                      note=f"gross {gross[r]:.2f} > {cap_gross[r]:.2f}"))
    return q2, adjustments


def _with_books(books: list[Book], cols: Columns, row: np.ndarray, col: np.ndarray, q: np.ndarray,
                skip: set[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each book's wanted entries (row, col, wanted units, book units): its book's symbols first (a symbol it no
    longer targets wanted at 0), then its other targets, as ``{**{s: 0.0 for s in book}, **sized}`` orders them.
    Rows in ``skip`` have no entries."""
    b_counts = [0 if r in skip else len(b.book) for r, b in enumerate(books)]
    if not any(b_counts):
        return row, col, q, np.zeros(len(q))
    b_row = np.repeat(np.arange(len(books)), b_counts)
    kept = [b.book for r, b in enumerate(books) if r not in skip]
    b_col = np.fromiter(map(cols.index.__getitem__, chain.from_iterable(kept)), np.int64, len(b_row))
    b_units = np.fromiter(chain.from_iterable(b.values() for b in kept), float, len(b_row))
    n = len(cols.symbols)
    key, b_key = row * n + col, b_row * n + b_col
    order = np.argsort(key)
    at = np.minimum(np.searchsorted(key[order], b_key), max(len(key) - 1, 0))
    found = (key[order][at] == b_key) if len(key) else np.zeros(len(b_key), dtype=bool)
    b_wanted = np.where(found, q[order][at] if len(key) else 0.0, 0.0)
    new = ~np.isin(key, b_key)
    all_row = np.concatenate([b_row, row[new]])
    by_row = np.argsort(all_row, kind="stable")
    return (all_row[by_row], np.concatenate([b_col, col[new]])[by_row],
            np.concatenate([b_wanted, q[new]])[by_row], np.concatenate([b_units, np.zeros(int(new.sum()))])[by_row])


def _hold_small_changes(books: list[Book], cols: Columns, config: TradingConfig, row: np.ndarray, col: np.ndarray,
                        wanted: np.ndarray, held: np.ndarray, value: np.ndarray) -> np.ndarray:
    """:func:`commander.size.hold_small_changes` on every book's wanted entries (``value``: base currency per
    unit of each entry's symbol)."""
    size = np.abs(wanted)
    books_held = bool(held.any())
    change = np.abs(wanted - held) if books_held else size  # w - 0.0 is w
    min_notional = np.maximum(cols.min_notional, config.min_order_notional)
    small = change * value < min_notional[col]
    if cols.min_qty.any():  # a change (>= 0) is never below a minimum of 0
        small |= change < cols.min_qty[col]
    if books_held:
        small |= (np.abs(held) > QTY_EPS) & (change < config.rebalance_band * size)
    hold = ~((change < QTY_EPS) | (size < QTY_EPS)) & small
    out = np.where(hold, held, wanted)
    starts = np.searchsorted(row, np.arange(len(books) + 1))
    gross = row_sums(np.abs(out) * value, starts)
    cap_gross = np.array([b.strategy.risk_parameters.sizing_leverage * b.capital for b in books])
    over = (gross > cap_gross + LIMIT_EPS)[row]
    return np.where(over & (size < np.abs(out)), wanted, out) if over.any() else out
