"""A model without a daily limit is charged in the decision's journal commit (overhead, issue 14 item 5):
one round trip writes the journal entry, the trader state, the cache entry and the budget charge, all or
nothing; the charge is complete when the intent is returned, the journal's budget note counts it, and a
commit that fails turns the decision into an error (fail closed) while the reply paid for is still counted."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from bus import paths
from bus.journal import BudgetUsage, JournalEntry
from bus.store import MemoryStore, StoreError, read
from strategies.llm.trader import llm_intent
from tests.fakes.fake_openai import Behaviour
from tests.support.llm import AS_OF, decision, fund, model, reply, trader

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)


def test_the_charge_is_in_the_journal_commit_and_complete_when_the_intent_returns(srv, store, provider, llm_env):
    fund(store)
    srv.set_default("m-u", Behaviour.ok(reply(decision("BTC-USDT", "hold")), prompt_tokens=1000, completion_tokens=50))
    cfg = trader([model(srv, "m-u")])
    notes = []
    for k in range(2):
        before = dict(store.stats)
        intent = llm_intent(cfg, provider.view(AS_OF + timedelta(hours=4 * k)), store, now=NOW)
        assert intent.status == "success", intent.error_message
        writes = {kind: store.stats[kind] - before.get(kind, 0) for kind in ("batch", "set", "transaction")}
        assert writes == {"batch": 1, "set": 0, "transaction": 0}  # one commit, no separate counter write
        u = read(store, paths.llm_usage("m-u", NOW.date().isoformat()), BudgetUsage)
        assert (u.requests, u.total_tokens, u.reserved_tokens) == (k + 1, 1050 * (k + 1), 0)
        assert abs(u.cost_usd - (k + 1) * (1000 * 1.0 + 50 * 2.0) / 1e6) < 1e-12
        notes.append(read(store, intent.source.journal_ref, JournalEntry).budget)
    assert [n.tokens_used for n in notes] == [1050, 2100] and notes[1].token_limit is None


class _CommitFails(MemoryStore):
    """A store whose commits fail (the journal's), everything else working."""

    def commit(self, writes, increments=None):
        raise StoreError("firestore commit failed: injected")


class _AllWritesFail(_CommitFails):
    """A store whose commits and counter writes both fail."""

    def increment(self, path, deltas, fields=None, appends=None):
        raise StoreError(f"firestore increment {path} failed: injected too")


def test_a_failed_journal_commit_is_an_error_intent_and_the_reply_is_still_charged(srv, provider, llm_env):
    store = _CommitFails()
    fund(store)
    srv.set_default("m-x", Behaviour.ok(reply(decision("BTC-USDT", "hold")), prompt_tokens=700, completion_tokens=30))
    intent = llm_intent(trader([model(srv, "m-x")]), provider.view(AS_OF), store, now=NOW)
    assert intent.status == "error" and "injected" in intent.error_message
    assert store.list_docs("strategies/llm_test/journal") == []
    u = read(store, paths.llm_usage("m-x", NOW.date().isoformat()), BudgetUsage)
    assert (u.requests, u.total_tokens) == (1, 730)  # written on its own, once


def test_when_the_charge_cannot_be_written_either_the_decision_is_still_an_error(srv, provider, llm_env):
    store = _AllWritesFail()
    fund(store)
    srv.set_default("m-y", Behaviour.ok(reply(decision("BTC-USDT", "hold"))))
    intent = llm_intent(trader([model(srv, "m-y")]), provider.view(AS_OF), store, now=NOW)
    assert intent.status == "error" and "commit failed: injected" in intent.error_message
