"""Protective exits: each strategy's ``stop_loss`` / ``take_profit`` as orders resting at the venue (pure).

A target with a stop and/or a take-profit (prices in quote currency per unit) becomes, for the
strategy's position after this run's orders (``Plan.desired``), one **exit**: a ``STP`` leg
(stop-loss, trigger = ``stop_loss``) and/or a ``MIT`` leg (take-profit, trigger = ``take_profit``),
on the side that closes the position, quantity = |its units| rounded **down** to the lot,
``reduce_only``, both legs in one OCA group. They rest at the venue between runs, so the
position is protected while no Commander runs; a triggered leg's fill is booked to its strategy
through its ``orders/*`` record (``shares = {strategy id: signed units of the exit}``).

**Client order ids** (:func:`exit_id`): ``px{leg}{owner}{digest}{nonce}-{SYMBOL}`` with ``leg`` ``S``
(stop) or ``T`` (take-profit), ``owner`` 6 hex of the strategy id's SHA-256, ``digest`` 6 hex of the
exit's (quantity, stop, take-profit), ``nonce`` 4 hex of the execution id that placed it (an id is never
reused once an exit has filled or been cancelled; a retried execution makes the same ids, which the
venue refuses as duplicates). The same strategy, symbol, leg and digest is the *same exit*: a resting
one is **kept** (not placed again). A changed exit (new size or trigger) is **amended**: its resting
legs are cancelled and the new legs placed with a new OCA group (cancel first: two live exits could
both trigger where a venue has no reduce-only).

**"Treats a resting protective order as pending"**, as this module reads issue 14: the Commander
knows the resting exits (from the snapshot), never cancels them as stray or expired orders (the
diff's TTL leaves them alone, :func:`commander.diff.expired_orders`), never places a duplicate, and
amends or cancels them when the position changes. They are not *pending quantity* in the diff:
an exit is conditional, counting it would make the diff buy it back (:func:`commander.diff.pending_by_symbol`).

**Cancelled** are the resting exits a strategy no longer wants: its position after this run is flat
(under one lot), its target has no stop nor take-profit any more, or its exit changed. A strategy
whose intent was not used this run (errored, stale, missing, paused) holds its book, and its resting
exits are **kept** while its book still holds units on the side they close: protection holds most
when a strategy cannot speak. A retired strategy is flattened, so its exits are cancelled. An exit
of a strategy the Commander no longer knows (disabled, deleted) is cancelled. Protective orders
without the ``px`` prefix (placed by hand) are left alone.

**Refused** (not placed, recorded with the reason): a trigger on the wrong side of the as-of price
(a long's stop must be below it and its take-profit above; a short mirrored), a quantity under one
lot or the venue's minimum, a notional at the trigger under the minimum, no price, and every leg on
a venue without protective orders (``Broker.supports_protective`` false: "venue X has no protective
orders").

**Strategies netting one symbol**: each strategy's exit covers its own share. When shares offset (A
long 10, B short 4: the account holds 6), the venue clips a reduce-only exit to the position it
holds: A's stop fills at most 6 (booked to A, whose book keeps 4 against B's −4, so the books still
add up to the account), and B's buy stop has nothing to reduce while the account is net long (the
paper broker cancels it unfilled). An offset share is protected only up to the account's position.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Literal

from brokers.base import round_to_tick
from bus.constants import QTY_EPS
from bus.ids import EXIT_ID, exit_group_id, exit_leg_id
from bus.models import (
    DEFAULT_SPEC,
    Instrument,
    InstrumentSpec,
    Intent,
    OpenOrder,
    OrderRecord,
    ProtectiveExitRecord,
)

Leg = Literal["stop", "take_profit"]
_LEG_CODE: dict[str, Leg] = {"S": "stop", "T": "take_profit"}
_ORDER_TYPE: dict[Leg, Literal["STP", "MIT"]] = {"stop": "STP", "take_profit": "MIT"}


def _hex(text: str, n: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def owner_code(strategy_id: str) -> str:
    """6 hex digits naming ``strategy_id`` in an exit's client order id."""
    return _hex(strategy_id, 6)


def exit_digest(quantity: float, stop: float | None, take_profit: float | None) -> str:
    """6 hex digits of an exit's size (units) and triggers (quote currency per unit)."""
    return _hex(f"{quantity:.10g}|{stop if stop is None else f'{stop:.10g}'}|"
                f"{take_profit if take_profit is None else f'{take_profit:.10g}'}", 6)


def exit_id(leg: Leg, strategy_id: str, symbol: str, digest: str, execution_id: str) -> str:
    """The client order id of one leg (module docstring), at most 36 characters (:func:`bus.ids.client_order_id`)."""
    code = "S" if leg == "stop" else "T"
    return exit_leg_id(code, f"{owner_code(strategy_id)}{digest}{_hex(execution_id, 4)}", symbol)


def oca_group(strategy_id: str, symbol: str, digest: str, execution_id: str) -> str:
    """The OCA group both legs of one exit share."""
    return exit_group_id(f"{owner_code(strategy_id)}{digest}{_hex(execution_id, 4)}", symbol)


@dataclass(frozen=True)
class ExitInputs:
    """What the protective plan depends on.

    Attributes:
        execution_id: this run (the ids' nonce).
        venue: the broker's name; ``supports_protective``: whether it takes exits at all.
        intents: strategy id -> the intent this run used (targets with ``stop_loss`` / ``take_profit``).
        books_after: strategy id -> symbol -> signed units it holds once this run's orders fill (the
            strategies whose targets this run decided: ``Plan.desired``).
        held: strategy id -> symbol -> signed units of the strategies whose intent was not used (their
            book is held unchanged).
        resting: the protective open orders at the venue (``OpenOrder.protective``).
        owners: client order id -> strategy id, from the ``orders/*`` records (optional; else the id's owner code).
        prices: symbol -> as-of price (quote currency per unit); specs: symbol -> venue rules.
        instruments: symbol -> contract fields of the orders.
    """

    execution_id: str
    venue: str
    supports_protective: bool
    intents: dict[str, Intent]
    books_after: dict[str, dict[str, float]]
    held: dict[str, dict[str, float]]
    resting: list[OpenOrder]
    prices: dict[str, float]
    specs: dict[str, InstrumentSpec]
    instruments: dict[str, Instrument] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)


@dataclass
class ExitPlan:
    """The legs to place (``OrderRecord`` status ``DryRun``, with each one's ``shares``), the resting legs
    to cancel, and one :class:`~bus.models.ProtectiveExitRecord` per leg placed, kept, cancelled or refused."""

    place: list[OrderRecord] = field(default_factory=list)
    shares: dict[str, dict[str, float]] = field(default_factory=dict)
    cancel: list[OpenOrder] = field(default_factory=list)
    records: list[ProtectiveExitRecord] = field(default_factory=list)


@dataclass(frozen=True)
class _Wanted:
    strategy_id: str
    symbol: str
    side: Literal["BUY", "SELL"]
    quantity: float
    legs: dict[Leg, float]
    digest: str


def _triggers(intent: Intent) -> dict[str, tuple[float | None, float | None]]:
    """Symbol -> (stop, take-profit) of an intent; the first target line naming each wins."""
    out: dict[str, tuple[float | None, float | None]] = {}
    for t in intent.target_positions:
        s, tp = out.get(t.symbol, (None, None))
        out[t.symbol] = (s if s is not None else t.stop_loss, tp if tp is not None else t.take_profit)
    return out


def _leg_problem(leg: Leg, long: bool, trigger: float, price: float | None) -> str | None:
    """Why a leg's trigger cannot be placed (wrong side of the price), or None."""
    if trigger <= 0:
        return f"{leg} trigger {trigger:g} is not positive"
    if price is None:
        return "no price: the trigger side cannot be checked"
    below = (leg == "stop") == long  # a long's stop and a short's take-profit sit below the price
    if below and trigger >= price:
        return f"{leg} {trigger:g} is not below the price {price:g} of a {'long' if long else 'short'}"
    if not below and trigger <= price:
        return f"{leg} {trigger:g} is not above the price {price:g} of a {'long' if long else 'short'}"
    return None


def _size(units: float, spec: InstrumentSpec, trigger: float) -> tuple[float, str | None]:
    """|units| rounded down to the lot, or why no exit can be that small."""
    qty = round(math.floor(abs(units) / spec.lot_size + QTY_EPS) * spec.lot_size, 10)
    if qty < QTY_EPS:
        return 0.0, "position under one lot"
    if qty < spec.min_quantity - QTY_EPS:
        return qty, f"quantity {qty:g} below minimum {spec.min_quantity:g}"
    if qty * trigger * spec.multiplier < spec.min_notional:
        return qty, f"notional at the trigger below minimum {spec.min_notional:g}"
    return qty, None


def _wanted(inp: ExitInputs, refused: list[ProtectiveExitRecord]) -> dict[tuple[str, str], _Wanted]:
    """(strategy id, symbol) -> the exit it wants now; refused legs appended to ``refused``."""
    out: dict[tuple[str, str], _Wanted] = {}
    for sid, intent in sorted(inp.intents.items()):
        after = inp.books_after.get(sid, {})
        for sym, (stop, tp) in sorted(_triggers(intent).items()):
            units = after.get(sym, 0.0)
            if abs(units) < QTY_EPS or (stop is None and tp is None):
                continue
            spec = inp.specs.get(sym) or DEFAULT_SPEC
            long = units > 0
            side: Literal["BUY", "SELL"] = "SELL" if long else "BUY"
            legs: dict[Leg, float] = {}
            pairs: tuple[tuple[Leg, float | None], ...] = (("stop", stop), ("take_profit", tp))
            for leg, raw in pairs:
                if raw is None:
                    continue
                trigger = round_to_tick(raw, spec.tick_size) if raw > 0 else raw
                qty, why = _size(units, spec, trigger)
                why = why or _leg_problem(leg, long, trigger, inp.prices.get(sym))
                if why is None and not inp.supports_protective:
                    why = f"venue {inp.venue} has no protective orders"
                if why is not None:
                    if qty >= QTY_EPS or why != "position under one lot":
                        refused.append(ProtectiveExitRecord(strategy_id=sid, symbol=sym, action="refuse", leg=leg,
                                                            side=side, quantity=qty or abs(units), trigger=trigger,
                                                            reason=why))
                    continue
                legs[leg] = trigger
            if legs:
                qty = _size(units, spec, next(iter(legs.values())))[0]
                out[(sid, sym)] = _Wanted(sid, sym, side, qty, legs,
                                          exit_digest(qty, legs.get("stop"), legs.get("take_profit")))
    return out


def _owner(o: OpenOrder, inp: ExitInputs, codes: dict[str, str]) -> str | None:
    """The strategy a resting exit belongs to: its ``orders/*`` record, else its id's owner code."""
    if o.client_order_id in inp.owners:
        return inp.owners[o.client_order_id]
    m = EXIT_ID.match(o.client_order_id)
    return codes.get(m.group(2)) if m else None


def _record(o: OpenOrder, sid: str, action: Literal["keep", "cancel"], reason: str) -> ProtectiveExitRecord:
    leg: Leg = "stop" if o.orderType == "STP" else "take_profit"
    return ProtectiveExitRecord(strategy_id=sid, symbol=o.symbol, action=action, leg=leg, side=o.action,
                                quantity=o.totalQuantity, trigger=o.auxPrice, client_order_id=o.client_order_id,
                                oca_group=o.ocaGroup, reason=reason)


def _held_keeps(o: OpenOrder, sid: str, inp: ExitInputs) -> bool:
    """A resting exit of a strategy whose intent was not used: kept while its book holds the side it closes."""
    units = inp.held.get(sid, {}).get(o.symbol, 0.0)
    return (units > QTY_EPS and o.action == "SELL") or (units < -QTY_EPS and o.action == "BUY")


def _resting_by_exit(inp: ExitInputs) -> tuple[dict[tuple[str, str], list[OpenOrder]], list[ProtectiveExitRecord],
                                               list[OpenOrder]]:
    """The resting exits this module made, by (strategy id, symbol); the kept ones of strategies whose intent
    was not used (records) and the cancels of exits no known strategy owns."""
    known = set(inp.intents) | set(inp.books_after) | set(inp.held) | set(inp.owners.values())
    codes = {owner_code(s): s for s in known}
    by_exit: dict[tuple[str, str], list[OpenOrder]] = {}
    records: list[ProtectiveExitRecord] = []
    cancel: list[OpenOrder] = []
    for o in inp.resting:
        if not o.protective or not (EXIT_ID.match(o.client_order_id) or o.client_order_id in inp.owners):
            continue  # not ours (placed by hand): left alone
        sid = _owner(o, inp, codes)
        if sid is None or (sid not in inp.books_after and sid not in inp.held):
            cancel.append(o)
            records.append(_record(o, sid or "?", "cancel", "no strategy trading this symbol owns it any more"))
        elif sid in inp.held and sid not in inp.books_after:
            if _held_keeps(o, sid, inp):
                records.append(_record(o, sid, "keep", "strategy's intent not used this run: its book is held"))
            else:
                cancel.append(o)
                records.append(_record(o, sid, "cancel", "the strategy's book no longer holds this position"))
        else:
            by_exit.setdefault((sid, o.symbol), []).append(o)
    return by_exit, records, cancel


def _leg_of(o: OpenOrder) -> tuple[Leg, str] | None:
    m = EXIT_ID.match(o.client_order_id)
    return (_LEG_CODE[m.group(1)], m.group(3)) if m else None


def _same(resting: list[OpenOrder], want: _Wanted) -> bool:
    """Whether the resting legs are exactly the wanted exit (one leg each, same digest and side)."""
    legs = [_leg_of(o) for o in resting]
    return (len(legs) == len(want.legs) and all(x is not None and x[1] == want.digest for x in legs)
            and {x[0] for x in legs if x is not None} == set(want.legs)
            and all(o.action == want.side for o in resting))


def _order(want: _Wanted, leg: Leg, inp: ExitInputs) -> OrderRecord:
    inst = inp.instruments.get(want.symbol) or Instrument(symbol=want.symbol)
    return OrderRecord(client_order_id=exit_id(leg, want.strategy_id, want.symbol, want.digest, inp.execution_id),
                       symbol=want.symbol, secType=inst.secType, exchange=inst.exchange, currency=inst.currency,
                       action=want.side, totalQuantity=want.quantity, orderType=_ORDER_TYPE[leg],
                       auxPrice=want.legs[leg], ocaGroup=oca_group(want.strategy_id, want.symbol, want.digest,
                                                                   inp.execution_id),
                       reduce_only=True, status="DryRun")


def plan_exits(inp: ExitInputs) -> ExitPlan:
    """The protective plan: legs to place (new or amended), resting legs kept or cancelled, legs refused.

    Pure: reads only ``inp``. Records come out sorted by strategy, symbol and leg.
    """
    plan = ExitPlan()
    refused: list[ProtectiveExitRecord] = []
    wanted = _wanted(inp, refused)
    by_exit, records, cancel = _resting_by_exit(inp)
    plan.cancel += cancel
    for key in sorted(set(wanted) | set(by_exit)):
        want, resting = wanted.get(key), by_exit.get(key, [])
        if want is not None and resting and _same(resting, want):
            records += [_record(o, key[0], "keep", "unchanged") for o in resting]
            continue
        why = "amended: size or trigger changed" if want is not None else "no exit wanted any more (flat or no stop)"
        plan.cancel += resting
        records += [_record(o, key[0], "cancel", why) for o in resting]
        if want is None:
            continue
        for leg in want.legs:
            o = _order(want, leg, inp)
            plan.place.append(o)
            plan.shares[o.client_order_id] = {want.strategy_id: o.totalQuantity * (1 if o.action == "BUY" else -1)}
            records.append(ProtectiveExitRecord(strategy_id=want.strategy_id, symbol=want.symbol, action="place",
                                                leg=leg, side=want.side, quantity=want.quantity,
                                                trigger=want.legs[leg], client_order_id=o.client_order_id,
                                                oca_group=o.ocaGroup, status="DryRun",
                                                reason="amend" if resting else "new"))
    plan.records = sorted(records + refused, key=lambda r: (r.strategy_id, r.symbol, r.leg, r.action))
    return plan


def exits_summary(records: list[ProtectiveExitRecord]) -> str:
    """One sentence for the execution's summary: how many legs were placed, kept, cancelled and refused
    (empty when there were none)."""
    counts = {a: sum(1 for r in records if r.action == a) for a in ("place", "keep", "cancel", "refuse")}
    if not any(counts.values()):
        return ""
    failed = sum(1 for r in records if r.status in ("Rejected", "Unknown", "CancelFailed"))
    words = {"place": "placed", "keep": "kept", "cancel": "cancelled", "refuse": "refused"}
    text = ", ".join(f"{n} {words[a]}" for a, n in counts.items() if n)
    return f" Protective exits (legs): {text}" + (f"; {failed} not answered as asked" if failed else "") + "."
