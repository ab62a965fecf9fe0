"""Every function refuses bad input with the right status and a JSON error naming the field,
and writes nothing (the whole database is compared before and after)."""

from __future__ import annotations

import pytest

from bus import paths
from tests.support.functions import client, documents

BAD_ORCHESTRATOR = [
    (b'{"dryRun": "true"}', 400, "dryRun", "valid boolean"),
    (b'{"dryRun": 1}', 400, "dryRun", "valid boolean"),
    (b'{"runReconcile": null}', 400, "runReconcile", "valid boolean"),
    (b'{"strategies": "spy_macd_vixy"}', 400, "strategies", "valid list"),
    (b'{"strategies": [1]}', 400, "strategies.0", "valid string"),
    (b'{"strategies": []}', 400, "strategies", "at least 1 item"),
    (b'{"strategies": ["spy_macd_vixy", "spy_macd_vixy"]}', 400, "strategies", "duplicate"),
    (b'{"strategies": ["Bad Id"]}', 400, "strategies.0", "pattern"),
    (b'{"dryRun": true, "dry_run": false}', 400, "dry_run", "unknown field"),
    (b'{"asOf": "16/03/2020"}', 400, "asOf", "not a date"),
    (b'{"asOf": "2020-02-30"}', 400, "asOf", "not a date"),
    (b'{"asOf": 20200316}', 400, "asOf", "not a date"),
    (b'{"asOf": "2031-01-01"}', 400, "asOf", "outside the bundled data"),
    (b'{"trigger": "backtest"}', 400, "trigger", "'manual' or 'scheduled'"),
    (b'{"dryRun": true', 400, "body", "malformed JSON"),
    (b'\xff\xfe', 400, "body", "not UTF-8"),
    (b'[{"dryRun": true}]', 400, "body", "JSON object"),
    (b'"dryRun"', 400, "body", "JSON object"),
    (b'{"strategies": ["nope", "spy_macd_vixy"]}', 404, "strategies", "unknown strategy id(s) ['nope']"),
]


def assert_error(resp, status, field, reason):
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == "application/json"
    err = resp.get_json()["error"]
    assert err["code"] == status and len(err["error_id"]) == 12
    if field:
        assert err["field"] == field and reason in err["reason"], err
        assert field in err["message"]


@pytest.mark.parametrize("body, status, field, reason", BAD_ORCHESTRATOR)
def test_orchestrator_refuses_bad_bodies_and_writes_nothing(cloud, project, body, status, field, reason):
    before = documents(project)
    resp = client("orchestrator").post("/", data=body, content_type="application/json")
    assert_error(resp, status, field, reason)
    assert documents(project) == before


def test_every_bad_field_is_listed(cloud, project):
    resp = client("orchestrator").post("/", json={"dryRun": "yes", "asOf": 5, "extra": 1})
    assert_error(resp, 400, "dryRun", "valid boolean")
    assert {e["field"] for e in resp.get_json()["error"]["errors"]} == {"dryRun", "asOf", "extra"}
    assert "(+2 more)" in resp.get_json()["error"]["message"]


@pytest.mark.parametrize("target, method", [("orchestrator", "get"), ("orchestrator", "put"), ("reconcile", "get"),
                                            ("allocation", "delete"), ("strategy", "patch")])
def test_wrong_method_is_405_with_allow(cloud, project, target, method):
    before = documents(project)
    resp = getattr(client(target), method)("/", json={"dryRun": False})
    assert_error(resp, 405, None, None)
    assert resp.headers["Allow"] in ("POST", "GET, POST")
    assert documents(project) == before


def test_disabled_strategy_is_refused(cloud, project):
    cfg = cloud.get(paths.strategy("crypto_trend"))
    cloud.set(paths.strategy("crypto_trend"), {**cfg, "enabled": False})
    before = documents(project)
    resp = client("orchestrator").post("/", json={"strategies": ["crypto_trend"], "dryRun": True})
    assert_error(resp, 400, "strategies", "disabled")
    assert client("strategy").post("/crypto_trend", json={}).status_code == 400
    assert documents(project) == before


@pytest.mark.parametrize("path, body, status, field, reason", [
    ("/", {}, 400, "strategy", "required"),
    ("/", {"strategy": "nope"}, 404, "strategy", "unknown strategy id(s) ['nope']"),
    ("/nope", {}, 404, "strategy", "unknown strategy id(s) ['nope']"),
    ("/spy_macd_vixy", {"strategy": "crypto_trend"}, 400, "strategy", "the path names 'spy_macd_vixy'"),
    ("/Not-An-Id", {}, 400, "strategy", "pattern"),
    ("/", {"strategy": "spy_macd_vixy", "dryRun": True}, 400, "dryRun", "unknown field"),
    ("/", {"strategy": "spy_macd_vixy", "asOf": "yesterday"}, 400, "asOf", "not a date"),
])
def test_strategy_refuses_bad_requests(cloud, project, path, body, status, field, reason):
    before = documents(project)
    assert_error(client("strategy").post(path, json=body), status, field, reason)
    assert documents(project) == before


def test_strategy_plan_refuses_unknown_query(cloud, project):
    before = documents(project)
    assert_error(client("strategy").get("/?asof=2020-03-16"), 400, "asof", "unknown field")
    assert_error(client("strategy").get("/?asOf=2020-13-01"), 400, "asOf", "not a date")
    assert documents(project) == before


@pytest.mark.parametrize("body, status, field, reason", [
    ({"strategyErrors": {"nope": "HTTP 503"}}, 404, "strategyErrors", "unknown strategy id(s) ['nope']"),
    ({"strategyErrors": {"spy_macd_vixy": 503}}, 400, "strategyErrors.spy_macd_vixy", "valid string"),
    ({"executionId": "not-an-id"}, 400, "executionId", "pattern"),
    ({"dryRun": "false"}, 400, "dryRun", "valid boolean"),
    ({"reconcileError": ["x"]}, 400, "reconcileError", "valid string"),
    ({"trigger": "replay"}, 400, "trigger", "'manual' or 'scheduled'"),
])
def test_allocation_refuses_bad_bodies(cloud, project, body, status, field, reason):
    before = documents(project)
    assert_error(client("allocation").post("/", json=body), status, field, reason)
    assert documents(project) == before


def test_reconcile_refuses_bad_bodies(cloud, project):
    before = documents(project)
    assert_error(client("reconcile").post("/", json={"asOf": "2020-03-16", "mode": "live"}), 400, "mode",
                 "unknown field")
    assert_error(client("reconcile").post("/", data=b"{", content_type="text/plain"), 400, "body", "malformed")
    assert documents(project) == before


def test_form_encoded_json_is_read_as_json(cloud, project):
    """``curl -d '{...}'`` sends application/x-www-form-urlencoded: the body is still JSON."""
    resp = client("strategy").get("/")
    assert resp.status_code == 200
    resp = client("orchestrator").post("/", data=b'{"dryRun": "x"}',
                                       content_type="application/x-www-form-urlencoded")
    assert_error(resp, 400, "dryRun", "valid boolean")


def test_missing_configuration_is_500_with_error_id(emulator, project, monkeypatch, capsys):
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", project)
    resp = client("orchestrator").post("/", json={"dryRun": True})
    assert_error(resp, 500, None, None)
    assert "config/trading is missing" in resp.get_json()["error"]["message"]
    assert resp.get_json()["error"]["error_id"] in capsys.readouterr().out
    assert documents(project) == {}


def test_an_unreachable_store_is_503_within_seconds(emulator, project, monkeypatch):
    import time

    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", project)
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("INTENT_BUS_STORE_DEADLINE", "2")
    monkeypatch.setenv("INTENT_BUS_STORE_TIMEOUT", "1")
    started = time.monotonic()
    resp = client("orchestrator").post("/", json={"dryRun": True})
    assert time.monotonic() - started < 30
    assert_error(resp, 503, None, None)
    assert resp.get_json()["error"]["message"].startswith("the store is unreachable")


def test_unexpected_failure_is_500_with_error_id_in_the_logs(cloud, project, capsys):
    cloud.set(paths.TRADING_CONFIG, {"tradingEnabled": "maybe"})  # corrupt: fails TradingConfig validation
    before = documents(project)
    resp = client("orchestrator").post("/", json={"dryRun": True})
    assert_error(resp, 500, None, None)
    err = resp.get_json()["error"]
    assert err["message"] == f"internal error (ValidationError); error id {err['error_id']} is in the logs"
    logged = [line for line in capsys.readouterr().out.splitlines() if err["error_id"] in line]
    assert logged and '"severity": "ERROR"' in logged[0] and "Traceback" in logged[0]
    assert documents(project) == before


@pytest.mark.parametrize("headers, message", [
    ({}, "missing bearer token"),
    ({"Authorization": "Basic dXNlcjpwYXNz"}, "missing bearer token"),
    ({"Authorization": "Bearer wrong-token-value"}, "wrong bearer token"),
])
def test_a_required_token_is_checked_first(cloud, project, monkeypatch, headers, message):
    monkeypatch.setenv("INTENT_BUS_TOKEN", "s3cret-local-token")
    before = documents(project)
    for target in ("orchestrator", "strategy", "reconcile", "allocation"):
        resp = client(target).put("/", data=b"{bad", headers=headers)  # wrong method and body: 401 comes first
        assert_error(resp, 401, None, None)
        assert message in resp.get_json()["error"]["message"]
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert documents(project) == before


def test_the_right_token_passes(cloud, project, monkeypatch):
    monkeypatch.setenv("INTENT_BUS_TOKEN", "s3cret-local-token")
    ok = {"Authorization": "Bearer s3cret-local-token"}
    assert client("strategy").get("/", headers=ok).status_code == 200
    assert_error(client("orchestrator").post("/", data=b"{bad", headers=ok), 400, "body", "malformed JSON")
