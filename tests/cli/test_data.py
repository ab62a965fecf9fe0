"""``python main.py data update`` and ``python main.py run --live-data`` as a person runs them, against the
fake Binance USD-M and the fake Yahoo on 127.0.0.1 (the CLI in a subprocess, the fakes in this process)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
import yaml

from market.funding import FundingHistory
from market.history import HistoryProvider
from tests.market.today import crypto_rows, sessions_closed_by
from tests.support.venues import fake_market_venues, market_yaml

ROOT = Path(__file__).resolve().parents[2]


def cli(args, env_extra=None):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def venues():
    with fake_market_venues() as v:
        yield v


@pytest.fixture
def cfg(venues, tmp_path):
    """The repository's configuration, market.yaml pointed at the fakes, the three classic strategies only."""
    _, binance, yahoo = venues
    d = tmp_path / "cfg"
    shutil.copytree(ROOT / "config", d)
    (d / "llm_traders.yaml").write_text("traders: []\n")
    (d / "market.yaml").write_text(yaml.safe_dump(market_yaml(binance.base_url, yahoo.base_url)))
    return d


def requests(venues) -> int:
    _, binance, yahoo = venues
    return len(binance.requests("/fapi/v1/klines")) + len(yahoo.chart_requests())


def test_data_update_fills_the_cache_then_costs_nothing(venues, cfg, tmp_path):
    state = tmp_path / "state"
    r = cli(["data", "update", "--config", str(cfg), "--state-dir", str(state)])
    assert r.returncode == 0, r.stderr
    assert "4/4" in r.stderr, r.stderr  # the progress bar, on stderr
    assert "binance" in r.stdout and "SPY" in r.stdout
    spy = pd.read_csv(state / "bars" / "yahoo" / "SPY-1d.csv")
    assert spy["timestamp"].iloc[-1].startswith(sessions_closed_by(venues[0], 1)[-1].isoformat())
    assert (state / "bars" / "binance" / "BTC-USDT-1d.csv").exists()
    before = requests(venues)
    r = cli(["data", "update", "--config", str(cfg), "--state-dir", str(state), "--json"])
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert [s["requested"] for s in doc["series"]] == [False] * 4 and requests(venues) == before


def test_data_update_bundled_appends_to_the_bundled_files(venues, cfg, tmp_path):
    bundled = tmp_path / "bundled"
    bundled.mkdir()
    shutil.copy(HistoryProvider().key("SPY").path, bundled)
    r = cli(["data", "update", "--config", str(cfg), "--state-dir", str(tmp_path / "state"), "--symbols", "SPY",
             "--bundled", "--bundled-dir", str(bundled), "--json"])
    assert r.returncode == 0, r.stderr
    [row] = json.loads(r.stdout)["series"]
    assert row["symbol"] == "SPY" and row["bundled_appended"] > 0
    spy = HistoryProvider([bundled]).frame("SPY")
    assert spy.index[-1].date() == sessions_closed_by(venues[0], 1)[-1]
    assert spy.index.is_monotonic_increasing and not spy.index.duplicated().any()


def test_data_update_refreshes_the_configured_funding_rates(venues, cfg, tmp_path):
    now, binance, yahoo = venues
    eight_h = 8 * 3600 * 1000
    newest = int(now.timestamp()) // (8 * 3600) * eight_h  # the newest settlement (00:00, 08:00, 16:00 UTC)
    rates = [(newest - i * eight_h, f"{0.0001 * (1 + i % 3):.6f}") for i in range(30)][::-1]
    binance.set_funding("BTCUSDT", rates)
    binance.set_klines("BTCUSDT", "4h", crypto_rows("BTC-USDT", now, timeframe="4h"))
    market = yaml.safe_load((cfg / "market.yaml").read_text())
    market["sources"]["usdm"] = {"kind": "ccxt", "exchange": "binanceusdm", "base_url": binance.base_url,
                                 "retry_wait": 0.01}
    market["symbols"]["BTC-USDT-PERP"] = {"bars": "usdm", "funding": "usdm", "timeframes": ["4h"]}
    (cfg / "market.yaml").write_text(yaml.safe_dump(market))
    state = tmp_path / "state"
    asked = len(binance.requests("/fapi/v1/fundingRate"))
    r = cli(["data", "update", "--config", str(cfg), "--state-dir", str(state), "--symbols", "BTC-USDT-PERP"])
    assert r.returncode == 0, r.stderr
    assert "2/2" in r.stderr and "usdm BTC-USDT-PERP funding" in r.stderr, r.stderr  # the progress bar
    assert len(binance.requests("/fapi/v1/fundingRate")) > asked
    cached = pd.read_csv(state / "bars" / "usdm" / "BTC-USDT-PERP-funding.csv")
    assert pd.Timestamp(cached["timestamp"].iloc[-1]) == pd.Timestamp(newest, unit="ms", tz="UTC")
    assert cached["close"].iloc[-1] == pytest.approx(float(rates[-1][1]))
    # Nothing is due before the next settlement: the second update asks nothing; --timeframes funding alone.
    asked = len(binance.requests("/fapi/v1/fundingRate"))
    r = cli(["data", "update", "--config", str(cfg), "--state-dir", str(state), "--timeframes", "funding", "--json"])
    assert r.returncode == 0, r.stderr
    [row] = json.loads(r.stdout)["series"]
    assert row["symbol"] == "BTC-USDT-PERP" and row["timeframe"] == "funding" and row["error"] is None
    assert row["requested"] is False and row["appended"] == 0
    assert datetime.fromisoformat(row["last_close"]) == pd.Timestamp(newest, unit="ms", tz="UTC")
    assert len(binance.requests("/fapi/v1/fundingRate")) == asked
    # --bundled appends the cached settlements to the bundled funding file, where FundingHistory reads them.
    bundled = tmp_path / "bundled"
    bundled.mkdir()
    shutil.copy(ROOT / "market" / "data" / "binanceusdm_BTC-USDT-PERP_funding.csv", bundled)
    r = cli(["data", "update", "--config", str(cfg), "--state-dir", str(state), "--timeframes", "funding",
             "--bundled", "--bundled-dir", str(bundled), "--json"])
    assert r.returncode == 0, r.stderr
    [row] = json.loads(r.stdout)["series"]
    assert row["bundled_appended"] > 0 and row["error"] is None
    history = FundingHistory([bundled]).series("BTC-USDT")
    assert history.index[-1] == pd.Timestamp(newest, unit="ms", tz="UTC") and history.index.is_monotonic_increasing
    assert history.iloc[-1] == pytest.approx(float(rates[-1][1]))


@pytest.mark.parametrize("args, message", [
    (["--symbols", "QQQ"], "--symbols QQQ: not fetched by market.yaml"),
    (["--timeframes", "5m"], "--timeframes 5m: not a timeframe"),
])
def test_data_update_bad_input_is_one_line(cfg, args, message, tmp_path):
    r = cli(["data", "update", "--config", str(cfg), "--state-dir", str(tmp_path), *args])
    assert r.returncode == 2 and message in r.stderr and r.stderr.strip().count("\n") == 0, r.stderr


def test_a_bad_market_config_is_one_line(cfg, tmp_path):
    (cfg / "market.yaml").write_text("symbols: {SPY: nowhere}\n")
    r = cli(["data", "update", "--config", str(cfg), "--state-dir", str(tmp_path)])
    assert r.returncode == 2 and "market.yaml: symbols.SPY.bars: no source named 'nowhere'" in r.stderr, r.stderr
    assert r.stderr.strip().count("\n") == 0


def test_run_live_data_trades_as_of_now_then_places_nothing(emulator, project, venues, cfg, tmp_path):
    env = {"GOOGLE_CLOUD_PROJECT": project, "FIRESTORE_EMULATOR_HOST": emulator.host}
    args = ["run", "--live-data", "--json", "--config", str(cfg), "--state-dir", str(tmp_path / "state")]
    r = cli(args, env)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert abs(datetime.fromisoformat(doc["as_of"]) - datetime.now(timezone.utc)) < timedelta(minutes=5)
    assert doc["status"] == "completed" and doc["orders"], doc
    assert all(s["status"] == "success" for s in doc["strategies"].values()), doc["strategies"]
    assert (tmp_path / "state" / "bars" / "yahoo" / "SPY-1d.csv").exists()
    before = requests(venues)
    r = cli(args, env)
    again = json.loads(r.stdout)
    assert r.returncode == 0 and again["status"] == "completed" and again["orders"] == [], again
    assert requests(venues) == before, "the second run finds every bar in the cache"


@pytest.mark.parametrize("args, message", [
    (["--live-data", "--as-of", "2020-03-16"], "as-of 2020-03-16 and 'as of now' exclude each other"),
    (["--as-of", "2031-01-01"], "as-of 2031-01-01 is outside the bundled data and the bar cache"),
])
def test_run_refuses_with_one_line(cfg, args, message, tmp_path):
    r = cli(["run", "--store", "memory", "--config", str(cfg), "--state-dir", str(tmp_path), *args])
    assert r.returncode == 2 and message in r.stderr and r.stderr.strip().count("\n") == 0, r.stderr


def test_run_with_a_live_broker_refuses_a_historical_as_of(cfg, tmp_path):
    brokers = yaml.safe_load((cfg / "brokers.yaml").read_text())
    brokers["defaults"]["paper"] = "ib"
    (cfg / "brokers.yaml").write_text(yaml.safe_dump(brokers))
    r = cli(["run", "--store", "memory", "--config", str(cfg), "--state-dir", str(tmp_path), "--as-of", "2020-03-16"])
    assert r.returncode == 2 and "the live broker account 'ib' (ib)" in r.stderr, r.stderr
