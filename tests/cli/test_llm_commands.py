"""``python main.py run`` with three LLM traders answering through the fake server, then ``leaderboard`` and
``journal TRADER_ID --last N``, as a person runs them (subprocesses on an existing emulator)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.fakes.fake_openai import Behaviour
from tests.support.llm import KEY_ENV, KEY_VALUE, decision, model, reply, trader

ROOT = Path(__file__).resolve().parents[2]
CLASSIC = {"spy_macd_vixy": 0.3, "crypto_trend": 0.2, "test_signal_generator": 0.1}


def cli(args, env_extra):
    env = dict(os.environ)
    env.update(env_extra)
    return subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=240)


def config_with_traders(tmp_path: Path, srv) -> Path:
    """config/ with the classic strategies rebalanced and three kind-llm strategies whose models are the fake's."""
    d = tmp_path / "cfg"
    shutil.copytree(ROOT / "config", d)
    (d / "llm_traders.yaml").unlink()  # the shipped traders are replaced by three on the fake server
    doc = yaml.safe_load((d / "strategies.yaml").read_text())
    for s in doc["strategies"]:
        s["capital_allocation"] = CLASSIC[s["strategy_id"]]
    for i in (1, 2, 3):
        cfg = trader([model(srv, f"m-{i}")], strategy_id=f"llm_cli_{i}")
        doc["strategies"].append(cfg.model_dump(mode="json", exclude_none=True))
    (d / "strategies.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return d


def test_run_leaderboard_and_journal_with_three_llm_traders(tmp_path, srv, emulator, project):
    srv.set_default("m-1", Behaviour.ok(reply(decision("BTC-USDT", "open_long", notional=3000))))
    srv.set_default("m-2", Behaviour.ok(reply(decision("ETH-USDT", "open_long", notional=1500, stop_loss=3500,
                                                       take_profit=4200),
                                              decision("BTC-USDT", "open_short", notional=2500, confidence=30))))
    srv.set_default("m-3", Behaviour.ok(reply(decision("BTC-USDT", "hold"))))
    cfg = config_with_traders(tmp_path, srv)
    env = {"GOOGLE_CLOUD_PROJECT": project, "FIRESTORE_EMULATOR_HOST": emulator.host, KEY_ENV: KEY_VALUE}
    for day in ("2024-03-14", "2024-03-15"):
        r = cli(["run", "--json", "--config", str(cfg), "--as-of", day], env)
        assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["status"] == "completed"
    llm = {k: v for k, v in doc["strategies"].items() if k.startswith("llm_cli_")}
    assert len(llm) == 3 and all(v["status"] == "success" for v in llm.values())
    assert any(o["symbol"] == "BTC-USDT" for o in doc["orders"])
    assert any(o["symbol"] == "ETH-USDT" for o in doc["orders"])
    assert srv.calls("m-1") == srv.calls("m-2") == srv.calls("m-3") == 2

    r = cli(["leaderboard", "--json"], env)
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert {"llm_cli_1", "llm_cli_2", "llm_cli_3", "spy_macd_vixy"} <= {x["strategy_id"] for x in rows}

    r = cli(["journal", "llm_cli_2", "--last", "1"], env)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "2024-03-15T21:30:00+00:00" in out and "2024-03-14T21:30" not in out
    assert "model m-2" in out and "success" in out and "ETH-USDT" in out
    assert "rejected: min_confidence" in out and "confidence 30 < minimum 60" in out
    assert "target book: ETH-USDT n=1500" in out
    r = cli(["journal", "llm_cli_2", "--last", "5", "--json"], env)
    entries = json.loads(r.stdout)
    assert [e["as_of"][:10] for e in entries] == ["2024-03-14", "2024-03-15"]
    assert entries[1]["user_prompt"].startswith("It has been 1440 minutes since you started trading")
    assert KEY_VALUE not in r.stdout


def test_journal_of_an_unknown_trader_is_one_line_exit_2(emulator, project):
    r = cli(["journal", "nobody"], {"GOOGLE_CLOUD_PROJECT": project, "FIRESTORE_EMULATOR_HOST": emulator.host})
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip() == ("error: no journal for trader 'nobody' (is it an LLM trader that has decided "
                                "at least once?)")
