"""brokers.yaml, the broker factory, and secrets: from the environment only, never in logs,
exceptions or documents."""

from __future__ import annotations

import logging
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from brokers.base import BrokerConfigError, BrokerError, OrderRequest
from brokers.config import BrokersConfigError, BrokersFile
from brokers.secrets import redact
from brokers.sim import SimBroker
from pipeline.run import run_pipeline
from pipeline.settings import ConfigError, load_settings
from pipeline.wiring import make_broker
from tests.fakes.commander_scenario import write_scenario
from tests.fakes.fake_binance import FakeBinanceUSDM

ROOT = Path(__file__).resolve().parents[2]
KEY = "KEY-5b1f0e77c2d94a6e-never-print"
SECRET = "SECRET-a90d3c1e84f2b7d6-never-print"


def config_dir(tmp_path, brokers: dict | None = None, strategies_edit=None) -> Path:
    d = tmp_path / "config"
    shutil.copytree(ROOT / "config", d)
    if brokers is not None:
        (d / "brokers.yaml").write_text(yaml.safe_dump(brokers))
    if strategies_edit:
        raw = yaml.safe_load((d / "strategies.yaml").read_text())
        strategies_edit(raw["strategies"])
        (d / "strategies.yaml").write_text(yaml.safe_dump(raw))
    return d


def binance_brokers(**extra) -> dict:
    return {"defaults": {"paper": "bn"},
            "accounts": {"bn": {"kind": "ccxt", "exchange": "binanceusdm", "api_key_env": "T_SEC_KEY",
                                "secret_env": "T_SEC_SECRET", "enable_rate_limit": False, "timeout_ms": 1000,
                                "retries": 0, **extra}}}


def test_repository_brokers_yaml_loads_every_account():
    raw = yaml.safe_load((ROOT / "config" / "brokers.yaml").read_text())
    f = BrokersFile.model_validate(raw)
    assert f.name_for("paper") == "sim-paper" and f.account_for("paper").kind == "sim"
    assert f.account_for("live").kind == "ib" and f.account_for("live").ports == {"paper": 7497, "live": 7496}
    assert {a.kind for a in f.accounts.values()} == {"sim", "ib", "ccxt"}
    assert f.accounts["sim-paper"].account == "sim-paper"  # the store's document id stays what it was
    perp = f.accounts["sim-perp"]
    assert perp.instruments["BTC-USDT-PERP"].min_notional == 100 and perp.leverage["BTC-USDT-PERP"] == 3


def test_default_paper_account_builds_the_sim_broker(settings, store, provider):
    b = make_broker(store, settings, provider)
    assert isinstance(b, SimBroker) and b.account == "sim-paper"
    assert (b.default_costs.taker_fee_bps, b.default_costs.half_spread_bps) == (1.0, 2.0)


def test_missing_secret_is_a_clear_error_at_build_time(tmp_path, monkeypatch, store, provider):
    monkeypatch.delenv("T_SEC_KEY", raising=False)
    monkeypatch.setenv("T_SEC_SECRET", SECRET)
    settings = load_settings(config_dir(tmp_path, binance_brokers()))
    with pytest.raises(BrokerConfigError, match=r"account bn: environment variable T_SEC_KEY \(API key\) is not set"):
        make_broker(store, settings, provider)
    with pytest.raises(ConfigError, match="hyperliquid needs wallet_address_env"):
        load_settings(config_dir(tmp_path / "2", {"defaults": {"paper": "hl"}, "accounts": {
            "hl": {"kind": "ccxt", "exchange": "hyperliquid", "private_key_env": "X"}}}))


def test_strategy_accounts_are_checked(tmp_path):
    def name_account(account):
        def edit(items):
            items[0]["account"] = account
        return edit

    assert load_settings(config_dir(tmp_path / "a", strategies_edit=name_account("sim-paper")))
    with pytest.raises(ConfigError, match="account 'nope' is not in brokers.yaml"):
        load_settings(config_dir(tmp_path / "b", strategies_edit=name_account("nope")))
    with pytest.raises(ConfigError, match="trades account 'ib' but mode 'paper' trades 'sim-paper'"):
        load_settings(config_dir(tmp_path / "c", strategies_edit=name_account("ib")))
    with pytest.raises(BrokersConfigError, match="no account named 'x'"):
        BrokersFile.model_validate({"defaults": {"paper": "x"}, "accounts": {}}).name_for("paper")


def _all_documents(store) -> list[str]:
    """Every document in the store's project, as text (collections walked recursively)."""
    out = []

    def walk(coll):
        for doc in coll.stream():
            out.append(f"{doc.reference.path} {doc.to_dict()}")
            for sub in doc.reference.collections():
                walk(sub)

    for coll in store.client.collections():
        walk(coll)
    return out


def test_secrets_never_reach_logs_exceptions_or_documents(tmp_path, monkeypatch, caplog, store, provider):
    monkeypatch.setenv("T_SEC_KEY", KEY)
    monkeypatch.setenv("T_SEC_SECRET", SECRET)
    caplog.set_level(logging.DEBUG)
    settings = load_settings(config_dir(tmp_path, binance_brokers()))
    errors: list[str] = []
    with FakeBinanceUSDM(KEY, "the-venue-expects-another-secret") as fake:
        broker = make_broker(store, settings, provider)
        fake.point_ccxt(broker.exchange)
        now = datetime.now(timezone.utc)
        write_scenario(store, now, {"BTC-USDT-PERP": 0.01}, sec_type="PERP", exchange="BINANCEUSDM", currency="USDT")
        res = run_pipeline(store, provider, broker, [], now)  # the venue refuses the signature: reconcile fails
        assert res.execution.status == "skipped" and "-1022" in res.reconcile_error
        errors.append(res.reconcile_error)
        for call in (lambda: broker.place_order(OrderRequest("s-1", "BTC-USDT-PERP", "BUY", 0.01), now),
                     lambda: broker.quotes(["NOPE-USDT-PERP"], now)):
            with pytest.raises(BrokerError) as raised:
                call()
            errors.append(str(raised.value))
            errors.append(repr(raised.value.__cause__))
        fake.down("refuse")
        with pytest.raises(BrokerError) as raised:
            broker.portfolio(now)
        errors.append(str(raised.value))
        errors.append(repr(broker))
    logging.getLogger("tests.careless").warning("a careless line: key=%s secret=%s", KEY, SECRET)
    logged = "\n".join(r.getMessage() for r in caplog.records) + caplog.text
    # ccxt logs every signed request with its headers at DEBUG, API key included: the check is real
    assert "signature=" in logged and "'X-MBX-APIKEY': '***'" in logged
    docs = _all_documents(store)
    assert any("executions/" in d for d in docs) and any("-1022" in d for d in docs)
    for text in [logged, *errors, *docs]:
        assert KEY not in text and SECRET not in text
    assert "key=*** secret=***" in logged
    assert redact("GET /x?timestamp=1&signature=abc123") == "GET /x?timestamp=1&signature=***"
    assert redact(f"{{'X-MBX-APIKEY': '{KEY}'}}") == "{'X-MBX-APIKEY': '***'}"
