"""``POST /orchestrator`` inline: the whole pipeline, its summary, the audit trail, and the account's lease."""

from __future__ import annotations

import threading

import requests

from bus import paths
from bus.models import Execution, Intent, PortfolioSnapshot
from bus.store import read
from ops.server import LocalFunctions
from pipeline.steps import lease_refused
from tests.support.functions import client, documents

AS_OF = "2020-03-16"
IDS = {"spy_macd_vixy", "crypto_trend", "test_signal_generator"}  # the classic strategies
LLM_IDS = {"llm_deepseek_momentum", "llm_qwen_reversion", "llm_gpt_conservative"}  # skipped: no API keys


def orders_at_broker(project):
    return {p: d for p, d in documents(project).items() if p.startswith("sim_accounts/") and "/orders/" in p}


def test_dry_run_summarizes_and_audits_without_placing(cloud, project):
    resp = client("orchestrator").post("/", json={"dryRun": True, "asOf": AS_OF})
    assert resp.status_code == 200, resp.get_json()
    doc = resp.get_json()
    assert doc["status"] == "completed" and doc["dry_run"] is True
    assert set(doc["strategies"]) == IDS | LLM_IDS
    assert all(doc["strategies"][s]["status"] == "success" for s in IDS)
    assert all(doc["strategies"][s]["status"] == "skipped" for s in LLM_IDS)
    assert doc["orders"] and all(o["status"] == "DryRun" for o in doc["orders"])
    assert doc["summary"].startswith("Dry run: would place")
    ex = read(cloud, paths.execution(doc["execution_id"]), Execution)
    assert ex.dry_run and ex.trigger == "manual" and ex.as_of.date().isoformat() == AS_OF
    assert set(ex.context.strategy_intents_refs) == IDS | LLM_IDS
    for sid, ref in ex.context.strategy_intents_refs.items():
        assert read(cloud, ref, Intent).status == ("skipped" if sid in LLM_IDS else "success")
    snap = read(cloud, ex.context.portfolio_snapshot_ref, PortfolioSnapshot)
    assert snap.snapshot_id == doc["portfolio"]["snapshot_id"]
    assert orders_at_broker(project) == {}
    assert cloud.get(paths.lock("paper")) is None  # released


def test_a_real_run_trades_once(cloud, project):
    first = client("orchestrator").post("/", json={"dryRun": False, "asOf": AS_OF}).get_json()
    assert first["status"] == "completed" and first["orders"]
    # The shipped paper account fills at the next session's open: the orders rest until then.
    ex = read(cloud, paths.execution(first["execution_id"]), Execution)
    assert ex.fill_model == "next_open" and all(o["status"] == "Submitted" for o in first["orders"])
    assert len(orders_at_broker(project)) == len(first["orders"])
    again = client("orchestrator").post("/", json={"dryRun": False, "asOf": AS_OF}).get_json()
    assert again["status"] == "completed" and again["orders"] == []


def test_a_subset_of_strategies_and_no_reconcile(cloud, project):
    resp = client("orchestrator").post("/", json={"strategies": ["test_signal_generator"], "runReconcile": False,
                                                  "asOf": AS_OF})
    doc = resp.get_json()
    assert resp.status_code == 200 and set(doc["strategies"]) == {"test_signal_generator"}
    assert doc["status"] == "skipped" and "no portfolio snapshot" in doc["summary"]  # nothing reconciled yet
    assert not [p for p in documents(project) if p.startswith("positions/")]


def test_a_held_lease_gives_409_and_records_skipped(cloud, project):
    taken, _ = cloud.try_lease(paths.lock("paper"), "another-run", 600)
    assert taken
    resp = client("orchestrator").post("/", json={"dryRun": False, "asOf": AS_OF})
    assert resp.status_code == 409
    body = resp.get_json()
    assert body["error"]["status"] == "ABORTED" and "another-run" in body["error"]["message"]
    assert body["status"] == "skipped" and body["orders"] == []
    ex = read(cloud, paths.execution(body["execution_id"]), Execution)
    assert ex.status == "skipped" and lease_refused(ex) and not ex.orders_placed
    written = documents(project)
    assert not [p for p in written if "/intent/" in p or p.startswith("positions/")]  # refused before the steps
    assert orders_at_broker(project) == {}
    assert cloud.get(paths.lock("paper"))["holder"] == "another-run"


def test_two_concurrent_real_runs_one_trades_the_other_gets_409(cloud, project):
    """Two real HTTP calls at once on one account: exactly one trades, the other is refused and recorded."""
    results = []
    gate = threading.Barrier(2)
    with LocalFunctions() as fns:
        url = fns.urls()["orchestrator"]

        def call():
            gate.wait()
            r = requests.post(url, json={"dryRun": False, "asOf": AS_OF}, timeout=120)
            results.append((r.status_code, r.json()))

        threads = [threading.Thread(target=call) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sorted(code for code, _ in results) == [200, 409], results
    traded = next(doc for code, doc in results if code == 200)
    refused = next(doc for code, doc in results if code == 409)
    assert traded["orders"] and all(o["status"] == "Submitted" for o in traded["orders"])  # rest until the open
    ex = read(cloud, paths.execution(refused["execution_id"]), Execution)
    assert ex.status == "skipped" and lease_refused(ex)
    assert len(orders_at_broker(project)) == len(traded["orders"])  # nothing placed twice
