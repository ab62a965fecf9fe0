"""``python main.py serve`` as a person runs it: the functions on loopback, the configuration applied,
a bearer token when one is set, and a clean stop."""

from __future__ import annotations

import json
import os

import requests

from bus import paths
from bus.store import FirestoreStore
from tests.support.processes import start_serve as start
from tests.support.processes import stop_serve as stop


def test_serve_answers_curl_and_requires_the_token_when_set(emulator, project):
    env = {**os.environ, "GOOGLE_CLOUD_PROJECT": project, "FIRESTORE_EMULATOR_HOST": emulator.host,
           "INTENT_BUS_TOKEN": "serve-test-token-123"}
    proc, base = start(env)
    try:
        assert FirestoreStore(project).get(paths.TRADING_CONFIG) is not None  # applied before serving
        # curl -X POST localhost:PORT/orchestrator -d '{"dryRun": true}' (form-encoded, like curl -d)
        denied = requests.post(f"{base}/orchestrator", data='{"dryRun": true}', timeout=60)
        assert denied.status_code == 401 and denied.json()["error"]["status"] == "UNAUTHENTICATED"
        ok = requests.post(f"{base}/orchestrator", data='{"dryRun": true, "asOf": "2020-03-16"}', timeout=120,
                           headers={"Authorization": "Bearer serve-test-token-123",
                                    "Content-Type": "application/x-www-form-urlencoded"})
        assert ok.status_code == 200 and ok.json()["dry_run"] is True and ok.json()["status"] == "completed"
        plan = requests.get(f"{base}/strategy", timeout=60, headers={"Authorization": "Bearer serve-test-token-123"})
        assert plan.status_code == 200 and len(plan.json()["strategies"]) == 6
        assert requests.get(f"{base}/nothing", timeout=10).status_code == 404
    finally:
        code, out, err = stop(proc)
    assert code == 0, err
    lines = [line for line in out.splitlines() if line.strip()]
    assert lines and all(json.loads(line)["severity"] for line in lines)
    assert "serve-test-token-123" not in out + err
