"""The step functions the workflow calls: ``strategy`` (plan and one intent), ``reconcile`` (lease +
snapshot) and ``allocation`` (the Commander under that lease, idempotent per execution id)."""

from __future__ import annotations

from bus import paths
from bus.models import Execution, Intent
from bus.store import read
from pipeline.steps import lease_refused
from tests.support.functions import client, documents

AS_OF = "2020-03-16"


def test_plan_lists_enabled_strategies_and_resolves_the_as_of(cloud, project):
    cfg = cloud.get(paths.strategy("crypto_trend"))
    cloud.set(paths.strategy("crypto_trend"), {**cfg, "enabled": False})
    plan = client("strategy").get("/").get_json()
    assert plan["strategies"] == ["llm_deepseek_momentum", "llm_gpt_conservative", "llm_qwen_reversion",
                                  "spy_macd_vixy", "test_signal_generator"] and plan["mode"] == "paper"
    assert plan["as_of"].startswith(plan["asOf"]) and plan["as_of"].endswith("T21:30:00+00:00")
    assert client("strategy").get(f"/?asOf={AS_OF}").get_json()["as_of"] == f"{AS_OF}T21:30:00+00:00"
    assert client("strategy").get("/?asOf=").get_json()["asOf"] == plan["asOf"]  # empty means default


def test_one_strategy_writes_its_intent(cloud, project):
    resp = client("strategy").post("/spy_macd_vixy", json={"asOf": AS_OF})
    doc = resp.get_json()
    assert resp.status_code == 200 and doc["strategy_id"] == "spy_macd_vixy" and doc["status"] == "success"
    latest = read(cloud, paths.intent("spy_macd_vixy"), Intent)
    assert latest.intent_id == doc["intent_id"] and latest.as_of.isoformat() == doc["as_of"]
    assert read(cloud, paths.intent("spy_macd_vixy", doc["intent_id"]), Intent) == latest
    assert [t.symbol for t in latest.target_positions] == [t["symbol"] for t in doc["target_positions"]]
    body = client("strategy").post("/", json={"strategy": "test_signal_generator", "asOf": AS_OF}).get_json()
    assert body["status"] == "success" and read(cloud, paths.intent("test_signal_generator"), Intent)


def test_reconcile_holds_the_lease_for_the_allocation_step(cloud, project):
    rec = client("reconcile").post("/", json={"asOf": AS_OF})
    assert rec.status_code == 200
    eid = rec.get_json()["execution_id"]
    assert cloud.get(paths.lock("paper"))["holder"] == eid
    assert cloud.get(paths.portfolio("paper"))["snapshot_id"] == rec.get_json()["snapshot_id"]
    # A second run is refused until the allocation step releases the lease.
    second = client("reconcile").post("/", json={"asOf": AS_OF})
    assert second.status_code == 409 and second.get_json()["refused_by"] == eid
    for sid in ("spy_macd_vixy", "crypto_trend", "test_signal_generator"):
        client("strategy").post(f"/{sid}", json={"asOf": AS_OF})
    alloc = client("allocation").post("/", json={"dryRun": False, "asOf": AS_OF, "executionId": eid,
                                                 "trigger": "scheduled"})
    doc = alloc.get_json()
    assert alloc.status_code == 200 and doc["execution_id"] == eid and doc["status"] == "completed"
    assert doc["orders"] and doc["replayed"] is False
    ex = read(cloud, paths.execution(eid), Execution)
    assert ex.trigger == "scheduled" and ex.context.portfolio_snapshot_ref.endswith(rec.get_json()["snapshot_id"])
    assert cloud.get(paths.lock("paper")) is None


def test_a_retried_allocation_replays_instead_of_trading_again(cloud, project):
    eid = client("reconcile").post("/", json={"asOf": AS_OF}).get_json()["execution_id"]
    client("strategy").post("/test_signal_generator", json={"asOf": AS_OF})
    body = {"dryRun": False, "asOf": AS_OF, "executionId": eid}
    first = client("allocation").post("/", json=body).get_json()
    placed = [p for p in documents(project) if "/orders/" in p]
    again = client("allocation").post("/", json=body).get_json()
    assert again["replayed"] is True and again["execution_id"] == eid and again["orders"] == first["orders"]
    assert [p for p in documents(project) if "/orders/" in p] == placed


def test_failed_strategies_become_error_intents_and_the_commander_runs_without_them(cloud, project):
    eid = client("reconcile").post("/", json={"asOf": AS_OF}).get_json()["execution_id"]
    for sid in ("spy_macd_vixy", "test_signal_generator"):
        client("strategy").post(f"/{sid}", json={"asOf": AS_OF})
    resp = client("allocation").post("/", json={
        "dryRun": True, "asOf": AS_OF, "executionId": eid,
        "strategyErrors": {"crypto_trend": "503 Server Error: Service Unavailable"}})
    doc = resp.get_json()
    assert resp.status_code == 200 and doc["status"] == "completed"
    assert doc["not_used"]["errored"] == ["crypto_trend"]
    intent = read(cloud, paths.intent("crypto_trend"), Intent)
    assert intent.status == "error"
    assert intent.error_message == "strategy step failed: 503 Server Error: Service Unavailable"
    ex = read(cloud, paths.execution(eid), Execution)
    assert ex.errored_strategies == ["crypto_trend"] and set(ex.context.strategy_intents_refs) == {
        "spy_macd_vixy", "test_signal_generator", "crypto_trend"}


def test_a_reconcile_error_skips_the_commander(cloud, project):
    client("strategy").post("/test_signal_generator", json={"asOf": AS_OF})
    resp = client("allocation").post("/", json={"dryRun": False, "asOf": AS_OF,
                                                "reconcileError": "502 Server Error: broker unreachable"})
    doc = resp.get_json()
    assert resp.status_code == 200 and doc["status"] == "skipped" and doc["orders"] == []
    assert "reconcile failed: 502 Server Error" in doc["summary"]
    assert not [p for p in documents(project) if "/orders/" in p]


def test_allocation_is_refused_while_another_run_holds_the_account(cloud, project):
    cloud.try_lease(paths.lock("paper"), "another-run", 600)
    resp = client("allocation").post("/", json={"dryRun": False, "asOf": AS_OF})
    assert resp.status_code == 409 and resp.get_json()["status"] == "skipped"
    assert lease_refused(read(cloud, paths.execution(resp.get_json()["execution_id"]), Execution))
