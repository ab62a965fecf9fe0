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
    assert len(latest.target_positions) == doc["targets"] > 0  # a count: the intent is in the store
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
    assert again["replayed"] is True and again["execution_id"] == eid and again["orders"] == first["orders"] > 0
    assert again["order_statuses"] == first["order_statuses"]
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
    assert doc["strategies"]["errored"] == 1
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
    assert resp.status_code == 200 and doc["status"] == "skipped" and doc["orders"] == 0
    assert "reconcile failed: 502 Server Error" in doc["summary"]
    assert not [p for p in documents(project) if "/orders/" in p]


def test_allocation_is_refused_while_another_run_holds_the_account(cloud, project):
    cloud.try_lease(paths.lock("paper"), "another-run", 600)
    resp = client("allocation").post("/", json={"dryRun": False, "asOf": AS_OF})
    assert resp.status_code == 409 and resp.get_json()["status"] == "skipped"
    assert lease_refused(read(cloud, paths.execution(resp.get_json()["execution_id"]), Execution))


def test_check_intents_records_each_strategy_without_an_intent_of_this_as_of(cloud, project):
    """The workflow's backstop: a strategy call that failed after its retries left no intent as of this run;
    allocation with checkIntents writes its error intent (no list of failures in the body)."""
    earlier = "2020-03-16T12:00:00+00:00"  # an earlier run's intent, young enough for the Commander to use it
    assert client("strategy").post("/crypto_trend", json={"asOf": earlier}).get_json()["status"] == "success"
    for sid in ("spy_macd_vixy", "test_signal_generator"):
        client("strategy").post(f"/{sid}", json={"asOf": AS_OF})
    ids = ["spy_macd_vixy", "crypto_trend", "test_signal_generator"]
    eid = client("reconcile").post("/", json={"asOf": AS_OF}).get_json()["execution_id"]
    resp = client("allocation").post("/", json={"dryRun": True, "asOf": AS_OF, "checkIntents": True,
                                                "strategies": ids, "executionId": eid})
    doc = resp.get_json()
    assert resp.status_code == 200 and doc["status"] == "completed" and doc["strategies"]["errored"] == 1, doc
    ex = read(cloud, paths.execution(doc["execution_id"]), Execution)
    assert ex.errored_strategies == ["crypto_trend"]
    assert f"no intent as of 2020-03-16T21:30:00+00:00 (latest: {earlier})" in ex.strategy_reasons[
        "crypto_trend"]
    failed = read(cloud, paths.intent("crypto_trend"), Intent)
    assert failed.status == "error" and failed.as_of == ex.as_of
    for sid in ("spy_macd_vixy", "test_signal_generator"):  # this run's intents are left as they are
        assert read(cloud, paths.intent(sid), Intent).status == "success"
    # Every enabled strategy when no ids are given: the LLM traders never ran, so they are errored too.
    eid = client("reconcile").post("/", json={"asOf": AS_OF}).get_json()["execution_id"]
    again = client("allocation").post("/", json={"dryRun": True, "asOf": AS_OF, "checkIntents": True,
                                                 "executionId": eid}).get_json()
    assert again["strategies"]["errored"] == 4 and again["strategies"]["missing"] == 0, again


def test_plan_pages_and_check_intents_refuse_bad_input_and_write_nothing(cloud, project):
    before = documents(project)
    for query, field in [("limit=0", "limit"), ("limit=101", "limit"), ("after=Not-An-Id", "after")]:
        resp = client("strategy").get(f"/?{query}")
        assert resp.status_code == 400 and resp.get_json()["error"]["field"] == field, resp.get_json()
    for body, status, field in [({"checkIntents": "yes"}, 400, "checkIntents"),
                                ({"checkIntents": True, "strategies": ["nope"]}, 404, "strategies"),
                                ({"strategies": ["crypto_trend", "crypto_trend"]}, 400, "strategies")]:
        resp = client("allocation").post("/", json=body)
        assert resp.status_code == status and resp.get_json()["error"]["field"] == field, resp.get_json()
    assert documents(project) == before
