"""Resolve the orders that are not final: ask the venue about each, and record its answer.

Every reconcile runs this before it snapshots the account. An order written ahead
(``planned``) by a Commander that died before or while calling the venue, an order
whose answer was lost (``unknown``), or one still working (``submitted`` /
``partially_filled``, e.g. an IB order held until the open) is looked up by its
client order id. Its status and fills move forward in ``orders/{client_order_id}``;
the Commander books the new fills to the strategies that placed the order. An order still
resting as it was (a protective exit waiting for its trigger) is not rewritten.

An order the venue has never heard of was never sent: it is closed as
``cancelled`` with that reason, which unblocks its symbol. When the venue cannot be
asked (disconnected), the order stays as it is, and its symbol stays blocked.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone

from brokers.base import Broker, BrokerError, OrderNotFound
from bus import paths
from bus.constants import QTY_EPS
from bus.lent import read_where, write_owned_batches
from bus.orders import NEVER_SENT_STATUS, OrderLifecycle, lifecycle_status
from bus.store import Store

log = logging.getLogger(__name__)
NEVER_SENT = "the venue has no order with this client order id: it was never sent"


@dataclass
class Resolution:
    """What one resolution pass found: the orders it changed, and those the venue could not answer for."""

    changed: list[OrderLifecycle] = field(default_factory=list)
    unanswered: dict[str, str] = field(default_factory=dict)
    seen: list[OrderLifecycle] = field(default_factory=list)


def open_orders(store: Store, mode: str) -> list[OrderLifecycle]:
    """Every ``orders/*`` document of account ``mode`` that still needs the venue or the books."""
    docs = read_where(store, paths.ORDERS, "open", True)  # lent (bus.lent): only validated
    out = [OrderLifecycle.model_validate(d) for _, d in docs]
    return [o for o in out if o.mode == mode]


def resolve_orders(store: Store, broker: Broker, mode: str, now: datetime | None = None) -> Resolution:
    """Ask the venue about every non-final order of ``mode`` and write what changed (one batch).

    Raises:
        bus.store.StoreError: the store is unreachable.
    """
    now = now or datetime.now(timezone.utc)
    res = Resolution()
    for o in open_orders(store, mode):
        res.seen.append(o)
        if o.final:
            continue
        try:
            r = broker.order_status(o.client_order_id)
        except OrderNotFound as exc:
            if o.status in ("planned", "unknown"):
                res.changed.append(o.transition(now, "cancelled", venue_status=NEVER_SENT_STATUS, message=NEVER_SENT))
            else:
                res.unanswered[o.client_order_id] = f"OrderNotFound: {exc}"
            continue
        except BrokerError as exc:
            res.unanswered[o.client_order_id] = f"{type(exc).__name__}: {exc}"
            log.warning("order %s (%s) not resolved: %s", o.client_order_id, o.symbol, exc)
            continue
        status = lifecycle_status(r.status, r.filled_quantity, o.totalQuantity)
        if status == "filled" and (r.fill_price is None or r.fill_price <= 0):
            status = "unknown"  # filled, but at no known price: never booked at 0, asked again next run
        if status == o.status == "submitted" and r.status == o.venue_status and r.filled_quantity <= QTY_EPS:
            continue  # still resting, nothing filled (a protective exit rests for days): no event to add
        nxt = o.transition(now, status, venue_status=r.status, filled_quantity=r.filled_quantity,
                           avg_fill_price=r.fill_price, commission=r.commission, orderId=r.orderId,
                           message=f"resolved: {r.status}, {r.filled_quantity:g} filled"
                                   + (f" at {r.fill_price:g}" if r.fill_price else ""))
        res.changed.append(nxt)
    if res.changed:
        write_owned_batches(store, [(paths.order(o.client_order_id), o.to_store()) for o in res.changed])
    return res
