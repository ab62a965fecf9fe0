"""Step 8: place the orders (or, on a dry run, only describe them)."""

from __future__ import annotations

from datetime import datetime

from brokers.base import Broker, BrokerError, DuplicateOrder, OrderRequest
from bus.ids import client_order_id
from bus.models import DiffLine, Instrument, OrderRecord


def order_records(execution_id: str, lines: list[DiffLine], instruments: dict[str, Instrument]) -> list[OrderRecord]:
    """The orders a diff asks for, status ``DryRun`` until placed.

    Each client order id is derived from the execution id and symbol.
    """
    out = []
    for d in lines:
        if not d.quantity:
            continue
        inst = instruments.get(d.symbol) or Instrument(symbol=d.symbol)
        out.append(OrderRecord(client_order_id=client_order_id(execution_id, d.symbol), symbol=d.symbol,
                               secType=inst.secType, exchange=inst.exchange, currency=inst.currency,
                               action="BUY" if d.quantity > 0 else "SELL", totalQuantity=abs(d.quantity),
                               status="DryRun"))
    return out


def place(broker: Broker, orders: list[OrderRecord], as_of: datetime) -> list[OrderRecord]:
    """Place each order; a refused one is recorded ``Rejected`` with the error and the rest go on.

    A ``DuplicateOrder`` means this very order (same client order id, so same
    execution and symbol) is already at the venue, e.g. a retried step: it is
    recorded with the venue's own status and ``Duplicate`` noted, never placed twice.
    The fills of such an order were booked by the run that placed it, so its
    ``filled_quantity`` is recorded as 0 here.
    """
    placed = []
    for o in orders:
        req = OrderRequest(client_order_id=o.client_order_id, symbol=o.symbol, action=o.action,
                           quantity=o.totalQuantity, secType=o.secType, exchange=o.exchange, currency=o.currency)
        try:
            r = broker.place_order(req, as_of)
            placed.append(o.model_copy(update=dict(orderId=r.orderId, status=r.status,
                                                   filled_quantity=r.filled_quantity, fill_price=r.fill_price,
                                                   commission=r.commission)))
        except DuplicateOrder as exc:
            try:
                r = broker.order_status(o.client_order_id)
                placed.append(o.model_copy(update=dict(orderId=r.orderId, status=r.status, fill_price=r.fill_price,
                                                       error=f"Duplicate: already at the venue ({exc})")))
            except BrokerError as exc2:
                placed.append(o.model_copy(update=dict(status="Rejected", error=f"DuplicateOrder: {exc}; {exc2}")))
        except BrokerError as exc:
            placed.append(o.model_copy(update=dict(status="Rejected", error=f"{type(exc).__name__}: {exc}")))
    return placed
