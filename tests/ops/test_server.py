"""``python main.py serve`` as a person runs it: the functions on loopback, the configuration applied,
a bearer token when one is set, and a clean stop."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import requests

from bus import paths
from bus.store import FirestoreStore
from tests.support.functions import ROOT


def start(env):
    proc = subprocess.Popen([sys.executable, "main.py", "serve", "--port", "0"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    seen = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        m = re.search(r"functions on (http://127\.0\.0\.1:\d+)", line)
        if m:
            return proc, m.group(1)
    proc.kill()
    raise AssertionError(f"serve did not start: {''.join(seen)}")


def stop(proc):
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


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
