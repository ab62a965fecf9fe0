"""The independent fault scenarios of issue 14, each against the project's fake OpenAI server on 127.0.0.1,
with the real ``openai`` client, through the trader (:func:`llm_intent`) and the Firestore emulator.

Malformed, schema-violating, refusal, 429, 500, timeout, no ``usage``, huge reply, ``finish_reason: length``;
also a tool call, the circuit breaker per model and the failure-rate pause.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from bus import paths
from bus.journal import BudgetUsage, JournalEntry, TraderState
from bus.store import read
from strategies.llm import breaker, tokens
from strategies.llm.journal import DOC_LIMIT_BYTES, size_bytes
from strategies.llm.trader import llm_intent
from tests.fakes.fake_openai import Behaviour
from tests.support.llm import decision, fund, model, reply, trader

GOOD = reply(decision())
NOW = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)


def journal_of(store, intent) -> JournalEntry:
    assert intent.source.journal_ref, intent
    return read(store, intent.source.journal_ref, JournalEntry)


def usage(store, model_id) -> BudgetUsage:
    return read(store, paths.llm_usage(model_id, NOW.date().isoformat()), BudgetUsage)


def two(srv, **kw):
    return trader([model(srv, "m-a"), model(srv, "m-b")], cache_enabled=False, **kw)


def test_malformed_reply_is_retried_then_falls_back(srv, store, market, llm_env):
    srv.set_default("m-a", Behaviour.malformed('{"decisions": [{"symbol": "BTC-USDT", "act'))
    srv.script("m-b", [Behaviour.ok(GOOD)])
    intent = llm_intent(two(srv, malformed_retries=1), market, store, now=NOW)
    assert intent.status == "success" and intent.source.model == "m-b"
    assert (srv.calls("m-a"), srv.calls("m-b")) == (2, 1)
    j = journal_of(store, intent)
    assert [a.outcome for a in j.attempts] == ["malformed", "malformed", "ok"] and "not JSON" in j.attempts[0].error


def test_schema_violating_reply_is_malformed_and_names_the_field(srv, store, market, llm_env):
    bad = {"decisions": [{**decision(), "action": "buy_the_dip", "confidence": 250}]}
    srv.set_default("m-a", Behaviour.ok(bad))
    srv.script("m-b", [Behaviour.ok(GOOD)])
    intent = llm_intent(two(srv, malformed_retries=0), market, store, now=NOW)
    assert intent.status == "success" and intent.source.model == "m-b"
    a = journal_of(store, intent).attempts[0]
    assert a.outcome == "malformed" and "decisions.0.action" in a.error and "(+1 more)" in a.error


def test_refusal_is_journalled_not_retried_on_that_model_and_falls_back(srv, store, market, llm_env):
    text = "I'm sorry, but I can't help with speculative leveraged trading. " * 3
    srv.set_default("m-a", Behaviour.refused(text, prompt_tokens=2000, completion_tokens=40))
    srv.script("m-b", [Behaviour.ok(GOOD)])
    intent = llm_intent(two(srv, malformed_retries=2), market, store, now=NOW)
    assert intent.status == "success" and intent.source.model == "m-b"
    assert srv.calls("m-a") == 1  # never asked again, whatever malformed_retries says
    j = journal_of(store, intent)
    refused = j.attempts[0]
    assert (refused.outcome, refused.refusal) == ("refused", text)  # the whole text, not "empty reply"
    assert (refused.prompt_tokens, refused.completion_tokens) == (2000, 40)  # billed as reported
    assert usage(store, "m-a").total_tokens == 2040


def test_a_refusal_on_every_model_is_an_error_naming_the_refusal(srv, store, market, llm_env):
    srv.set_default("m-a", Behaviour.refused("No."))
    intent = llm_intent(trader([model(srv, "m-a")], malformed_retries=2), market, store, now=NOW)
    assert intent.status == "error" and "m-a: refused (refused: No.)" in intent.error_message
    assert srv.calls("m-a") == 1


def test_rate_limited_is_retried_after_retry_after_then_answers(srv, store, market, llm_env):
    srv.script("m-a", [Behaviour.rate_limited(retry_after=0.05), Behaviour.ok(GOOD)])
    intent = llm_intent(trader([model(srv, "m-a")], backoff_initial_seconds=0.01), market, store, now=NOW)
    assert intent.status == "success" and srv.calls("m-a") == 2
    assert [a.outcome for a in journal_of(store, intent).attempts] == ["rate_limited", "ok"]
    assert usage(store, "m-a").requests == 1  # a 429 is not billed


def test_server_error_falls_back_and_releases_its_reservation(srv, store, market, llm_env):
    srv.script("m-a", [Behaviour.server_error(500)])
    srv.script("m-b", [Behaviour.ok(GOOD)])
    cfg = trader([model(srv, "m-a", daily_token_budget=100_000), model(srv, "m-b")], cache_enabled=False)
    intent = llm_intent(cfg, market, store, now=NOW)
    assert intent.status == "success" and intent.source.model == "m-b"
    u = usage(store, "m-a")
    assert (u.requests, u.total_tokens, u.reserved_tokens) == (0, 0, 0)  # reserved, then given back


def test_timeout_falls_back(srv, store, market, llm_env):
    srv.script("m-a", [Behaviour.sleep(5.0, then=Behaviour.ok(GOOD))])
    srv.script("m-b", [Behaviour.ok(GOOD)])
    cfg = trader([model(srv, "m-a", timeout_seconds=0.3), model(srv, "m-b")], cache_enabled=False)
    intent = llm_intent(cfg, market, store, now=NOW)
    assert intent.status == "success" and intent.source.model == "m-b"
    assert journal_of(store, intent).attempts[0].outcome == "timeout"


def test_no_usage_is_charged_by_an_estimate_and_flagged(srv, store, market, llm_env):
    srv.script("m-a", [Behaviour.ok(GOOD).without_usage()])
    intent = llm_intent(trader([model(srv, "m-a")], cache_enabled=False), market, store, now=NOW)
    assert intent.status == "success"
    j = journal_of(store, intent)
    [a] = j.attempts
    assert a.usage_estimated and a.prompt_tokens == tokens.estimate_messages([j.system_prompt, j.user_prompt])
    assert a.cost_usd > 0
    u = usage(store, "m-a")
    assert (u.estimated_requests, u.estimated_tokens, u.total_tokens) == (1, a.prompt_tokens + a.completion_tokens,
                                                                          a.prompt_tokens + a.completion_tokens)


def test_huge_reply_is_used_and_its_journal_entry_stays_small(srv, store, market, llm_env):
    huge = reply(decision(reasoning="the trend is up; " * 60_000))  # about 1 MB
    srv.script("m-a", [Behaviour.ok(huge)])
    fund(store)
    intent = llm_intent(trader([model(srv, "m-a")]), market, store, now=NOW)
    assert intent.status == "success" and intent.target_positions[0].symbol == "BTC-USDT"
    j = journal_of(store, intent)
    assert size_bytes(j) <= DOC_LIMIT_BYTES and "raw_response" in j.summarised
    assert store.get(paths.llm_cache(j.request_digest)) is None  # too large to cache


def test_length_is_retried_once_with_a_larger_max_tokens(srv, store, market, llm_env):
    long_reply = reply(decision(reasoning="x" * 2400))  # about 700 tokens at 4 characters a token
    srv.set_default("m-a", Behaviour.truncated(long_reply, prompt_tokens=1000))
    cfg = trader([model(srv, "m-a", max_tokens=512, daily_token_budget=100_000)], cache_enabled=False)
    intent = llm_intent(cfg, market, store, now=NOW)
    assert intent.status == "success"
    assert [r.max_tokens for r in srv.chat_requests("m-a")] == [512, 1024]
    j = journal_of(store, intent)
    assert [(a.outcome, a.max_tokens, a.finish_reason) for a in j.attempts] == [
        ("truncated", 512, "length"), ("ok", 1024, "stop")]
    assert usage(store, "m-a").reserved_tokens == 0


def test_length_twice_falls_back(srv, store, market, llm_env):
    srv.set_default("m-a", Behaviour.truncated(reply(decision(reasoning="x" * 20_000))))
    srv.script("m-b", [Behaviour.ok(GOOD)])
    intent = llm_intent(two(srv), market, store, now=NOW)
    assert intent.status == "success" and intent.source.model == "m-b"
    assert [r.max_tokens for r in srv.chat_requests("m-a")] == [512, 1024]


def test_length_retry_that_does_not_fit_the_budget_is_not_sent(srv, store, market, llm_env):
    srv.set_default("m-a", Behaviour.truncated(reply(decision(reasoning="x" * 20_000)), prompt_tokens=100))
    # room for the first request's worst case (prompt bound ~7,900 + 512), not for the retry's (+ 1,024)
    cfg = trader([model(srv, "m-a", daily_token_budget=8_900)], cache_enabled=False)
    intent = llm_intent(cfg, market, store, now=NOW)
    assert intent.status == "error" and srv.calls("m-a") == 1
    j = journal_of(store, intent)
    assert [a.outcome for a in j.attempts] == ["truncated", "over_budget"]
    assert usage(store, "m-a").total_tokens <= 8_900


def test_a_tool_call_answer_is_read_as_the_reply(srv, store, market, llm_env):
    srv.script("m-a", [Behaviour.tool_call("trading_decisions", GOOD)])
    fund(store)
    intent = llm_intent(trader([model(srv, "m-a")]), market, store, now=NOW)
    assert intent.status == "success" and intent.target_positions[0].symbol == "BTC-USDT"
    assert "tool call (trading_decisions)" in journal_of(store, intent).attempts[0].error


def test_circuit_breaker_skips_a_failing_model_for_its_cool_down(srv, store, market, llm_env):
    srv.set_default("m-a", Behaviour.server_error(503))
    srv.set_default("m-b", Behaviour.ok(GOOD))
    cfg = two(srv, breaker_failures=2, breaker_window_seconds=600, breaker_cooldown_seconds=1800)
    for k in range(3):
        intent = llm_intent(cfg, market, store, now=NOW + timedelta(minutes=k))
        assert intent.status == "success" and intent.source.model == "m-b"
    assert srv.calls("m-a") == 2  # the third decision passed it over
    j = journal_of(store, intent)
    assert j.attempts[0].outcome == "circuit_open" and "2 failed requests within 600 s" in j.attempts[0].error
    doc = store.get(breaker.path("m-a"))
    assert len(doc["openings"]) == 1 and doc["failed_requests"] == 2
    after = llm_intent(cfg, market, store, now=NOW + timedelta(minutes=35))  # cool-down over: asked again
    assert after.status == "success" and srv.calls("m-a") == 3


def test_a_trader_failing_more_than_ten_percent_is_paused_until_resumed(srv, store, market, llm_env):
    from strategies.llm.trader import resume

    srv.set_default("m-a", Behaviour.server_error(500))
    cfg = trader([model(srv, "m-a")], failure_window=10, max_failure_rate=0.1, breaker_failures=50)
    first = llm_intent(cfg, market, store, now=NOW)
    assert first.status == "error"  # 1 of 10: not more than 10 %
    second = llm_intent(cfg, market, store, now=NOW + timedelta(minutes=1))
    assert second.status == "error"
    state = read(store, paths.llm_state("llm_test"), TraderState)
    assert state.paused_at == NOW + timedelta(minutes=1) and "2 of the last 2 decisions failed" in state.paused_reason
    paused = llm_intent(cfg, market, store, now=NOW + timedelta(minutes=2))
    assert paused.status == "skipped" and "paused since" in paused.error_message
    assert "llm resume llm_test" in paused.error_message and srv.calls("m-a") == 2
    srv.set_default("m-a", Behaviour.ok(GOOD))
    resume(store, "llm_test")
    again = llm_intent(cfg, market, store, now=NOW + timedelta(minutes=3))
    assert again.status == "success" and json.loads(json.dumps(again.metadata.indicators))["model"] == "m-a"
