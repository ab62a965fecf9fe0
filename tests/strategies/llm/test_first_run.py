"""A trader's first run: no book yet, so it sizes from allocation x NAV (issue 14).

* a fresh store (no book, no portfolio snapshot, no trading config): the capital is allocation x the
  assumed NAV, the open passes the checks and becomes a ``weight`` of that capital;
* with a portfolio snapshot: allocation x the snapshot's NAV, and the prompt says which;
* with a book: the model's notional is sent as it is (no weight).
"""

from __future__ import annotations

import pytest

from bus import paths
from bus.journal import JournalEntry
from bus.models import PortfolioSnapshot
from bus.store import read
from market.history import HistoryProvider
from strategies.llm.trader import llm_intent
from tests.fakes.fake_openai import Behaviour
from tests.support.llm import AS_OF, decision, fund, model, reply, trader


@pytest.fixture(scope="module")
def provider():
    return HistoryProvider()


def _snapshot(nav: float) -> dict:
    return PortfolioSnapshot(snapshot_id="s1", updated_at=AS_OF, as_of=AS_OF, broker="sim", account="paper",
                             mode="paper", net_liquidation=nav, available_funds=nav, cash=nav).to_store()


def test_a_fresh_store_sizes_the_first_open_from_allocation_times_the_assumed_nav(srv, store, provider, llm_env):
    srv.script("m-f", [Behaviour.ok(reply(decision(notional=2000.0)))])
    cfg = trader([model(srv, "m-f")], allocation=0.1, assumed_nav=50_000.0)
    intent = llm_intent(cfg, provider.view(AS_OF), store)
    assert intent.status == "success", intent.error_message
    [t] = intent.target_positions
    # 2000 USDT of 0.1 x 50,000 = 5,000: 40 % of the book, whatever capital the Commander opens it with.
    assert (t.symbol, t.weight, t.notional, t.quantity) == ("BTC-USDT", pytest.approx(0.4), None, None)
    e = read(store, intent.source.journal_ref, JournalEntry)
    assert e.rejections == [] and e.equity == pytest.approx(5_000.0)
    assert "assumed account value" in e.user_prompt and "Available cash: 5000.00 USDT" in e.user_prompt


def test_with_a_portfolio_snapshot_the_capital_is_allocation_times_its_nav(srv, store, provider, llm_env):
    store.set(paths.portfolio("paper"), _snapshot(80_000.0))
    srv.script("m-s", [Behaviour.ok(reply(decision(quantity=0.05, notional=None)))])
    intent = llm_intent(trader([model(srv, "m-s")], allocation=0.25), provider.view(AS_OF), store)
    assert intent.status == "success", intent.error_message
    [t] = intent.target_positions
    e = read(store, intent.source.journal_ref, JournalEntry)
    price = next(m.price for m in e.market_refs if m.symbol == "BTC-USDT")
    assert t.weight == pytest.approx(0.05 * price / 20_000.0) and t.quantity is None
    assert e.equity == pytest.approx(20_000.0) and "the account's last valuation" in e.user_prompt


def test_with_a_book_the_notional_is_sent_as_the_model_gave_it(srv, store, provider, llm_env):
    fund(store, cash=10_000.0)
    srv.script("m-b", [Behaviour.ok(reply(decision(notional=2000.0)))])
    intent = llm_intent(trader([model(srv, "m-b")]), provider.view(AS_OF), store)
    [t] = intent.target_positions
    assert (t.notional, t.weight) == (2000.0, None)
