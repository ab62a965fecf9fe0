"""Exact replay: run the decision of a recorded execution again, without placing orders.

The execution refers to the immutable intent and snapshot documents it used
and records the configuration, books (units and capital), drawdowns, Sharpe ratios, previous close
NAV, prices and specs. :func:`replay` loads them, calls
:func:`commander.decide.decide` and compares the decision and the orders with
what was recorded, field by field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bus import paths
from bus.models import Execution, Intent, PortfolioSnapshot, StrategyConfig, TradingConfig
from bus.store import Store, read
from commander.decide import CommanderInputs, decide
from commander.record import PARTS_PER_BATCH, join_execution, part_paths
from commander.state import get_all_chunked


class ReplayError(LookupError):
    """The execution or a document it refers to is missing."""


@dataclass
class ReplayResult:
    """``differences`` lists ``path: recorded != replayed``; empty means identical."""

    execution_id: str
    replayable: bool
    differences: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def identical(self) -> bool:
        return not self.differences


def _flatten(x: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(x, dict):
        out: dict[str, Any] = {}
        for k in sorted(x):
            out.update(_flatten(x[k], f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(x, list):
        out = {f"{prefix}[#]": len(x)}
        for i, v in enumerate(x):
            out.update(_flatten(v, f"{prefix}[{i}]"))
        return out
    return {prefix: x}


def compare(recorded: Any, replayed: Any, prefix: str) -> list[str]:
    """Field-by-field differences of two JSON-like values, as ``path: a != b`` lines."""
    a, b = _flatten(recorded, prefix), _flatten(replayed, prefix)
    return [f"{k}: {a.get(k, '<absent>')!r} != {b.get(k, '<absent>')!r}" for k in sorted(set(a) | set(b))
            if a.get(k, "<absent>") != b.get(k, "<absent>")]


def _order_key(o: Any) -> dict[str, Any]:
    return {"client_order_id": o.client_order_id, "symbol": o.symbol, "action": o.action,
            "totalQuantity": o.totalQuantity}


def load_inputs(store: Store, ex: Execution) -> CommanderInputs:
    """The decision's inputs as recorded in ``ex`` and the documents it refers to.

    Raises:
        ReplayError: a referenced document is missing.
    """
    ctx = ex.context
    if not ctx.portfolio_snapshot_ref:
        raise ReplayError(f"execution {ex.execution_id} refers to no portfolio snapshot")
    snap = read(store, ctx.portfolio_snapshot_ref, PortfolioSnapshot)
    if snap is None:
        raise ReplayError(f"snapshot {ctx.portfolio_snapshot_ref} is missing")
    docs = get_all_chunked(store, list(ctx.strategy_intents_refs.values()))  # batched like the Commander's reads
    intents_by_ref = {r: Intent.model_validate(d) if d is not None else None for r, d in docs.items()}
    missing = [r for r, i in intents_by_ref.items() if i is None]
    if missing:
        raise ReplayError(f"referenced intents are missing: {', '.join(missing)}")
    strategies = {s: StrategyConfig.model_validate(c) for s, c in ctx.strategy_configs.items()}
    intents = {s: intents_by_ref.get(ctx.strategy_intents_refs[s]) if s in ctx.strategy_intents_refs else None
               for s in strategies}
    return CommanderInputs(ex.execution_id, ex.as_of, TradingConfig.model_validate(ctx.config_used), strategies,
                           intents, ctx.books_used, snap, ctx.prices, ctx.specs, drawdowns=ctx.drawdowns,
                           sharpes=ctx.sharpes, prev_close_nav=ctx.prev_close_nav, book_capital=ctx.book_capital)


def load_execution(store: Store, execution_id: str) -> Execution | None:
    """The whole ``executions/{execution_id}``, its parts joined when it was split
    (:func:`commander.record.join_execution`); None when there is none. One round trip for the
    header, then one per :data:`commander.record.PARTS_PER_BATCH` parts.

    Raises:
        ReplayError: a part the header counts is missing.
        pydantic.ValidationError: the stored record is not a valid execution.
    """
    header = store.get(paths.execution(execution_id))
    if header is None:
        return None
    wanted = part_paths(header)
    if not wanted:
        return Execution.model_validate(header)
    try:
        return Execution.model_validate(join_execution(header, get_all_chunked(store, wanted, PARTS_PER_BATCH)))
    except LookupError as exc:
        raise ReplayError(str(exc)) from exc


def replay(store: Store, execution_id: str) -> ReplayResult:
    """Decide again from the recorded inputs and compare with the recorded decision and orders.

    Raises:
        ReplayError: the execution or a referenced document is missing.
    """
    ex = load_execution(store, execution_id)
    if ex is None:
        raise ReplayError(f"no execution {execution_id}")
    if ex.status in ("skipped", "failed") and not ex.decision.diff:
        return ReplayResult(execution_id, False, note=f"execution was {ex.status} ({ex.reason}); nothing was decided")
    plan = decide(load_inputs(store, ex))
    diffs = compare(ex.decision.model_dump(mode="json"), plan.decision.model_dump(mode="json"), "decision")
    # Orders go out sells first, and none on a symbol an earlier order blocked: compare them by symbol.
    wanted = sorted((o for o in plan.orders if o.symbol not in ex.blocked), key=lambda o: o.symbol)
    diffs += compare([_order_key(o) for o in sorted(ex.orders_placed, key=lambda o: o.symbol)],
                     [_order_key(o) for o in wanted], "orders")
    return ReplayResult(execution_id, True, diffs)
