"""Two ``python main.py run`` at once on one account: the second is refused by the lease, never trades twice.

The first run's broker read is slowed (fault point ``reconcile.read``). The test starts the second run
only once the first holds the account's lease (it polls the store), so the overlap is certain on any
machine. ``INTENT_BUS_OVERLAP_TRIALS`` / ``INTENT_BUS_OVERLAP_DELAY`` scale it up (10 trials of 8 s are
reported in the issue's note).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bus import paths
from bus.store import FirestoreStore

ROOT = Path(__file__).resolve().parents[2]
TRIALS = int(os.environ.get("INTENT_BUS_OVERLAP_TRIALS", "2"))
DELAY = float(os.environ.get("INTENT_BUS_OVERLAP_DELAY", "3"))


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "main.py", *args], cwd=ROOT, env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_lease(store: FirestoreStore, deadline_s: float = 120.0) -> dict:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        doc = store.get(paths.lock("paper"))
        if doc:
            return doc
        time.sleep(0.05)  # polling the store with a deadline, not waiting for a guessed time
    raise AssertionError("the first run never took the lease")


@pytest.mark.parametrize("trial", range(TRIALS))
def test_overlapping_runs_place_each_order_once(emulator, project, trial):
    env = {"GOOGLE_CLOUD_PROJECT": project, "FIRESTORE_EMULATOR_HOST": emulator.host}
    store = FirestoreStore(project)
    args = ["run", "--json", "--as-of", "2020-03-16"]
    first = start(args, {**env, "INTENT_BUS_FAULTS": f"reconcile.read=delay:{DELAY}"})
    try:
        wait_for_lease(store)
        second = subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, env={**os.environ, **env},
                                capture_output=True, text=True, timeout=300)
    finally:
        out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert second.returncode == 0, second.stderr
    a, b = json.loads(out), json.loads(second.stdout)
    assert a["status"] == "completed" and a["orders"]
    assert b["status"] == "skipped" and "lease refused" in b["summary"] and b["orders"] == []
    sim = store.get("sim_accounts/sim-paper")  # the paper account: what the venue holds
    held = {s: p["quantity"] for s, p in sim["positions"].items() if p["quantity"]}
    wanted = {o["symbol"]: (o["totalQuantity"] if o["action"] == "BUY" else -o["totalQuantity"]) for o in a["orders"]}
    assert held == pytest.approx(wanted)  # each order once: the account holds exactly the first run's orders
    books: dict[str, float] = {}
    for sid, _ in store.list_docs("strategies"):
        book = store.get(paths.book(sid)) or {"positions": {}}
        for sym, p in book["positions"].items():
            books[sym] = books.get(sym, 0.0) + p["quantity"]
    assert books == pytest.approx(held)  # the books equal the account
