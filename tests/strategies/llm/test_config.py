"""Configuration of the LLM traders: the shipped files, validation, and versioned templates refused at load time."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from market.history import HistoryProvider
from strategies.llm.config import (
    PROMPTS_DIR,
    LLMConfigError,
    interval_seconds,
    load_models,
    load_traders,
    trader_spec,
    trader_strategy_configs,
)
from strategies.llm.prompts import header_version
from strategies.llm.trader import llm_intent
from tests.fakes.fake_openai import Behaviour, FakeOpenAIServer
from tests.support.llm import AS_OF, decision, model, reply, trader

ROOT = Path(__file__).resolve().parents[3]


def test_shipped_configuration_has_three_traders_on_different_models():
    configs = trader_strategy_configs()
    assert len(configs) >= 3
    primaries = {trader_spec(c).model_chain[0].id for c in configs}
    assert len(primaries) == len(configs)
    models = load_models()
    for c in configs:
        spec = trader_spec(c)
        assert c.kind == "llm" and c.capital_allocation == 0.1 and set(c.universe) >= {"BTC-USDT", "ETH-USDT"}
        assert len(spec.model_chain) >= 2, "each trader has a fallback"
        assert spec.prompt_schema_version == models.prompt_schema_version
        r = spec.risk
        assert r.max_positions >= 1 and r.min_confidence > 0 and r.min_risk_reward > 0 and r.stop_loss_enabled
        assert c.risk_parameters.max_leverage == pytest.approx(
            max(1.0, r.max_margin_use * max(r.major_coin_leverage, r.altcoin_leverage)))
    for m in models.models.values():
        assert m.api_key_env.isupper() and m.cost_per_million_output > 0 and m.base_url.startswith("https://")
    # The strategy documents hold no secret, only variable names; they are valid Firestore documents.
    text = json.dumps([c.to_store() for c in configs])
    assert "api_key_env" in text and "sk-" not in text


def test_every_shipped_template_carries_the_schema_version():
    version = load_models().prompt_schema_version
    files = sorted(PROMPTS_DIR.glob("*.j2"))
    assert len(files) >= 5
    assert {f.name: header_version(f.read_text()) for f in files} == {f.name: version for f in files}


def copy_config(tmp_path: Path) -> Path:
    d = tmp_path / "cfg"
    d.mkdir()
    for name in ("llm_models.yaml", "llm_traders.yaml"):
        shutil.copy(ROOT / "config" / name, d / name)
    shutil.copytree(PROMPTS_DIR, d / "prompts")
    models = yaml.safe_load((d / "llm_models.yaml").read_text())
    models["prompts_dir"] = "prompts"
    (d / "llm_models.yaml").write_text(yaml.safe_dump(models))
    return d


def test_a_version_mismatched_template_is_refused_at_load_time(tmp_path):
    d = copy_config(tmp_path)
    assert len(trader_strategy_configs(d)) == 3
    path = d / "prompts" / "mean_reversion.j2"
    path.write_text(path.read_text().replace("{# Version: 1 #}", "{# Version: 0.9 #}", 1))
    with pytest.raises(LLMConfigError) as exc:
        trader_strategy_configs(d)
    msg = str(exc.value)
    assert "trader llm_qwen_reversion" in msg and "mean_reversion.j2 is version 0.9" in msg
    assert "prompt_schema_version is 1: refusing to load it" in msg


def test_a_template_without_header_is_refused_even_when_extended(tmp_path):
    d = copy_config(tmp_path)
    base = d / "prompts" / "system_base.j2"
    base.write_text(base.read_text().split("\n", 1)[1])
    with pytest.raises(LLMConfigError) as exc:
        trader_strategy_configs(d)
    assert "system_base.j2 has no version header" in str(exc.value) and "{# Version: 1 #}" in str(exc.value)


@pytest.mark.parametrize("edit, words", [
    (lambda t, m: t["traders"][0].update(model="nope"), "unknown model(s) ['nope']"),
    (lambda t, m: t["traders"][0]["risk"].update(stop_loss_enabled=False),
     "min_risk_reward > 0 needs stop_loss_enabled"),
    (lambda t, m: t["traders"][0].update(decision_interval="4 weeks"), "decision_interval"),
    (lambda t, m: t["traders"][1].update(id=t["traders"][0]["id"]), "duplicate trader ids"),
    (lambda t, m: t["traders"][0].update(prompt_template="missing.j2"), "template 'missing.j2' not found"),
    (lambda t, m: m["models"]["deepseek-chat"].update(api_key="sk-inline"), "api_key: Extra inputs are not permitted"),
    (lambda t, m: m.update(prompt_schema_version="2"), "is version 1, but prompt_schema_version is 2"),
])
def test_bad_configuration_is_refused_naming_the_field(tmp_path, edit, words):
    d = copy_config(tmp_path)
    t = yaml.safe_load((d / "llm_traders.yaml").read_text())
    m = yaml.safe_load((d / "llm_models.yaml").read_text())
    edit(t, m)
    (d / "llm_traders.yaml").write_text(yaml.safe_dump(t))
    (d / "llm_models.yaml").write_text(yaml.safe_dump(m))
    with pytest.raises(LLMConfigError) as exc:
        trader_strategy_configs(d)
    assert words in str(exc.value)


def test_no_traders_file_means_no_traders(tmp_path):
    assert trader_strategy_configs(tmp_path) == [] and load_traders(tmp_path) == []


def test_interval_parsing():
    assert [interval_seconds(x) for x in ("30m", "4h", "1d")] == [1800, 14400, 86400]
    with pytest.raises(ValueError):
        interval_seconds("0h")


def test_a_template_changed_after_loading_is_refused_at_run_time(tmp_path, llm_env):
    prompts = tmp_path / "prompts"
    shutil.copytree(PROMPTS_DIR, prompts)
    with FakeOpenAIServer() as srv:
        srv.set_default("m-a", Behaviour.ok(reply(decision())))
        cfg = trader([model(srv, "m-a")], prompts_dir=str(prompts))
        (prompts / "context.j2").write_text("{# Version: 2 #}\nchanged")
        from bus.store import MemoryStore

        intent = llm_intent(cfg, HistoryProvider().view(AS_OF), MemoryStore())
        assert intent.status == "error" and "context.j2 is version 2" in intent.error_message
        assert srv.requests == []


def test_fallbacks_are_tried_in_priority_order():
    srv = type("Srv", (), {"base_url": "http://127.0.0.1:9/v1"})
    chain = trader([model(srv, "main", priority=2), model(srv, "late", priority=3), model(srv, "early", priority=1),
                    model(srv, "tie", priority=3)])
    assert [m.id for m in trader_spec(chain).model_chain] == ["main", "early", "late", "tie"]
