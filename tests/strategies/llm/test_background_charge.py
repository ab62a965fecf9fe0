"""A model without a daily limit is charged in the background while the decision is journalled (overhead, issue 14):
the charge is complete when the intent is returned, the journal's budget note counts it, and a charge that fails
turns the decision into an error (fail closed)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from bus import paths
from bus.journal import BudgetUsage, JournalEntry
from bus.store import MemoryStore, StoreError, read
from strategies.llm.trader import llm_intent
from tests.fakes.fake_openai import Behaviour
from tests.support.llm import AS_OF, decision, fund, model, reply, trader

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=timezone.utc)


def test_the_charge_is_complete_when_the_intent_returns_and_the_note_counts_it(srv, store, provider, llm_env):
    fund(store)
    srv.set_default("m-u", Behaviour.ok(reply(decision("BTC-USDT", "hold")), prompt_tokens=1000, completion_tokens=50))
    cfg = trader([model(srv, "m-u")])
    notes = []
    for k in range(2):
        intent = llm_intent(cfg, provider.view(AS_OF + timedelta(hours=4 * k)), store, now=NOW)
        assert intent.status == "success", intent.error_message
        u = read(store, paths.llm_usage("m-u", NOW.date().isoformat()), BudgetUsage)
        assert (u.requests, u.total_tokens) == (k + 1, 1050 * (k + 1))  # written before llm_intent returned
        notes.append(read(store, intent.source.journal_ref, JournalEntry).budget)
    assert [n.tokens_used for n in notes] == [1050, 2100] and notes[1].token_limit is None


class _ChargeFails(MemoryStore):
    """A store whose counter writes fail (the budget charge), everything else working."""

    def increment(self, path, deltas, fields=None, appends=None):
        raise StoreError(f"firestore increment {path} failed: injected")


def test_a_failed_background_charge_is_an_error_intent(srv, provider, llm_env):
    store = _ChargeFails()
    fund(store)
    srv.set_default("m-x", Behaviour.ok(reply(decision("BTC-USDT", "hold"))))
    intent = llm_intent(trader([model(srv, "m-x")]), provider.view(AS_OF), store, now=NOW)
    assert intent.status == "error" and "injected" in intent.error_message
