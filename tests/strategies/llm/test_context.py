"""What a trader is shown: only bars closed by the as-of time, perpetual or spot, indicators, book, journal size."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
import ta

from bus.journal import JournalEntry, PositionPlan
from bus.models import Book, BookPosition
from market.history import HistoryProvider
from strategies.llm.config import trader_spec
from strategies.llm.context import (
    account_view,
    daily_from_4h,
    liquidation_price,
    market_context,
    performance_view,
)
from strategies.llm.journal import DOC_LIMIT_BYTES, fit, size_bytes
from strategies.llm.prompts import num, prompt_digest, render
from tests.support.llm import model, trader

MID = datetime(2024, 3, 15, 13, 30, tzinfo=timezone.utc)  # between the 12:00 and 16:00 4h closes


@pytest.fixture(scope="module")
def provider():
    return HistoryProvider()


def test_no_bar_closed_after_the_as_of_time_is_shown(provider):
    mkt = market_context(provider.view(MID), ["BTC-USDT"])
    full = provider.frame("BTC-USDT-PERP", "4h")
    visible = full[full["close_time"] <= MID]
    hidden = full[full["close_time"] > MID].iloc[0]  # the bar opened 12:00, closing 16:00
    [s] = mkt.symbols
    [ref] = mkt.refs
    assert s["price"] == visible["close"].iloc[-1] != hidden["close"]
    assert ref.last_close_4h == datetime(2024, 3, 15, 12, 0, tzinfo=timezone.utc)
    # 1d: 2024-03-15 has not ended at 13:30, so the last day shown is the 14th (closing at 00:00 on the 15th).
    assert ref.last_close_1d == datetime(2024, 3, 15, 0, 0, tzinfo=timezone.utc)
    four = s["timeframes"][0]
    assert four["series"]["close"] == list(visible["close"].iloc[-10:])
    assert num(hidden["close"]) not in str(s)
    assert ref.series == "BTC-USDT-PERP" and (ref.bars_4h, ref.bars_1d) == (200, 110) and ref.funding_at <= MID
    assert ref.first_close_4h == visible["close_time"].iloc[-10]


def test_indicators_are_the_libraries_on_the_visible_bars(provider):
    mkt = market_context(provider.view(MID), ["ETH-USDT"])
    cur = mkt.symbols[0]["timeframes"][0]["current"]
    bars = provider.view(MID).bars("ETH-USDT-PERP", "4h", lookback=200)
    assert cur["ema20"] == pytest.approx(ta.trend.EMAIndicator(bars["close"], 20).ema_indicator().iloc[-1])
    assert cur["rsi14"] == pytest.approx(ta.momentum.RSIIndicator(bars["close"], 14).rsi().iloc[-1])
    tail = bars.iloc[-100:]  # the ATRs run on the last 100 bars (see strategies.llm.context)
    atr = ta.volatility.AverageTrueRange(tail["high"], tail["low"], tail["close"], 14).average_true_range()
    assert cur["atr14"] == pytest.approx(atr.iloc[-1])
    full = ta.volatility.AverageTrueRange(bars["high"], bars["low"], bars["close"], 14).average_true_range()
    assert cur["atr14"] == pytest.approx(full.iloc[-1], rel=2e-3)


def test_daily_bars_are_whole_days_of_4h_bars(provider):
    bars = provider.view(MID).bars("BTC-USDT-PERP", "4h", lookback=60)
    daily = daily_from_4h(bars, pd.Timestamp(MID))
    day = bars.loc["2024-03-14"]
    last = daily.iloc[-1]
    assert daily.index[-1] == pd.Timestamp("2024-03-14", tz="UTC")
    assert (last["open"], last["high"], last["low"], last["close"]) == (
        day["open"].iloc[0], day["high"].max(), day["low"].min(), day["close"].iloc[-1])
    assert last["volume"] == pytest.approx(day["volume"].sum())


def test_spot_bars_stand_in_where_no_perpetual_is_bundled(provider):
    mkt = market_context(provider.view(MID), ["SOL-USDT"])
    [s] = mkt.symbols
    assert s["series"] == "SOL-USDT" and s["perpetual"] is False and s["funding_rate"] is not None


def test_stale_symbols_are_unavailable_and_say_why(provider):
    as_of = datetime(2026, 5, 10, 21, 30, tzinfo=timezone.utc)  # BNB's bars end 2026-02-18
    mkt = market_context(provider.view(as_of), ["BTC-USDT", "BNB-USDT"], max_age=timedelta(hours=12))
    assert [s["symbol"] for s in mkt.symbols] == ["BTC-USDT"] and "BNB-USDT" not in mkt.prices
    assert mkt.unavailable["BNB-USDT"].startswith("stale: newest BNB-USDT 4h bar closed 2026-02-19")
    assert [r.unavailable is not None for r in mkt.refs] == [False, True]


def test_account_view_marks_positions_and_estimates_liquidation():
    book = Book(strategy_id="t", updated_at=MID, starting_cash=10_000, cash=7_000,
                positions={"BTC-USDT": BookPosition(quantity=0.05, avg_price=60_000)},
                equity_curve={"2024-03-13": 10_000, "2024-03-14": 10_100, "2024-03-15": 10_050})
    plans = {"BTC-USDT": PositionPlan(side="long", leverage=3, stop_loss=57_000, take_profit=70_000)}
    acc = account_view(book, {"BTC-USDT": 70_000.0}, plans, None)
    [p] = acc["positions"]
    assert acc["equity"] == pytest.approx(7_000 + 0.05 * 70_000)
    assert p["unrealized_pnl"] == pytest.approx(0.05 * 10_000) and p["margin"] == pytest.approx(3_500 / 3)
    assert p["liquidation_price"] == pytest.approx(60_000 * (1 - 1 / 3 + 0.005))
    assert liquidation_price(100, -1, 4) == pytest.approx(100 * (1 + 0.25 - 0.005))
    perf = performance_view(book, [], acc["equity"])
    r = pd.Series([10_100 / 10_000 - 1, 10_050 / 10_100 - 1])
    assert perf["sharpe"] == pytest.approx(r.mean() / r.std() * 365 ** 0.5)  # daily crypto book: 365
    assert performance_view(book, [], acc["equity"], periods_per_year=252)["sharpe"] == pytest.approx(
        r.mean() / r.std() * 252 ** 0.5)
    assert perf["total_return"] == pytest.approx(acc["equity"] / 10_000 - 1) and perf["win_rate"] is None
    one_point = book.model_copy(update={"equity_curve": {"2024-01-01": 1.0}})
    assert performance_view(one_point, [], 1.0)["sharpe"] is None
    assert account_view(None, {}, {}, 5_000.0)["equity"] == 5_000.0


def test_rendered_prompt_follows_the_nof1_pattern(provider):
    spec = trader_spec(trader([model(type("S", (), {"base_url": "http://127.0.0.1:9/v1"}), "m-a")],
                              universe=["BTC-USDT", "SOL-USDT"]))
    mkt = market_context(provider.view(MID), ["BTC-USDT", "SOL-USDT"])
    acc = account_view(None, mkt.prices, {}, 10_000.0)
    p = render(spec, {"trader": {"id": "t", "name": "T"}, "universe": ["BTC-USDT", "SOL-USDT"], "risk": spec.risk,
                      "majors": ["BTC", "ETH"]},
               {"now": MID.isoformat(), "minutes_since_start": 240, "invocations": 7, "symbols": mkt.symbols,
                "unavailable": {}, "account": acc, "performance": performance_view(None, [], 10_000.0),
                "cadence": "4 hours", "memory": []})
    assert "invoked 7 times" in p.user and MID.isoformat() in p.user
    for words in ("ALL BTC-USDT DATA (perpetual: BTC-USDT-PERP)", "spot, no perpetual bars available",
                  "Funding rate", "4h series", "1d series", "rsi7", "atr14", "ema50", "macd", "volume",
                  "Current account value (equity): 10000.00", "Sharpe ratio"):
        assert words in p.user, words
    assert "at most 3x for BTC, ETH" in p.system and '"decisions"' in p.system
    assert p.digest == prompt_digest(p.system, p.user) and p.version == "1"


def test_journal_entries_are_summarised_under_the_limit_without_dropping_fields():
    huge = "x" * 2_000_000
    e = JournalEntry(decision_id="d", strategy_id="t", as_of=MID, created_at=MID, status="success",
                     prompt_version="1", prompt_digest="0" * 64, system_prompt="s", user_prompt=huge,
                     raw_response=huge, decisions=[{"symbol": "BTC-USDT", "reasoning": huge}] * 3)
    f = fit(e)
    assert size_bytes(f) <= DOC_LIMIT_BYTES < 1024 * 1024
    assert set(f.model_dump()) == set(e.model_dump())
    assert "user_prompt" in f.summarised and "decisions[2].reasoning" in f.summarised
    assert "characters summarised; whole text 2000000 characters, sha256" in f.user_prompt
    assert f.system_prompt == "s" and f.user_prompt.startswith("x" * 1000)


def test_a_journal_entry_is_stored_without_nulls_and_reads_back_whole(store):
    from bus.journal import Attempt, MarketRef, TraderState
    from bus.store import read
    from strategies.llm import journal

    e = JournalEntry(decision_id="d1", strategy_id="t", as_of=MID, created_at=MID, status="success",
                     prompt_version="1", prompt_digest="0" * 64, system_prompt="s", user_prompt="u",
                     decisions=[{"symbol": "BTC-USDT", "action": "hold", "notional": None}],
                     attempts=[Attempt(model="m", outcome="ok")],
                     market_refs=[MarketRef(symbol="BNB-USDT", unavailable="stale")])
    state = TraderState(strategy_id="t", started_at=MID, updated_at=MID)
    path = journal.write(store, e, state)
    raw = store.get(path)
    assert "model" not in raw and "error" not in raw["attempts"][0] and raw["decisions"][0]["notional"] is None
    assert read(store, path, JournalEntry) == fit(e)
    assert read(store, "strategies/t/llm/state", TraderState).recent_decisions == ["d1"]


def test_the_prompt_remembers_decisions_shows_holding_time_cadence_and_funding_only_for_perpetuals(provider):
    from bus.journal import DecisionMemo, MemoItem
    from strategies.llm.context import memory_view

    spec = trader_spec(trader([model(type("S", (), {"base_url": "http://127.0.0.1:9/v1"}), "m-a")],
                              universe=["BTC-USDT", "SOL-USDT"]))
    mkt = market_context(provider.view(MID), ["BTC-USDT", "SOL-USDT"])
    book = Book(strategy_id="t", updated_at=MID, starting_cash=10_000, cash=7_000,
                positions={"BTC-USDT": BookPosition(quantity=0.05, avg_price=60_000)}, equity=10_000)
    plans = {"BTC-USDT": PositionPlan(side="long", leverage=2, opened_at=MID - timedelta(hours=30))}
    acc = account_view(book, mkt.prices, plans, None, MID)
    btc_then = mkt.prices["BTC-USDT"] / 1.1  # the price was 10 % lower when it opened
    memory = [DecisionMemo(as_of=MID - timedelta(hours=4), status="success", model="m-a", items=[
        MemoItem(symbol="BTC-USDT", action="open_long", notional=1000, leverage=2, price=btc_then),
        MemoItem(symbol="SOL-USDT", action="open_short", notional=500, leverage=2, price=100.0,
                 rejected="min_confidence")]),
        DecisionMemo(as_of=MID - timedelta(hours=8), status="error", note="all models failed: m-a: timeout")]
    view = memory_view(memory, mkt.prices, MID)
    assert view[0]["decisions"][0]["pnl_since"] == pytest.approx(100.0)  # side x notional x change
    assert view[0]["decisions"][1]["pnl_since"] is None  # a rejected decision made nothing
    p = render(spec, {"trader": {"id": "t", "name": "T"}, "universe": ["BTC-USDT", "SOL-USDT"], "risk": spec.risk,
                      "majors": ["BTC", "ETH"]},
               {"now": MID.isoformat(), "minutes_since_start": 240, "invocations": 7, "symbols": mkt.symbols,
                "unavailable": {}, "account": acc, "performance": performance_view(book, [], 10_000.0),
                "cadence": "4 hours", "memory": view})
    assert "You are asked for decisions every 4 hours" in p.user
    assert "held for 30 h" in p.user
    assert "PnL since 100" in p.user and "REJECTED (min_confidence)" in p.user
    assert "error - all models failed: m-a: timeout" in p.user
    sol = p.user.split("ALL SOL-USDT DATA")[1].split("ALL ")[0]
    btc = p.user.split("ALL BTC-USDT DATA")[1].split("ALL SOL-USDT DATA")[0]
    assert "Funding rate" in btc and "Funding rate" not in sol  # SOL is spot here: no funding


def test_traders_of_one_run_share_each_symbols_context_and_another_as_of_gets_its_own(provider):
    from strategies.llm.context import market_context

    as_of = datetime(2024, 3, 15, 21, 30, tzinfo=timezone.utc)
    first = market_context(provider.view(as_of), ["BTC-USDT", "ETH-USDT"])
    second = market_context(provider.view(as_of), ["BTC-USDT", "ETH-USDT"])
    assert all(a is b for a, b in zip(first.symbols, second.symbols, strict=True))  # computed once
    assert first.prices == second.prices
    later = market_context(provider.view(as_of + timedelta(hours=4)), ["BTC-USDT"])
    assert later.symbols[0] is not first.symbols[0]
    assert later.refs[0].last_close_4h > first.refs[0].last_close_4h
    stale = market_context(provider.view(as_of), ["BTC-USDT"], max_age=timedelta(minutes=1))
    assert "BTC-USDT" in stale.unavailable and not stale.symbols  # max_age is part of the key


def test_the_atr_is_tas_value_for_value(provider):
    from strategies.llm.context import average_true_range

    view = provider.view(datetime(2024, 3, 15, 21, 30, tzinfo=timezone.utc))
    for sym in ("BTC-USDT-PERP", "ETH-USDT-PERP", "SOL-USDT"):
        t = view.bars(sym, "4h", lookback=100)
        for w in (3, 14):
            want = ta.volatility.AverageTrueRange(t["high"], t["low"], t["close"], w).average_true_range()
            got = average_true_range(t, w)
            assert got.to_numpy().tolist() == want.to_numpy().tolist()  # bit for bit
            assert got.index.equals(want.index)
