"""LLM traders in the whole pipeline (emulator, paper broker, bundled bars), side by side with the classic strategies.

* three LLM traders and the classic strategies in one pipeline: intents, journals, books, leaderboard;
* opposite decisions of two traders on one symbol netted by the Commander, each book its own position and PnL;
* a trader whose models all fail writes an ``error`` intent and keeps its book;
* the shipped configuration with no API key: ``skipped`` intents naming the variables, the run completes.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from bus import paths
from bus import paths as bus_paths
from bus.journal import JournalEntry, TraderState
from bus.models import Book
from bus.store import read
from pipeline.leaderboard import leaderboard
from pipeline.run import run_pipeline
from pipeline.settings import Settings, apply_settings
from pipeline.wiring import make_broker
from strategies.llm.config import load_models, trader_strategy_configs
from tests.fakes.fake_openai import Behaviour
from tests.support.llm import decision, model, reply, trader

DAY1 = datetime(2024, 3, 14, 21, 30, tzinfo=timezone.utc)
DAY2 = datetime(2024, 3, 15, 21, 30, tzinfo=timezone.utc)
DAY3 = datetime(2024, 3, 16, 21, 30, tzinfo=timezone.utc)
BTC_LONG = decision("BTC-USDT", "open_long", notional=3000, leverage=2, stop_loss=66000, take_profit=76000)
BTC_SHORT = decision("BTC-USDT", "open_short", notional=2000, leverage=2, stop_loss=72000, take_profit=62000)
ETH_LONG = decision("ETH-USDT", "open_long", notional=1500, leverage=2, stop_loss=3500, take_profit=4200)


def with_strategies(settings: Settings, llm: list, classic_allocations: dict[str, float] | None) -> Settings:
    """The repository's settings with ``llm`` traders added; the classic strategies rebalanced (or dropped: None);
    the paper account filling market orders at the as-of close (``fill_at: close``)."""
    classic = [] if classic_allocations is None else [
        s.model_copy(update={"capital_allocation": classic_allocations[s.strategy_id]})
        for s in settings.strategies if s.kind == "classic"]
    # fills at the as-of close, in the run that placed them (these tests follow the books run by run)
    account = settings.account.model_copy(update={"fill_at": "close"})
    return Settings(settings.trading, classic + llm, account, settings.instruments)


def run(store, settings, provider, as_of):
    apply_settings(store, settings)
    return run_pipeline(store, provider, make_broker(store, settings, provider), settings.strategies, as_of)


def books(store, ids):
    return {s: read(store, bus_paths.book(s), Book) for s in ids}


def test_three_llm_traders_and_the_classic_strategies_in_one_pipeline(srv, store, settings, provider, llm_env):
    srv.set_default("m-1", Behaviour.ok(reply(BTC_LONG)))
    srv.set_default("m-2", Behaviour.ok(reply(ETH_LONG)))
    srv.set_default("m-3", Behaviour.ok(reply(decision("BTC-USDT", "hold"))))
    llm = [trader([model(srv, f"m-{i}")], strategy_id=f"llm_{i}") for i in (1, 2, 3)]
    s = with_strategies(settings, llm, {"spy_macd_vixy": 0.3, "crypto_trend": 0.2, "test_signal_generator": 0.1})
    first = run(store, s, provider, DAY1)
    assert first.execution.status == "completed"
    # No book and no portfolio snapshot yet: the open is a weight of allocation x the assumed NAV, and the
    # Commander sizes it on the capital the new book opens with (0.1 x the paper account's 100,000).
    j = read(store, first.intents["llm_1"].source.journal_ref, JournalEntry)
    assert j.rejections == [] and first.intents["llm_1"].target_positions[0].weight == pytest.approx(0.3)
    day1 = books(store, ["llm_1"])["llm_1"].positions["BTC-USDT"]
    assert day1.quantity * day1.avg_price == pytest.approx(3000, rel=0.05)
    second = run(store, s, provider, DAY2)
    ex = second.execution
    assert ex.status == "completed", ex.summary
    assert set(second.intents) == {"spy_macd_vixy", "crypto_trend", "test_signal_generator", "llm_1", "llm_2", "llm_3"}
    assert all(i.status == "success" for i in second.intents.values()), {
        k: i.error_message for k, i in second.intents.items()}
    for sid in ("llm_1", "llm_2", "llm_3"):
        intent = second.intents[sid]
        entry = read(store, intent.source.journal_ref, JournalEntry)
        assert entry.status == "success" and entry.intent_id == intent.intent_id and entry.model == f"m-{sid[-1]}"
        assert ex.context.strategy_intents_refs[sid] == bus_paths.intent(sid, intent.intent_id)
        state = read(store, paths.llm_state(sid), TraderState)
        assert state.invocations == 2 and len(state.recent_decisions) == 2
    b = books(store, ["llm_1", "llm_2", "llm_3"])
    nav = second.snapshot.net_liquidation
    assert b["llm_1"].positions["BTC-USDT"].quantity > 0 and "ETH-USDT" not in b["llm_1"].positions
    assert b["llm_2"].positions["ETH-USDT"].quantity > 0 and "BTC-USDT" not in b["llm_2"].positions
    assert b["llm_3"].positions == {} and b["llm_3"].starting_cash == pytest.approx(0.1 * 100_000)
    btc = b["llm_1"].positions["BTC-USDT"]
    assert btc.quantity * btc.avg_price == pytest.approx(3000, rel=0.05)
    assert nav > 0
    rows = leaderboard(store)
    ranked = [r["strategy_id"] for r in rows]
    assert {"llm_1", "llm_2", "llm_3", "spy_macd_vixy", "crypto_trend", "test_signal_generator"} <= set(ranked)
    assert [r["rank"] for r in rows] == list(range(1, len(rows) + 1))
    assert {r["strategy_id"]: r["kind"] for r in rows}["llm_1"] == "llm"


def test_opposite_traders_are_netted_and_each_book_keeps_its_own_pnl(srv, store, settings, provider, llm_env):
    srv.script("m-long", [Behaviour.ok(reply()), Behaviour.ok(reply(BTC_LONG)),
                          Behaviour.ok(reply(decision("BTC-USDT", "hold")))])
    srv.script("m-short", [Behaviour.ok(reply()), Behaviour.ok(reply(BTC_SHORT))])
    srv.set_default("m-short", Behaviour.server_error())
    llm = [trader([model(srv, "m-long")], strategy_id="llm_long"),
           trader([model(srv, "m-short")], strategy_id="llm_short")]
    s = with_strategies(settings, llm, None)
    run(store, s, provider, DAY1)  # books opened with their capital, nothing traded
    res = run(store, s, provider, DAY2)
    ex = res.execution
    assert ex.status == "completed", ex.summary
    [line] = [t for t in ex.decision.aggregated_target if t.symbol == "BTC-USDT"]
    assert line.contributions["llm_long"] > 0 > line.contributions["llm_short"]
    assert line.quantity == pytest.approx(line.contributions["llm_long"] + line.contributions["llm_short"])
    [conflict] = [c for c in ex.decision.conflicts if c.symbol == "BTC-USDT" and c.type == "direction"]
    assert conflict.policy == "net"
    assert set(conflict.strategies) == {"llm_long", "llm_short"}
    [order] = [o for o in ex.orders_placed if o.symbol == "BTC-USDT"]
    assert order.action == "BUY" and order.filled_quantity == pytest.approx(line.quantity, rel=1e-3)
    b = books(store, ["llm_long", "llm_short"])
    q_long, q_short = b["llm_long"].positions["BTC-USDT"].quantity, b["llm_short"].positions["BTC-USDT"].quantity
    assert q_long == pytest.approx(line.contributions["llm_long"], rel=1e-3)
    assert q_short == pytest.approx(line.contributions["llm_short"], rel=1e-3)

    # Day 3: the long holds; the short's model fails, so it writes an error intent and keeps its book.
    res3 = run(store, s, provider, DAY3)
    ex3 = res3.execution
    assert res3.intents["llm_long"].status == "success" and res3.intents["llm_short"].status == "error"
    assert "all models failed" in res3.intents["llm_short"].error_message
    assert ex3.errored_strategies == ["llm_short"]
    b3 = books(store, ["llm_long", "llm_short"])
    assert b3["llm_short"].positions["BTC-USDT"].quantity == pytest.approx(q_short)
    assert b3["llm_long"].positions["BTC-USDT"].quantity == pytest.approx(q_long)
    assert not [o for o in ex3.orders_placed if o.symbol == "BTC-USDT"]
    # Each book carries its own PnL: same symbol, opposite sides, opposite signs.
    move = ex3.context.prices["BTC-USDT"] - ex.context.prices["BTC-USDT"]
    assert move != 0
    pnl_long = b3["llm_long"].unrealized_pnl
    pnl_short = b3["llm_short"].unrealized_pnl
    assert pnl_long * pnl_short < 0
    price3 = ex3.context.prices["BTC-USDT"]
    assert pnl_long == pytest.approx((price3 - b3["llm_long"].positions["BTC-USDT"].avg_price) * q_long)
    assert pnl_short == pytest.approx((price3 - b3["llm_short"].positions["BTC-USDT"].avg_price) * q_short)


def test_shipped_traders_without_keys_are_skipped_and_the_run_completes(store, settings, provider, monkeypatch):
    for m in load_models().models.values():
        monkeypatch.delenv(m.api_key_env, raising=False)
    llm = trader_strategy_configs()
    s = with_strategies(settings, llm, {"spy_macd_vixy": 0.3, "crypto_trend": 0.2, "test_signal_generator": 0.1})
    res = run(store, s, provider, DAY2)
    assert res.execution.status == "completed"
    assert sorted(res.execution.skipped_strategies) == sorted(c.strategy_id for c in llm)
    messages = {c.strategy_id: res.intents[c.strategy_id].error_message for c in llm}
    assert all(i.status == "skipped" for sid, i in res.intents.items() if sid.startswith("llm_"))
    assert "DEEPSEEK_API_KEY" in messages["llm_deepseek_momentum"]
    assert "OPENAI_API_KEY" in messages["llm_deepseek_momentum"]
    assert "DASHSCOPE_API_KEY" in messages["llm_qwen_reversion"]
    assert all(res.intents[s].status == "success" for s in ("spy_macd_vixy", "crypto_trend", "test_signal_generator"))
