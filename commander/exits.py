"""Step 8b: the protective exits at the venue (the I/O edge of :mod:`commander.protect`).

After the main orders are placed, :func:`exit_inputs` gathers what the pure plan
(:func:`commander.protect.plan_exits`) needs, and :func:`execute_exits` carries it out:

1. cancel the resting legs the plan no longer wants (an amended exit is cancelled before its
   new legs go out); each ``orders/*`` record of a cancelled leg moves to ``cancelled``;
2. write the new legs ahead as ``planned`` ``orders/{client_order_id}`` (``shares`` = the one
   strategy's signed units, so a triggered fill is booked to it), then place them as the main
   orders are placed (:func:`commander.execute.place`, each answer recorded at once).

A placed leg stays ``submitted`` across runs; reconcile resolves it when it triggers (``filled``:
booked to its strategy as a late fill) or is cancelled (its OCA sibling filled). A dry run plans
and records, and sends nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

from brokers.base import Broker, BrokerError
from bus.constants import QTY_EPS
from bus.models import (
    Instrument,
    InstrumentSpec,
    Intent,
    OpenOrder,
    OrderRecord,
    PortfolioSnapshot,
    ProtectiveExitRecord,
)
from bus.orders import OrderLifecycle
from commander.execute import place
from commander.orders import planned_orders
from commander.protect import ExitInputs, ExitPlan

#: Statuses of a main order after which its symbol's position is not what the decision wanted.
_UNSETTLED = ("Rejected", "Unknown")


def exit_inputs(execution_id: str, broker: Broker, intents: dict[str, Intent], desired: dict[str, dict[str, float]],
                books: dict[str, dict[str, float]], snapshot: PortfolioSnapshot, prices: dict[str, float],
                specs: dict[str, InstrumentSpec], instruments: dict[str, Instrument], known: list[OrderLifecycle],
                unsettled: set[str]) -> ExitInputs:
    """The protective plan's inputs.

    Args:
        intents: the intents this run used (``Plan.classification.fresh``).
        desired: strategy id -> symbol -> units it wants after this run (``Plan.desired``).
        books: strategy id -> symbol -> units in its book before this run's orders (late fills included).
        known: the ``orders/*`` records still open: they name each resting exit's strategy, and map a venue
            order id back to our client order id when the venue reports another one.
        unsettled: symbols whose main order this run was held back, refused or lost: there the position
            after this run is the book's, not the wanted one.
    """
    after: dict[str, dict[str, float]] = {}
    for sid, want in desired.items():
        mine = books.get(sid, {})
        after[sid] = {sym: (mine.get(sym, 0.0) if sym in unsettled else q) for sym, q in want.items()}
    held = {sid: units for sid, units in books.items() if sid not in desired}
    ours = {o.client_order_id: o for o in known if o.orderType in ("STP", "MIT")}
    by_venue_id = {o.orderId: o.client_order_id for o in ours.values() if o.orderId}
    resting = []
    for o in snapshot.open_orders:
        if not o.protective:
            continue
        if o.client_order_id not in ours and o.orderId in by_venue_id:
            o = o.model_copy(update={"client_order_id": by_venue_id[o.orderId]})
        resting.append(o)
    owners = {c: next(iter(o.shares)) for c, o in ours.items() if len(o.shares) == 1}
    return ExitInputs(execution_id=execution_id, venue=broker.name, supports_protective=broker.supports_protective,
                      intents=intents, books_after=after, held=held, resting=resting, prices=prices, specs=specs,
                      instruments=instruments, owners=owners)


def unsettled_symbols(blocked: dict[str, str], orders: list[OrderRecord], need_fill: bool = False) -> set[str]:
    """Symbols whose main order was held back (``blocked``) or refused or lost this run; with ``need_fill``
    (a venue without reduce-only, :attr:`brokers.base.Broker.exits_need_fill`) also those whose order has not
    filled yet (an order held until the open), so no exit goes out for units not held."""
    return set(blocked) | {o.symbol for o in orders
                           if o.status in _UNSETTLED or (need_fill and o.status not in ("Filled", "DryRun"))}


def _cancel(broker: Broker, o: OpenOrder) -> tuple[str, str | None]:
    try:
        broker.cancel_order(o.client_order_id)
    except BrokerError as exc:
        return "CancelFailed", f"{type(exc).__name__}: {exc}"
    return "Cancelled", None


def execute_exits(broker: Broker, plan: ExitPlan, known: list[OrderLifecycle], as_of: datetime, execution_id: str,
                  mode: str, dry_run: bool,
                  write_ahead: Callable[[list[OrderRecord], list[OrderLifecycle]], None],
                  record: Callable[[OrderLifecycle], None]
                  ) -> tuple[list[ProtectiveExitRecord], list[OrderLifecycle]]:
    """Cancel the legs to cancel, then write ahead and place the legs to place (see the module docstring).

    Args:
        write_ahead: writes the ``planned`` records (one batch) before any leg is sent.
        record: writes one order's record after each venue answer.

    Returns:
        The plan's records with the venue's answers, and the ``orders/*`` records changed (placed legs,
        cancelled legs) for the audit to write.

    Raises:
        bus.store.StoreError: from ``write_ahead`` / ``record``.
    """
    if dry_run:
        return [r.model_copy(update={"status": "DryRun"}) if r.action in ("place", "cancel") else r
                for r in plan.records], []
    now = datetime.now(timezone.utc)
    docs = {o.client_order_id: o for o in known}
    status: dict[str, tuple[str, str | None]] = {}
    changed: list[OrderLifecycle] = []
    for o in plan.cancel:
        word, err = _cancel(broker, o)
        status[o.client_order_id] = (word, err)
        doc = docs.get(o.client_order_id)
        if word == "Cancelled" and doc is not None and doc.filled_quantity <= QTY_EPS:
            changed.append(doc.transition(now, "cancelled", venue_status="Cancelled",
                                          message="cancelled by the Commander: exit no longer wanted or amended"))
    if plan.place:
        planned = planned_orders(execution_id, mode, plan.place, {}, now, shares=plan.shares)
        write_ahead(plan.place, planned)
        placed, lifecycle = place(broker, plan.place, {d.client_order_id: d for d in planned}, as_of, record=record)
        changed += lifecycle
        status.update({o.client_order_id: (o.status, o.error) for o in placed})
    out = []
    for r in plan.records:
        if r.client_order_id in status and r.action in ("place", "cancel"):
            word, err = status[r.client_order_id]
            r = r.model_copy(update={"status": word, "reason": f"{r.reason}: {err}" if err else r.reason})
        out.append(r)
    return out, changed
