"""Did not hold, over HTTP: JSON nested past ~1,000 levels gave 500 (RecursionError); ``/reconcile`` with an
``asOf`` before the account's last fill answered 502 (so the workflow retried caller input); ``/strategy``
with a 2020 ``asOf`` replaced today's ``latest`` intent with a 2020 one.

Now: 400 naming the body; 409 with the reason; the older intent is stored under its own id only. Each
writes nothing it should not (the whole database is compared before and after).
"""

from __future__ import annotations

from bus import paths
from bus.models import Intent
from bus.store import read
from tests.support.functions import client, documents

TODAY = "2026-05-15"  # a recent day of the bundled data
OLD = "2020-03-16"


def test_json_nested_too_deeply_is_400_and_writes_nothing(cloud, project):
    before = documents(project)
    body = b'{"strategies": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    resp = client("orchestrator").post("/", data=body, content_type="application/json")
    assert resp.status_code == 400, resp.get_data(as_text=True)
    err = resp.get_json()["error"]
    assert err["field"] == "body" and "nested too deeply" in err["reason"] and len(err["error_id"]) == 12
    assert documents(project) == before


def test_reconcile_as_of_before_the_accounts_last_fill_is_409_with_the_reason_and_writes_nothing(cloud, project):
    traded = client("orchestrator").post("/", json={"dryRun": False, "asOf": "2020-03-17"})
    assert traded.status_code == 200 and traded.get_json()["orders"]
    before = documents(project)
    resp = client("reconcile").post("/", json={"asOf": OLD})
    assert resp.status_code == 409, resp.get_json()
    err = resp.get_json()["error"]
    assert err["message"].startswith("asOf:") and "earlier" in err["message"]
    assert documents(project) == before


def test_an_older_as_of_never_replaces_the_latest_intent(cloud, project):
    today = client("strategy").post("/test_signal_generator", json={"asOf": TODAY})
    assert today.status_code == 200, today.get_json()
    old = client("strategy").post("/test_signal_generator", json={"asOf": OLD})
    assert old.status_code == 200, old.get_json()
    latest = read(cloud, paths.intent("test_signal_generator"), Intent)
    assert latest is not None and latest.intent_id == today.get_json()["intent_id"]
    assert latest.as_of.date().isoformat() == TODAY
    kept = read(cloud, paths.intent("test_signal_generator", old.get_json()["intent_id"]), Intent)
    assert kept is not None and kept.as_of.date().isoformat() == OLD  # stored under its own id only
