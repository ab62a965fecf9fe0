"""A small Commander scenario, the same for every broker: one strategy's target quantities
written as a fresh intent, then reconcile and the real Commander (:func:`commander.run.run_commander`)."""

from __future__ import annotations

from datetime import datetime

from brokers.base import Broker
from bus import paths
from bus.models import Execution, Intent, StrategyConfig, TargetPosition, TradingConfig
from bus.store import Store
from commander.execute import place
from commander.run import run_commander
from reconcile import reconcile

STRATEGY = "scenario"


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
    return place(broker, again, as_of)
