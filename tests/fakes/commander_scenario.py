"""A small Commander scenario, the same for every broker: one strategy's target quantities
written as a fresh intent, then reconcile and the real Commander (:func:`commander.run.run_commander`).

Checks shared by the venue tests: :func:`order_docs` / :func:`order_doc` read the order lifecycle
(``orders/*``), :func:`book_units` the books, and :func:`assert_books_match` that the strategy books
plus the ``external`` book add up to the venue's positions with the ``external`` book empty.
"""

from __future__ import annotations

from datetime import datetime

from brokers.base import Broker
from bus import paths
from bus.models import Book, Execution, Intent, StrategyConfig, TargetPosition, TradingConfig
from bus.orders import OrderLifecycle
from bus.store import Store, read
from commander.execute import place
from commander.orders import planned_orders
from commander.run import run_commander
from reconcile import reconcile

STRATEGY = "scenario"
EXTERNAL = "external"
#: Units below this are no position (float noise of booked fractions).
UNITS_EPS = 1e-9


def write_scenario(store: Store, as_of: datetime, targets: dict[str, float], *, sec_type: str = "STK",
                   exchange: str = "SMART", currency: str = "USD", leverage: float = 2.0) -> None:
    """``config/trading`` (paper, no reserve, loose risk limits), one strategy with all the capital,
    and its intent holding ``targets`` (symbol -> signed quantity), as of ``as_of``."""
    cfg = TradingConfig(mode="paper", reserve_fraction=0.0, min_order_notional=1.0, rebalance_band=0.0,
                        risk={"max_gross_leverage": leverage, "max_symbol_exposure": leverage, "max_margin_use": 1.0})
    strat = StrategyConfig(strategy_id=STRATEGY, name="scenario", capital_allocation=1.0,
                           risk_parameters={"max_leverage": leverage, "max_single_position_exposure": leverage,
                                            "max_drawdown": 1.0})
    intent = Intent(intent_id=f"{STRATEGY}-1", strategy_id=STRATEGY, updated_at=as_of, as_of=as_of, status="success",
                    target_positions=[TargetPosition(symbol=s, secType=sec_type, exchange=exchange, currency=currency,
                                                     quantity=q) for s, q in targets.items()])
    store.write_batch([(paths.TRADING_CONFIG, cfg.to_store()), (paths.strategy(STRATEGY), strat.to_store()),
                       (paths.intent(STRATEGY), intent.to_store()),
                       (paths.intent(STRATEGY, intent.intent_id), intent.to_store())])


def run_scenario(store: Store, broker: Broker, as_of: datetime, execution_id: str = "ex-scenario-1") -> Execution:
    """Reconcile then the Commander, as the pipeline runs them (a reconcile failure skips the Commander)."""
    from brokers.base import BrokerError

    try:
        reconcile(store, broker, as_of)
        reason = None
    except BrokerError as exc:
        reason = f"reconcile failed: {type(exc).__name__}: {exc}"
    return run_commander(store, broker, as_of, execution_id=execution_id, skip_reason=reason)


def resubmit(broker: Broker, execution: Execution, as_of: datetime) -> list:
    """Place the execution's orders again, with the same client order ids."""
    again = [o.model_copy(update={"status": "DryRun", "orderId": None, "error": None, "filled_quantity": 0.0,
                                  "fill_price": None, "commission": 0.0}) for o in execution.orders_placed]
    docs = {d.client_order_id: d for d in planned_orders(execution.execution_id, broker.mode, again, {}, as_of)}
    placed, _ = place(broker, again, docs, as_of, record=lambda d: None)
    return placed


def order_docs(store: Store) -> dict[str, OrderLifecycle]:
    """Every ``orders/{client_order_id}`` document, by client order id."""
    return {OrderLifecycle.model_validate(d).client_order_id: OrderLifecycle.model_validate(d)
            for _, d in store.list_docs(paths.ORDERS)}


def order_doc(store: Store, client_order_id: str) -> OrderLifecycle:
    """One order's lifecycle record (it must exist)."""
    doc = read(store, paths.order(client_order_id), OrderLifecycle)
    assert doc is not None, f"no orders/{client_order_id}"
    return doc


def book_units(store: Store, strategy_id: str = STRATEGY) -> dict[str, float]:
    """Symbol -> signed units of one book (empty when the book does not exist), zeros left out."""
    book = read(store, paths.book(strategy_id), Book)
    if book is None:
        return {}
    return {s: p.quantity for s, p in book.positions.items() if abs(p.quantity) > UNITS_EPS}


def assert_books_match(store: Store, venue: dict[str, float], strategies: tuple[str, ...] = (STRATEGY,)) -> None:
    """The strategy books plus the ``external`` book hold exactly the venue's positions (symbol -> signed
    units, zeros ignored), and the ``external`` book holds nothing: every fill is in a strategy's book."""
    total: dict[str, float] = {}
    for sid in (*strategies, EXTERNAL):
        for sym, q in book_units(store, sid).items():
            total[sym] = total.get(sym, 0.0) + q
    held = {s: q for s, q in venue.items() if abs(q) > UNITS_EPS}
    assert set(total) == set(held), f"books {total} != venue {held}"
    for sym, q in held.items():
        assert abs(total[sym] - q) <= 1e-9 * max(1.0, abs(q)), f"{sym}: books {total[sym]} != venue {q}"
    assert book_units(store, EXTERNAL) == {}, f"external book holds {book_units(store, EXTERNAL)}"
