"""Steps 2–7 as one pure function: documents in, decision out. Replay calls this too.

Everything :func:`decide` depends on is in :class:`CommanderInputs`, and the
shell records all of it in the execution (refs to immutable intents and
snapshot, config, books, drawdowns, Sharpe ratios, previous close NAV, prices,
specs), so ``replay`` can run it again and compare.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from bus.constants import NOISE_EPS
from bus.models import (
    Decision,
    Instrument,
    InstrumentSpec,
    Intent,
    OpenOrder,
    OrderRecord,
    PortfolioSnapshot,
    RiskAdjustment,
    StrategyConfig,
    TradingConfig,
)
from commander.aggregate import aggregate
from commander.allocate import allocate
from commander.classify import Classification, classify
from commander.diff import diff, expired_orders
from commander.execute import order_records
from commander.risk import apply_global_risk, reduce_only
from commander.size import SizingError, size_targets, unit_values


@dataclass
class CommanderInputs:
    """Everything the decision depends on.

    Attributes:
        strategies: the enabled strategies only.
        books: strategy id -> symbol -> units in its book now.
        drawdowns: strategy id -> book drawdown (fraction below its high-water mark).
        sharpes: strategy id -> annualized Sharpe of its book, None if too little history.
        prev_close_nav: NAV at the previous day's last run (daily-loss halt), None if unknown.
        prices: symbol -> base currency per unit; specs: symbol -> venue rules.
    """

    execution_id: str
    as_of: datetime
    config: TradingConfig
    strategies: dict[str, StrategyConfig]
    intents: dict[str, Intent | None]
    books: dict[str, dict[str, float]]
    snapshot: PortfolioSnapshot
    prices: dict[str, float]
    specs: dict[str, InstrumentSpec]
    drawdowns: dict[str, float] = field(default_factory=dict)
    sharpes: dict[str, float | None] = field(default_factory=dict)
    prev_close_nav: float | None = None


@dataclass
class Plan:
    """The decision, the orders it asks for (status ``DryRun``), the open orders to cancel,
    and what each strategy with a usable intent wants (symbol -> units)."""

    classification: Classification
    decision: Decision
    orders: list[OrderRecord]
    cancels: list[OpenOrder]
    unmanaged: list[str]
    desired: dict[str, dict[str, float]] = field(default_factory=dict)
    instruments: dict[str, Instrument] = field(default_factory=dict)


def symbols_involved(intents: dict[str, Intent | None], books: dict[str, dict[str, float]],
                     snapshot: PortfolioSnapshot | None) -> list[str]:
    """Every symbol a decision may need a price or spec for: intents' targets, books, holdings, open orders."""
    syms = {t.symbol for i in intents.values() if i and i.status == "success" for t in i.target_positions}
    syms |= {s for b in books.values() for s in b}
    if snapshot:
        syms |= {h.symbol for h in snapshot.holdings} | {o.symbol for o in snapshot.open_orders}
    return sorted(syms)


def _isolate(sid: str, wanted: dict[str, float], book: dict[str, float], drawdown: float, limit: float
             ) -> tuple[dict[str, float], list[RiskAdjustment]]:
    """Drawdown isolation: past its ``max_drawdown`` a strategy may only reduce its book."""
    if drawdown <= limit:
        return wanted, []
    out, adj = {}, []
    for sym, q in wanted.items():
        r = reduce_only(q, book.get(sym, 0.0))
        if abs(r - q) > NOISE_EPS:
            adj.append(RiskAdjustment(rule="strategy_drawdown", symbol=sym, strategy_id=sid, before=q, after=r,
                                      note=f"book drawdown {drawdown:.2%} > max_drawdown {limit:.2%}: reduce only"))
        out[sym] = r
    return out, adj


def decide(inp: CommanderInputs) -> Plan:
    """Classify, allocate, size, isolate, aggregate, apply risk and diff.

    Strategies whose intent is not fresh, or cannot be sized, keep their current
    book as their target. Bad strategy data never raises; an impossible
    allocation raises :class:`commander.allocate.AllocationError`.
    """
    snap, cfg = inp.snapshot, inp.config
    cls = classify(cfg, inp.strategies, inp.intents, inp.as_of)
    capital = allocate(cfg, inp.strategies, snap.net_liquidation, inp.sharpes)
    instruments: dict[str, Instrument] = {
        h.symbol: Instrument(symbol=h.symbol, secType=h.secType, exchange=h.exchange, currency=h.currency)
        for h in snap.holdings}
    for sym, spec in inp.specs.items():
        instruments.setdefault(sym, Instrument(symbol=sym, secType=spec.secType, exchange=spec.exchange,
                                               currency=spec.currency))
    books = {sid: b for sid, b in inp.books.items() if sid in inp.strategies}
    desired: dict[str, dict[str, float]] = {}
    adjustments: list[RiskAdjustment] = []
    duplicates, confidence = {}, {}
    values = unit_values(inp.prices, inp.specs)
    for sid, intent in sorted(cls.fresh.items()):
        try:
            sized = size_targets(inp.strategies[sid], intent.target_positions, capital[sid], values)
        except SizingError as exc:
            cls.errored.append(sid)
            cls.reasons[sid] = str(exc)
            continue
        book = books.get(sid, {})
        wanted = {**{s: 0.0 for s in book}, **sized.quantities}
        wanted, iso = _isolate(sid, wanted, book, inp.drawdowns.get(sid, 0.0),
                               inp.strategies[sid].risk_parameters.max_drawdown)
        desired[sid] = wanted
        for sym, t in sized.instruments.items():
            if sym not in instruments:
                instruments[sym] = Instrument(symbol=sym, secType=t.secType, exchange=t.exchange, currency=t.currency,
                                              contract_details=t.contract_details)
        adjustments += sized.adjustments + iso
        if sized.duplicates:
            duplicates[sid] = sized.duplicates
        for t in intent.target_positions:
            if t.confidence is not None:
                confidence[(sid, t.symbol)] = t.confidence
    cls.errored.sort()
    cls.fresh = {sid: i for sid, i in cls.fresh.items() if sid in desired}
    targets = {sid: dict(books[sid]) for sid in inp.strategies if sid not in desired and books.get(sid)}
    targets.update(desired)
    holdings = {h.symbol: h.quantity for h in snap.holdings}
    aggregated, conflicts = aggregate(targets, instruments, cfg.conflict_policy, holdings, confidence,
                                      cfg.priority_order, duplicates)
    for line in aggregated:
        line.price = inp.prices.get(line.symbol)
    final, risk_adj, resource = apply_global_risk(aggregated, snap, inp.prices, inp.specs, cfg, inp.prev_close_nav)
    managed = {t.symbol for t in final}
    cancels = expired_orders(snap.open_orders, managed, inp.as_of, cfg.open_order_ttl_seconds)
    diff_lines, unmanaged = diff(final, snap, inp.specs, inp.prices, cfg,
                                 frozenset(o.client_order_id for o in cancels))
    decision = Decision(allocations=capital, aggregated_target=aggregated, final_target=final, diff=diff_lines,
                        conflicts=conflicts + resource, risk_adjustments=adjustments + risk_adj)
    orders = order_records(inp.execution_id, diff_lines, instruments)
    return Plan(cls, decision, orders, cancels, unmanaged, desired=desired, instruments=instruments)
