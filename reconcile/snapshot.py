"""Snapshot the broker into the store: the only truth the Commander trusts."""

from __future__ import annotations

from datetime import datetime, timezone

from brokers.base import Broker
from bus import paths
from bus.faults import fault_point
from bus.ids import new_id
from bus.lent import write_owned
from bus.models import PortfolioSnapshot
from bus.orders import OrderLifecycle
from bus.store import Store
from reconcile.resolve import Resolution, resolve_orders


def snapshot_writes(snap: PortfolioSnapshot) -> list[tuple[str, dict]]:
    """The two writes of a snapshot: ``latest`` and its immutable copy under its id."""
    doc = snap.to_store()
    return [(paths.portfolio(snap.mode), doc), (paths.portfolio(snap.mode, snap.snapshot_id), doc)]


def _order_times(snap: PortfolioSnapshot, known: list[OrderLifecycle]) -> PortfolioSnapshot:
    """Open orders placed by this pipeline carry the time our own record was written, not the time this
    read first saw them (a venue such as IB does not say when an order was placed), so
    ``open_order_ttl_seconds`` counts from the real placement."""
    created = {o.client_order_id: o.created_at for o in known}
    if not any(o.client_order_id in created for o in snap.open_orders):
        return snap
    orders = [o.model_copy(update={"created_at": created[o.client_order_id]}) if o.client_order_id in created else o
              for o in snap.open_orders]
    return snap.model_copy(update={"open_orders": orders})


def reconcile(store: Store, broker: Broker, as_of: datetime, resolve: bool = True) -> PortfolioSnapshot:
    """Resolve the orders that are not final, then read the broker's portfolio and write it (latest + copy).

    The snapshot's ``updated_at`` is the wall-clock time *before* the broker is read: a fill
    that lands during the read may or may not be in it, so the snapshot claims no later time.

    Raises:
        brokers.base.BrokerError: the broker could not be read; nothing is written,
            so the Commander finds no fresh snapshot and skips (fail closed).
        bus.store.StoreError: the store is unreachable.
    """
    broker.catch_up(as_of)  # a paper account fills its resting orders up to now before they are asked about
    resolution = resolve_orders(store, broker, broker.mode) if resolve else Resolution()
    taken_at = datetime.now(timezone.utc)
    fault_point("reconcile.read")
    raw = broker.portfolio(as_of)
    snap = raw.model_copy(update={"snapshot_id": new_id(as_of), "updated_at": taken_at})
    snap = _order_times(snap, resolution.seen)
    write_owned(store, snapshot_writes(snap))  # a fresh dump, handed over (bus.lent)
    return snap
