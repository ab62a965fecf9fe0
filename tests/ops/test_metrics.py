"""``/metrics`` on the served functions, scraped after a real ``POST /orchestrator`` and parsed with
``prometheus_client.parser``."""

from __future__ import annotations

import requests
from prometheus_client.parser import text_string_to_metric_families

from bus import paths
from bus.models import Book, Execution, PortfolioSnapshot
from bus.store import read
from ops.server import LocalFunctions


def scrape(base_url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    resp = requests.get(f"{base_url}/metrics", timeout=30)
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("text/plain")
    out = {}
    for fam in text_string_to_metric_families(resp.text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_show_the_runs_figures(cloud, project):
    with LocalFunctions() as fns:
        before = scrape(fns.base_url)
        resp = requests.post(f"{fns.base_url}/orchestrator", json={"dryRun": False, "asOf": "2020-03-16"}, timeout=300)
        assert resp.status_code == 200, resp.text
        ex = read(cloud, paths.execution(resp.json()["execution_id"]), Execution)
        after = scrape(fns.base_url)
        assert requests.post(f"{fns.base_url}/metrics", timeout=30).status_code == 405

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert delta("intent_bus_executions_total", status="completed") == 1
    by_status: dict[str, int] = {}
    for o in ex.orders_placed:
        by_status[str(o.status)] = by_status.get(str(o.status), 0) + 1
    assert ex.orders_placed and all(delta("intent_bus_orders_total", status=k) == n for k, n in by_status.items())
    snap = read(cloud, ex.context.portfolio_snapshot_ref, PortfolioSnapshot)
    nav = after[("intent_bus_nav", (("mode", "paper"),))]
    assert nav > 0 and abs(nav - read(cloud, paths.portfolio("paper"), PortfolioSnapshot).net_liquidation) < 1e-6
    assert snap.net_liquidation > 0
    for sid in ex.context.strategy_intents_refs:
        book = read(cloud, paths.book(sid), Book)
        if book is not None:
            assert after[("intent_bus_book_equity", (("strategy_id", sid),))] == book.equity
    stale = {k[1] for k in after if k[0] == "intent_bus_data_staleness_seconds"}
    assert (("symbol", "SPY"), ("timeframe", "1d")) in stale
    assert delta("intent_bus_lease_total", outcome="taken") >= 1
    assert delta("intent_bus_step_duration_seconds_count", step="orchestrator") == 1
    assert delta("intent_bus_step_duration_seconds_sum", step="orchestrator") > 0
