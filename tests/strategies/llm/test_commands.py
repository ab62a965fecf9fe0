"""The LLM commands as a person runs them (subprocesses on the shared emulator, models on the fake server):
``run --dry-run`` (recorded replies only), ``llm render``, ``journal replay``, ``llm resume``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.cli.test_llm_commands import config_with_traders
from tests.fakes.fake_openai import Behaviour
from tests.support.llm import KEY_ENV, KEY_VALUE, decision, reply

ROOT = Path(__file__).resolve().parents[3]
BTC = decision("BTC-USDT", "open_long", notional=3000)


def cli(args, env_extra):
    env = {**os.environ, **env_extra}
    return subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=240)


def test_dry_run_render_and_journal_replay(tmp_path, srv, emulator, project):
    for i in (1, 2, 3):
        srv.set_default(f"m-{i}", Behaviour.ok(reply(BTC, decision("ETH-USDT", "open_long", notional=900,
                                                                   confidence=65, stop_loss=3500,
                                                                   take_profit=4200))))
    cfg = config_with_traders(tmp_path, srv)
    env = {"GOOGLE_CLOUD_PROJECT": project, "FIRESTORE_EMULATOR_HOST": emulator.host, KEY_ENV: KEY_VALUE,
           "INTENT_BUS_LLM_REPLIES": str(tmp_path / "replies")}
    replies = ["--config", str(cfg)]

    # a dry run asks no model: nothing is recorded yet, so each trader says what is missing
    r = cli(["run", "--json", "--dry-run", "--as-of", "2024-03-14", *replies], env)
    assert r.returncode in (0, 3), r.stderr
    doc = json.loads(r.stdout)
    llm = {k: v for k, v in doc["strategies"].items() if k.startswith("llm_cli_")}
    assert all(v["status"] == "skipped" for v in llm.values()), llm
    assert sum(srv.calls(f"m-{i}") for i in (1, 2, 3)) == 0
    # with --llm live it asks
    r = cli(["run", "--json", "--dry-run", "--llm", "live", "--as-of", "2024-03-14", *replies], env)
    assert r.returncode in (0, 3), r.stderr
    assert sum(srv.calls(f"m-{i}") for i in (1, 2, 3)) == 3

    # the prompt of the next day, with the memory of this one; no model asked
    r = cli(["llm", "render", "llm_cli_1", "--as-of", "2024-03-15", *replies], env)
    assert r.returncode == 0, r.stderr
    assert "## system" in r.stdout and "## user" in r.stdout
    assert "You are asked for decisions every 4 hours" in r.stdout
    assert "YOUR LATEST DECISIONS" in r.stdout and "BTC-USDT open_long 3000.00 USDT 2x at" in r.stdout
    assert "REJECTED (min_risk_reward)" in r.stdout and "PnL since" in r.stdout
    assert sum(srv.calls(f"m-{i}") for i in (1, 2, 3)) == 3

    # journal replay: the stored reply checked again, today and with a stricter configuration
    r = cli(["journal", "llm_cli_1", "--last", "1", "--json"], env)
    [entry] = json.loads(r.stdout)
    r = cli(["journal", "replay", entry["decision_id"], *replies], env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "same verdict as recorded" in r.stdout
    strict = tmp_path / "strict"
    strict.mkdir()
    for f in cfg.iterdir():
        if f.is_file():
            (strict / f.name).write_bytes(f.read_bytes())
    for sub in ("backtest", "prompts"):
        if (cfg / sub).exists():
            (strict / sub).symlink_to(cfg / sub)
    doc = yaml.safe_load((strict / "strategies.yaml").read_text())
    for s in doc["strategies"]:
        if s["strategy_id"] == "llm_cli_1":
            s["llm"]["risk"]["min_confidence"] = 90
    (strict / "strategies.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    r = cli(["journal", "replay", entry["decision_id"], "--config", str(strict)], env)
    assert r.returncode == 1 and "DIFFERENT" in r.stdout and "min_confidence" in r.stdout
    assert sum(srv.calls(f"m-{i}") for i in (1, 2, 3)) == 3

    r = cli(["llm", "resume", "llm_cli_1"], env)
    assert r.returncode == 0 and "was not paused" in r.stdout
