"""Step 8: place the orders (or, on a dry run, only describe them), each recorded as the venue answers.

Orders go out sells first (a sell frees the cash or margin a buy needs). Each one
was written ahead as ``planned`` (``orders/{client_order_id}``, see
:mod:`bus.orders`); after each venue call its record moves on and is written at
once through ``record``, so a crash between two orders leaves every order on record.
How each answer is recorded:

* an answer: the venue's status and fills (a fill without a price stays ``unknown``,
  never booked at 0);
* :class:`~brokers.base.DuplicateOrder`: the order is already at the venue (a retried
  step): its status is asked and recorded, nothing is placed twice;
* :class:`~brokers.base.RateLimited` (HTTP 429/418): ``rejected`` (the venue did not take
  it), and the next order waits the venue's ``Retry-After`` (bounded);
* :class:`~brokers.base.OrderRejected`, :class:`~brokers.base.UnknownInstrument`: ``rejected``;
* anything else (timeout, lost connection): ``unknown``, the venue may have the order;
  the next run asks the venue before any new order on that symbol.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timezone

from pydantic import TypeAdapter

from brokers.base import (
    Broker,
    BrokerError,
    DuplicateOrder,
    OrderRejected,
    OrderRequest,
    OrderResult,
    RateLimited,
    UnknownInstrument,
)
from bus.faults import fault_point
from bus.ids import client_order_id
from bus.models import DiffLine, Instrument, OrderRecord
from bus.orders import OrderLifecycle, lifecycle_status

log = logging.getLogger(__name__)
_ORDER_RECORDS = TypeAdapter(list[OrderRecord])
#: Longest wait after a rate limit before the next order (seconds).
MAX_BACKOFF_SECONDS = 30.0
#: Wait after a rate limit that names no Retry-After (seconds).
DEFAULT_BACKOFF_SECONDS = 1.0


def order_records(execution_id: str, lines: list[DiffLine], instruments: dict[str, Instrument]) -> list[OrderRecord]:
    """The orders a diff asks for (one per line with a non-zero quantity, in the lines' order), status ``DryRun``
    until placed; ``totalQuantity`` is the line's quantity without its sign (units).

    Each client order id is derived from the execution id and symbol. The records are validated in one call
    (the same documents as ``OrderRecord(**fields)`` each).

    Raises:
        pydantic.ValidationError: a record is invalid (a NaN quantity).
    """
    fields = []
    for d in lines:
        q = d.quantity
        if not q:
            continue
        inst = instruments.get(d.symbol) or Instrument(symbol=d.symbol)
        fields.append(dict(client_order_id=client_order_id(execution_id, d.symbol), symbol=d.symbol,
                           secType=inst.secType, exchange=inst.exchange, currency=inst.currency,
                           action="BUY" if q > 0 else "SELL", totalQuantity=abs(q), status="DryRun"))
    return _ORDER_RECORDS.validate_python(fields)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _answered(doc: OrderLifecycle, r: OrderResult, note: str | None = None) -> OrderLifecycle:
    """The record after a venue answer ``r``."""
    status = lifecycle_status(r.status, r.filled_quantity, doc.totalQuantity)
    priced = r.fill_price is not None and r.fill_price > 0
    if r.filled_quantity > 0 and not priced:
        status = "unknown"  # filled at a price the venue did not say: resolved by the next run, never booked at 0
    msg = note or f"{r.status}: {r.filled_quantity:g} filled" + (f" at {r.fill_price:g}" if priced else "")
    return doc.transition(_now(), status, venue_status=r.status, message=msg, filled_quantity=r.filled_quantity,
                          avg_fill_price=r.fill_price, commission=r.commission, orderId=r.orderId)


def _as_record(o: OrderRecord, doc: OrderLifecycle) -> OrderRecord:
    """The execution's view of an order: the venue's word, or ``Rejected`` / ``Unknown``."""
    word = {"rejected": "Rejected", "unknown": "Unknown"}.get(doc.status, doc.venue_status or doc.status)
    last = doc.events[-1].message if doc.events else None
    error = last if doc.status in ("rejected", "unknown", "cancelled", "expired") or (
        last or "").startswith("Duplicate") else None
    return o.model_copy(update=dict(orderId=doc.orderId, status=word, filled_quantity=doc.filled_quantity,
                                    fill_price=doc.avg_fill_price, commission=doc.commission, error=error))


def place_one(broker: Broker, o: OrderRecord, doc: OrderLifecycle, as_of: datetime) -> tuple[OrderLifecycle, float]:
    """Place one order; returns its record after the venue's answer and seconds to wait before the next order."""
    req = OrderRequest(client_order_id=o.client_order_id, symbol=o.symbol, action=o.action,
                       quantity=o.totalQuantity, secType=o.secType, exchange=o.exchange, currency=o.currency,
                       order_type=o.orderType, limit_price=o.lmtPrice, trigger_price=o.auxPrice,
                       reduce_only=o.reduce_only, oca_group=o.ocaGroup)
    try:
        return _answered(doc, broker.place_order(req, as_of)), 0.0
    except DuplicateOrder as exc:
        try:
            r = broker.order_status(o.client_order_id)
        except BrokerError as exc2:
            return doc.transition(_now(), "unknown", message=f"DuplicateOrder: {exc}; status: {exc2}"), 0.0
        return _answered(doc, r, note=f"Duplicate: already at the venue ({exc}): {r.status}, "
                                      f"{r.filled_quantity:g} filled"), 0.0
    except RateLimited as exc:
        wait = getattr(exc, "retry_after", None) or DEFAULT_BACKOFF_SECONDS
        return (doc.transition(_now(), "rejected", venue_status="RateLimited", message=f"RateLimited: {exc}"),
                min(float(wait), MAX_BACKOFF_SECONDS))
    except (OrderRejected, UnknownInstrument) as exc:
        return doc.transition(_now(), "rejected", venue_status="Rejected",
                              message=f"{type(exc).__name__}: {exc}"), 0.0
    except BrokerError as exc:
        return doc.transition(_now(), "unknown", message=f"answer lost: {type(exc).__name__}: {exc}"), 0.0


def place(broker: Broker, orders: list[OrderRecord], docs: dict[str, OrderLifecycle], as_of: datetime,
          record: Callable[[OrderLifecycle], None],
          wait: Callable[[float], None] = time.sleep) -> tuple[list[OrderRecord], list[OrderLifecycle]]:
    """Place ``orders`` in the given order (sells first is the caller's), recording each answer at once.

    Args:
        docs: client order id -> its ``planned`` write-ahead record.
        record: writes one order's record (``orders/{client_order_id}``); called after every venue call.
        wait: how to wait after a rate limit (seconds); tests pass a recorder.

    Returns:
        The execution's order records and the lifecycle records, in placing order.

    Raises:
        bus.store.StoreError: from ``record``: the store is unreachable; the orders placed so far
            are at the venue and their ``planned`` records let the next run resolve them.
    """
    placed, lifecycle = [], []
    for k, o in enumerate(orders, 1):
        doc, backoff = place_one(broker, o, docs[o.client_order_id], as_of)
        record(doc)
        placed.append(_as_record(o, doc))
        lifecycle.append(doc)
        fault_point("commander.after_order", k)
        if backoff > 0 and k < len(orders):
            log.warning("rate limited by %s: waiting %.1f s before the next order", broker.name, backoff)
            wait(backoff)
    return placed, lifecycle
