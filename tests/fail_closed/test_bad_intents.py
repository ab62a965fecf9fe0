"""Did not hold: one bad ``intent/latest`` stopped all trading, often with no record.

A hand-edited intent (missing fields, ``"ten"``, ``"10"``, targets as a string, an extra field, a bogus
status, NaN weight, inf quantity, another strategy's ``strategy_id``, an unknown symbol) now errs only its
own strategy, with the reason in ``execution.strategy_reasons``; the other strategy trades. In the store
of the real emulator, and once through ``python main.py run`` (exit 0, no traceback).
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone

import pytest

from brokers.sim import SimBroker
from bus import paths
from bus.models import Execution, InstrumentSpec, Intent, StrategyConfig, TargetPosition
from bus.store import read
from commander.run import run_commander
from reconcile import reconcile
from tests.fakes.commander_scenario import STRATEGY, write_scenario
from tests.support.processes import cli, on_emulator

T = datetime(2024, 6, 3, 21, 30, tzinfo=timezone.utc)
PRICES = {"SPY": 500.0, "QQQ": 400.0}
SPECS = {s: InstrumentSpec(symbol=s, lot_size=1, min_quantity=1, min_notional=1) for s in PRICES}
BAD = "bad"


def good_doc(strategy_id: str = BAD, as_of: datetime = T) -> dict:
    return Intent(intent_id=f"{strategy_id}-1", strategy_id=strategy_id, updated_at=as_of, as_of=as_of,
                  status="success", target_positions=[TargetPosition(symbol="QQQ", quantity=3)]).to_store()


def mutate(doc: dict, how: str) -> dict:
    """``doc`` (a valid intent) edited by hand the way ``how`` names."""
    tp = doc["target_positions"][0]
    if how == "missing_fields":
        return {"strategy_id": doc["strategy_id"], "status": "success"}
    if how == "quantity_text":
        tp["quantity"] = "ten"
    elif how == "quantity_numeric_text":
        tp["quantity"] = "10"  # not coerced to 10
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
    elif how == "unknown_symbol":
        tp["symbol"] = "NOPE"
    return doc


INVALID = ["missing_fields", "quantity_text", "quantity_numeric_text", "targets_as_string", "extra_field",
           "bogus_status", "weight_nan", "quantity_inf", "other_strategy"]


@pytest.mark.parametrize("how", [*INVALID, "unknown_symbol"])
def test_a_bad_intent_errs_its_strategy_with_the_reason_and_the_others_trade(store, how):
    write_scenario(store, T, {"SPY": 10})
    cfg = store.get(paths.strategy(STRATEGY))
    store.set(paths.strategy(STRATEGY), {**cfg, "capital_allocation": 0.5})
    store.set(paths.strategy(BAD), StrategyConfig(strategy_id=BAD, name="bad", capital_allocation=0.5).to_store())
    store.set(paths.intent(BAD), mutate(good_doc(), how))
    broker = SimBroker(store, "acct", lambda s, t: PRICES[s], SPECS, starting_cash=100_000, fill_at="close")
    reconcile(store, broker, T)
    ex = run_commander(store, broker, T, execution_id="ex-1")
    assert ex.status == "completed"
    recorded = read(store, paths.execution("ex-1"), Execution)
    assert recorded is not None and BAD in recorded.errored_strategies
    reason = recorded.strategy_reasons[BAD]
    if how == "unknown_symbol":
        assert "NOPE" in reason, reason
    else:
        assert reason.startswith("invalid intent document"), reason
    assert [(o.symbol, o.action, o.totalQuantity) for o in recorded.orders_placed] == [("SPY", "BUY", 10)]
    assert not (store.get(paths.book(BAD)) or {}).get("positions")  # the bad strategy kept its (empty) book


def test_through_the_cli_a_bad_intent_is_recorded_and_the_run_exits_0(emulator, project):
    """The case as found: ``run`` exited 1 with a pydantic traceback and wrote no execution."""
    env = on_emulator(emulator, project)
    from bus.store import FirestoreStore

    store = FirestoreStore(project)
    as_of = datetime(2020, 3, 16, 21, 30, tzinfo=timezone.utc)
    store.set(paths.intent("test_signal_generator"), mutate(good_doc("test_signal_generator", as_of), "quantity_text"))
    r = cli(["run", "--json", "--as-of", "2020-03-16", "--strategies", "spy_macd_vixy"], env)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    doc = json.loads(r.stdout)
    assert doc["status"] == "completed" and doc["orders"]
    ex = read(store, paths.execution(doc["execution_id"]), Execution)
    assert ex is not None and "test_signal_generator" in ex.errored_strategies
    assert ex.strategy_reasons["test_signal_generator"].startswith("invalid intent document")
    assert {o.symbol for o in ex.orders_placed} <= {"SPY", "VIXY"}  # spy_macd_vixy traded
