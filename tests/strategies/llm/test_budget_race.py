"""The budget race of issue 14: 3 processes x 3 calls on one model, against one Firestore emulator.

Each process is a separate Python interpreter running a trader that shares the model
``m-shared`` of the fake OpenAI server (tests/support/llm.py: :func:`race_worker`).
The usage document must equal the sum of the replies' usage exactly, and a daily
budget of N tokens must never be exceeded, however the requests interleave.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from bus import paths
from bus.journal import BudgetUsage
from bus.store import read
from tests.fakes.fake_openai import Behaviour
from tests.support.llm import decision, reply

ROOT = Path(__file__).resolve().parents[3]
PROCESSES, CALLS = 3, 3
REPLIES = [(1000 + 37 * i, 100 + 11 * i) for i in range(PROCESSES * CALLS)]  # (prompt, completion) tokens


def race(srv, project: str, limit: int) -> list[str]:
    """Run the processes at once; return their output lines (one per decision)."""
    srv.script("m-shared", [Behaviour.ok(reply(decision("BTC-USDT", "hold")), prompt_tokens=p, completion_tokens=c)
                            for p, c in REPLIES])
    procs = [subprocess.Popen([sys.executable, "-c", "from tests.support.llm import race_worker; race_worker()",
                               project, srv.base_url, f"racer_{k}", str(CALLS), str(limit)],
                              cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for k in range(PROCESSES)]
    lines = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
        lines += out.splitlines()
    assert len(lines) == PROCESSES * CALLS, lines
    return lines


def usage_doc(store) -> BudgetUsage:
    return read(store, paths.llm_usage("m-shared", datetime.now(timezone.utc).date().isoformat()), BudgetUsage)


def test_usage_is_the_exact_sum_of_the_replies_usage(srv, store, project, llm_env):
    lines = race(srv, project, limit=10_000_000)
    assert all(line.startswith("success") for line in lines), lines
    assert srv.calls("m-shared") == PROCESSES * CALLS
    u = usage_doc(store)
    assert (u.requests, u.prompt_tokens, u.completion_tokens) == (
        PROCESSES * CALLS, sum(p for p, _ in REPLIES), sum(c for _, c in REPLIES))
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens and u.reserved_tokens == 0
    assert abs(u.cost_usd - sum(p * 1.0 + c * 2.0 for p, c in REPLIES) / 1e6) < 1e-12


def test_a_budget_of_n_tokens_is_never_exceeded(srv, store, project, llm_env):
    limit = 12_000  # a worst case is ~8,000 (prompt bound ~7,200 + max_tokens 512): room for a few calls
    lines = race(srv, project, limit)
    served = srv.calls("m-shared")
    u = usage_doc(store)
    assert u.total_tokens <= limit
    assert 0 < served < PROCESSES * CALLS  # some asked, the rest refused before asking
    assert u.requests == served and u.total_tokens == sum(p + c for p, c in REPLIES[:served]), lines
    assert u.reserved_tokens == 0
    refused = [line for line in lines if not line.startswith("success")]
    assert len(refused) == PROCESSES * CALLS - served
    assert all("over_budget" in line and "does not fit" in line for line in refused), refused
