"""The pipeline: strategies in parallel, then reconcile, then the Commander.

The dry-run flag flows down to the Commander, which then places nothing and
records the orders it would have placed. Strategies and reconcile write their
documents either way: an intent or a snapshot changes no holding.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from brokers.base import Broker, BrokerError
from bus.models import Execution, Intent, PortfolioSnapshot, StrategyConfig
from bus.store import Store
from commander.run import run_commander
from market.history import MarketSource
from reconcile import reconcile
from strategies.runner import run_strategies

log = logging.getLogger(__name__)


@dataclass
class PipelineResult:
    """What one run produced: intents by strategy id, the snapshot, the execution."""

    as_of: datetime
    intents: dict[str, Intent] = field(default_factory=dict)
    snapshot: PortfolioSnapshot | None = None
    reconcile_error: str | None = None
    execution: Execution | None = None


def run_pipeline(store: Store, provider: MarketSource, broker: Broker, strategies: list[StrategyConfig],
                 as_of: datetime, dry_run: bool = False, run_reconcile: bool = True,
                 trigger: str = "manual", execution_id: str | None = None) -> PipelineResult:
    """Run the three steps as of ``as_of``.

    Args:
        strategies: the strategies whose step runs now (enabled ones); the
            Commander still considers every enabled strategy in the store.
        execution_id: the Commander's execution id (and lease holder); default a new one.

    A reconcile failure is recorded and the Commander then skips (fail closed):
    it never trades on a snapshot older than this run.
    """
    res = PipelineResult(as_of=as_of)
    res.intents = run_strategies(store, [s for s in strategies if s.enabled], provider, as_of)
    if run_reconcile:
        try:
            res.snapshot = reconcile(store, broker, as_of)
        except BrokerError as exc:
            res.reconcile_error = f"{type(exc).__name__}: {exc}"
            log.error("reconcile failed: %s", res.reconcile_error)
    skip_reason = f"reconcile failed: {res.reconcile_error}" if res.reconcile_error else None
    res.execution = run_commander(store, broker, as_of, dry_run=dry_run, trigger=trigger, execution_id=execution_id,
                                  skip_reason=skip_reason)
    return res
