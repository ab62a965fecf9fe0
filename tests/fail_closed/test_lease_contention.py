"""Did not hold: of 20 concurrent ``POST /orchestrator {"dryRun": false}`` × 6 waves, 76 losers got a 500
("Failed to commit transaction in 5 attempts") with no ``skipped`` execution.

Now every wave has one winner, and every loser answers 409 with its ``skipped`` execution on record
("lease refused"), never a 500. CI runs ``INTENT_BUS_CONTENTION_WAVES`` (default 2) waves of
``INTENT_BUS_CONTENTION_REQUESTS`` (default 20) requests; the issue's figure is 5 waves. The counts are
printed (``pytest -s``).
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from datetime import date, timedelta

from bus import paths
from bus.models import Execution
from bus.store import read
from tests.support.functions import client, documents

CONCURRENT = int(os.environ.get("INTENT_BUS_CONTENTION_REQUESTS", "20"))
WAVES = int(os.environ.get("INTENT_BUS_CONTENTION_WAVES", "2"))


def wave(day: str) -> list[tuple[int, dict]]:
    """``CONCURRENT`` real runs as of ``day``, released together by a barrier: (status, body) each."""
    barrier = threading.Barrier(CONCURRENT)
    answers: list[tuple[int, dict]] = []
    lock = threading.Lock()

    def post() -> None:
        c = client("orchestrator")
        barrier.wait(timeout=120)
        resp = c.post("/", json={"dryRun": False, "asOf": day})
        with lock:
            answers.append((resp.status_code, resp.get_json()))

    threads = [threading.Thread(target=post) for _ in range(CONCURRENT)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    return answers


def test_concurrent_real_runs_trade_once_per_wave_and_every_loser_is_a_recorded_409(cloud, project):
    totals: Counter[int] = Counter()
    skipped_on_record = 0
    for n in range(WAVES):
        answers = wave((date(2020, 3, 16) + timedelta(days=n)).isoformat())
        codes = Counter(code for code, _ in answers)
        totals.update(codes)
        assert len(answers) == CONCURRENT and codes == {200: 1, 409: CONCURRENT - 1}, codes
        winner = next(doc for code, doc in answers if code == 200)
        assert winner["status"] in ("completed", "partial_success")
        for doc in (doc for code, doc in answers if code == 409):
            ex = read(cloud, paths.execution(doc["execution_id"]), Execution)
            assert ex is not None and ex.status == "skipped" and "lease refused" in (ex.reason or ""), doc
            skipped_on_record += 1
    executions = [d for p, d in documents(project).items() if p.startswith("executions/")]
    assert len([e for e in executions if e["status"] != "skipped"]) == WAVES
    print(f"contention: {WAVES} waves x {CONCURRENT} requests: 200 x {totals[200]}, 409 x {totals[409]}, "
          f"500 x {totals[500]}, other {sum(v for k, v in totals.items() if k not in (200, 409, 500))}; "
          f"skipped executions on record {skipped_on_record}")
