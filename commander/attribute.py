"""Step 9 (books): split each symbol's fill among the strategies whose targets moved.

For a symbol filled by F units, each strategy s wanted Δs = desired_s − book_s.
With S = Σ Δs ≠ 0, s is booked F × Δs / S units (pro rata to its wanted change,
netting included) at the fill price, and the commission in proportion to
|units booked|. A fill nobody wanted (S = 0) is not booked to any strategy.
After that, whatever the broker holds beyond the sum of the strategy books (a
manual trade, say) is the ``external`` book, so the books always add up to the
account's holdings per symbol.

Each book is a virtual sub-account: it starts with its allocated capital as
cash (the decision's ``open`` capital move); a booked fill moves cash by −units ×
price × multiplier − commission; equity = cash + Σ units × mark × multiplier; the
high-water mark is the highest equity seen. A ``rebalance`` capital move adds its
amount to the book's cash, its ``transfers`` and its high-water mark (a transfer is
neither a gain nor a loss), and records the fraction and the day
(``capital_allocation``, ``capital_set_on``). The decision's drawdown isolation sets
``isolated_since`` (cleared on release); a cool-down release resets the high-water
mark to the book's equity. Perpetual funding the account paid since the last run is charged
to the books that held the symbol, in proportion to their signed units. Average entry prices and realized PnL follow
:func:`bus.accounting.apply_fill`; every reduction is a closed :class:`Trade`.

Dust (:func:`snap_dust`): a book that wanted none of a symbol but keeps less than one lot of it
after the fills (its pro-rata share of a fill netted with other strategies' changes, rounded to
lots) is snapped to zero; the residual moves to the ``external`` book at the mark, as a transfer
out of the book, and is recorded (:class:`~bus.models.DustSnap` in both books and in
:attr:`BookUpdate.dust`). The books plus ``external`` still equal the account.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from bus.accounting import apply_fill
from bus.constants import NOISE_EPS, QTY_EPS
from bus.models import Book, BookPosition, CapitalMove, DustSnap, EquityPoint, InstrumentSpec, Isolation, Trade

EXTERNAL = "external"
CURVE_DAYS = 400
#: Dust records a book keeps (the latest).
DUST_KEPT = 50


@dataclass(frozen=True)
class Fill:
    """A symbol's fills in one run: signed units, average price, commission (base currency)."""

    quantity: float
    price: float
    commission: float = 0.0


@dataclass
class BookUpdate:
    """New books (``external`` included), the external units per symbol, closed trades, equity points."""

    books: dict[str, Book]
    external: dict[str, float]
    trades: list[Trade] = field(default_factory=list)
    equity_points: list[EquityPoint] = field(default_factory=list)
    dust: list[DustSnap] = field(default_factory=list)


def _mult(specs: dict[str, InstrumentSpec], sym: str) -> float:
    return specs[sym].multiplier if sym in specs else 1.0


def split_fill(fill_qty: float, wanted: dict[str, float], lot: float = 0.0) -> dict[str, float]:
    """Units of one fill per strategy (strategy id -> signed units), from each one's wanted change (units).

    The strategies' wanted changes net to S = Σ Δs. Those on the side opposite to S are crossed
    internally against the others, in full, at the fill's price; the side of S shares the crossed units
    plus the market part of the fill, pro rata to its wanted changes. The market part is the fill F
    clipped to [0, |S| + lot/2] in S's direction: a fill short of S (partial) leaves S's side short pro rata;
    up to half a lot beyond S is lot rounding and goes to S's side; anything else (a fill against S, or
    beyond it, e.g. the diff closing ``external`` units) is nobody's change and is not booked here, so it
    lands in ``external``. No strategy is ever booked the opposite of its wanted change, nor more than it
    wanted plus its share of half a lot. When S = 0 the changes cross in full and the fill is external's.

    With F = S this is each Δs exactly; with no crossing (all Δs one sign) and F within S + lot/2 it is
    F × Δs / S, the pro-rata rule of DESIGN.md step 9. (Before, every fill was split F × Δs / S, which
    with opposite changes and a small S multiplied both sides: books of opposite strategies grew into
    huge offsetting positions.)

    Args:
        fill_qty: signed units filled (buy > 0).
        wanted: strategy id -> signed units it wanted to change (desired − book), or the shares an order
            recorded when it was planned.
        lot: the instrument's lot size (units); 0 allows no rounding beyond S.

    Returns:
        strategy id -> signed units booked; empty when the fill or every wanted change is zero.
    """
    wants = {sid: w for sid, w in wanted.items() if abs(w) > QTY_EPS}
    if abs(fill_qty) < QTY_EPS or not wants:
        return {}
    net = sum(wants.values())
    if abs(net) < QTY_EPS:
        return wants
    sign = 1.0 if net > 0 else -1.0
    same = sum(w for w in wants.values() if w * sign > 0)
    crossed = net - same  # the opposite side's total (sign −S), 0 without crossing
    market = min(max(fill_qty * sign, 0.0), abs(net) + lot / 2) * sign
    if crossed == 0.0 and market == fill_qty:
        return {sid: fill_qty * w / net for sid, w in wants.items()}  # the plain pro-rata rule, bit for bit
    scale = (market - crossed) / same
    return {sid: (w * scale if w * sign > 0 else w) for sid, w in wants.items()}


def lot_of(specs: dict[str, InstrumentSpec], sym: str) -> float:
    """The lot size of ``sym`` (units) for :func:`split_fill`; 0 without a spec (no rounding allowed)."""
    return specs[sym].lot_size if sym in specs else 0.0


def split_funding(books: dict[str, Book], funding: dict[str, float],
                  late_units: dict[str, dict[str, float]] | None = None) -> dict[str, float]:
    """Funding per book (base currency, > 0 paid): each symbol's funding since the last run,
    split by the units each book held over the interval, signed (a short book in a net-long
    account receives what the longs pay). Books holding none of it are charged nothing.
    ``late_units`` (strategy id -> symbol -> signed units): fills of earlier orders that landed
    during the interval (a market order that waited for the next open) and are booked only now:
    the account held them when the funding settled, so they count as held."""
    out: dict[str, float] = {}
    late = late_units or {}
    for sym, amount in funding.items():
        held = {sid: b.positions[sym].quantity for sid, b in books.items() if sym in b.positions}
        for sid, per in late.items():
            if sym in per and sid in books:
                held[sid] = held.get(sid, 0.0) + per[sym]
        total = sum(held.values())
        if abs(amount) < NOISE_EPS or abs(total) < QTY_EPS:
            continue
        for sid, q in held.items():
            out[sid] = out.get(sid, 0.0) + amount * q / total
    return out


def snap_dust(books: dict[str, Book], desired: dict[str, dict[str, float]], specs: dict[str, InstrumentSpec],
              prices: dict[str, float], as_of: datetime, execution_id: str) -> list[DustSnap]:
    """Snap to zero, in place, each position of less than one lot (``lot_size`` units) that its book wants
    none of; return what moved (the caller's external book gains the units).

    Only strategies whose intent was used (``desired``) and symbols with an instrument spec are
    considered (without a spec the lot is unknown). The residual leaves the book at the mark
    (``prices``, else its entry price) as a transfer: ``transfers`` and the high-water mark fall by its
    value, its unrealized PnL is realized, so the book's profit does not change.
    """
    snaps: list[DustSnap] = []
    for sid, want in sorted(desired.items()):
        b = books.get(sid)
        if b is None or sid == EXTERNAL:
            continue
        for sym, p in sorted(b.positions.items()):
            spec = specs.get(sym)
            if spec is None or abs(want.get(sym, 0.0)) > QTY_EPS or not QTY_EPS < abs(p.quantity) < spec.lot_size:
                continue
            px = prices.get(sym, p.avg_price)
            value = p.quantity * px * spec.multiplier
            snap = DustSnap(strategy_id=sid, symbol=sym, quantity=p.quantity, price=px, value=value,
                            lot_size=spec.lot_size, execution_id=execution_id, as_of=as_of)
            del b.positions[sym]
            b.transfers -= value
            b.high_water_mark = max(0.0, b.high_water_mark - value)
            b.realized_pnl += (px - p.avg_price) * p.quantity * spec.multiplier
            b.dust = [*b.dust, snap][-DUST_KEPT:]
            snaps.append(snap)
    return snaps


#: A fill booked by explicit shares: (symbol, fill, strategy id -> signed units it wanted).
Booking = tuple[str, Fill, dict[str, float]]


def _book_fill(new: dict[str, Book], sym: str, f: Fill, shares: dict[str, float], specs: dict[str, InstrumentSpec],
               as_of: datetime, execution_id: str, trades: list[Trade]) -> None:
    """Book ``shares`` (strategy id -> signed units of this fill) at the fill's price into ``new``;
    the commission is split by |units|; every reduction appends a closed :class:`Trade`."""
    booked = sum(abs(q) for q in shares.values())
    for sid, units in sorted(shares.items()):
        b = new.get(sid)
        if b is None:
            continue
        pos = b.positions.get(sym) or BookPosition(quantity=0.0)
        q, avg, realized = apply_fill(pos.quantity, pos.avg_price, units, f.price)
        fee = f.commission * abs(units) / booked if booked else 0.0
        m = _mult(specs, sym)
        b.positions[sym] = BookPosition(quantity=q, avg_price=avg)
        b.cash -= units * f.price * m + fee
        b.fees += fee
        b.realized_pnl += realized * m
        if abs(pos.quantity) > QTY_EPS and (pos.quantity > 0) != (units > 0):
            closed = min(abs(units), abs(pos.quantity))
            trades.append(Trade(trade_id=f"{execution_id}-{sym}", strategy_id=sid, symbol=sym,
                                side="long" if pos.quantity > 0 else "short", quantity=closed,
                                entry_price=pos.avg_price, exit_price=f.price, closed_at=as_of,
                                execution_id=execution_id, realized_pnl=realized * m))


def update_books(books: dict[str, Book], desired: dict[str, dict[str, float]], fills: dict[str, Fill],
                 holdings_after: dict[str, float], prices: dict[str, float], specs: dict[str, InstrumentSpec],
                 capital: dict[str, float], as_of: datetime, execution_id: str,
                 funding: dict[str, float] | None = None,
                 bookings: Sequence[Booking] = (), moves: Sequence[CapitalMove] = (),
                 isolation: Sequence[Isolation] = (),
                 late_units: dict[str, dict[str, float]] | None = None) -> BookUpdate:
    """Books after this run's fills, marked at ``prices``.

    Args:
        books: strategy id -> current book (``external`` may be among them).
        desired: strategy id -> symbol -> wanted units, for strategies whose intent was used.
        fills: symbol -> this run's fill.
        holdings_after: symbol -> units the broker holds after the fills.
        capital: strategy id -> allocated capital, the starting cash of a new book; every strategy
            in it gets a book (a strategy that has not traded yet holds its capital as cash).
        bookings: fills booked by explicit shares, before ``fills``: (symbol, fill, strategy id ->
            signed units it wanted), e.g. an order's fills with the shares recorded when it was planned.
        funding: symbol -> perpetual funding the account paid since the last run (base currency,
            > 0 paid), charged to the books that held it before this run's fills (:func:`split_funding`).
        moves: the decision's capital moves (an ``open`` sets a new book's starting cash and fraction;
            a ``rebalance`` moves cash into or out of an existing book).
        isolation: the decision's drawdown isolations (``isolated_since``, high-water mark reset).
        late_units: strategy id -> symbol -> signed units of the late fills booked now, which the
            account held while the funding settled (:func:`split_funding`).
    """
    day = as_of.date().isoformat()
    new: dict[str, Book] = {}
    move_of = {m.strategy_id: m for m in moves}
    for sid in sorted((set(books) | set(desired) | set(capital)) - {EXTERNAL}):
        b = books.get(sid)
        m = move_of.get(sid)
        if b is None:
            cash = m.amount if m is not None else capital.get(sid, 0.0)
            b = Book(strategy_id=sid, updated_at=as_of, starting_cash=cash, cash=cash, equity=cash,
                     high_water_mark=cash, capital_allocation=m.fraction if m else None,
                     capital_set_on=day if m else None)
        elif m is not None and m.kind == "rebalance":
            b = b.model_copy(update={"cash": b.cash + m.amount, "transfers": b.transfers + m.amount,
                                     "high_water_mark": max(0.0, b.high_water_mark + m.amount),
                                     "capital_allocation": m.fraction, "capital_set_on": day})
        # Shallow copy of what this function changes in place (positions are replaced, never mutated): a deep
        # copy of every book's equity curve each run cost a backtest 2.3 s of CPU.
        new[sid] = b.model_copy(update={"updated_at": as_of, "execution_id": execution_id,
                                        "positions": dict(b.positions), "equity_curve": dict(b.equity_curve),
                                        "dust": list(b.dust)})
    reset = set()
    for iso in isolation:
        if iso.strategy_id in new:
            new[iso.strategy_id].isolated_since = iso.since if iso.status == "locked" else None
            if iso.high_water_mark_reset:
                reset.add(iso.strategy_id)
    for sid, paid in split_funding({s: b for s, b in books.items() if s != EXTERNAL}, funding or {},
                                   late_units).items():
        if sid in new:
            new[sid].cash -= paid
            new[sid].funding += paid
    trades: list[Trade] = []
    for sym, f, shares in bookings:
        _book_fill(new, sym, f, split_fill(f.quantity, shares, lot_of(specs, sym)), specs, as_of, execution_id, trades)
    for sym, f in sorted(fills.items()):
        wanted = {sid: want.get(sym, 0.0) - (new[sid].positions[sym].quantity if sym in new[sid].positions else 0.0)
                  for sid, want in desired.items()}
        _book_fill(new, sym, f, split_fill(f.quantity, wanted, lot_of(specs, sym)), specs, as_of, execution_id, trades)
    dust = snap_dust(new, desired, specs, prices, as_of, execution_id)
    points = []
    for b in new.values():
        b.positions = {s: p for s, p in b.positions.items() if abs(p.quantity) > QTY_EPS}
        value = sum(p.quantity * prices.get(s, p.avg_price) * _mult(specs, s) for s, p in b.positions.items())
        b.unrealized_pnl = sum((prices.get(s, p.avg_price) - p.avg_price) * p.quantity * _mult(specs, s)
                               for s, p in b.positions.items())
        b.equity = b.cash + value
        b.high_water_mark = b.equity if b.strategy_id in reset else max(b.high_water_mark, b.equity)
        b.equity_curve = dict(sorted({**b.equity_curve, day: b.equity}.items())[-CURVE_DAYS:])
        gross = sum(abs(p.quantity) * prices.get(s, p.avg_price) * _mult(specs, s) for s, p in b.positions.items())
        points.append(EquityPoint(strategy_id=b.strategy_id, date=day, as_of=as_of, equity=b.equity, cash=b.cash,
                                  realized_pnl=b.realized_pnl, unrealized_pnl=b.unrealized_pnl, fees=b.fees,
                                  funding=b.funding, high_water_mark=b.high_water_mark, drawdown=b.drawdown,
                                  gross_exposure=gross))
    booked_units: dict[str, float] = {}
    for b in new.values():
        for s, p in b.positions.items():
            booked_units[s] = booked_units.get(s, 0.0) + p.quantity
    external = {s: round(holdings_after.get(s, 0.0) - booked_units.get(s, 0.0), 9)
                for s in sorted(set(holdings_after) | set(booked_units))}
    external = {s: q for s, q in external.items() if abs(q) > 1e-7}
    prev = books.get(EXTERNAL)
    ext_pos = {s: BookPosition(quantity=q, avg_price=(prev.positions[s].avg_price if prev and s in prev.positions
                                                      else prices.get(s, 0.0)))
               for s, q in external.items()}
    ext_value = sum(p.quantity * prices.get(s, p.avg_price) * _mult(specs, s) for s, p in ext_pos.items())
    new[EXTERNAL] = Book(strategy_id=EXTERNAL, updated_at=as_of, execution_id=execution_id, positions=ext_pos,
                         equity=ext_value, dust=[*(prev.dust if prev else []), *dust][-DUST_KEPT:])
    return BookUpdate(new, external, trades, points, dust)
