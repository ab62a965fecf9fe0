"""Replay without paying: the reply archive across runs and stores, ``--llm replay``, ``journal replay``.

The issue's check: a 30-day backtest with three LLM traders, run twice on fresh stores: the second
run makes 0 model requests (the fake server's counter) and gives identical books.
"""

from __future__ import annotations

from datetime import date

from bus.journal import JournalEntry
from bus.store import MemoryStore, read
from strategies.llm.config import with_llm_mode
from strategies.llm.trader import llm_intent
from tests.fakes.fake_openai import Behaviour
from tests.support.backtest import backtest_settings, only, run
from tests.support.llm import decision, fund, model, reply, trader

START, END = date(2024, 2, 1), date(2024, 3, 1)  # 30 days
LONG_BTC = decision("BTC-USDT", "open_long", notional=3000, leverage=2, stop_loss=30000, take_profit=200000)
LONG_ETH = decision("ETH-USDT", "open_long", notional=1500, leverage=2, stop_loss=1000, take_profit=10000)


def books(result) -> dict:
    return {sid: b.model_dump(mode="json", exclude={"updated_at", "execution_id"})
            for sid, b in result.books.items()}


def test_a_30_day_backtest_run_twice_asks_no_model_the_second_time(srv, tmp_path, llm_env):
    srv.set_default("m-1", Behaviour.ok(reply(LONG_BTC)))
    srv.set_default("m-2", Behaviour.ok(reply(LONG_ETH)))
    srv.set_default("m-3", Behaviour.ok(reply(decision("BTC-USDT", "hold"))))
    traders = [trader([model(srv, f"m-{i}")], strategy_id=f"llm_{i}", allocation=0.2) for i in (1, 2, 3)]
    settings, bfile = backtest_settings()
    settings = only(settings, *traders)
    archive = str(tmp_path / "replies")

    first, _ = run(settings, bfile, START, END, strategies=with_llm_mode(traders, "live", archive))
    asked = sum(srv.calls(f"m-{i}") for i in (1, 2, 3))
    assert asked == 3 * 30  # one decision a day each (interval 4 h < 1 day)
    second, _ = run(settings, bfile, START, END, strategies=with_llm_mode(traders, "replay", archive))
    assert sum(srv.calls(f"m-{i}") for i in (1, 2, 3)) == asked  # 0 model requests
    assert books(second) == books(first)
    assert first.books["llm_1"].positions["BTC-USDT"].quantity > 0  # something was traded and kept


def test_replay_with_no_recorded_reply_is_skipped_and_says_so(srv, store, market, llm_env, tmp_path):
    srv.set_default("m-a", Behaviour.ok(reply(decision())))
    cfg = with_llm_mode([trader([model(srv, "m-a")])], "replay", str(tmp_path / "empty"))[0]
    intent = llm_intent(cfg, market, store)
    assert intent.status == "skipped" and "replay: no recorded reply" in intent.error_message
    assert srv.calls("m-a") == 0
    j = read(store, intent.source.journal_ref, JournalEntry)
    assert [a.outcome for a in j.attempts] == ["not_recorded"]


def test_the_archive_is_shared_across_stores_and_needs_no_key_in_replay(srv, market, llm_env, tmp_path, monkeypatch):
    from tests.support.llm import KEY_ENV

    srv.set_default("m-a", Behaviour.ok(reply(decision())))
    archive = str(tmp_path / "replies")
    first_store, second_store = MemoryStore(), MemoryStore()
    fund(first_store)
    fund(second_store)
    live = llm_intent(with_llm_mode([trader([model(srv, "m-a")])], "live", archive)[0], market, first_store)
    monkeypatch.delenv(KEY_ENV)
    again = llm_intent(with_llm_mode([trader([model(srv, "m-a")])], "replay", archive)[0], market, second_store)
    assert live.status == again.status == "success" and srv.calls("m-a") == 1
    assert again.target_positions == live.target_positions
    j = read(second_store, again.source.journal_ref, JournalEntry)
    assert j.cache_hit and j.total_tokens == 0 and j.raw_response == read(first_store, live.source.journal_ref,
                                                                          JournalEntry).raw_response
