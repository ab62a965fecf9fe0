"""The audit record: assemble ``executions/{id}`` from what a run read and did (pure)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal, get_args

from bus import paths
from bus.models import Execution, ExecutionContext, ExecutionStatus, OrderRecord
from commander.decide import CommanderInputs, Plan
from commander.state import INVALID_INTENT, LoadedState

CODE_VERSION = "commander/2"

#: What started a Commander run: the values of :attr:`bus.models.Execution.trigger`.
Trigger = Literal["scheduled", "manual", "backtest", "replay"]


def as_trigger(value: str) -> Trigger:
    """``value`` as a :data:`Trigger`.

    Raises:
        ValueError: not a trigger an execution records.
    """
    for trigger in get_args(Trigger):
        if value == trigger:
            return trigger
    raise ValueError(f"unknown trigger {value!r}; expected one of {', '.join(get_args(Trigger))}")


def _summary(dry_run: bool, orders: list[OrderRecord]) -> str:
    if not orders:
        return "No orders: holdings already match the targets."
    parts = ", ".join(f"{o.action} {o.totalQuantity:g} {o.symbol}"
                      + ("" if o.status in ("Filled", "DryRun", "Submitted") else f" ({o.status})") for o in orders)
    if dry_run:
        return f"Dry run: would place {len(orders)} orders: {parts}."
    return f"Placed {len(orders)} orders: {parts}."


def build_execution(execution_id: str, as_of: datetime, trigger: str, dry_run: bool, status: ExecutionStatus,
                    st: LoadedState,
                    plan: Plan | None, orders: list[OrderRecord], inputs: CommanderInputs | None = None,
                    reason: str | None = None, notes: tuple[str, ...] = (),
                    cancelled: list[OrderRecord] | None = None, external: dict[str, float] | None = None) -> Execution:
    """Assemble the audit record (no I/O). ``inputs`` are recorded for replay."""
    snap = st.snapshot
    ctx = ExecutionContext(
        portfolio_snapshot_ref=paths.portfolio(snap.mode, snap.snapshot_id) if snap else None,
        strategy_intents_refs={s: paths.intent(s, i.intent_id) for s, i in st.intents.items()
                               if i and i.source.code_version != INVALID_INTENT},
        config_used=st.config.to_store(),
        strategy_configs={s: c.to_store() for s, c in st.strategies.items()},
        code_version=CODE_VERSION)
    if inputs:
        ctx.books_used, ctx.drawdowns, ctx.sharpes = inputs.books, inputs.drawdowns, inputs.sharpes
        ctx.prev_close_nav, ctx.prices, ctx.specs = inputs.prev_close_nav, inputs.prices, inputs.specs
    summary = _summary(dry_run, orders) if plan else (reason or "")
    if notes:
        summary = " ".join(notes) + ". " + summary
    ex = Execution(execution_id=execution_id, executed_at=datetime.now(timezone.utc), as_of=as_of,
                   trigger=as_trigger(trigger),
                   dry_run=dry_run, status=status, summary=summary, reason=reason, context=ctx,
                   orders_placed=orders, orders_cancelled=cancelled or [], external=external or {})
    if plan:
        c = plan.classification
        ex.decision = plan.decision
        ex.missing_strategies, ex.stale_strategies = c.missing, c.stale
        ex.strategy_reasons = dict(sorted(c.reasons.items()))
        ex.errored_strategies, ex.skipped_strategies = c.errored, c.skipped
        ex.unmanaged = plan.unmanaged
    return ex
