"""Twenty ``POST /orchestrator {"dryRun": false}`` at once, in waves: one trades, every other one is a
409 with its ``skipped`` execution on record, never a 500 (a lease transaction that loses to others
is a refusal, not an error)."""

from __future__ import annotations

import os
import threading
from datetime import date, timedelta

from bus import paths
from bus.models import Execution
from bus.store import read
from tests.support.functions import client, documents

CONCURRENT = int(os.environ.get("INTENT_BUS_CONTENTION_REQUESTS", "20"))
WAVES = int(os.environ.get("INTENT_BUS_CONTENTION_WAVES", "3"))


def test_concurrent_real_runs_trade_once_per_wave_and_every_loser_is_a_recorded_409(cloud, project):
    first_day = date(2020, 3, 16)
    for wave in range(WAVES):
        day = (first_day + timedelta(days=wave)).isoformat()
        barrier = threading.Barrier(CONCURRENT)
        answers: list[tuple[int, dict]] = []
        lock = threading.Lock()

        def post(barrier: threading.Barrier, day: str, lock: threading.Lock, answers: list) -> None:
            c = client("orchestrator")
            barrier.wait(timeout=120)
            resp = c.post("/", json={"dryRun": False, "asOf": day})
            with lock:
                answers.append((resp.status_code, resp.get_json()))

        threads = [threading.Thread(target=post, args=(barrier, day, lock, answers)) for _ in range(CONCURRENT)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        codes = sorted(code for code, _ in answers)
        assert len(answers) == CONCURRENT and 500 not in codes, codes
        winners = [doc for code, doc in answers if code == 200]
        losers = [doc for code, doc in answers if code == 409]
        assert len(winners) == 1 and len(losers) == CONCURRENT - 1, codes
        assert winners[0]["status"] in ("completed", "partial_success")
        for doc in losers:
            ex = read(cloud, paths.execution(doc["execution_id"]), Execution)
            assert ex is not None and ex.status == "skipped" and "lease refused" in (ex.reason or ""), doc
    executions = [d for p, d in documents(project).items() if p.startswith("executions/")]
    traded = [e for e in executions if e["status"] != "skipped"]
    assert len(traded) == WAVES
