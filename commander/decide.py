"""Steps 2–7 as one pure function: documents in, decision out. Replay calls this too."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from bus.models import (
    Book, Decision, Instrument, InstrumentSpec, Intent, OrderRecord, PortfolioSnapshot, StrategyConfig, TargetLine,
    TradingConfig,
)
from commander.aggregate import aggregate
from commander.allocate import allocate
from commander.classify import Classification, classify
from commander.diff import diff
from commander.execute import order_records
from commander.risk import apply_global_risk
from commander.size import SizingError, size_targets


@dataclass
class CommanderInputs:
    """Everything the decision depends on; recorded in the execution so it can be replayed.

    ``strategies`` holds the enabled strategies only; ``books`` their current books.
    ``prices`` (base currency per unit) and ``specs`` cover every symbol involved.
    """

    execution_id: str
    as_of: datetime
    config: TradingConfig
    strategies: dict[str, StrategyConfig]
    intents: dict[str, Intent | None]
    books: dict[str, Book]
    snapshot: PortfolioSnapshot
    prices: dict[str, float]
    specs: dict[str, InstrumentSpec]


@dataclass
class Plan:
    """The decision, the orders it asks for (status ``DryRun``), and what each strategy wants."""

    classification: Classification
    decision: Decision
    orders: list[OrderRecord]
    unmanaged: list[str]
    desired: dict[str, dict[str, float]] = field(default_factory=dict)
    instruments: dict[str, Instrument] = field(default_factory=dict)


def symbols_involved(intents: dict[str, Intent | None], books: dict[str, Book],
                     snapshot: PortfolioSnapshot | None) -> list[str]:
    """Every symbol a decision may need a price or spec for: intents' targets, books, holdings."""
    syms = {t.symbol for i in intents.values() if i and i.status == "success" for t in i.target_positions}
    syms |= {s for b in books.values() for s in b.positions}
    if snapshot:
        syms |= {h.symbol for h in snapshot.holdings} | {o.symbol for o in snapshot.open_orders}
    return sorted(syms)


def decide(inp: CommanderInputs) -> Plan:
    """Classify, allocate, size, aggregate, apply risk and diff.

    Strategies whose intent is not fresh, or cannot be sized, keep their current
    book as their target. Raises nothing for bad strategy data; configuration
    errors raise :class:`commander.allocate.AllocationError`.
    """
    snap = inp.snapshot
    cls = classify(inp.config, inp.strategies, inp.intents, inp.as_of)
    capital = allocate(inp.config, inp.strategies, snap.net_liquidation)
    instruments: dict[str, Instrument] = {
        h.symbol: Instrument(symbol=h.symbol, secType=h.secType, exchange=h.exchange, currency=h.currency)
        for h in snap.holdings}
    for sym, spec in inp.specs.items():
        instruments.setdefault(sym, Instrument(symbol=sym, secType=spec.secType, exchange=spec.exchange,
                                               currency=spec.currency))
    books_units = {sid: b.quantities() for sid, b in inp.books.items() if sid in inp.strategies}
    desired: dict[str, dict[str, float]] = {}
    adjustments = []
    duplicates = {}
    confidence = {}
    for sid, intent in sorted(cls.fresh.items()):
        try:
            sized = size_targets(inp.strategies[sid], intent.target_positions, capital[sid], inp.prices, inp.specs)
        except SizingError as exc:
            cls.errored.append(sid)
            cls.reasons[sid] = str(exc)
            continue
        held_before = books_units.get(sid, {})
        desired[sid] = {**{s: 0.0 for s in held_before}, **sized.quantities}
        instruments.update(sized.instruments)
        adjustments += sized.adjustments
        if sized.duplicates:
            duplicates[sid] = sized.duplicates
        for t in intent.target_positions:
            if t.confidence is not None:
                confidence[(sid, t.symbol)] = t.confidence
    for sid in inp.strategies:
        if sid not in desired and books_units.get(sid):
            desired_keep = books_units[sid]
            desired[sid] = dict(desired_keep)
    cls.fresh = {sid: i for sid, i in cls.fresh.items() if sid not in cls.errored}
    holdings = {h.symbol: h.quantity for h in snap.holdings}
    aggregated, conflicts = aggregate(desired, instruments, inp.config.conflict_policy, holdings, confidence,
                                      inp.config.priority_order, duplicates)
    for line in aggregated:
        line.price = inp.prices.get(line.symbol)
    final, risk_adj = apply_global_risk(aggregated, snap, inp.prices, inp.specs, inp.config)
    diff_lines, unmanaged = diff(final, snap, inp.specs, inp.prices, inp.config)
    decision = Decision(allocations=capital, aggregated_target=aggregated, final_target=final, diff=diff_lines,
                        conflicts=conflicts, risk_adjustments=adjustments + risk_adj)
    orders = order_records(inp.execution_id, diff_lines, instruments)
    return Plan(cls, decision, orders, unmanaged, desired={s: desired[s] for s in cls.fresh if s in desired},
                instruments=instruments)


def copy_lines(lines: list[TargetLine]) -> list[TargetLine]:
    """Deep copies of target lines (risk steps never edit their input)."""
    return [line.model_copy(deep=True) for line in lines]
