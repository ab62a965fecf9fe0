"""Steps 2–7 as one pure function: documents in, decision out. Replay calls this too.

Everything :func:`decide` depends on is in :class:`CommanderInputs`, and the
shell records all of it in the execution (refs to immutable intents and
snapshot, config, books and their cash, drawdowns, Sharpe ratios, previous
close NAV, prices, specs), so ``replay`` can run it again and compare.

Each strategy is sized on its own book's equity (a book is a sub-account, see
:mod:`commander.allocate`); its drawdown isolation, leverage cap and order
minimums apply to its book alone (:mod:`commander.risk`, :mod:`commander.size`),
before the books are netted. What sharing the account can still change is
recorded: conflicts (``direction``, ``duplicate``, ``resource``, ``crossed``),
global risk adjustments, lot rounding of the netted order (the diff's
``raw_quantity`` vs ``quantity``) and ``zero_lots``.

Two paths give the same plan, to the bit: on dictionaries, one book at a time (small
decisions, the backtest's), and on arrays indexed by strategy and symbol
(:mod:`commander.decide_arrays`, from :data:`ARRAY_MIN_TARGETS` target positions on), which
builds the decision's documents when they are first read (``Plan.decision``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from bus.constants import NOISE_EPS, QTY_EPS
from bus.models import (
    BookCapital,
    CapitalMove,
    Conflict,
    Decision,
    DiffLine,
    Instrument,
    InstrumentSpec,
    Intent,
    Isolation,
    OpenOrder,
    OrderRecord,
    PortfolioSnapshot,
    RiskAdjustment,
    StrategyConfig,
    TradingConfig,
)
from commander.aggregate import aggregate
from commander.allocate import book_capital
from commander.classify import Classification, classify
from commander.diff import diff, expired_orders
from commander.execute import order_records
from commander.lifecycle import apply_state, state_reason, uses_intent
from commander.risk import apply_global_risk, isolate, isolation
from commander.size import SizingError, hold_small_changes, size_targets, unit_values, zero_lots
from commander.targets import TargetColumns


@dataclass
class CommanderInputs:
    """Everything the decision depends on.

    Attributes:
        strategies: the enabled strategies only.
        books: strategy id -> symbol -> units in its book now.
        book_capital: strategy id -> its book's cash and capital state; a strategy without
            one gets a new book (its allocation's starting capital).
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
    book_capital: dict[str, BookCapital] = field(default_factory=dict)


class Plan:
    """The decision, the orders it asks for (status ``DryRun``), the open orders to cancel,
    and what each strategy with a usable intent wants (symbol -> units).

    ``decision`` and ``desired`` may be given as functions (the array path keeps its numbers in arrays):
    the documents are then built on first read, once, and are the same documents either way.
    """

    def __init__(self, classification: Classification, decision: Decision | Callable[[], Decision],
                 orders: list[OrderRecord], cancels: list[OpenOrder], unmanaged: list[str],
                 desired: dict[str, dict[str, float]] | Callable[[], dict[str, dict[str, float]]] | None = None,
                 instruments: dict[str, Instrument] | None = None) -> None:
        self.classification = classification
        self.orders, self.cancels, self.unmanaged = orders, cancels, unmanaged
        self.instruments = instruments if instruments is not None else {}
        self._decision, self._desired = decision, desired if desired is not None else {}

    @property
    def decision(self) -> Decision:
        """The :class:`~bus.models.Decision` document (built on first read when it was given as a function)."""
        if callable(self._decision):
            self._decision = self._decision()
        return self._decision

    @decision.setter
    def decision(self, value: Decision) -> None:
        self._decision = value

    @property
    def desired(self) -> dict[str, dict[str, float]]:
        """Strategy id -> symbol -> units it wants (built on first read when it was given as a function)."""
        if callable(self._desired):
            self._desired = self._desired()
        return self._desired

    @desired.setter
    def desired(self, value: dict[str, dict[str, float]]) -> None:
        self._desired = value


def symbols_involved(intents: dict[str, Intent | None], books: dict[str, dict[str, float]],
                     snapshot: PortfolioSnapshot | None) -> list[str]:
    """Every symbol a decision may need a price or spec for: intents' targets, books, holdings, open orders."""
    syms: set[str] = set()
    for i in intents.values():
        if i and i.status == "success":
            tp: object = i.target_positions  # columns (commander.targets) name their symbols without objects
            syms.update(tp.symbols if isinstance(tp, TargetColumns) else (t.symbol for t in i.target_positions))
    syms |= {s for b in books.values() for s in b}
    if snapshot:
        syms |= {h.symbol for h in snapshot.holdings} | {o.symbol for o in snapshot.open_orders}
    return sorted(syms)


def _equities(inp: CommanderInputs, values: dict[str, float]) -> tuple[dict[str, float], dict[str, str], float]:
    """(strategy id -> its book's equity at this run's prices, strategy id -> why it cannot be valued,
    value of the holdings no enabled strategy's book explains), base currency."""
    equity: dict[str, float] = {}
    unvalued: dict[str, str] = {}
    for sid, cap in sorted(inp.book_capital.items()):
        if sid not in inp.strategies:
            continue
        units = inp.books.get(sid, {})
        missing = sorted(sym for sym, q in units.items() if abs(q) > NOISE_EPS and sym not in values)
        if missing:
            unvalued[sid] = f"no price for {', '.join(missing)} held in its book: its equity cannot be valued"
            continue
        equity[sid] = cap.cash + sum(q * values[sym] for sym, q in units.items() if sym in values)
    booked: dict[str, float] = {}
    for sid, units in inp.books.items():
        if sid in inp.strategies:
            for sym, q in units.items():
                booked[sym] = booked.get(sym, 0.0) + q
    outside = sum((h.quantity - booked.get(h.symbol, 0.0)) * values.get(h.symbol, 0.0) for h in inp.snapshot.holdings)
    return equity, unvalued, outside


def crossed(desired: dict[str, dict[str, float]], books: dict[str, dict[str, float]]) -> list[Conflict]:
    """A ``crossed`` conflict per symbol on which the strategies' wanted changes (units) go opposite ways."""
    changes: dict[str, dict[str, float]] = {}
    for sid, want in sorted(desired.items()):
        book = books.get(sid, {})
        for sym in set(want) | set(book):
            d = want.get(sym, 0.0) - book.get(sym, 0.0)
            if abs(d) > NOISE_EPS:
                changes.setdefault(sym, {})[sid] = d
    out = []
    for sym, ch in sorted(changes.items()):
        if any(d > 0 for d in ch.values()) and any(d < 0 for d in ch.values()):
            out.append(Conflict(type="crossed", symbol=sym, strategies=sorted(ch), wanted=ch, policy="net",
                                outcome=sum(ch.values()), note="opposite changes netted into one order: its "
                                "fill price and commission are shared pro rata"))
    return out


def band_clips(lines: list[DiffLine], clipped: set[str | None], band: float) -> None:
    """Drop, in place and with the reason, the orders on lines a global risk limit changed that are smaller
    than ``band`` × the target (units), unless they open or close the position."""
    for d in lines:
        if (d.symbol in clipped and d.quantity and abs(d.target) > QTY_EPS and abs(d.holding + d.pending) > QTY_EPS
                and abs(d.quantity) < band * abs(d.target)):
            d.quantity, d.notional = 0.0, 0.0
            d.reason = f"within rebalance band {band:g} (a global risk limit's clip)"


def _lifecycle(cls: Classification, strategies: dict[str, StrategyConfig]) -> list[str]:
    """Take the paused and retired strategies out of ``cls`` (their intents are not used) into ``skipped``, with
    the person's reason (:mod:`commander.lifecycle`); returns their ids."""
    out = [sid for sid, cfg in sorted(strategies.items()) if not uses_intent(cfg)]
    for sid in out:
        cls.fresh.pop(sid, None)
        for group in (cls.stale, cls.missing, cls.errored, cls.skipped):
            if sid in group:
                group.remove(sid)
        cls.skipped.append(sid)
        cls.reasons[sid] = state_reason(strategies[sid])
    cls.skipped.sort()
    return out


#: A decision over at least this many target positions runs on arrays (:mod:`commander.decide_arrays`); a
#: smaller one on dictionaries, which is faster there (decide + documents, CPU: 500 targets 2.6 ms on
#: dictionaries vs 3.0 ms on arrays; 2,000 targets 6.9 vs 4.9 ms). Both give the same documents.
ARRAY_MIN_TARGETS = 1000


@dataclass
class Setup:
    """What both paths of :func:`decide` start from: the classification, unit values (symbol -> base currency
    per unit), capital (strategy id -> base currency) and its moves, the instruments, the enabled strategies'
    books, their isolations, and the retired strategies' flattened targets with their adjustments."""

    cls: Classification
    values: dict[str, float]
    capital: dict[str, float]
    moves: list[CapitalMove]
    unvalued: dict[str, str]
    instruments: dict[str, Instrument]
    books: dict[str, dict[str, float]]
    isolations: dict[str, Isolation]
    desired: dict[str, dict[str, float]]
    adjustments: list[RiskAdjustment]


def _setup(inp: CommanderInputs, symbols: dict[str, list[str]] | None) -> Setup:
    """Steps 2–3 and the per-strategy states (classify, lifecycle, allocate, isolation, retired books)."""
    snap, cfg = inp.snapshot, inp.config
    cls = classify(cfg, inp.strategies, inp.intents, inp.as_of, known=set(inp.specs) | set(inp.prices),
                   symbols=symbols)
    held_by_state = _lifecycle(cls, inp.strategies)
    values = unit_values(inp.prices, inp.specs)
    equity, unvalued, outside = _equities(inp, values)
    capital, moves = book_capital(cfg, inp.strategies, snap.net_liquidation, inp.book_capital, equity, outside,
                                  inp.as_of, inp.sharpes)
    instruments: dict[str, Instrument] = {
        h.symbol: Instrument(symbol=h.symbol, secType=h.secType, exchange=h.exchange, currency=h.currency)
        for h in snap.holdings}
    for sym, spec in inp.specs.items():
        if sym not in instruments:
            instruments[sym] = Instrument(symbol=sym, secType=spec.secType, exchange=spec.exchange,
                                          currency=spec.currency)
    books = {sid: b for sid, b in inp.books.items() if sid in inp.strategies}
    isolations = {sid: iso for sid in sorted(inp.strategies)
                  if (iso := isolation(sid, inp.drawdowns.get(sid, 0.0),
                                       inp.book_capital[sid].isolated_since if sid in inp.book_capital else None,
                                       inp.strategies[sid].risk_parameters, inp.as_of)) is not None}
    desired: dict[str, dict[str, float]] = {}
    adjustments: list[RiskAdjustment] = []
    for sid in held_by_state:  # retired: flatten its book (paused: its book is its target, below)
        if inp.strategies[sid].state == "retired":
            desired[sid], flat = apply_state(inp.strategies[sid], {}, books.get(sid, {}))
            adjustments += flat
    return Setup(cls, values, capital, moves, unvalued, instruments, books, isolations, desired, adjustments)


@dataclass
class OneBook:
    """One strategy's book decided on dictionaries (:func:`size_one`): its desired units (symbol -> units), its
    zero lots, the first target of each symbol (an instrument), adjustments in order, and duplicates."""

    desired: dict[str, float]
    zero_lots: dict[str, float]
    instruments: dict[str, Instrument]
    adjustments: list[RiskAdjustment]
    duplicates: dict[str, int]


def size_one(inp: CommanderInputs, su: Setup, sid: str, intent: Intent) -> OneBook:
    """Step 4 for one strategy on dictionaries: size, cap, isolate, lifecycle state, order minimums, zero lots.

    Raises:
        SizingError: it cannot be sized (no capital, or no price for a weight/notional target).
    """
    if sid not in su.capital:
        raise SizingError(su.unvalued.get(sid, "no capital: another book cannot be valued, so no book opens"))
    rp = inp.strategies[sid].risk_parameters
    sized = size_targets(inp.strategies[sid], intent.target_positions, su.capital[sid], su.values)
    book = su.books.get(sid, {})
    wanted = {**{s: 0.0 for s in book}, **sized.quantities}
    wanted, clamped = isolate(su.isolations.get(sid), wanted, book)
    wanted, by_state = apply_state(inp.strategies[sid], wanted, book)  # a person's isolation: reduce only
    desired = hold_small_changes(wanted, book, su.values, inp.specs, inp.config, rp.sizing_leverage * su.capital[sid])
    return OneBook(desired, zero_lots(sized.quantities, inp.specs), sized.instruments,
                   sized.adjustments + clamped + by_state, sized.duplicates)


def decide(inp: CommanderInputs, arrays: bool | None = None) -> Plan:
    """Classify, allocate, size, isolate, aggregate, apply risk and diff.

    Strategies whose intent is not fresh, names a symbol the venue gave neither a spec
    nor a quote for (unknown to it), or cannot be sized, are ``errored`` with the reason
    and keep their current book as their target. Bad strategy data never raises; an impossible
    allocation raises :class:`commander.allocate.AllocationError`.

    Args:
        arrays: run on arrays (:mod:`commander.decide_arrays`, the plan's documents built on first read)
            or on dictionaries; None: arrays from :data:`ARRAY_MIN_TARGETS` target positions on, or when an
            intent holds its targets as columns (:class:`commander.targets.TargetColumns`).
    """
    usable = [i for i in inp.intents.values() if i is not None and i.status == "success"]
    if arrays is None:  # targets read into columns (commander.targets) are read on arrays at any size
        arrays = (sum(len(i.target_positions) for i in usable) >= ARRAY_MIN_TARGETS
                  or any(isinstance(i.target_positions, TargetColumns) for i in usable))
    if arrays:
        from commander.decide_arrays import decide_arrays  # it builds on this module
        return decide_arrays(inp)
    return _decide_dicts(inp, _setup(inp, None))


def _decide_dicts(inp: CommanderInputs, su: Setup) -> Plan:
    """:func:`decide` on dictionaries, one book at a time."""
    snap, cfg, cls = inp.snapshot, inp.config, su.cls
    instruments, desired, adjustments = su.instruments, su.desired, su.adjustments
    flagged: dict[str, dict[str, float]] = {}
    duplicates, confidence = {}, {}
    for sid, intent in sorted(cls.fresh.items()):
        try:
            one = size_one(inp, su, sid, intent)
        except SizingError as exc:
            cls.errored.append(sid)
            cls.reasons[sid] = str(exc)
            continue
        desired[sid] = one.desired
        if one.zero_lots:
            flagged[sid] = one.zero_lots
        for sym, t in one.instruments.items():
            if sym not in instruments:
                instruments[sym] = Instrument(symbol=sym, secType=t.secType, exchange=t.exchange, currency=t.currency,
                                              contract_details=t.contract_details)
        adjustments += one.adjustments
        if one.duplicates:
            duplicates[sid] = one.duplicates
        for t in intent.target_positions:
            if t.confidence is not None:
                confidence[(sid, t.symbol)] = t.confidence
    cls.errored.sort()
    cls.fresh = {sid: i for sid, i in cls.fresh.items() if sid in desired}
    books = su.books
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
    # The rebalance band was applied to each book (hold_small_changes); the netted order only meets the minimums,
    # and the band again where a global limit clipped the line (a small clip is not worth an order).
    diff_lines, unmanaged = diff(final, snap, inp.specs, inp.prices, cfg.model_copy(update={"rebalance_band": 0.0}),
                                 frozenset(o.client_order_id for o in cancels))
    band_clips(diff_lines, {a.symbol for a in risk_adj}, cfg.rebalance_band)
    decision = Decision(allocations=su.capital, capital_moves=su.moves, isolation=list(su.isolations.values()),
                        zero_lots=flagged, aggregated_target=aggregated, final_target=final, diff=diff_lines,
                        conflicts=conflicts + crossed(desired, books) + resource,
                        risk_adjustments=adjustments + risk_adj)
    orders = order_records(inp.execution_id, diff_lines, instruments)
    return Plan(cls, decision, orders, cancels, unmanaged, desired=desired, instruments=instruments)
