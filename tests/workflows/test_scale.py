"""The workflow at scale (issue 16): 300 strategies in pages, 120 of them failing, every step's answer under
10 KB, and a strategy step that reads its one strategy by path whatever the number of strategies.

The strategies are cheap: every id runs the test signal generator (registered under it for this test, in this
process, where the functions are served). 100 fail in their own code (a parameter that is not a number: their
step writes the ``error`` intent) and 20 never answer (the proxy says 503 to every call and retry: allocation
records them from the store, ``checkIntents``).
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import pytest

from bus import paths
from bus.models import Execution, Intent, StrategyConfig
from bus.store import read
from commander.replay import load_execution
from ops.server import LocalFunctions
from ops.workflow_runner import local_argument, run_workflow
from strategies import registry
from strategies.test_signal import TestSignalGenerator
from tests.support.functions import client
from tests.workflows.proxy import StepProxy

AS_OF = "2020-03-16"
GOOD = [f"sig_{i:03d}" for i in range(180)]
BAD = [f"bad_{i:03d}" for i in range(100)]  # raise in their own code
CRASH = [f"crash_{i:03d}" for i in range(20)]  # their function never answers
LIMIT = 10 * 1024  # bytes per answer (issue 16)


@pytest.fixture
def many(cloud):
    """300 enabled strategies (0.003 of NAV each) in place of the configured ones, which are disabled."""
    for sid, doc in cloud.list_docs("strategies"):
        cloud.set(paths.strategy(sid), {**doc, "enabled": False})
    docs = []
    for sid in GOOD + BAD + CRASH:
        registry.register(sid)(TestSignalGenerator)
        params = {"spy_quantity": "not a number"} if sid in BAD else {"spy_quantity": 1, "vixy_quantity": 0}
        cfg = StrategyConfig(strategy_id=sid, name=sid, capital_allocation=0.003, universe=["SPY", "VIXY"],
                             params=params)
        docs.append((paths.strategy(sid), cfg.to_store()))
    cloud.write_batches(docs)
    yield sorted(GOOD + BAD + CRASH)
    for sid in GOOD + BAD + CRASH:
        registry._REGISTRY.pop(sid, None)


def test_300_strategies_in_pages_with_120_failing_complete_and_the_120_are_errored(cloud, project, many):
    started = time.monotonic()
    with LocalFunctions() as fns, StepProxy(fns.urls(), victims=set(CRASH)) as proxy:
        result = run_workflow({**local_argument(proxy.urls(), dry_run=True), "asOf": AS_OF}, store=cloud)
    elapsed = time.monotonic() - started
    assert result["status"] == "completed", result
    assert result["strategy_calls"] == {"called": 300, "failed": 20}
    assert result["strategies"] == {"intents": 300, "errored": 120, "missing": 0, "stale": 0, "skipped": 0}
    assert all(proxy.calls[sid] == 3 for sid in CRASH) and all(proxy.calls[sid] == 1 for sid in GOOD + BAD)
    ex = load_execution(cloud, result["execution_id"])  # a record this large is split in parts
    assert ex is not None and sorted(ex.errored_strategies) == sorted(BAD + CRASH)
    assert len(ex.context.strategy_intents_refs) == 300
    assert all("ValueError" in ex.strategy_reasons[sid] for sid in BAD)
    assert all("no intent as of" in ex.strategy_reasons[sid] for sid in CRASH)
    assert read(cloud, paths.intent(CRASH[0]), Intent).as_of == ex.as_of
    # Every step's answer, as the workflow received it, under 10 KB.
    assert set(proxy.largest) == {("strategy", "GET"), ("strategy", "POST"), ("reconcile", "POST"),
                                  ("allocation", "POST")}
    assert max(proxy.largest.values()) <= LIMIT, proxy.largest
    print(f"\n300 strategies (120 failing) in {elapsed:.1f} s; largest answers (bytes): {proxy.largest}")


def test_a_strategy_step_reads_its_one_strategy_and_the_trading_config_once_per_run(cloud, project, many,
                                                                                     monkeypatch):
    from functions.context import store

    st = store()  # the functions' store: its stats count round trips by kind
    client("strategy").post(f"/{GOOD[0]}", json={"asOf": AS_OF})  # the run's first step reads config/trading
    got: list[str] = []
    get = st.get
    monkeypatch.setattr(st, "get", lambda path: got.append(path) or get(path))  # the real read, observed
    before = dict(st.stats)
    resp = client("strategy").post(f"/{GOOD[1]}", json={"asOf": AS_OF})
    delta = {k: v - before.get(k, 0) for k, v in st.stats.items() if v != before.get(k, 0)}
    assert resp.status_code == 200 and resp.get_json()["status"] == "success"
    # Of the configuration, strategies/{id} alone (config/trading is cached for this as-of); the rest is market
    # data (the bar cache, per instrument). No query of the collection; one get_all (the latest intent, before
    # writing) and one batch (the intent).
    assert [p for p in got if not p.startswith("bar_series/")] == [paths.strategy(GOOD[1])]
    assert "list" not in delta and delta["get_all"] == 1 and delta["batch"] == 1, delta
    pages, cursor = [], ""  # the plan, page by page: every enabled id once, the disabled ones left out
    while cursor is not None:
        plan = client("strategy").get(f"/?asOf={AS_OF}&limit=100&after={cursor}")
        assert plan.status_code == 200 and len(plan.get_data()) <= LIMIT
        pages.append(plan.get_json()["strategies"])
        cursor = plan.get_json()["next"] or None
    assert [len(p) for p in pages] == [100, 96, 100, 4] and sum(pages, []) == many


def test_answers_stay_small_whatever_the_number_of_holdings_or_orders():
    """The reconcile and allocation answers are counts: 5,000 holdings or orders do not grow them."""
    from bus.models import Holding, OrderRecord, PortfolioSnapshot
    from functions.handlers import _answer, reconcile_answer

    now = datetime(2020, 3, 16, 21, 30, tzinfo=timezone.utc)
    holdings = [Holding(symbol=f"SYM{i:05d}", quantity=1.0, avg_cost=1, market_price=1, market_value=1)
                for i in range(5000)]
    snap = PortfolioSnapshot(snapshot_id="s", as_of=now, updated_at=now, net_liquidation=1e6, cash=1e6,
                             available_funds=1e6, broker="sim", account="paper", mode="paper", holdings=holdings)
    assert len(json.dumps(reconcile_answer("e", snap, now))) <= LIMIT
    orders = [OrderRecord(client_order_id=f"c{i}", orderId=f"o{i}", symbol=f"SYM{i:05d}", action="BUY",
                          totalQuantity=1, orderType="MKT", status="DryRun") for i in range(5000)]
    ex = Execution(execution_id="20200316T213000Z-0000abcd", as_of=now, executed_at=now, status="completed",
                   dry_run=True, trigger="manual", orders_placed=orders,
                   errored_strategies=[f"s{i:05d}" for i in range(5000)], summary="x" * 50_000)
    doc = _answer(now, ex, replayed=False)
    assert doc["orders"] == 5000 and doc["order_statuses"] == {"DryRun": 5000}
    assert doc["strategies"]["errored"] == 5000 and len(json.dumps(doc)) <= LIMIT
