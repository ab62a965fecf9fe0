"""Daily budget (reservation of the worst case, alert, exhaustion, cheapest model, skipped, replies without
usage) and the digest cache, on the emulator. The budget race across processes is in test_budget_race.py."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import pytest

from bus import paths
from bus.journal import BudgetUsage, CacheEntry, JournalEntry
from bus.store import read
from strategies.llm import tokens
from strategies.llm.budget import settle as record_usage
from strategies.llm.trader import llm_intent
from tests.fakes.fake_openai import Behaviour
from tests.support.llm import decision, fund, model, reply, trader

GOOD = reply(decision())
NOW = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)
DAY = "2026-01-05"


def usage(store, model_id) -> BudgetUsage | None:
    return read(store, paths.llm_usage(model_id, DAY), BudgetUsage)


def test_crossing_the_alert_threshold_is_logged_and_recorded(srv, store, market, llm_env, caplog):
    # each request first reserves its worst case (prompt bound ~7,200 + max_tokens 512): 20,000 leaves room
    srv.script("m-a", [Behaviour.ok(GOOD, prompt_tokens=9000, completion_tokens=1000),
                       Behaviour.ok(GOOD, prompt_tokens=6000, completion_tokens=500)])
    cfg = trader([model(srv, "m-a", daily_token_budget=20_000)], alert_threshold=0.8, cache_enabled=False)
    with caplog.at_level(logging.WARNING, logger="strategies.llm.budget"):
        first = llm_intent(cfg, market, store, now=NOW)
        assert usage(store, "m-a").alerted_at is None and not caplog.records
        second = llm_intent(cfg, market, store, now=NOW + timedelta(minutes=1))
    assert first.status == second.status == "success"
    u = usage(store, "m-a")
    assert (u.requests, u.total_tokens, u.token_limit, u.reserved_tokens) == (2, 16_500, 20_000, 0)
    assert u.alerted_at == NOW + timedelta(minutes=1) and u.exhausted_at is None
    assert len(u.alerts) == 1 and "reached 82% of its daily budget" in u.alerts[0]
    assert any("LLM budget alert" in r.getMessage() for r in caplog.records)
    j1 = read(store, first.source.journal_ref, JournalEntry)
    j2 = read(store, second.source.journal_ref, JournalEntry)
    assert j1.budget.alert is False and j2.budget.alert is True
    assert (j2.budget.tokens_used, j2.budget.token_limit) == (16_500, 20_000)


def test_cost_budget_counts_the_reported_tokens_at_the_configured_price(store):
    from strategies.llm.config import ModelSpec

    spec = ModelSpec(id="m-x", base_url="http://127.0.0.1:9/v1", api_key_env="X", model="x",
                     cost_per_million_input=2.0, cost_per_million_output=8.0, daily_cost_budget=0.01)
    u, crossed = record_usage(store, spec, NOW, 1000, 500, 0.8)
    assert u.cost_usd == pytest.approx(0.006) and crossed is False
    u, crossed = record_usage(store, spec, NOW, 1000, 500, 0.8)
    assert u.cost_usd == pytest.approx(0.012) and crossed is True and u.exhausted_at == NOW
    assert usage(store, "m-x") == u
    assert ["reached 120%" in a for a in u.alerts] == [True, False] and "budget exhausted" in u.alerts[1]


def test_primary_over_budget_switches_to_the_cheapest_model(srv, store, market, llm_env):
    expensive = model(srv, "m-pricey", cost_per_million_input=10, cost_per_million_output=30, daily_token_budget=100)
    middle = model(srv, "m-mid", cost_per_million_input=3, cost_per_million_output=9)
    cheap = model(srv, "m-cheap", cost_per_million_input=0.1, cost_per_million_output=0.2)
    record_usage(store, expensive, NOW, 90, 20, 0.8)  # 110 tokens used: past its 100
    srv.script("m-cheap", [Behaviour.ok(GOOD)])
    intent = llm_intent(trader([expensive, middle, cheap], cache_enabled=False), market, store, now=NOW)
    assert intent.status == "success" and intent.source.model == "m-cheap"
    assert srv.calls("m-pricey") == srv.calls("m-mid") == 0
    j = read(store, intent.source.journal_ref, JournalEntry)
    assert j.attempts[0].outcome == "over_budget"
    assert "switching to the cheapest model of the chain, m-cheap" in j.attempts[0].error


def test_exhausted_budget_on_the_cheapest_too_is_skipped(srv, store, market, llm_env):
    a = model(srv, "m-a", cost_per_million_input=5, daily_cost_budget=0.001)
    b = model(srv, "m-b", cost_per_million_input=1, daily_token_budget=50)
    record_usage(store, a, NOW, 1000, 0, 0.8)
    record_usage(store, b, NOW, 60, 0, 0.8)
    srv.set_default("m-a", Behaviour.ok(GOOD))
    srv.set_default("m-b", Behaviour.ok(GOOD))
    intent = llm_intent(trader([a, b], cache_enabled=False), market, store, now=NOW)
    assert intent.status == "skipped" and "daily LLM budget exhausted" in intent.error_message
    assert srv.requests == []
    j = read(store, intent.source.journal_ref, JournalEntry)
    assert j.status == "skipped" and [x.outcome for x in j.attempts] == ["over_budget", "over_budget"]


def test_identical_request_hits_the_cache_and_costs_nothing(srv, store, market, llm_env):
    fund(store)
    srv.script("m-a", [Behaviour.ok(GOOD, prompt_tokens=1200, completion_tokens=300)])
    cfg = trader([model(srv, "m-a")])
    first = llm_intent(cfg, market, store, now=NOW)
    second = llm_intent(cfg, market, store, now=NOW + timedelta(minutes=5))
    assert srv.calls("m-a") == 1
    assert first.status == second.status == "success"
    assert second.target_positions == first.target_positions
    assert first.source.prompt_digest == second.source.prompt_digest
    j1 = read(store, first.source.journal_ref, JournalEntry)
    j2 = read(store, second.source.journal_ref, JournalEntry)
    assert (j1.cache_hit, j1.total_tokens) == (False, 1500)
    assert (j2.cache_hit, j2.total_tokens, j2.cost_usd) == (True, 0, 0.0)
    assert j2.request_digest == j1.request_digest and j2.raw_response == j1.raw_response
    assert [a.outcome for a in j2.attempts] == ["cache_hit"]
    assert usage(store, "m-a").total_tokens == 1500  # unchanged by the hit
    entry = read(store, paths.llm_cache(j1.request_digest), CacheEntry)
    assert entry.model == "m-a" and entry.expires_at is None


def test_cache_entries_never_expire_and_are_not_keyed_by_the_endpoint(srv, store, market, llm_env):
    srv.set_default("m-a", Behaviour.ok(GOOD))
    llm_intent(trader([model(srv, "m-a")]), market, store, now=NOW)
    moved = model(srv, "m-a", base_url="http://127.0.0.1:9/v1")  # same model name, another URL (nothing there)
    later = llm_intent(trader([moved]), market, store, now=NOW + timedelta(days=30))
    assert later.status == "success" and later.metadata.indicators["cache_hit"] == "true"
    assert srv.calls("m-a") == 1


def test_a_different_model_parameter_misses_the_cache(srv, store, market, llm_env):
    srv.set_default("m-a", Behaviour.ok(GOOD))
    llm_intent(trader([model(srv, "m-a")]), market, store, now=NOW)
    llm_intent(trader([model(srv, "m-a", temperature=0.9)]), market, store, now=NOW)
    assert srv.calls("m-a") == 2


def test_traders_sharing_a_model_in_parallel_lose_no_count(store):
    from concurrent.futures import ThreadPoolExecutor

    from strategies.llm import budget
    from strategies.llm.config import ModelSpec

    spec = ModelSpec(id="m-shared", base_url="http://127.0.0.1:9/v1", api_key_env="X", model="x",
                     cost_per_million_input=1.0, cost_per_million_output=1.0, daily_token_budget=10_000)

    def one(i: int) -> None:  # what a request does: reserve its worst case, then settle what it was billed
        resv, why = budget.reserve(store, spec, NOW, 200, 100, 0.8)
        assert resv is not None, why
        budget.settle(store, spec, NOW, 100 + i, 10, 0.8, resv)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(16)))
    u = usage(store, "m-shared")
    assert (u.requests, u.total_tokens, u.reserved_tokens) == (16, sum(110 + i for i in range(16)), 0)
    assert u.reserved_cost_usd == pytest.approx(0.0, abs=1e-12)


def test_a_request_whose_worst_case_does_not_fit_is_not_sent(srv, store, market, llm_env):
    # 9,000 used of 10,000: the worst case (prompt bound ~7,200 + max_tokens 512) would overshoot
    m = model(srv, "m-a", daily_token_budget=10_000)
    record_usage(store, m, NOW, 8000, 1000, 0.8)
    srv.set_default("m-a", Behaviour.ok(GOOD, prompt_tokens=5000, completion_tokens=4000))
    intent = llm_intent(trader([m], cache_enabled=False), market, store, now=NOW)
    assert intent.status == "error" and srv.calls("m-a") == 0
    j = read(store, intent.source.journal_ref, JournalEntry)
    [a] = j.attempts
    assert a.outcome == "over_budget" and "does not fit: 9000 used + 0 reserved of 10000" in a.error
    assert usage(store, "m-a").total_tokens == 9000


def test_a_reply_without_usage_is_charged_by_a_tokenizer_estimate(srv, store, market, llm_env):
    srv.script("m-a", [Behaviour.ok(GOOD).without_usage()])
    intent = llm_intent(trader([model(srv, "m-a")], cache_enabled=False), market, store, now=NOW)
    assert intent.status == "success"
    j = read(store, intent.source.journal_ref, JournalEntry)
    [a] = j.attempts
    expected_pt = tokens.estimate_messages([j.system_prompt, j.user_prompt])
    expected_ct = tokens.estimate(j.raw_response)
    assert a.usage_estimated is True and (a.prompt_tokens, a.completion_tokens) == (expected_pt, expected_ct)
    assert expected_pt > 1000 and expected_ct > 50  # a real count, not zero
    u = usage(store, "m-a")
    assert (u.total_tokens, u.estimated_requests, u.estimated_tokens) == ((expected_pt + expected_ct,) * 1 + (1,)
                                                                          + (expected_pt + expected_ct,))
