"""The Commander's shell: the only part that does I/O.

Reads (a constant number of round trips): ``config/trading``, the
``strategies`` collection, then one ``get_all`` for every enabled strategy's
latest intent and book plus the latest portfolio snapshot. Takes the lease,
asks the broker for specs and quotes, runs :func:`commander.decide.decide`,
places the orders unless dry, and writes the execution and the books in one
batch. Any failure after the lease is recorded as a ``failed`` execution.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone

from brokers.base import Broker, BrokerError
from bus import paths
from bus.ids import new_id
from bus.models import (
    Book, Execution, ExecutionContext, InstrumentSpec, Intent, OrderRecord, PortfolioSnapshot, StrategyConfig,
    TradingConfig,
)
from bus.store import Store
from commander.attribute import EXTERNAL, attribute_fills
from commander.decide import CommanderInputs, Plan, decide, symbols_involved
from commander.execute import place
from commander.gate import gate

log = logging.getLogger(__name__)
CODE_VERSION = "commander/1"
LEASE_REFUSED = "lease refused"


def lease_refused(execution: Execution) -> bool:
    """True when this execution was skipped because another Commander held the lease."""
    return execution.status == "skipped" and (execution.reason or "").startswith(LEASE_REFUSED)


@dataclass
class LoadedState:
    """What the Commander read from the store."""

    config: TradingConfig
    strategies: dict[str, StrategyConfig]
    intents: dict[str, Intent | None]
    books: dict[str, Book]
    snapshot: PortfolioSnapshot | None


def load_state(store: Store) -> LoadedState:
    """Read config, enabled strategies, their latest intents and books, and the snapshot.

    Raises:
        RuntimeError: ``config/trading`` is missing.
    """
    raw_cfg = store.get(paths.TRADING_CONFIG)
    if raw_cfg is None:
        raise RuntimeError("config/trading is missing: apply the configuration first")
    config = TradingConfig.model_validate(raw_cfg)
    strategies = {}
    for sid, data in store.list_docs("strategies"):
        cfg = StrategyConfig.model_validate(data)
        if cfg.enabled:
            strategies[sid] = cfg
    want = [paths.intent(s) for s in strategies] + [paths.book(s) for s in strategies] + [paths.book(EXTERNAL)]
    want.append(paths.portfolio(config.mode))
    docs = store.get_all(want)
    intents = {s: (Intent.model_validate(docs[paths.intent(s)]) if docs[paths.intent(s)] else None) for s in strategies}
    books = {s: Book.model_validate(docs[paths.book(s)]) for s in [*strategies, EXTERNAL] if docs[paths.book(s)]}
    snap_doc = docs[paths.portfolio(config.mode)]
    snapshot = PortfolioSnapshot.model_validate(snap_doc) if snap_doc else None
    return LoadedState(config, strategies, intents, books, snapshot)


def _summary(dry_run: bool, orders: list[OrderRecord]) -> str:
    if not orders:
        return "No orders: holdings already match the targets."
    parts = ", ".join(f"{o.action} {o.totalQuantity:g} {o.symbol}" + ("" if o.status in ("Filled", "DryRun", "Submitted")
                                                                      else f" ({o.status})") for o in orders)
    if dry_run:
        return f"Dry run: would place {len(orders)} orders: {parts}."
    return f"Placed {len(orders)} orders: {parts}."


def build_execution(execution_id: str, as_of: datetime, trigger: str, dry_run: bool, status: str, st: LoadedState,
                    plan: Plan | None, orders: list[OrderRecord], prices: dict[str, float],
                    specs: dict[str, InstrumentSpec], reason: str | None = None, notes: tuple[str, ...] = ()) -> Execution:
    """Assemble the audit record (no I/O)."""
    snap = st.snapshot
    ctx = ExecutionContext(
        portfolio_snapshot_ref=paths.portfolio(snap.mode, snap.snapshot_id) if snap else None,
        strategy_intents_refs={s: paths.intent(s, i.intent_id) for s, i in st.intents.items() if i},
        config_used=st.config.to_store(),
        strategy_configs={s: c.to_store() for s, c in st.strategies.items()},
        books_used={s: b.quantities() for s, b in st.books.items()},
        prices=prices, specs=specs, code_version=CODE_VERSION)
    summary = _summary(dry_run, orders) if plan else (reason or "")
    if notes:
        summary = " ".join(notes) + ". " + summary
    ex = Execution(execution_id=execution_id, executed_at=datetime.now(timezone.utc), as_of=as_of, trigger=trigger,
                   dry_run=dry_run, status=status, summary=summary, reason=reason, context=ctx,
                   orders_placed=orders)
    if plan:
        c = plan.classification
        ex.decision = plan.decision
        ex.missing_strategies, ex.stale_strategies = c.missing, c.stale
        ex.errored_strategies, ex.skipped_strategies = c.errored, c.skipped
        ex.unmanaged = plan.unmanaged
    return ex


def run_commander(store: Store, broker: Broker, as_of: datetime, dry_run: bool = False, trigger: str = "manual",
                  execution_id: str | None = None, lease_ttl_seconds: float = 600.0,
                  skip_reason: str | None = None) -> Execution:
    """One Commander run. Returns the execution it wrote.

    Statuses: ``skipped`` (lease held, gate closed), ``completed``,
    ``partial_success`` (some order refused), ``failed`` (an error; recorded,
    nothing further traded).

    ``skip_reason`` (e.g. reconcile failed) records a ``skipped`` execution and trades nothing.

    Raises:
        bus.store.StoreError: the store is unreachable (nothing traded on unrecorded state).
    """
    execution_id = execution_id or new_id(as_of)
    st = load_state(store)
    mode = st.config.mode
    taken, lease = store.try_lease(paths.lock(mode), execution_id, lease_ttl_seconds)
    if not taken:
        reason = f"{LEASE_REFUSED}: {paths.lock(mode)} is held by {lease.get('holder') if lease else '?'}"
        ex = build_execution(execution_id, as_of, trigger, dry_run, "skipped", st, None, [], {}, {}, reason)
        store.set(paths.execution(execution_id), ex.to_store())
        return ex
    prices: dict[str, float] = {}
    specs: dict[str, InstrumentSpec] = {}
    try:
        g = gate(st.config, st.snapshot, as_of, dry_run)
        if skip_reason or g.skip_reason:
            ex = build_execution(execution_id, as_of, trigger, g.dry_run, "skipped", st, None, [], {}, {},
                                 skip_reason or g.skip_reason, g.notes)
            store.set(paths.execution(execution_id), ex.to_store())
            return ex
        assert st.snapshot is not None
        for sym in symbols_involved(st.intents, st.books, st.snapshot):
            try:
                specs.update(broker.instrument_specs([sym]))
                prices.update(broker.quotes([sym], as_of))
            except BrokerError as exc:
                log.warning("no spec/quote for %s: %s", sym, exc)
        inputs = CommanderInputs(execution_id, as_of, st.config, st.strategies, st.intents, st.books, st.snapshot,
                                 prices, specs)
        plan = decide(inputs)
        orders = plan.orders if g.dry_run else place(broker, plan.orders, as_of)
        status = "partial_success" if any(o.status == "Rejected" for o in orders) else "completed"
        ex = build_execution(execution_id, as_of, trigger, g.dry_run, status, st, plan, orders, prices, specs,
                             notes=g.notes)
        writes = [(paths.execution(execution_id), ex.to_store())]
        if not g.dry_run:
            fills = {o.symbol: ((o.filled_quantity if o.action == "BUY" else -o.filled_quantity), o.fill_price or 0.0)
                     for o in orders if o.filled_quantity}
            after = {h.symbol: h.quantity for h in st.snapshot.holdings}
            for s, (q, _) in fills.items():
                after[s] = after.get(s, 0.0) + q
            books, _ = attribute_fills(st.books, plan.desired, fills, after, prices, as_of, execution_id)
            writes += [(paths.book(s), b.to_store()) for s, b in books.items()]
        store.write_batch(writes)
        return ex
    except Exception as exc:  # noqa: BLE001 - recorded as a failed execution, then surfaced by status
        log.exception("commander failed")
        ex = build_execution(execution_id, as_of, trigger, dry_run, "failed", st, None, [], prices, specs,
                             f"{type(exc).__name__}: {exc}")
        store.set(paths.execution(execution_id), ex.to_store())
        return ex
    finally:
        store.release_lease(paths.lock(mode), execution_id)
