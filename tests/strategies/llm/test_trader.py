"""One trader's decision end to end on the emulator.

The journal entry, the decision interval, replays, fail-closed cases.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from bus import paths
from bus.journal import JournalEntry, TraderState
from bus.store import read
from market.history import HistoryProvider
from strategies.llm.prompts import prompt_digest
from strategies.llm.trader import llm_intent
from strategies.runner import compute_intent
from tests.fakes.fake_openai import Behaviour
from tests.support.llm import AS_OF, decision, fund, model, reply, trader


@pytest.fixture(scope="module")
def provider():
    return HistoryProvider()


def test_the_journal_entry_holds_the_whole_decision(srv, store, provider, llm_env):
    fund(store, positions={"ETH-USDT": (0.5, 3500.0)})
    srv.script("m-a", [Behaviour.ok(reply(decision(), decision("ETH-USDT", "close"),
                                          decision("DOGE-USDT", confidence=99)),
                                    prompt_tokens=3000, completion_tokens=250)])
    intent = llm_intent(trader([model(srv, "m-a")]), provider.view(AS_OF), store)
    assert intent.status == "success"
    e = read(store, intent.source.journal_ref, JournalEntry)
    assert intent.source.journal_ref == paths.journal("llm_test", e.decision_id)
    assert e.prompt_digest == prompt_digest(e.system_prompt, e.user_prompt) == intent.source.prompt_digest
    assert (e.prompt_version, e.templates) == ("1", {"system": "momentum.j2", "user": "context.j2"})
    [req] = srv.chat_requests("m-a")
    assert [m["content"] for m in req.messages] == [e.system_prompt, e.user_prompt]
    assert e.raw_response.startswith('{"decisions"')
    assert [d["symbol"] for d in e.decisions] == ["BTC-USDT", "ETH-USDT", "DOGE-USDT"]
    assert e.accepted == [0, 1]
    [r] = e.rejections
    assert (r.index, r.rule) == (2, "unknown_symbol")
    assert {t.symbol: (t.notional, t.quantity) for t in e.target_positions} == {
        "BTC-USDT": (2000.0, None), "ETH-USDT": (None, 0.0)}
    assert e.target_positions == intent.target_positions
    assert (e.prompt_tokens, e.completion_tokens, e.total_tokens) == (3000, 250, 3250) and e.cost_usd > 0
    assert e.latency_ms > 0 and e.attempts[0].latency_ms > 0
    assert [m.symbol for m in e.market_refs] == ["BTC-USDT", "ETH-USDT"]
    assert all(m.last_close_4h <= AS_OF and m.series.endswith("-PERP") for m in e.market_refs)
    assert e.book_ref == "strategies/llm_test/book/latest" and e.equity == pytest.approx(10_000 + 0.5 * 3690.0)
    assert "ETH-USDT long: quantity 0.5, entry 3500.00" in e.user_prompt
    state = read(store, paths.llm_state("llm_test"), TraderState)
    assert state.invocations == 1 and state.recent_decisions == [e.decision_id]
    assert set(state.plans) == {"BTC-USDT"} and state.plans["BTC-USDT"].stop_loss == 66000


def test_not_due_before_the_interval_then_due(srv, store, provider, llm_env):
    srv.set_default("m-a", Behaviour.ok(reply(decision("BTC-USDT", "hold"))))
    cfg = trader([model(srv, "m-a")])  # decision_interval 4h
    assert llm_intent(cfg, provider.view(AS_OF), store).status == "success"
    early = llm_intent(cfg, provider.view(AS_OF + timedelta(hours=3)), store)
    assert early.status == "skipped" and early.error_message.startswith("not due: last decision as of 2024-03-15T21:30")
    assert "next at 2024-03-16T01:30:00+00:00" in early.error_message
    assert srv.calls("m-a") == 1
    later = llm_intent(cfg, provider.view(AS_OF + timedelta(hours=4)), store)
    assert later.status == "success" and srv.calls("m-a") == 2
    state = read(store, paths.llm_state("llm_test"), TraderState)
    assert state.invocations == 2 and state.last_decision_as_of == AS_OF + timedelta(hours=4)
    entry = read(store, later.source.journal_ref, JournalEntry)
    assert "It has been 240 minutes since you started trading" in entry.user_prompt
    assert "invoked 2 times" in entry.user_prompt


def test_a_replay_at_the_same_as_of_renders_the_same_prompt_and_costs_nothing(srv, store, provider, llm_env):
    srv.set_default("m-a", Behaviour.ok(reply(decision("BTC-USDT", "hold"))))
    cfg = trader([model(srv, "m-a")])
    first = llm_intent(cfg, provider.view(AS_OF), store)
    again = llm_intent(cfg, provider.view(AS_OF), store)
    assert again.source.prompt_digest == first.source.prompt_digest and srv.calls("m-a") == 1
    assert read(store, paths.llm_state("llm_test"), TraderState).invocations == 1


def test_the_runner_passes_the_store_to_llm_traders(srv, store, provider, llm_env):
    srv.set_default("m-a", Behaviour.ok(reply()))
    cfg = trader([model(srv, "m-a")])
    assert compute_intent(cfg, provider.view(AS_OF), store=store).status == "success"
    no_store = compute_intent(cfg, provider.view(AS_OF))
    assert no_store.status == "error" and "needs the store" in no_store.error_message


def test_no_fresh_data_for_the_universe_is_an_error_and_asks_nothing(srv, store, provider, llm_env):
    srv.set_default("m-a", Behaviour.ok(reply()))
    cfg = trader([model(srv, "m-a")], universe=["BNB-USDT"])
    intent = llm_intent(cfg, provider.view(datetime(2026, 5, 10, 21, 30, tzinfo=timezone.utc)), store)
    assert intent.status == "error" and "no fresh market data for any symbol of the universe" in intent.error_message
    assert "BNB-USDT: stale" in intent.error_message and srv.requests == []


def test_a_decision_on_a_stale_symbol_is_rejected_and_its_position_kept(srv, store, provider, llm_env):
    fund(store, positions={"BNB-USDT": (2.0, 600.0)})
    srv.set_default("m-a", Behaviour.ok(reply(decision("BNB-USDT", "open_short", notional=500, stop_loss=700,
                                                       take_profit=400))))
    cfg = trader([model(srv, "m-a")], universe=["BTC-USDT", "BNB-USDT"])
    intent = llm_intent(cfg, provider.view(datetime(2026, 5, 10, 21, 30, tzinfo=timezone.utc)), store)
    assert intent.status == "success"
    e = read(store, intent.source.journal_ref, JournalEntry)
    assert [r.rule for r in e.rejections] == ["no_market_data"]
    assert [(t.symbol, t.quantity) for t in intent.target_positions] == [("BNB-USDT", 2.0)]
    assert "NOT TRADABLE NOW" in e.user_prompt and "BNB-USDT: stale" in e.user_prompt


def test_a_broken_llm_block_is_an_error_intent(store, provider):
    from bus.models import StrategyConfig

    cfg = StrategyConfig(strategy_id="llm_bad", name="bad", kind="llm", llm={"trader": "llm_bad"})
    intent = llm_intent(cfg, provider.view(AS_OF), store)
    assert intent.status == "error"
    assert "LLMConfigError" in intent.error_message and "model_chain" in intent.error_message


def test_round_trips_per_decision(srv, store, provider, llm_env):
    srv.set_default("m-a", Behaviour.ok(reply(decision("BTC-USDT", "hold"))))
    cfg = trader([model(srv, "m-a")])
    fund(store)
    llm_intent(cfg, provider.view(AS_OF), store)

    def trips(as_of):
        before = dict(store.stats)
        llm_intent(cfg, provider.view(as_of), store)
        return {k: v - before.get(k, 0) for k, v in store.stats.items() if v - before.get(k, 0)}

    # A new as-of: documents + budget in one get_all, trades listed alongside, one commit: the journal
    # entry, the state, the cache entry and the usage charge (Increments; no reservation: the model
    # has no limit), no other write.
    assert trips(AS_OF + timedelta(hours=4)) == {"get_all": 1, "list": 1, "batch": 1}
    # A replay of that as-of also looks in the digest cache (and finds the reply: no budget write).
    assert trips(AS_OF + timedelta(hours=4)) == {"get_all": 2, "list": 1, "batch": 1}
    assert srv.calls("m-a") == 2


def test_timings_name_every_phase_of_a_decision(srv, store, provider, llm_env):
    from strategies.llm.trader import Timings

    srv.set_default("m-a", Behaviour.ok(reply(decision("BTC-USDT", "hold"))))
    fund(store)
    t = Timings()
    assert llm_intent(trader([model(srv, "m-a")]), provider.view(AS_OF), store, timings=t).status == "success"
    assert list(t.phases) == ["read_store", "market_context", "render", "ask_chain", "checks", "journal_write"]
    assert all(ms >= 0 for ms in t.phases.values())
    assert 0 < t.model_wait_ms <= t.phases["ask_chain"] and t.total_ms >= sum(t.phases.values())
    assert t.overhead_ms == pytest.approx(t.total_ms - t.model_wait_ms)


def test_a_failed_chain_counts_the_invocation_and_keeps_the_last_decision(srv, store, provider, llm_env):
    srv.set_default("m-a", Behaviour.server_error(503))
    cfg = trader([model(srv, "m-a")])
    intent = llm_intent(cfg, provider.view(AS_OF), store)
    assert intent.status == "error" and intent.error_message.endswith(f"(journal {intent.source.journal_ref})")
    assert intent.metadata.indicators == {"decision_id": intent.source.journal_ref.rsplit("/", 1)[1]}
    e = read(store, intent.source.journal_ref, JournalEntry)
    assert e.status == "error" and e.error_message.startswith("all models failed") and e.target_positions == []
    state = read(store, paths.llm_state("llm_test"), TraderState)
    assert (state.invocations, state.last_invocation_as_of) == (1, AS_OF)
    assert state.last_decision_as_of is None and state.plans == {}
    again = llm_intent(cfg, provider.view(AS_OF), store)  # not a decision yet: due again, same invocation
    assert again.status == "error"
    assert read(store, paths.llm_state("llm_test"), TraderState).invocations == 1
