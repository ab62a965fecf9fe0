"""Reconcile: broker -> ``positions/{mode}/portfolio/latest`` plus its immutable copy."""

from reconcile.snapshot import reconcile, snapshot_writes

__all__ = ["reconcile", "snapshot_writes"]
