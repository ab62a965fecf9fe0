"""A malformed ``intent/latest`` errs only its own strategy, with the reason on record; the others trade."""

from __future__ import annotations

import math
from datetime import datetime, timezone

import pytest

from brokers.sim import SimBroker
from bus import paths
from bus.models import InstrumentSpec, Intent, StrategyConfig, TargetPosition
from bus.store import MemoryStore
from commander.run import run_commander
from reconcile import reconcile
from tests.fakes.commander_scenario import STRATEGY, write_scenario

T = datetime(2024, 6, 3, 21, 30, tzinfo=timezone.utc)
PRICES = {"SPY": 500.0, "QQQ": 400.0}
SPECS = {s: InstrumentSpec(symbol=s, lot_size=1, min_quantity=1, min_notional=1) for s in PRICES}
BAD = "bad"


def good_doc() -> dict:
    return Intent(intent_id="bad-1", strategy_id=BAD, updated_at=T, as_of=T, status="success",
                  target_positions=[TargetPosition(symbol="QQQ", quantity=3)]).to_store()


def mutate(doc: dict, how: str) -> dict:
    tp = doc["target_positions"][0]
    if how == "missing_fields":
        return {"strategy_id": BAD, "status": "success"}
    if how == "quantity_text":
        tp["quantity"] = "ten"
    elif how == "quantity_numeric_text":
        tp["quantity"] = "10"
    elif how == "targets_as_string":
        doc["target_positions"] = "SPY:10"
    elif how == "extra_field":
        doc["surprise"] = 1
    elif how == "bogus_status":
        doc["status"] = "bogus"
    elif how == "weight_nan":
        tp["quantity"], tp["weight"] = None, math.nan
    elif how == "quantity_inf":
        tp["quantity"] = math.inf
    elif how == "other_strategy":
        doc["strategy_id"] = STRATEGY
    return doc


@pytest.mark.parametrize("how", ["missing_fields", "quantity_text", "quantity_numeric_text", "targets_as_string",
                                 "extra_field", "bogus_status", "weight_nan", "quantity_inf", "other_strategy"])
def test_a_bad_intent_errs_its_strategy_with_the_reason_and_the_others_trade(how):
    store = MemoryStore()
    write_scenario(store, T, {"SPY": 10})
    cfg = store.get(paths.strategy(STRATEGY))
    cfg["capital_allocation"] = 0.5
    store.set(paths.strategy(STRATEGY), cfg)
    bad = StrategyConfig(strategy_id=BAD, name="bad", capital_allocation=0.5)
    store.set(paths.strategy(BAD), bad.to_store())
    store.set(paths.intent(BAD), mutate(good_doc(), how))
    broker = SimBroker(store, "acct", lambda s, t: PRICES[s], SPECS, starting_cash=100_000)
    reconcile(store, broker, T)
    ex = run_commander(store, broker, T, execution_id="ex-1")
    assert ex.status == "completed"
    assert BAD in ex.errored_strategies and ex.strategy_reasons[BAD].startswith("invalid intent document")
    assert {o.symbol for o in ex.orders_placed} == {"SPY"}  # the good strategy traded
    assert broker.account_state().quantities() == {"SPY": 10}
