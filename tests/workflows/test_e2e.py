"""``workflows/pipeline.yaml`` end to end: the PyPI workflows-emulator runs it against the functions
served on loopback (functions-framework apps in a real HTTP server) and the Firestore emulator."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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

AS_OF = "2020-03-16"
IDS = {"spy_macd_vixy", "crypto_trend", "test_signal_generator"}  # the classic strategies
LLM_IDS = {"llm_deepseek_momentum", "llm_qwen_reversion", "llm_gpt_conservative"}  # skipped: no API keys


@pytest.fixture
def functions(cloud):
    with LocalFunctions() as fns:
        yield fns


class FailingStrategy:
    """A loopback proxy in front of the strategy function that answers 503 for one strategy id."""

    def __init__(self, target: str, victim: str) -> None:
        self.calls: dict[str, int] = {}
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _forward(self, body: bytes | None) -> None:
                req = urllib.request.Request(target + self.path.removeprefix("/strategy"), data=body,
                                             method=self.command, headers={"Content-Type": "application/json"})
                try:
                    with urllib.request.urlopen(req, timeout=60) as r:
                        code, payload = r.status, r.read()
                except urllib.error.HTTPError as e:
                    code, payload = e.code, e.read()
                self._answer(code, payload)

            def _answer(self, code: int, payload: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self):
                self._forward(None)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                sid = json.loads(body).get("strategy")
                proxy.calls[sid] = proxy.calls.get(sid, 0) + 1
                if sid == victim:
                    self._answer(503, json.dumps({"error": {"code": 503, "message": "instance crashed"}}).encode())
                else:
                    self._forward(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/strategy"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_the_workflow_runs_the_pipeline_and_the_execution_refers_to_its_documents(cloud, project, functions):
    arg = local_argument(functions.urls(), dry_run=False)
    arg.update(asOf=AS_OF, trigger="scheduled")
    result = run_workflow(arg)
    assert result["status"] == "completed" and result["strategy_failures"] == {} and result["reconcile_error"] == ""
    # Filled at once (fill_at: close) or resting for the next open (the paper broker's next_open): placed.
    assert result["orders"] and all(o["status"] in ("Filled", "Submitted") for o in result["orders"])
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
    proxy = FailingStrategy(functions.urls()["strategy"], victim="crypto_trend")
    try:
        urls = {**functions.urls(), "strategy": proxy.url}
        result = run_workflow({**local_argument(urls, dry_run=False), "asOf": AS_OF})
    finally:
        proxy.close()
    assert proxy.calls["crypto_trend"] == 3  # the call and its two retries
    assert proxy.calls["spy_macd_vixy"] == proxy.calls["test_signal_generator"] == 1
    assert result["status"] == "completed" and list(result["strategy_failures"]) == ["crypto_trend"]
    assert "503" in result["strategy_failures"]["crypto_trend"]
    ex = read(cloud, paths.execution(result["execution_id"]), Execution)
    assert ex.errored_strategies == ["crypto_trend"] and ex.orders_placed
    failed = read(cloud, paths.intent("crypto_trend"), Intent)
    assert failed.status == "error" and "503" in failed.error_message
    assert not any(o.symbol.endswith("USDT") for o in ex.orders_placed)  # crypto_trend keeps its (empty) book


def test_a_held_lease_ends_the_workflow_as_skipped(cloud, project, functions):
    cloud.try_lease(paths.lock("paper"), "another-run", 600)
    result = run_workflow({**local_argument(functions.urls(), dry_run=False), "asOf": AS_OF})
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
    assert result["dry_run"] is True and result["status"] == "completed"
    assert all(o["status"] == "DryRun" for o in result["orders"])
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
        result = run_workflow(local_argument(functions.urls(), dry_run=False, strategies=sorted(IDS)))
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
    assert result["orders"] and all(o["status"] in ("Filled", "Submitted") for o in result["orders"])  # placed
