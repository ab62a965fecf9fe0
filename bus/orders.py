"""``orders/{client_order_id}``: one order's lifecycle, written ahead of the venue call.

The Commander writes every order as ``planned`` (with its execution id, symbol,
quantity and each strategy's share) in the same batch as the execution marked
``placing``, *before* it calls the broker. Each answer of the venue then moves it::

    planned -> submitted -> partially_filled -> filled | cancelled | rejected | expired
                        \\-> unknown (the venue's answer was lost; resolved by the next run)

Every change appends an :class:`OrderEvent` with its time and the venue's own
words. Fills are booked to the strategies once, when they are known with a price:
``booked_quantity`` / ``booked_commission`` say how much of the venue's
``filled_quantity`` / ``commission`` is already in the books, so a late fill
(found by a later run) books only the difference. A fill without a price is never
booked at 0: the order stays open to resolution until its price is known.

A protective exit (``orderType`` ``STP`` / ``MIT``, :mod:`commander.protect`) is such a record too, with
``auxPrice`` its trigger and ``shares`` its one strategy's signed units: it stays ``submitted`` across
runs while it rests, and reconcile moves it to ``filled`` (booked to that strategy) or ``cancelled``.

Units: ``totalQuantity``, ``filled_quantity`` and ``booked_quantity`` in units of
the instrument (shares, contracts, coins), always ≥ 0 (``action`` gives the side);
``shares`` are signed units each strategy wanted to change; prices in the quote
currency per unit; commissions in the account's base currency.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from bus.constants import QTY_EPS
from bus.models import Doc, OrderTicket, UTCDateTime

OrderStatus = Literal["planned", "submitted", "partially_filled", "filled", "cancelled", "rejected", "expired",
                      "unknown"]
#: Statuses after which the venue will not change the order again.
FINAL_STATUSES: frozenset[str] = frozenset({"filled", "cancelled", "rejected", "expired"})
#: Statuses that block new orders on the same symbol until the venue has answered for them.
BLOCKING_STATUSES: frozenset[str] = frozenset({"planned", "unknown"})
#: ``venue_status`` of an order the venue has never heard of (closed as ``cancelled``: never sent).
NEVER_SENT_STATUS = "NotFound"


#: The venue's words (IB's, which every adapter speaks) -> the lifecycle's.
_VENUE_STATUS: dict[str, OrderStatus] = {
    "Filled": "filled",
    "Cancelled": "cancelled", "ApiCancelled": "cancelled", "PendingCancel": "submitted",
    "Rejected": "rejected", "Inactive": "rejected",
    "Expired": "expired",
    "Submitted": "submitted", "PreSubmitted": "submitted", "PendingSubmit": "submitted", "ApiPending": "submitted",
    "Unknown": "unknown",
}


def lifecycle_status(venue_status: str, filled: float, total: float) -> OrderStatus:
    """The lifecycle status for a venue status and filled units.

    A working order with some units filled is ``partially_filled``; a ``Filled``
    answer short of the total (a venue that filled what it could) is still ``filled``.
    An unknown word is ``unknown``: the next run asks the venue again.
    """
    status = _VENUE_STATUS.get(venue_status, "unknown")
    if status == "submitted" and filled > QTY_EPS and filled < total - QTY_EPS:
        return "partially_filled"
    return status


class OrderEvent(Doc):
    """One change of an order's status: when, to what, and what the venue said."""

    at: UTCDateTime
    status: OrderStatus
    venue_status: str | None = None
    message: str | None = None
    filled_quantity: float | None = None
    avg_fill_price: float | None = None


class OrderLifecycle(OrderTicket):
    """``orders/{client_order_id}``: an order from its plan to its last fill (see the module docstring)."""

    execution_id: str
    mode: str
    shares: dict[str, float] = Field(default_factory=dict)
    status: OrderStatus = "planned"
    venue_status: str | None = None
    filled_quantity: float = Field(0.0, ge=0)
    avg_fill_price: float | None = None
    commission: float = 0.0
    booked_quantity: float = Field(0.0, ge=0)
    booked_commission: float = 0.0
    booked_cost: float = 0.0
    created_at: UTCDateTime
    updated_at: UTCDateTime
    submitted_at: UTCDateTime | None = None
    events: list[OrderEvent] = Field(default_factory=list)
    error: str | None = None
    open: bool = True

    @property
    def final(self) -> bool:
        """The venue will not change this order any more."""
        return self.status in FINAL_STATUSES

    @property
    def sign(self) -> float:
        """+1 for a BUY, -1 for a SELL."""
        return 1.0 if self.action == "BUY" else -1.0

    @property
    def unbooked_quantity(self) -> float:
        """Units filled at the venue, with a known price, not yet in any book (≥ 0)."""
        if self.avg_fill_price is None or self.avg_fill_price <= 0:
            return 0.0
        d = self.filled_quantity - self.booked_quantity
        return d if d > QTY_EPS else 0.0

    @property
    def needs_resolution(self) -> bool:
        """Not final at the venue, or filled beyond what the books hold (a late fill to book)."""
        if not self.final:
            return True
        return self.filled_quantity - self.booked_quantity > QTY_EPS

    def transition(self, at: datetime, status: OrderStatus, venue_status: str | None = None,
                   message: str | None = None, filled_quantity: float | None = None,
                   avg_fill_price: float | None = None, commission: float | None = None,
                   orderId: str | None = None) -> "OrderLifecycle":
        """A copy moved to ``status`` with the venue's words appended to :attr:`events`.

        Fills only grow: a smaller ``filled_quantity`` than recorded (a venue that
        forgot a fill) keeps the recorded one. ``avg_fill_price`` of None keeps the
        recorded price; a filled order without any price stays resolvable.
        """
        filled = self.filled_quantity if filled_quantity is None else max(self.filled_quantity, filled_quantity)
        price = avg_fill_price if avg_fill_price and avg_fill_price > 0 else self.avg_fill_price
        ev = OrderEvent(at=at, status=status, venue_status=venue_status, message=message,
                        filled_quantity=filled_quantity, avg_fill_price=avg_fill_price)
        upd: dict[str, object] = {"status": status, "updated_at": at, "events": [*self.events, ev],
                                  "filled_quantity": filled, "avg_fill_price": price}
        if venue_status is not None:
            upd["venue_status"] = venue_status
        if commission is not None:
            upd["commission"] = max(self.commission, commission)
        if orderId:
            upd["orderId"] = orderId
        if status != "planned" and self.submitted_at is None and status != "unknown":
            upd["submitted_at"] = at
        if status in ("rejected", "cancelled", "expired") and message:
            upd["error"] = message
        nxt = self.model_copy(update=upd)
        nxt.open = nxt.needs_resolution
        return nxt

    def booked(self, quantity: float, commission: float, cost: float) -> "OrderLifecycle":
        """A copy with ``quantity`` more units, ``commission`` and ``cost`` (units × price) booked."""
        nxt = self.model_copy(update={"booked_quantity": self.booked_quantity + quantity,
                                      "booked_commission": self.booked_commission + commission,
                                      "booked_cost": self.booked_cost + cost})
        nxt.open = nxt.needs_resolution
        return nxt
