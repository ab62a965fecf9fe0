"""Step 1, the gate: kill switch and portfolio freshness (the lease is taken by the shell)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bus.models import PortfolioSnapshot, TradingConfig


@dataclass(frozen=True)
class GateResult:
    """``dry_run`` after the kill switch; ``skip_reason`` set when nothing may trade."""

    dry_run: bool
    skip_reason: str | None
    notes: tuple[str, ...] = ()


def gate(config: TradingConfig, snapshot: PortfolioSnapshot | None, as_of: datetime, dry_run: bool,
         last_trade_at: datetime | None = None) -> GateResult:
    """Decide whether this run may trade.

    * ``tradingEnabled`` false turns the run into a dry run, and says so.
    * No snapshot, or one whose ``as_of`` is more than ``portfolio_max_age_seconds``
      before (or any time after) the run's as-of, skips the run: fail closed.
    * A net liquidation at or below zero skips the run.
    * A snapshot taken (wall clock) before ``last_trade_at``, the last execution
      that filled orders, does not show those fills: trading on it would place
      the same orders again, so the run skips.
    """
    notes = []
    if not config.tradingEnabled and not dry_run:
        dry_run = True
        notes.append("tradingEnabled is false (kill switch): run turned into a dry run")
    if snapshot is None:
        return GateResult(dry_run, "no portfolio snapshot: reconcile has not run or failed", tuple(notes))
    age = as_of - snapshot.as_of
    if age > timedelta(seconds=config.portfolio_max_age_seconds) or age < timedelta(0):
        return GateResult(dry_run, (
            f"portfolio snapshot {snapshot.snapshot_id} is as of {snapshot.as_of.isoformat()}, "
            f"run as of {as_of.isoformat()}: outside the allowed {config.portfolio_max_age_seconds} s"), tuple(notes))
    if last_trade_at is not None and snapshot.updated_at < last_trade_at:
        return GateResult(dry_run, (
            f"portfolio snapshot {snapshot.snapshot_id} was taken at {snapshot.updated_at.isoformat()}, before the "
            f"fills of the last execution at {last_trade_at.isoformat()}: reconcile again"), tuple(notes))
    if snapshot.net_liquidation <= 0:
        return GateResult(dry_run,
                          f"net liquidation {snapshot.net_liquidation:.2f} is not positive: nothing to allocate",
                          tuple(notes))
    return GateResult(dry_run, None, tuple(notes))
