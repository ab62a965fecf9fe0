"""Snapshot the broker into the store: the only truth the Commander trusts."""

from __future__ import annotations

from datetime import datetime, timezone

from brokers.base import Broker
from bus import paths
from bus.ids import new_id
from bus.models import PortfolioSnapshot
from bus.store import Store


def snapshot_writes(snap: PortfolioSnapshot) -> list[tuple[str, dict]]:
    """The two writes of a snapshot: ``latest`` and its immutable copy under its id."""
    doc = snap.to_store()
    return [(paths.portfolio(snap.mode), doc), (paths.portfolio(snap.mode, snap.snapshot_id), doc)]


def reconcile(store: Store, broker: Broker, as_of: datetime) -> PortfolioSnapshot:
    """Read the broker's portfolio as of ``as_of`` and write it (latest + copy, one batch).

    Raises:
        brokers.base.BrokerError: the broker could not be read; nothing is written,
            so the Commander finds no fresh snapshot and skips (fail closed).
    """
    raw = broker.portfolio(as_of)
    snap = raw.model_copy(update={"snapshot_id": new_id(as_of), "updated_at": datetime.now(timezone.utc)})
    store.write_batch(snapshot_writes(snap))
    return snap
