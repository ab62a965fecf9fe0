"""``workflows/pipeline.yaml`` end to end: the PyPI workflows-emulator runs it against the functions
served on loopback (functions-framework apps in a real HTTP server) and the Firestore emulator."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timezone

import pytest
import yaml

from bus import paths
from bus.models import Execution, Intent, PortfolioSnapshot
from bus.store import read
from ops.server import LocalFunctions
from ops.workflow_runner import local_argument, run_workflow
from pipeline.steps import lease_refused
from tests.support.functions import ROOT, documents
from tests.support.venues import fake_market_venues, market_yaml
from tests.workflows.proxy import StepProxy

AS_OF = "2020-03-16"
IDS = {"spy_macd_vixy", "crypto_trend", "test_signal_generator"}  # the classic strategies
LLM_IDS = {"llm_deepseek_momentum", "llm_qwen_reversion", "llm_gpt_conservative"}  # skipped: no API keys


@pytest.fixture
def functions(cloud):
    with LocalFunctions() as fns:
        yield fns


def test_the_workflow_runs_the_pipeline_and_the_execution_refers_to_its_documents(cloud, project, functions):
    arg = local_argument(functions.urls(), dry_run=False)
    arg.update(asOf=AS_OF, trigger="scheduled")
    result = run_workflow(arg, store=cloud)
    assert result["status"] == "completed" and result["strategy_failures"] == {} and result["reconcile_error"] == ""
    assert result["strategy_calls"] == {"called": 6, "failed": 0}
    assert result["strategies"] == {"intents": 6, "errored": 0, "missing": 0, "stale": 0, "skipped": 3}
    # Filled at once (fill_at: close) or resting for the next open (the paper broker's next_open): placed.
    placed = result["orders_placed"]
    assert placed and len(placed) == result["orders"] and all(o["status"] in ("Filled", "Submitted") for o in placed)
    ex = read(cloud, paths.execution(result["execution_id"]), Execution)
    assert ex.trigger == "scheduled" and not ex.dry_run and ex.as_of.date().isoformat() == AS_OF
    assert set(ex.context.strategy_intents_refs) == IDS | LLM_IDS
    for sid, ref in ex.context.strategy_intents_refs.items():
        assert ref == paths.intent(sid, read(cloud, paths.intent(sid), Intent).intent_id)  # this run's intents
        assert read(cloud, ref, Intent).status == ("skipped" if sid in LLM_IDS else "success")
    snap = read(cloud, ex.context.portfolio_snapshot_ref, PortfolioSnapshot)
    assert snap == read(cloud, paths.portfolio("paper"), PortfolioSnapshot) and snap.as_of == ex.as_of
    assert cloud.get(paths.lock("paper")) is None


def test_a_failing_strategy_function_is_recorded_and_the_commander_runs_without_it(cloud, project, functions):
    with StepProxy(functions.urls(), victims={"crypto_trend"}) as proxy:
        result = run_workflow({**local_argument(proxy.urls(), dry_run=False), "asOf": AS_OF}, store=cloud)
    assert proxy.calls["crypto_trend"] == 3  # the call and its two retries
    assert proxy.calls["spy_macd_vixy"] == proxy.calls["test_signal_generator"] == 1
    assert result["status"] == "completed" and result["strategy_calls"] == {"called": 6, "failed": 1}
    assert list(result["strategy_failures"]) == ["crypto_trend"]  # read from the execution by the local runner
    assert "no intent as of 2020-03-16T21:30:00+00:00" in result["strategy_failures"]["crypto_trend"]
    ex = read(cloud, paths.execution(result["execution_id"]), Execution)
    assert ex.errored_strategies == ["crypto_trend"] and ex.orders_placed
    failed = read(cloud, paths.intent("crypto_trend"), Intent)
    assert failed.status == "error" and "its function failed, timed out or was not reached" in failed.error_message
    assert not any(o.symbol.endswith("USDT") for o in ex.orders_placed)  # crypto_trend keeps its (empty) book


def test_a_held_lease_ends_the_workflow_as_skipped(cloud, project, functions):
    cloud.try_lease(paths.lock("paper"), "another-run", 600)
    result = run_workflow({**local_argument(functions.urls(), dry_run=False), "asOf": AS_OF}, store=cloud)
    assert result["status"] == "skipped" and "409" in result["reconcile_error"]
    ex = read(cloud, paths.execution(result["execution_id"]), Execution)
    assert lease_refused(ex) and not ex.orders_placed
    assert not [p for p in documents(project) if "/orders/" in p]


def test_workflow_run_command_dry_run(emulator, cloud, project):
    env = {**os.environ, "GOOGLE_CLOUD_PROJECT": project, "FIRESTORE_EMULATOR_HOST": emulator.host}
    r = subprocess.run([sys.executable, "main.py", "workflow", "run", "--dry-run", "--as-of", AS_OF,
                        "--strategies", "test_signal_generator"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-2000:]
    result = json.loads(r.stdout)
    assert result["dry_run"] is True and result["status"] == "completed" and result["strategy_failures"] == {}
    assert result["orders"] == len(result["orders_placed"]) > 0  # expanded from the store by the local runner
    assert all(o["status"] == "DryRun" for o in result["orders_placed"])
    assert read(cloud, paths.execution(result["execution_id"]), Execution).dry_run
    assert all(json.loads(line)["severity"] for line in r.stderr.splitlines() if line.startswith("{"))


def test_as_of_now_passes_the_plans_exact_instant_to_every_step(cloud, project, functions, tmp_path, monkeypatch):
    """as_of_now: true and no asOf: the plan resolves "now" once, and the strategies, reconcile and the
    Commander all run as of that same instant (not the date's 21:30 run time, nor their own clocks)."""
    with fake_market_venues() as (_, binance, yahoo):
        cfg = tmp_path / "cfg"
        shutil.copytree(ROOT / "config", cfg)
        (cfg / "market.yaml").write_text(yaml.safe_dump(market_yaml(binance.base_url, yahoo.base_url, as_of_now=True)))
        monkeypatch.setenv("INTENT_BUS_CONFIG_DIR", str(cfg))
        started = datetime.now(timezone.utc)
        result = run_workflow(local_argument(functions.urls(), dry_run=False, strategies=sorted(IDS)), store=cloud)
        ended = datetime.now(timezone.utc)
    assert result["status"] == "completed" and result["strategy_failures"] == {}, result
    ex = read(cloud, paths.execution(result["execution_id"]), Execution)
    assert started <= ex.as_of <= ended  # as of now, not a date's configured run time
    for sid in IDS:
        intent = read(cloud, ex.context.strategy_intents_refs[sid], Intent)
        assert intent.status == "success", intent.error_message
        assert intent.as_of == ex.as_of, (sid, intent.as_of, ex.as_of)
    snap = read(cloud, ex.context.portfolio_snapshot_ref, PortfolioSnapshot)
    assert snap.as_of == ex.as_of
    assert result["orders_placed"] and all(o["status"] in ("Filled", "Submitted") for o in result["orders_placed"])
