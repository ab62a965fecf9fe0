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
    AccountState, Book, Execution, ExecutionContext, InstrumentSpec, Intent, OrderRecord, PortfolioSnapshot,
    StrategyConfig, TradingConfig,
)
from bus.store import Store
from commander.attribute import EXTERNAL, Fill, update_books
from commander.decide import CommanderInputs, Plan, decide, symbols_involved
from commander.execute import place
from commander.gate import gate
from commander.metrics import curve_sharpe

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
    account: AccountState | None
    previous: Execution | None = None


def load_state(store: Store, execution_id: str | None = None) -> LoadedState:
    """Read config, enabled strategies, then in one ``get_all`` their latest intents and books,
    the ``external`` book, the latest snapshot and the account state.

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
    want = [paths.intent(s) for s in strategies] + [paths.book(s) for s in [*strategies, EXTERNAL]]
    want += [paths.portfolio(config.mode), paths.account_state(config.mode)]
    if execution_id:
        want.append(paths.execution(execution_id))
    docs = store.get_all(want)
    intents = {s: (Intent.model_validate(docs[paths.intent(s)]) if docs[paths.intent(s)] else None) for s in strategies}
    books = {s: Book.model_validate(docs[paths.book(s)]) for s in [*strategies, EXTERNAL] if docs[paths.book(s)]}
    snap_doc = docs[paths.portfolio(config.mode)]
    acct_doc = docs[paths.account_state(config.mode)]
    done = docs.get(paths.execution(execution_id)) if execution_id else None
    return LoadedState(config, strategies, intents, books,
                       PortfolioSnapshot.model_validate(snap_doc) if snap_doc else None,
                       AccountState.model_validate(acct_doc) if acct_doc else None,
                       Execution.model_validate(done) if done else None)


def prev_close_nav(account: AccountState | None, as_of: datetime) -> float | None:
    """The NAV the daily-loss halt compares against: the last NAV of an earlier day."""
    if account is None:
        return None
    today = as_of.date().isoformat()
    return account.last_nav if account.last_date < today else account.prev_close_nav


def next_account_state(account: AccountState | None, mode: str, as_of: datetime, nav: float) -> AccountState:
    """Roll the account state forward to this run's NAV."""
    today = as_of.date().isoformat()
    if account is None:
        return AccountState(mode=mode, updated_at=as_of, last_date=today, last_nav=nav)
    if account.last_date < today:
        return AccountState(mode=mode, updated_at=as_of, last_date=today, last_nav=nav,
                            prev_close_date=account.last_date, prev_close_nav=account.last_nav,
                            last_trade_at=account.last_trade_at, funding_seen=account.funding_seen)
    return account.model_copy(update={"updated_at": as_of, "last_nav": nav})


def inputs_from_state(st: LoadedState, execution_id: str, as_of: datetime, prices: dict[str, float],
                      specs: dict[str, InstrumentSpec]) -> CommanderInputs:
    """The pure decision's inputs, derived from what was read (and recorded in the execution)."""
    p = st.config.performance
    books = {s: b for s, b in st.books.items() if s in st.strategies}
    sharpes = {s: (curve_sharpe(books[s].equity_curve, p.lookback_days, p.min_history_days, p.periods_per_year)
                   if s in books else None) for s in st.strategies} \
        if st.config.allocation_method == "performance_based" else {}
    assert st.snapshot is not None
    return CommanderInputs(execution_id, as_of, st.config, st.strategies, st.intents,
                           {s: b.quantities() for s, b in books.items()}, st.snapshot, prices, specs,
                           drawdowns={s: b.drawdown for s, b in books.items()}, sharpes=sharpes,
                           prev_close_nav=prev_close_nav(st.account, as_of))


def _summary(dry_run: bool, orders: list[OrderRecord]) -> str:
    if not orders:
        return "No orders: holdings already match the targets."
    parts = ", ".join(f"{o.action} {o.totalQuantity:g} {o.symbol}" + ("" if o.status in ("Filled", "DryRun", "Submitted")
                                                                      else f" ({o.status})") for o in orders)
    if dry_run:
        return f"Dry run: would place {len(orders)} orders: {parts}."
    return f"Placed {len(orders)} orders: {parts}."


def build_execution(execution_id: str, as_of: datetime, trigger: str, dry_run: bool, status: str, st: LoadedState,
                    plan: Plan | None, orders: list[OrderRecord], inputs: CommanderInputs | None = None,
                    reason: str | None = None, notes: tuple[str, ...] = (),
                    cancelled: list[OrderRecord] | None = None, external: dict[str, float] | None = None) -> Execution:
    """Assemble the audit record (no I/O). ``inputs`` are recorded for replay."""
    snap = st.snapshot
    ctx = ExecutionContext(
        portfolio_snapshot_ref=paths.portfolio(snap.mode, snap.snapshot_id) if snap else None,
        strategy_intents_refs={s: paths.intent(s, i.intent_id) for s, i in st.intents.items() if i},
        config_used=st.config.to_store(),
        strategy_configs={s: c.to_store() for s, c in st.strategies.items()},
        code_version=CODE_VERSION)
    if inputs:
        ctx.books_used, ctx.drawdowns, ctx.sharpes = inputs.books, inputs.drawdowns, inputs.sharpes
        ctx.prev_close_nav, ctx.prices, ctx.specs = inputs.prev_close_nav, inputs.prices, inputs.specs
    summary = _summary(dry_run, orders) if plan else (reason or "")
    if notes:
        summary = " ".join(notes) + ". " + summary
    ex = Execution(execution_id=execution_id, executed_at=datetime.now(timezone.utc), as_of=as_of, trigger=trigger,
                   dry_run=dry_run, status=status, summary=summary, reason=reason, context=ctx,
                   orders_placed=orders, orders_cancelled=cancelled or [], external=external or {})
    if plan:
        c = plan.classification
        ex.decision = plan.decision
        ex.missing_strategies, ex.stale_strategies = c.missing, c.stale
        ex.errored_strategies, ex.skipped_strategies = c.errored, c.skipped
        ex.unmanaged = plan.unmanaged
    return ex


def market_inputs(broker: Broker, symbols: list[str], as_of: datetime
                  ) -> tuple[dict[str, InstrumentSpec], dict[str, float]]:
    """Specs and quotes of ``symbols``: one call each for all of them; only when the venue
    refuses the batch (an unknown symbol, say) symbol by symbol, so one bad symbol costs
    only the strategies that want it (they cannot be sized and keep their books)."""
    try:
        return broker.instrument_specs(symbols), broker.quotes(symbols, as_of)
    except BrokerError as exc:
        log.warning("specs/quotes for %d symbols refused (%s): asking symbol by symbol", len(symbols), exc)
    specs: dict[str, InstrumentSpec] = {}
    prices: dict[str, float] = {}
    for sym in symbols:
        try:
            specs.update(broker.instrument_specs([sym]))
            prices.update(broker.quotes([sym], as_of))
        except BrokerError as exc:
            log.warning("no spec/quote for %s: %s", sym, exc)
    return specs, prices


def cancel_expired(broker: Broker, plan: Plan) -> list[OrderRecord]:
    """Cancel the plan's expired open orders; each outcome is recorded."""
    out = []
    for o in plan.cancels:
        rec = OrderRecord(orderId=o.orderId, client_order_id=o.client_order_id, symbol=o.symbol, secType=o.secType,
                          action=o.action, totalQuantity=o.totalQuantity, orderType=o.orderType, lmtPrice=o.lmtPrice,
                          status="Cancelled")
        try:
            broker.cancel_order(o.client_order_id)
        except BrokerError as exc:
            rec = rec.model_copy(update={"status": "CancelFailed", "error": f"{type(exc).__name__}: {exc}"})
        out.append(rec)
    return out


def run_commander(store: Store, broker: Broker, as_of: datetime, dry_run: bool = False, trigger: str = "manual",
                  execution_id: str | None = None, skip_reason: str | None = None) -> Execution:
    """One Commander run. Returns the execution it wrote.

    Statuses: ``skipped`` (lease held, gate closed, ``skip_reason`` given),
    ``completed``, ``partial_success`` (some order or cancel refused),
    ``failed`` (an error; recorded, nothing further traded).

    Raises:
        bus.store.StoreError: the store is unreachable (nothing traded on unrecorded state).
    """
    execution_id = execution_id or new_id(as_of)
    st = load_state(store, execution_id)
    if st.previous is not None and st.previous.status != "skipped":
        log.warning("execution %s already ran (%s): returning its record, nothing traded again",
                    execution_id, st.previous.status)
        return st.previous
    mode = st.config.mode
    taken, lease = store.try_lease(paths.lock(mode), execution_id, st.config.lease_ttl_seconds)
    if not taken:
        reason = f"{LEASE_REFUSED}: {paths.lock(mode)} is held by {lease.get('holder') if lease else '?'}"
        ex = build_execution(execution_id, as_of, trigger, dry_run, "skipped", st, None, [], reason=reason)
        store.set(paths.execution(execution_id), ex.to_store())
        return ex
    inputs: CommanderInputs | None = None
    try:
        g = gate(st.config, st.snapshot, as_of, dry_run, st.account.last_trade_at if st.account else None)
        if skip_reason or g.skip_reason:
            ex = build_execution(execution_id, as_of, trigger, g.dry_run, "skipped", st, None, [],
                                 reason=skip_reason or g.skip_reason, notes=g.notes)
            store.set(paths.execution(execution_id), ex.to_store())
            return ex
        assert st.snapshot is not None
        book_units = {s: b.quantities() for s, b in st.books.items()}
        specs, prices = market_inputs(broker, symbols_involved(st.intents, book_units, st.snapshot), as_of)
        inputs = inputs_from_state(st, execution_id, as_of, prices, specs)
        plan = decide(inputs)
        if g.dry_run:
            orders, cancelled = plan.orders, cancel_records(plan)
        else:
            cancelled = cancel_expired(broker, plan)
            orders = place(broker, plan.orders, as_of)
        refused = any(o.status in ("Rejected", "CancelFailed") for o in orders + cancelled)
        fills = {o.symbol: Fill((o.filled_quantity if o.action == "BUY" else -o.filled_quantity),
                                o.fill_price or 0.0, o.commission) for o in orders if o.filled_quantity}
        after = {h.symbol: h.quantity for h in st.snapshot.holdings}
        for s, f in fills.items():
            after[s] = after.get(s, 0.0) + f.quantity
        seen = st.account.funding_seen if st.account else {}
        funding_now = {h.symbol: h.funding for h in st.snapshot.holdings if h.funding}
        funding = {s: v - seen.get(s, 0.0) for s, v in funding_now.items() if abs(v - seen.get(s, 0.0)) > 1e-12}
        upd = update_books(st.books, plan.desired, fills, after, prices, specs, plan.decision.allocations, as_of,
                           execution_id, funding)
        ex = build_execution(execution_id, as_of, trigger, g.dry_run, "partial_success" if refused else "completed",
                             st, plan, orders, inputs, notes=g.notes, cancelled=cancelled, external=upd.external)
        writes = [(paths.execution(execution_id), ex.to_store())]
        if not g.dry_run:
            writes += [(paths.book(s), b.to_store()) for s, b in upd.books.items()]
            writes += [(paths.equity_point(p.strategy_id, p.date), p.to_store()) for p in upd.equity_points]
            writes += [(paths.trade(t.strategy_id, t.trade_id), t.to_store()) for t in upd.trades]
            acct = next_account_state(st.account, mode, as_of, st.snapshot.net_liquidation)
            if fills:
                acct = acct.model_copy(update={"last_trade_at": datetime.now(timezone.utc)})
            acct = acct.model_copy(update={"funding_seen": {**seen, **funding_now}})
            writes.append((paths.account_state(mode), acct.to_store()))
        for i in range(0, len(writes), 400):  # Firestore allows 500 writes per batch
            store.write_batch(writes[i:i + 400])
        return ex
    except Exception as exc:  # noqa: BLE001 - recorded as a failed execution, then surfaced by status
        log.exception("commander failed")
        ex = build_execution(execution_id, as_of, trigger, dry_run, "failed", st, None, [], inputs,
                             reason=f"{type(exc).__name__}: {exc}")
        store.set(paths.execution(execution_id), ex.to_store())
        return ex
    finally:
        store.release_lease(paths.lock(mode), execution_id)


def cancel_records(plan: Plan) -> list[OrderRecord]:
    """The cancels a dry run would make, status ``DryRun``."""
    return [OrderRecord(orderId=o.orderId, client_order_id=o.client_order_id, symbol=o.symbol, secType=o.secType,
                        action=o.action, totalQuantity=o.totalQuantity, orderType=o.orderType, lmtPrice=o.lmtPrice,
                        status="DryRun") for o in plan.cancels]
