"""LLM traders against the fake OpenAI server, with the real ``openai`` client and the Firestore emulator.

Retries of malformed replies, fallback along the chain, all models failing,
timeouts, 429 with backoff, JSON mode when structured output is refused, no key.
"""

from __future__ import annotations

import json
import time

import pytest

from bus import paths
from bus.journal import JournalEntry
from bus.store import read
from strategies.llm.trader import llm_intent
from tests.fakes.fake_openai import Behaviour, FakeOpenAIServer
from tests.support.llm import KEY_ENV, KEY_VALUE, decision, fund, model, reply, trader

GOOD = reply(decision())


def journal_of(store, intent) -> JournalEntry:
    assert intent.source.journal_ref, intent
    return read(store, intent.source.journal_ref, JournalEntry)


def test_good_answer_becomes_targets_with_structured_output(srv, store, market, llm_env):
    fund(store)
    srv.script("m-a", [Behaviour.ok(GOOD, prompt_tokens=1500, completion_tokens=200)])
    cfg = trader([model(srv, "m-a")])
    intent = llm_intent(cfg, market, store)
    assert intent.status == "success", intent.error_message
    [t] = intent.target_positions
    assert (t.symbol, t.notional, t.leverage, t.stop_loss, t.take_profit, t.confidence) == \
        ("BTC-USDT", 2000.0, 2.0, 66000.0, 76000.0, 80.0)
    assert (t.secType, t.exchange, t.currency) == ("CRYPTO", "BINANCE", "USDT")
    [req] = srv.chat_requests("m-a")
    assert req.response_format["type"] == "json_schema"
    assert req.response_format["json_schema"]["name"] == "trading_decisions"
    assert [m["role"] for m in req.messages] == ["system", "user"]
    j = journal_of(store, intent)
    assert (j.status, j.model, j.prompt_tokens, j.completion_tokens) == ("success", "m-a", 1500, 200)
    assert j.cost_usd == pytest.approx((1500 * 1.0 + 200 * 2.0) / 1e6)
    assert intent.source.prompt_digest == j.prompt_digest and intent.source.model == "m-a"


def test_malformed_reply_is_retried_then_recovers(srv, store, market, llm_env):
    srv.script("m-a", [Behaviour.malformed(prompt_tokens=100, completion_tokens=10),
                       Behaviour.ok({"decisions": [{"symbol": "BTC-USDT"}]}, prompt_tokens=100, completion_tokens=10),
                       Behaviour.ok(GOOD, prompt_tokens=100, completion_tokens=10)])
    cfg = trader([model(srv, "m-a")], malformed_retries=2)
    fund(store)
    intent = llm_intent(cfg, market, store)
    assert intent.status == "success" and intent.target_positions[0].symbol == "BTC-USDT"
    assert srv.calls("m-a") == 3
    j = journal_of(store, intent)
    assert [a.outcome for a in j.attempts] == ["malformed", "malformed", "ok"]
    assert "not JSON" in j.attempts[0].error and "decisions.0.action" in j.attempts[1].error
    assert j.total_tokens == 330  # malformed replies are billed too


def test_malformed_past_the_retries_falls_back_to_the_second_model(srv, store, market, llm_env):
    srv.set_default("m-a", Behaviour.malformed())
    srv.script("m-b", [Behaviour.ok(GOOD)])
    cfg = trader([model(srv, "m-a"), model(srv, "m-b")], malformed_retries=1)
    intent = llm_intent(cfg, market, store)
    assert intent.status == "success" and intent.source.model == "m-b"
    assert (srv.calls("m-a"), srv.calls("m-b")) == (2, 1)
    j = journal_of(store, intent)
    assert [(a.model, a.outcome) for a in j.attempts] == [("m-a", "malformed"), ("m-a", "malformed"), ("m-b", "ok")]


def test_server_error_falls_back_to_the_second_model(srv, store, market, llm_env):
    srv.script("m-a", [Behaviour.server_error()])
    srv.script("m-b", [Behaviour.ok(GOOD)])
    intent = llm_intent(trader([model(srv, "m-a"), model(srv, "m-b")]), market, store)
    assert intent.status == "success" and intent.source.model == "m-b"
    j = journal_of(store, intent)
    assert [(a.model, a.outcome) for a in j.attempts] == [("m-a", "http_error"), ("m-b", "ok")]
    assert "HTTP 500" in j.attempts[0].error


def test_all_models_failing_is_an_error_intent_and_journalled(srv, store, market, llm_env):
    srv.set_default("m-a", Behaviour.server_error(503))
    srv.set_default("m-b", Behaviour.malformed("I think BTC goes up"))
    intent = llm_intent(trader([model(srv, "m-a"), model(srv, "m-b")], malformed_retries=0), market, store)
    assert intent.status == "error" and intent.target_positions == []
    assert "all models failed" in intent.error_message and "m-a: http_error" in intent.error_message
    assert "m-b: malformed" in intent.error_message
    j = journal_of(store, intent)
    assert j.status == "error" and j.raw_response == "I think BTC goes up" and j.decisions == []


def test_timeout_falls_back(srv, store, market, llm_env):
    srv.script("m-slow", [Behaviour.sleep(5.0, then=Behaviour.ok(GOOD))])
    srv.script("m-b", [Behaviour.ok(GOOD)])
    cfg = trader([model(srv, "m-slow", timeout_seconds=0.3), model(srv, "m-b")])
    started = time.monotonic()
    intent = llm_intent(cfg, market, store)
    assert time.monotonic() - started < 3.0
    assert intent.status == "success" and intent.source.model == "m-b"
    j = journal_of(store, intent)
    assert j.attempts[0].outcome == "timeout" and "timeout 0.3 s" in j.attempts[0].error
    assert j.attempts[0].latency_ms >= 250


def test_rate_limit_is_retried_with_backoff(srv, store, market, llm_env):
    srv.script("m-a", [Behaviour.rate_limited(retry_after=0.2), Behaviour.rate_limited(retry_after=0.01),
                       Behaviour.ok(GOOD)])
    cfg = trader([model(srv, "m-a")], backoff_initial_seconds=0.1, rate_limit_retries=2)
    started = time.monotonic()
    intent = llm_intent(cfg, market, store)
    elapsed = time.monotonic() - started
    assert intent.status == "success" and srv.calls("m-a") == 3
    # first wait: max(0.1 exponential, 0.2 Retry-After); second: 0.2 exponential
    assert elapsed >= 0.4
    j = journal_of(store, intent)
    assert [a.outcome for a in j.attempts] == ["rate_limited", "rate_limited", "ok"]
    assert "retrying in 0.20 s" in j.attempts[0].error


def test_rate_limit_past_the_retries_falls_back(srv, store, market, llm_env):
    srv.set_default("m-a", Behaviour.rate_limited(retry_after=0.01))
    srv.script("m-b", [Behaviour.ok(GOOD)])
    cfg = trader([model(srv, "m-a"), model(srv, "m-b")], rate_limit_retries=1, backoff_initial_seconds=0.01)
    intent = llm_intent(cfg, market, store)
    assert intent.status == "success" and intent.source.model == "m-b"
    assert srv.calls("m-a") == 2


def test_json_schema_refused_falls_back_to_json_mode(store, market, llm_env):
    with FakeOpenAIServer(supports_json_schema=False) as srv:
        srv.script("m-a", [Behaviour.ok(GOOD)])
        intent = llm_intent(trader([model(srv, "m-a")]), market, store)
        assert intent.status == "success"
        assert [r.response_format["type"] for r in srv.chat_requests("m-a")] == ["json_schema", "json_object"]
        j = journal_of(store, intent)
        assert [a.outcome for a in j.attempts] == ["schema_unsupported", "ok"]
        again = llm_intent(trader([model(srv, "m-a")]), market, store)
        assert again.status == "success" and journal_of(store, again).cache_hit and srv.calls("m-a") == 2


def test_json_mode_model_asks_for_json_object(srv, store, market, llm_env):
    srv.script("m-a", [Behaviour.ok("```json\n" + json.dumps(GOOD) + "\n```")])
    intent = llm_intent(trader([model(srv, "m-a", response_format="json_object")]), market, store)
    assert intent.status == "success"
    assert srv.chat_requests("m-a")[0].response_format == {"type": "json_object"}


def test_no_api_key_is_skipped_naming_the_variable(srv, store, market, monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    srv.set_default("m-a", Behaviour.ok(GOOD))
    intent = llm_intent(trader([model(srv, "m-a")]), market, store)
    assert intent.status == "skipped"
    assert KEY_ENV in intent.error_message and "not set" in intent.error_message
    assert srv.requests == []
    assert store.get(paths.llm_state("llm_test")) is None


def test_a_missing_key_on_the_primary_uses_the_fallback(srv, store, market, llm_env):
    srv.script("m-b", [Behaviour.ok(GOOD)])
    cfg = trader([model(srv, "m-a", api_key_env="INTENT_BUS_TEST_UNSET_KEY"), model(srv, "m-b")])
    intent = llm_intent(cfg, market, store)
    assert intent.status == "success" and intent.source.model == "m-b"
    j = journal_of(store, intent)
    assert (j.attempts[0].outcome, j.attempts[0].error) == (
        "no_api_key", "environment variable INTENT_BUS_TEST_UNSET_KEY is not set")


def test_the_api_key_is_never_stored(srv, store, market, llm_env):
    srv.script("m-a", [Behaviour.error(401, f"Incorrect API key provided: {KEY_VALUE}", code="invalid_api_key")])
    intent = llm_intent(trader([model(srv, "m-a")]), market, store)
    assert intent.status == "error"
    stored = json.dumps(read(store, intent.source.journal_ref, JournalEntry).model_dump(mode="json"))
    assert KEY_VALUE not in stored and KEY_VALUE not in intent.error_message
    assert "Incorrect API key provided: ***" in stored
