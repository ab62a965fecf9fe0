"""The order lifecycle's pure rules: write-ahead records, venue answers, late fills, blocked symbols.

No I/O here: :mod:`commander.run` writes what these functions return, and
:mod:`reconcile.resolve` feeds them the venue's answers. See :mod:`bus.orders`
for the document and its statuses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bus.constants import QTY_EPS
from bus.models import PROTECTIVE_ORDER_TYPES, OrderRecord, OrderTicket
from bus.orders import BLOCKING_STATUSES, OrderLifecycle


def planned_orders(execution_id: str, mode: str, orders: list[OrderRecord],
                   wanted: dict[str, dict[str, float]], now: datetime,
                   shares: dict[str, dict[str, float]] | None = None) -> list[OrderLifecycle]:
    """The ``planned`` write-ahead record of each order, with each strategy's share.

    Args:
        orders: the orders the decision asks for.
        wanted: symbol -> strategy id -> signed units that strategy wanted to change
            (its desired units minus its book's). A fill is split pro rata to these.
        shares: client order id -> strategy id -> signed units, for orders whose share is their own
            rather than their symbol's (a protective exit belongs to one strategy); overrides ``wanted``.
    """
    out = []
    for o in orders:
        mine = (shares or {}).get(o.client_order_id, wanted.get(o.symbol, {}))
        out.append(OrderLifecycle(
            **o.model_dump(include=set(OrderTicket.model_fields), exclude={"orderId"}), execution_id=execution_id,
            mode=mode, shares={s: q for s, q in mine.items() if abs(q) > QTY_EPS},
            status="planned", created_at=now, updated_at=now))
    return out


def sells_first(orders: list[OrderRecord]) -> list[OrderRecord]:
    """Sells before buys (a sell frees the cash or margin a buy needs), each side in symbol order."""
    return sorted(orders, key=lambda o: (o.action != "SELL", o.symbol))


def blocked_symbols(open_orders: list[OrderLifecycle]) -> dict[str, str]:
    """Symbol -> client order id of an earlier order the venue has not answered for (``planned`` or ``unknown``).

    No new order may go out on such a symbol: the earlier one may have reached the venue. A protective
    exit (``STP`` / ``MIT``) never blocks: it is reduce-only and conditional, so it cannot double a
    position, and a resting one stays ``submitted`` for days (:mod:`commander.protect`).
    """
    out: dict[str, str] = {}
    for o in sorted(open_orders, key=lambda o: o.created_at):
        if o.status in BLOCKING_STATUSES and o.orderType not in PROTECTIVE_ORDER_TYPES:
            out.setdefault(o.symbol, o.client_order_id)
    return out


@dataclass(frozen=True)
class LateFill:
    """Units of an order filled but not yet booked: signed units, their average price, their commission."""

    order: OrderLifecycle
    quantity: float
    price: float
    commission: float


def unbooked_fills(orders: list[OrderLifecycle]) -> list[LateFill]:
    """The part of each order's fills not yet in the books, with its own average price.

    The price of the unbooked part is (filled × avg − cost already booked) / unbooked units,
    so booking in several steps reproduces the venue's average exactly. Orders whose fill
    has no price are left out (never booked at 0).
    """
    out = []
    for o in orders:
        q = o.unbooked_quantity
        if q <= 0 or o.avg_fill_price is None:
            continue
        price = (o.filled_quantity * o.avg_fill_price - o.booked_cost) / q
        if price <= 0:
            price = o.avg_fill_price
        out.append(LateFill(o, o.sign * q, price, max(0.0, o.commission - o.booked_commission)))
    return out


def mark_booked(fills: list[LateFill]) -> list[OrderLifecycle]:
    """The orders of ``fills`` with those units, commissions and costs marked as booked."""
    return [f.order.booked(abs(f.quantity), f.commission, abs(f.quantity) * f.price) for f in fills]
