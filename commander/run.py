"""The Commander's shell: the only part that does I/O.

Reads (a constant number of round trips): ``config/trading``, the ``strategies``
collection, one ``get_all`` for every enabled strategy's latest intent and book plus
the latest portfolio snapshot and account state, and one query for the account's open
``orders/*``. Takes the lease, asks the broker for specs and quotes, runs
:func:`commander.decide.decide`, and unless dry:

1. writes ahead, in one batch: the execution as ``placing``, one ``planned``
   ``orders/{client_order_id}`` per order, and the account's ``orders_planned_at``;
2. places the orders sells first, writing each order's record as the venue answers
   (:mod:`commander.execute`), then the protective exits (stop-loss / take-profit legs that rest
   at the venue: placed, kept, amended or cancelled, written ahead the same way; :mod:`commander.exits`);
3. audits, in one batch when it fits (else in batches, the execution last): the books
   with this run's fills and any late fills of earlier orders, the orders marked
   booked, the execution's final status and the account state.

A crash at any point leaves a record: the next run's reconcile resolves the orders
(:mod:`reconcile.resolve`), this shell books what they filled, and no new order goes
out on a symbol while an earlier order on it is ``planned`` or ``unknown``. Any
failure after the lease is recorded as a ``failed`` execution.

:func:`run_commander` reads as its steps: load and the idempotency check, the lease,
then under it :func:`_trade`: gate -> :func:`_plan` -> :func:`_execute` -> :func:`_audit`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone

from brokers.base import Broker, BrokerError
from bus import paths
from bus.constants import NOISE_EPS, QTY_EPS
from bus.faults import fault_point
from bus.ids import new_id
from bus.lent import read_all, write_owned, write_owned_batches
from bus.models import (
    Execution,
    ExecutionContext,
    ExecutionStatus,
    InstrumentSpec,
    LateFillRecord,
    OrderRecord,
    PortfolioSnapshot,
    ProtectiveExitRecord,
    StateChange,
)
from bus.orders import NEVER_SENT_STATUS, OrderLifecycle
from bus.store import FIRESTORE_BATCH_LIMIT, Store
from commander.attribute import Booking, BookUpdate, Fill, lot_of, split_fill, update_books
from commander.decide import CommanderInputs, Plan, decide, symbols_involved
from commander.execute import place
from commander.exits import execute_exits, exit_inputs, unsettled_symbols
from commander.gate import GateResult, gate
from commander.lifecycle import retired_flat
from commander.orders import LateFill, blocked_symbols, mark_booked, planned_orders, sells_first, unbooked_fills
from commander.protect import exits_summary, plan_exits
from commander.record import PARTS_PER_BATCH, ExecutionDumps, build_execution, execution_context, split_execution
from commander.state import LoadedState, inputs_from_state, late_cash, load_state, next_account_state

log = logging.getLogger(__name__)
LEASE_REFUSED = "lease refused"

__all__ = ["LEASE_REFUSED", "lease_refused", "run_commander", "market_inputs", "cancel_expired", "cancel_records"]


def lease_refused(execution: Execution) -> bool:
    """True when this execution was skipped because another Commander held the lease."""
    return execution.status == "skipped" and (execution.reason or "").startswith(LEASE_REFUSED)


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


@dataclass
class CommanderRun:
    """One Commander run: what it was asked, what it read, and what its steps produced so far.

    The steps below fill it in order; :attr:`inputs` is recorded in a ``failed``
    execution when a later step raises.
    """

    store: Store
    broker: Broker
    as_of: datetime
    trigger: str
    dry_run: bool
    execution_id: str
    st: LoadedState
    inputs: CommanderInputs | None = None
    late: list[LateFill] = field(default_factory=list)
    blocked: dict[str, str] = field(default_factory=dict)
    placed: list[OrderRecord] = field(default_factory=list)
    symbols: list[str] = field(default_factory=list)
    dumps: ExecutionDumps = field(default_factory=ExecutionDumps)
    _context: tuple[CommanderInputs | None, ExecutionContext] | None = None

    def context(self) -> ExecutionContext:
        """The execution context of :attr:`st` and :attr:`inputs`, built once while :attr:`inputs` is the same
        (the write-ahead and the audit record the same one)."""
        if self._context is None or self._context[0] is not self.inputs:
            self._context = (self.inputs, execution_context(self.st, self.inputs))
        return self._context[1]

    @property
    def lock(self) -> str:
        """Path of the lease on this run's account."""
        return paths.lock(self.st.config.mode)


@dataclass
class Outcome:
    """What the execute step did: the orders placed (or, dry, planned), their lifecycle records, the cancels."""

    orders: list[OrderRecord]
    cancelled: list[OrderRecord]
    lifecycle: list[OrderLifecycle] = field(default_factory=list)
    exits: list[ProtectiveExitRecord] = field(default_factory=list)

    @property
    def refused(self) -> bool:
        """Some order, cancel or protective exit was refused by the venue, or its answer lost (the run is a
        ``partial_success``); an exit the plan itself refused (wrong trigger side, no venue support) is not."""
        return any(o.status in ("Rejected", "CancelFailed", "Unknown") for o in self.orders + self.cancelled) or \
            any(x.status in ("Rejected", "CancelFailed", "Unknown") for x in self.exits)


def run_commander(store: Store, broker: Broker, as_of: datetime, dry_run: bool = False, trigger: str = "manual",
                  execution_id: str | None = None, skip_reason: str | None = None) -> Execution:
    """One Commander run. Returns the execution it wrote.

    Steps: load the state; return the earlier record when this execution id already
    ran to an end (idempotency; a ``placing`` one, left by a crash, runs again with
    its orders resolved first); take the lease; then, holding it, :func:`_trade`.

    Statuses: ``skipped`` (lease held, gate closed, ``skip_reason`` given),
    ``completed``, ``partial_success`` (some order or cancel refused, or its answer
    lost), ``failed`` (an error; recorded, nothing further traded).

    Raises:
        bus.store.StoreError: the store is unreachable (nothing traded on unrecorded state).
    """
    execution_id = execution_id or new_id(as_of)
    st = load_state(store, execution_id)
    if st.previous is not None and st.previous.status not in ("skipped", "placing"):
        log.warning("execution %s already ran (%s): returning its record, nothing traded again",
                    execution_id, st.previous.status)
        return st.previous
    run = CommanderRun(store, broker, as_of, trigger, dry_run, execution_id, st)
    taken, lease = store.try_lease(run.lock, execution_id, st.config.lease_ttl_seconds)
    if not taken:
        reason = f"{LEASE_REFUSED}: {run.lock} is held by {lease.get('holder') if lease else '?'}"
        return _record(run, build_execution(execution_id, as_of, trigger, dry_run, "skipped", st, None, [],
                                            reason=reason))
    try:
        return _trade(run, skip_reason)
    except Exception as exc:  # recorded as a failed execution, then surfaced by status
        log.exception("commander failed")
        # The orders already sent stay in the record (and in orders/*, where the next run resolves and books them).
        return _record(run, build_execution(execution_id, as_of, trigger, dry_run, "failed", st, None, run.placed,
                                            run.inputs, reason=f"{type(exc).__name__}: {exc}"))
    finally:
        store.release_lease(run.lock, execution_id)


def _execution_write(run: CommanderRun, ex: Execution) -> tuple[str, dict]:
    """The write of ``executions/{id}``. A record too large for one document first has its detail
    written under ``executions/{id}/parts`` (batches of :data:`commander.record.PARTS_PER_BATCH`),
    and the write returned is its header (:func:`commander.record.split_execution`)."""
    doc, size = run.dumps.dump(ex)
    header, parts = split_execution(doc, size=size)
    if parts:
        write_owned_batches(run.store, parts, size=PARTS_PER_BATCH)
    return paths.execution(run.execution_id), header


def _record(run: CommanderRun, ex: Execution) -> Execution:
    """Write a run's execution alone (a skipped or failed run), and return it."""
    run.store.set(*_execution_write(run, ex))
    return ex


def _trade(run: CommanderRun, skip_reason: str | None) -> Execution:
    """Under the lease: gate, then plan, execute and audit. Raises on any failure (recorded by the caller)."""
    g = _gate(run)
    if skip_reason or g.skip_reason:
        return _record(run, build_execution(run.execution_id, run.as_of, run.trigger, g.dry_run, "skipped", run.st,
                                            None, [], reason=skip_reason or g.skip_reason, notes=g.notes))
    run.late = unbooked_fills(run.st.open_orders)
    plan = _plan(run)
    if run.inputs is not None and run.symbols and not run.inputs.prices:
        reason = (f"no price for any of the {len(run.symbols)} symbols involved ({', '.join(run.symbols[:10])}"
                  f"{', …' if len(run.symbols) > 10 else ''}): nothing can be sized or checked, nothing traded")
        return _record(run, build_execution(run.execution_id, run.as_of, run.trigger, g.dry_run, "skipped", run.st,
                                            None, [], run.inputs, reason=reason, notes=g.notes))
    run.blocked = _block(run, plan)
    outcome = _execute(run, plan, g.dry_run)
    _protect(run, plan, outcome, g.dry_run)
    return _audit(run, plan, outcome, g, run.blocked)


def _gate(run: CommanderRun) -> GateResult:
    """Step 1: kill switch, snapshot freshness, snapshot after the last fills and the last write-ahead
    (see :func:`commander.gate.gate`)."""
    st = run.st
    return gate(st.config, st.snapshot, run.as_of, run.dry_run, st.must_snapshot_after)


def _late_units(late: list[LateFill], specs: dict[str, InstrumentSpec]) -> dict[str, dict[str, float]]:
    """Strategy id -> symbol -> signed units the late fills will book."""
    out: dict[str, dict[str, float]] = {}
    for f in late:
        for sid, q in split_fill(f.quantity, f.order.shares, lot_of(specs, f.order.symbol)).items():
            per = out.setdefault(sid, {})
            per[f.order.symbol] = per.get(f.order.symbol, 0.0) + q
    return out


def _plan(run: CommanderRun) -> Plan:
    """Ask the broker for the specs and quotes of every symbol involved, record the inputs, and decide (pure).

    Books are seen as they will be once this run's late fills are booked."""
    st = run.st
    assert st.snapshot is not None
    book_units = {s: b.quantities() for s, b in st.books.items()}
    run.symbols = symbols_involved(st.intents, book_units, st.snapshot)
    specs, prices = market_inputs(run.broker, run.symbols, run.as_of)
    run.inputs = inputs = inputs_from_state(st, run.execution_id, run.as_of, prices, specs,
                                            _late_units(run.late, specs), late_cash(run.late, specs))
    return decide(inputs)


def _block(run: CommanderRun, plan: Plan) -> dict[str, str]:
    """Drop the plan's orders on symbols an earlier order still blocks; symbol -> why."""
    blocking = blocked_symbols(run.st.open_orders)
    blocked = {o.symbol: (f"order {blocking[o.symbol]} of an earlier execution is not answered for by the venue "
                          f"(planned or unknown): no new order until it is resolved")
               for o in plan.orders if o.symbol in blocking}
    if blocked:
        plan.orders = [o for o in plan.orders if o.symbol not in blocked]
        log.warning("orders held back on %s: earlier orders not resolved", ", ".join(sorted(blocked)))
    return blocked


def _wanted(run: CommanderRun, plan: Plan) -> dict[str, dict[str, float]]:
    """Symbol -> strategy id -> signed units it wants to change (desired minus book, late fills included)."""
    units = run.inputs.books if run.inputs is not None else {}
    out: dict[str, dict[str, float]] = {}
    for sid, want in plan.desired.items():
        mine = units.get(sid, {})
        for sym in set(want) | set(mine):
            d = want.get(sym, 0.0) - mine.get(sym, 0.0)
            if abs(d) > NOISE_EPS:
                out.setdefault(sym, {})[sid] = d
    return out


def _already_written(run: CommanderRun, orders: list[OrderRecord]) -> dict[str, str]:
    """Symbol -> why, for orders whose client order id an earlier attempt of this execution already wrote
    ahead and that may have reached the venue: never sent again (their fills come through their records).
    An id the venue was asked about and never saw (closed as never sent) may be used again."""
    if not orders:
        return {}
    existing = read_all(run.store, [paths.order(o.client_order_id) for o in orders])  # only looked at (bus.lent)
    out = {}
    for o in orders:
        doc = existing.get(paths.order(o.client_order_id))
        if doc is None or (doc.get("status") == "cancelled" and doc.get("venue_status") == NEVER_SENT_STATUS):
            continue
        out[o.symbol] = (f"order {o.client_order_id} was already written ahead by an earlier attempt of this "
                         f"execution ({doc.get('status')}): not sent again")
    return out


def _execute(run: CommanderRun, plan: Plan, dry_run: bool) -> Outcome:
    """Dry: the plan's orders and cancels as records. Otherwise cancel the expired orders, write the orders
    ahead, then place them sells first, recording each answer."""
    if dry_run:
        return Outcome(sells_first(plan.orders), cancel_records(plan))
    cancelled = cancel_expired(run.broker, plan)
    again = _already_written(run, plan.orders)
    if again:
        run.blocked.update(again)
        plan.orders = [o for o in plan.orders if o.symbol not in again]
    orders = sells_first(plan.orders)
    if not orders:
        return Outcome([], cancelled)
    now = datetime.now(timezone.utc)
    docs = {d.client_order_id: d for d in planned_orders(run.execution_id, run.st.config.mode, orders,
                                                          _wanted(run, plan), now)}
    _write_ahead(run, plan, orders, list(docs.values()), now)
    fault_point("commander.before_orders")
    placed, lifecycle = place(run.broker, orders, docs, run.as_of,
                              record=lambda d: run.store.set(paths.order(d.client_order_id), d.to_store()))
    run.placed = placed
    fault_point("commander.before_audit")
    return Outcome(placed, cancelled, lifecycle)


def _protect(run: CommanderRun, plan: Plan, outcome: Outcome, dry_run: bool) -> None:
    """Step 8b, after the main orders: plan the protective exits (:mod:`commander.protect`) and, unless dry,
    cancel, write ahead and place them (:mod:`commander.exits`); the records go to ``outcome``."""
    st, inputs = run.st, run.inputs
    assert st.snapshot is not None and inputs is not None
    inp = exit_inputs(run.execution_id, run.broker, plan.classification.fresh, plan.desired, inputs.books,
                      st.snapshot, inputs.prices, inputs.specs, plan.instruments, st.open_orders,
                      unsettled_symbols(run.blocked, outcome.orders, run.broker.exits_need_fill))
    xplan = plan_exits(inp)
    if not xplan.records:
        return

    def ahead(orders: list[OrderRecord], docs: list[OrderLifecycle]) -> None:
        _write_ahead(run, plan, run.placed + orders, docs, datetime.now(timezone.utc))

    outcome.exits, changed = execute_exits(
        run.broker, xplan, st.open_orders, run.as_of, run.execution_id, st.config.mode, dry_run, ahead,
        record=lambda d: run.store.set(paths.order(d.client_order_id), d.to_store()))
    outcome.lifecycle += changed


def _write_ahead(run: CommanderRun, plan: Plan, orders: list[OrderRecord], docs: list[OrderLifecycle],
                 now: datetime) -> None:
    """One batch: the execution as ``placing`` (with its decision), the ``planned`` orders, and the
    account's ``orders_planned_at``: from here on a crash leaves a record of every order."""
    st = run.st
    assert st.snapshot is not None
    ex = build_execution(run.execution_id, run.as_of, run.trigger, False, "placing", st, plan, orders,
                         run.inputs, context=run.context())
    ex.summary = (f"Placing {len(orders)} orders (written ahead; a run that ends here left them to be resolved): "
                  + ", ".join(f"{o.action} {o.totalQuantity:g} {o.symbol}" for o in orders) + ".")
    acct = next_account_state(st.account, st.config.mode, run.as_of, st.snapshot.net_liquidation)
    acct = acct.model_copy(update={"orders_planned_at": now})
    writes = [_execution_write(run, ex)]
    writes += [(paths.order(d.client_order_id), d.to_store()) for d in docs]
    writes.append((paths.account_state(st.config.mode), acct.to_store()))
    write_owned_batches(run.store, writes)  # fresh dumps, handed over (bus.lent)


def _bookings(fills: list[LateFill]) -> list[Booking]:
    """Each fill as a booking by the shares its order recorded when it was planned."""
    return [(f.order.symbol, Fill(f.quantity, f.price, f.commission), f.order.shares) for f in fills]


def _late_records(fills: list[LateFill], specs: dict[str, InstrumentSpec]) -> list[LateFillRecord]:
    return [LateFillRecord(client_order_id=f.order.client_order_id, execution_id=f.order.execution_id,
                           symbol=f.order.symbol, quantity=f.quantity, price=f.price, commission=f.commission,
                           booked=split_fill(f.quantity, f.order.shares, lot_of(specs, f.order.symbol)))
            for f in fills]


def _audit(run: CommanderRun, plan: Plan, outcome: Outcome, g: GateResult, blocked: dict[str, str]) -> Execution:
    """Book this run's priced fills and the late fills of earlier orders (by each order's recorded shares) and
    the funding, build the execution, and write it with the books, the orders marked booked, the equity points,
    trades and account state (dry: the execution alone)."""
    st, as_of = run.st, run.as_of
    assert st.snapshot is not None and run.inputs is not None
    own = unbooked_fills(outcome.lifecycle)
    late = [] if g.dry_run else run.late
    fills = late + own
    seen = st.account.funding_seen if st.account else {}
    funding = _funding_since(st.snapshot, seen)
    own_units: dict[str, float] = {}
    for f in own:
        own_units[f.order.symbol] = own_units.get(f.order.symbol, 0.0) + f.quantity
    upd = update_books(st.books, plan.desired, {}, _holdings_after(st.snapshot, own_units),
                       run.inputs.prices, run.inputs.specs,
                       plan.decision.allocations, as_of, run.execution_id, funding, bookings=_bookings(fills),
                       moves=plan.decision.capital_moves, isolation=plan.decision.isolation,
                       late_units=_late_units(late, run.inputs.specs))
    status: ExecutionStatus = "partial_success" if outcome.refused else "completed"
    notes = g.notes + ((f"no order on {', '.join(sorted(blocked))}: an earlier order is not resolved",)
                       if blocked else ())
    ex = build_execution(run.execution_id, as_of, run.trigger, g.dry_run, status, st, plan, outcome.orders,
                         run.inputs, notes=notes, cancelled=outcome.cancelled,
                         external=upd.external, context=run.context())
    ex.blocked, ex.late_fills = blocked, _late_records(late, run.inputs.specs)
    ex.fill_model = run.broker.fill_model
    ex.protective_exits = outcome.exits
    ex.dust = upd.dust
    ex.summary += exits_summary(outcome.exits)
    if g.dry_run:
        write_owned_batches(run.store, [_execution_write(run, ex)])
        return ex
    booked = {d.client_order_id: d for d in outcome.lifecycle}
    booked.update({d.client_order_id: d for d in mark_booked(fills)})
    writes = _book_writes(upd) + [(paths.order(c), d.to_store()) for c, d in booked.items()]
    writes += _retirements(st, upd, run.inputs.specs, run.execution_id)
    writes.append(_account_write(st, as_of, bool(own), planned_at=bool(outcome.lifecycle)))
    writes.append(_execution_write(run, ex))
    fault_point("commander.books_write")
    if len(writes) <= FIRESTORE_BATCH_LIMIT:  # fresh dumps, handed over (bus.lent)
        write_owned(run.store, writes)
    else:
        write_owned_batches(run.store, writes)
    return ex


def _retirements(st: LoadedState, upd: BookUpdate, specs: dict[str, InstrumentSpec],
                 execution_id: str) -> list[tuple[str, dict]]:
    """Retired strategies whose book is flat after this run: disabled, with a ``retired_flat`` state change."""
    units = {s: b.quantities() for s, b in st.books.items()}
    units.update({s: b.quantities() for s, b in upd.books.items()})
    writes: list[tuple[str, dict]] = []
    lots = {sym: spec.lot_size for sym, spec in specs.items()}
    for sid in retired_flat(st.strategies, units, lots):
        cfg = st.strategies[sid]
        dust = {s: q for s, q in units.get(sid, {}).items() if abs(q) > QTY_EPS}
        reason = (f"retired; its book was flat after execution {execution_id}"
                  + (f" (less than one lot left: {dust})" if dust else ""))
        writes.append((paths.strategy(sid), cfg.model_copy(update={"enabled": False, "disabled_reason": reason})
                       .to_store()))
        now = datetime.now(timezone.utc)  # ids sort by wall-clock time, like a person's changes
        change = StateChange(change_id=f"{now:%Y%m%dT%H%M%SZ}-retired-{execution_id}", strategy_id=sid, at=now,
                             by="commander", reason=reason, action="retired_flat", before="retired", after="retired",
                             enabled_before=True)
        writes.append((paths.state_change(sid, change.change_id), change.to_store()))
    return writes


def _holdings_after(snapshot: PortfolioSnapshot, fills: dict[str, float]) -> dict[str, float]:
    """The snapshot's holdings plus this run's booked fills (symbol -> signed units)."""
    after = {h.symbol: h.quantity for h in snapshot.holdings}
    for s, q in fills.items():
        after[s] = after.get(s, 0.0) + q
    return after


def _funding_since(snapshot: PortfolioSnapshot, seen: dict[str, float]) -> dict[str, float]:
    """Funding paid per symbol since the last run (cumulative funding now minus ``seen``)."""
    now = {h.symbol: h.funding for h in snapshot.holdings if h.funding}
    return {s: v - seen.get(s, 0.0) for s, v in now.items() if abs(v - seen.get(s, 0.0)) > NOISE_EPS}


def _book_writes(upd: BookUpdate) -> list[tuple[str, dict]]:
    """The updated books, their new equity points and closed trades, as store writes."""
    writes = [(paths.book(s), b.to_store()) for s, b in upd.books.items()]
    writes += [(paths.equity_point(p.strategy_id, p.date), p.to_store()) for p in upd.equity_points]
    writes += [(paths.trade(t.strategy_id, t.trade_id), t.to_store()) for t in upd.trades]
    return writes


def _account_write(st: LoadedState, as_of: datetime, traded: bool, planned_at: bool = False) -> tuple[str, dict]:
    """The account state rolled to this run's NAV, its last trade time (when something filled)
    and the cumulative funding seen, as a store write."""
    assert st.snapshot is not None
    mode = st.config.mode
    seen = st.account.funding_seen if st.account else {}
    acct = next_account_state(st.account, mode, as_of, st.snapshot.net_liquidation)
    if planned_at:
        acct = acct.model_copy(update={"orders_planned_at": datetime.now(timezone.utc)})
    if traded:
        acct = acct.model_copy(update={"last_trade_at": datetime.now(timezone.utc)})
    funding_now = {h.symbol: h.funding for h in st.snapshot.holdings if h.funding}
    acct = acct.model_copy(update={"funding_seen": {**seen, **funding_now}})
    return paths.account_state(mode), acct.to_store()


def cancel_records(plan: Plan) -> list[OrderRecord]:
    """The cancels a dry run would make, status ``DryRun``."""
    return [OrderRecord(orderId=o.orderId, client_order_id=o.client_order_id, symbol=o.symbol, secType=o.secType,
                        action=o.action, totalQuantity=o.totalQuantity, orderType=o.orderType, lmtPrice=o.lmtPrice,
                        status="DryRun") for o in plan.cancels]
