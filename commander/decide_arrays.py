""":func:`commander.decide.decide` on arrays, for many strategies and symbols.

The books are sized at once (:func:`commander.arrays.size_books`), netted from a
:class:`commander.aggregate.Table` of (strategy, symbol, units) entries, the global limits run on
the per-symbol quantities (:func:`commander.risk.plan_global_risk`) and the diff on them. Only
what the orders need is computed as documents here (the diff); the decision's documents (target
lines and their contributions, conflicts, adjustments, zero lots) and ``Plan.desired`` are built
from the arrays when first read, and are the same documents the dictionary path builds. A book the
arrays do not model (drawdown isolation locked, the ``isolated`` state, a symbol listed twice) is
decided on dictionaries (:func:`commander.decide.size_one`).

Intents whose targets were read into columns at the store edge (:mod:`commander.targets`) are read
as they are: no target position is an object on this path (2 M of them took 1.6 GiB).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain

import numpy as np

from bus.constants import NOISE_EPS
from bus.models import Conflict, Decision, DiffLine, Instrument, Intent, RiskAdjustment, TargetPosition
from commander.aggregate import Netted, Table, documents, duplicate_conflicts, net
from commander.arrays import Book, Columns, SizedBooks, size_books
from commander.classify import union
from commander.decide import CommanderInputs, OneBook, Plan, Setup, _setup, band_clips, size_one
from commander.diff import diff_quantities, expired_orders
from commander.execute import order_records
from commander.risk import RiskPlan, plan_global_risk, render_global_risk
from commander.size import SizingError
from commander.targets import TargetColumns


@dataclass
class _Books:
    """Every fresh book's outcome: on arrays (``sized``) or on dictionaries (``one``), and the errors."""

    sized: SizedBooks
    one: dict[str, OneBook] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def decide_arrays(inp: CommanderInputs) -> Plan:
    """:func:`commander.decide.decide` on arrays (see the module docstring): the same plan and documents."""
    symbols, weights = _symbols_weights(inp.intents)
    su = _setup(inp, symbols)
    cls, cfg, snap = su.cls, inp.config, inp.snapshot
    fresh = sorted(cls.fresh.items())
    universe = union(symbols[sid] for sid, _ in fresh)
    universe.update(chain.from_iterable(su.books.values()))
    cols = Columns.build(list(universe), su.values, inp.specs)
    out = _size(inp, su, cols, fresh, symbols, weights)
    for sid, reason in sorted(out.errors.items()):
        cls.errored.append(sid)
        cls.reasons[sid] = reason
    cls.errored.sort()
    order = list(su.desired) + [sid for sid, _ in fresh if sid not in out.errors]  # retired first, as decided
    cls.fresh = {sid: i for sid, i in cls.fresh.items() if sid not in out.errors}
    _instruments(su.instruments, cls.fresh, universe)
    kept = [sid for sid in inp.strategies if sid not in su.desired and sid not in cls.fresh and su.books.get(sid)]
    table = _table(sorted(set(order) | set(kept)), kept, cols, su, out)
    holdings = {h.symbol: h.quantity for h in snap.holdings}
    netted = net(table, cfg.conflict_policy, holdings, lambda: _confidence(cls.fresh), cfg.priority_order)
    risk = plan_global_risk(table.symbols, netted.quantities, snap, inp.prices, inp.specs, cfg, inp.prev_close_nav)
    cancels = expired_orders(snap.open_orders, set(table.symbols), inp.as_of, cfg.open_order_ttl_seconds)
    diff_lines, unmanaged = diff_quantities(list(zip(table.symbols, risk.quantities, strict=True)), snap, inp.specs,
                                            inp.prices, cfg.model_copy(update={"rebalance_band": 0.0}),
                                            frozenset(o.client_order_id for o in cancels))
    clipped: set[str | None] = {table.symbols[s.index] for s in risk.scales}
    if risk.in_force is not None:
        clipped.add(None)
    band_clips(diff_lines, clipped, cfg.rebalance_band)
    orders = order_records(inp.execution_id, diff_lines, su.instruments)

    def desired() -> dict[str, dict[str, float]]:
        return _desired(order, su, cols, out)

    def decision() -> Decision:
        return _decision(inp, su, cols, out, table, netted, risk, diff_lines, order, fresh_sids=list(cls.fresh))

    return Plan(cls, decision, orders, cancels, unmanaged, desired=desired, instruments=su.instruments)


def _symbols_weights(intents: dict[str, Intent | None]
                     ) -> tuple[dict[str, list[str]], dict[str, list[float | None] | None]]:
    """Strategy id -> its targets' symbols, and -> their weights (fractions, None where not given; None for
    targets held as :class:`commander.targets.TargetColumns`, whose columns are read as they are), in target
    order, of the intents that succeeded. One loop reads both while a strategy's targets are still in cache."""
    symbols: dict[str, list[str]] = {}
    weights: dict[str, list[float | None] | None] = {}
    for sid, i in intents.items():
        if i is not None and i.status == "success":
            tp: Sequence[TargetPosition] = i.target_positions
            if isinstance(tp, TargetColumns):
                symbols[sid], weights[sid] = tp.symbols, None
            else:
                symbols[sid] = [t.symbol for t in tp]
                weights[sid] = [t.weight for t in tp]
    return symbols, weights


def _size(inp: CommanderInputs, su: Setup, cols: Columns, fresh: list[tuple[str, Intent]],
          symbols: dict[str, list[str]], weights: dict[str, list[float | None] | None]) -> _Books:
    """Size the fresh books: on arrays, or on dictionaries when the arrays do not model them."""
    plain: list[Book] = []
    other: list[tuple[str, Intent]] = []
    for sid, intent in fresh:
        iso = su.isolations.get(sid)
        if sid in su.capital and inp.strategies[sid].state == "active" and (iso is None or iso.status != "locked"):
            plain.append(Book(inp.strategies[sid], intent.target_positions, symbols[sid], su.capital[sid],
                              su.books.get(sid, {}), weights[sid]))
        else:
            other.append((sid, intent))
    sized = size_books(plain, cols, inp.config)
    out = _Books(sized, errors=dict(sized.errors))
    intents = dict(fresh)
    for sid, intent in sorted(other + [(sid, intents[sid]) for sid in sized.fallback]):
        try:
            out.one[sid] = size_one(inp, su, sid, intent)
        except SizingError as exc:
            out.errors[sid] = str(exc)
    return out


def _instruments(instruments: dict[str, Instrument], fresh: dict[str, Intent], symbols: set[str]) -> None:
    """Add, in place, the instrument of each target symbol (of ``symbols``) nothing else described: its first
    target, strategies by id (as the dictionary path adds them)."""
    missing = symbols - set(instruments)
    for sid in sorted(fresh):
        if not missing:
            return
        tp: Sequence[TargetPosition] = fresh[sid].target_positions
        if isinstance(tp, TargetColumns):  # the instrument of the first target of each missing symbol
            for k, sym in enumerate(tp.symbols):
                if sym in missing:
                    missing.discard(sym)
                    sec, exchange, currency, details = tp.instrument(k)
                    instruments[sym] = Instrument(symbol=sym, secType=sec, exchange=exchange, currency=currency,
                                                  contract_details=details)
            continue
        for t in tp:
            if t.symbol in missing:
                missing.discard(t.symbol)
                instruments[t.symbol] = Instrument(symbol=t.symbol, secType=t.secType, exchange=t.exchange,
                                                   currency=t.currency, contract_details=t.contract_details)


def _confidence(fresh: dict[str, Intent]) -> dict[tuple[str, str], float]:
    """(strategy id, symbol) -> confidence of the sized strategies' targets (the last one listed wins)."""
    out: dict[tuple[str, str], float] = {}
    for sid, i in sorted(fresh.items()):
        tp: Sequence[TargetPosition] = i.target_positions
        if isinstance(tp, TargetColumns):
            c = tp.column("confidence")
            for k in np.flatnonzero(~np.isnan(c)).tolist():
                out[(sid, tp.symbols[k])] = float(c[k])
        else:
            out.update(((sid, t.symbol), t.confidence) for t in tp if t.confidence is not None)
    return out


def _dict_entries(rows: list[tuple[int, dict[str, float]]], cols: Columns
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, col, units) entries of books given as (row, symbol -> units)."""
    n = [len(d) for _, d in rows]
    total = sum(n)
    row = np.repeat(np.array([r for r, _ in rows], dtype=np.int64), n)
    col = np.fromiter(map(cols.index.__getitem__, chain.from_iterable(d for _, d in rows)), np.int64, total)
    val = np.fromiter(chain.from_iterable(d.values() for _, d in rows), float, total)
    return row, col, val


def _table(sids: list[str], kept: list[str], cols: Columns, su: Setup, out: _Books) -> Table:
    """The netting table: the sized books, the books decided on dictionaries, the retired ones and the books of
    strategies whose intent was not used (their target is their book)."""
    at = {sid: i for i, sid in enumerate(sids)}
    s = out.sized
    rows_of_sized = np.array([at.get(sid, -1) for sid in s.sids], dtype=np.int64)
    dicts = [(at[sid], d) for sid, d in su.desired.items()] + [(at[sid], o.desired) for sid, o in out.one.items()]
    dicts += [(at[sid], su.books[sid]) for sid in kept]
    d_row, d_col, d_val = _dict_entries(dicts, cols)
    sized_row = s.row if s.sids == sids else rows_of_sized[s.row]
    if not len(d_row):
        return Table.from_entries(sids, cols.symbols, sized_row, s.col, s.units)
    row = np.concatenate([sized_row, d_row])
    col = np.concatenate([s.col, d_col])
    val = np.concatenate([s.units, d_val])
    return Table.from_entries(sids, cols.symbols, row, col, val)


def _desired(order: list[str], su: Setup, cols: Columns, out: _Books) -> dict[str, dict[str, float]]:
    """Strategy id -> symbol -> desired units, in the dictionary path's order."""
    s = out.sized
    bounds = np.searchsorted(s.row, np.arange(len(s.sids) + 1)).tolist()
    names = np.array(cols.symbols, dtype=object)
    at = {sid: i for i, sid in enumerate(s.sids)}
    result: dict[str, dict[str, float]] = {}
    for sid in order:
        if sid in su.desired:
            result[sid] = su.desired[sid]
        elif sid in out.one:
            result[sid] = out.one[sid].desired
        else:
            a, b = bounds[at[sid]], bounds[at[sid] + 1]
            result[sid] = dict(zip(names[s.col[a:b]].tolist(), s.units[a:b].tolist(), strict=True))
    return result


def _zero_lots(fresh_sids: list[str], cols: Columns, out: _Books) -> dict[str, dict[str, float]]:
    """Strategy id -> symbol -> units of its targets of less than half a lot (``decision.zero_lots``)."""
    s = out.sized
    at = {sid: i for i, sid in enumerate(s.sids)}
    bounds = np.searchsorted(s.zero_row, np.arange(len(s.sids) + 1)).tolist()
    names = np.array(cols.symbols, dtype=object)
    result: dict[str, dict[str, float]] = {}
    for sid in sorted(fresh_sids):
        if sid in out.one:
            small = out.one[sid].zero_lots
        else:
            a, b = bounds[at[sid]], bounds[at[sid] + 1]
            small = dict(zip(names[s.zero_col[a:b]].tolist(), s.zero_units[a:b].tolist(), strict=True))
        if small:
            result[sid] = small
    return result


def crossed_arrays(order: list[str], su: Setup, cols: Columns, out: _Books) -> list[Conflict]:
    """:func:`commander.decide.crossed` of the desired books against the books, from the entries."""
    sids = sorted(order)
    at = {sid: i for i, sid in enumerate(sids)}
    s = out.sized
    change = s.units - s.held
    rows_of_sized = np.array([at.get(sid, -1) for sid in s.sids], dtype=np.int64)
    dicts: list[tuple[int, dict[str, float]]] = []
    for sid in sids:
        if sid in su.desired or sid in out.one:
            want = su.desired[sid] if sid in su.desired else out.one[sid].desired
            book = su.books.get(sid, {})
            dicts.append((at[sid], {sym: want.get(sym, 0.0) - book.get(sym, 0.0) for sym in set(want) | set(book)}))
    d_row, d_col, d_val = _dict_entries(dicts, cols)
    row = np.concatenate([rows_of_sized[s.row], d_row])
    col = np.concatenate([s.col, d_col])
    val = np.concatenate([change, d_val])
    moved = np.abs(val) > NOISE_EPS
    if not moved.any():
        return []
    table = Table.from_entries(sids, cols.symbols, row[moved], col[moved], val[moved])
    result = []
    for j in np.flatnonzero(table.mixed).tolist():
        ch = table.contributions(j)
        result.append(Conflict(type="crossed", symbol=table.symbols[j], strategies=sorted(ch), wanted=ch,
                               policy="net", outcome=sum(ch.values()), note="opposite changes netted into one "
                               "order: its fill price and commission are shared pro rata"))
    return result


def _decision(inp: CommanderInputs, su: Setup, cols: Columns, out: _Books, table: Table, netted: Netted,
              risk: RiskPlan, diff_lines: list[DiffLine], order: list[str], fresh_sids: list[str]) -> Decision:
    """The decision's documents, from the arrays (as the dictionary path builds them); ``order``: the strategies
    with desired books, ``fresh_sids``: those whose intent was used."""
    cfg = inp.config
    dup = {sid: o.duplicates for sid, o in out.one.items() if o.duplicates and sid in fresh_sids}
    aggregated, conflicts = documents(table, netted, su.instruments, cfg.conflict_policy,
                                      duplicate_conflicts(dup, {sid: out.one[sid].desired for sid in dup}))
    for line in aggregated:
        line.price = inp.prices.get(line.symbol)
    final, risk_adj, resource = render_global_risk(aggregated, risk)
    adjustments: list[RiskAdjustment] = list(su.adjustments)
    for sid in sorted(fresh_sids):
        adjustments += out.one[sid].adjustments if sid in out.one else out.sized.adjustments.get(sid, [])
    return Decision(allocations=su.capital, capital_moves=su.moves, isolation=list(su.isolations.values()),
                    zero_lots=_zero_lots(fresh_sids, cols, out), aggregated_target=aggregated, final_target=final,
                    diff=diff_lines, conflicts=conflicts + crossed_arrays(order, su, cols, out) + resource,
                    risk_adjustments=adjustments + risk_adj)
