"""The leaderboard annualizes each book by its own calendar (252 NYSE sessions for ETFs, 365 days for crypto) and
counts the first day's return (from the starting capital), on the real Firestore emulator."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta, timezone

import exchange_calendars as xc
import numpy as np
import pytest

from bus import paths
from bus.models import Book, EquityPoint, InstrumentSpec, StrategyConfig
from pipeline.leaderboard import book_calendar, leaderboard

START = 10_000.0
DAYS = [date(2024, 1, 1) + timedelta(days=i) for i in range(28)]  # New Year's Day and MLK day are NYSE holidays
INSTRUMENTS = {"SPY": InstrumentSpec(symbol="SPY", secType="STK"),
               "BTC-USDT": InstrumentSpec(symbol="BTC-USDT", secType="CRYPTO", exchange="BINANCE", currency="USDT")}


def _etf_curve() -> dict[str, float]:
    """Equity moves only on NYSE sessions (as an ETF book's does); the first day loses 5 %."""
    sessions = {d.date() for d in xc.get_calendar("XNYS").sessions_in_range("2024-01-01", "2024-01-31")}
    rng = np.random.default_rng(7)
    out, e = {}, START * 0.95
    for i, d in enumerate(DAYS):
        if i and d in sessions:
            e *= 1 + rng.normal(0.002, 0.01)
        out[d.isoformat()] = e
    return out


def _crypto_curve() -> dict[str, float]:
    rng = np.random.default_rng(11)
    out, e = {}, START * 0.93
    for i, d in enumerate(DAYS):
        if i:
            e *= 1 + rng.normal(0.003, 0.03)
        out[d.isoformat()] = e
    return out


def _put(store, sid: str, symbol: str, curve: dict[str, float]) -> None:
    now = datetime(2024, 1, 28, 21, 30, tzinfo=timezone.utc)
    store.set(paths.strategy(sid), StrategyConfig(strategy_id=sid, name=sid, universe=[symbol]).model_dump(mode="json"))
    last = list(curve.values())[-1]
    store.set(paths.book(sid), Book(strategy_id=sid, updated_at=now, starting_cash=START, cash=last, equity=last,
                                    high_water_mark=max(START, *curve.values())).model_dump(mode="json"))
    for d, e in curve.items():
        store.set(paths.equity_point(sid, d), EquityPoint(
            strategy_id=sid, date=d, as_of=datetime.fromisoformat(d).replace(hour=21, minute=30, tzinfo=timezone.utc),
            equity=e, cash=e, realized_pnl=0.0, unrealized_pnl=0.0, high_water_mark=START).model_dump(mode="json"))


def _sharpe(values: list[float], ppy: int) -> float:
    v = np.array(values)
    r = v[1:] / v[:-1] - 1
    return float(r.mean() / r.std(ddof=1) * math.sqrt(ppy))


def test_book_calendar_follows_the_instruments():
    assert book_calendar(["SPY"], INSTRUMENTS) == ("XNYS", 252)
    assert book_calendar(["SPY", "BTC-USDT"], INSTRUMENTS) == ("24/7", 365)
    assert book_calendar(["BTC-USDT"], INSTRUMENTS) == ("24/7", 365)
    assert book_calendar(["XYZ"], INSTRUMENTS) == ("24/7", 365)  # no spec: assumed to trade every day


def test_sharpe_is_annualized_by_each_books_calendar_from_the_starting_capital(store):
    etf, crypto = _etf_curve(), _crypto_curve()
    _put(store, "etf_book", "SPY", etf)
    _put(store, "crypto_book", "BTC-USDT", crypto)
    rows = {r["strategy_id"]: r for r in leaderboard(store, INSTRUMENTS)}

    # ETF: the starting capital the day before, then NYSE sessions only, x sqrt(252).
    sessions = {d.strftime("%Y-%m-%d") for d in xc.get_calendar("XNYS").sessions_in_range("2024-01-01", "2024-01-31")}
    assert "2024-01-01" not in sessions and "2024-01-15" not in sessions
    etf_points = [START] + [e for d, e in etf.items() if d in sessions]
    r = rows["etf_book"]
    assert (r["calendar"], r["periods_per_year"]) == ("XNYS", 252)
    assert r["sharpe"] == pytest.approx(_sharpe(etf_points, 252), rel=1e-9)
    # the first day's loss (5 % on the holiday, from the starting capital) is in the drawdown
    assert r["max_drawdown"] <= -0.05 + 1e-12
    # what the leaderboard used to report: every calendar day, no starting point, sqrt(365)
    assert abs(r["sharpe"] - _sharpe(list(etf.values()), 365)) > 0.05

    c = rows["crypto_book"]
    assert (c["calendar"], c["periods_per_year"]) == ("24/7", 365)
    assert c["sharpe"] == pytest.approx(_sharpe([START, *crypto.values()], 365), rel=1e-9)
    assert c["max_drawdown"] <= -0.07 + 1e-12


def test_without_instruments_every_book_counts_as_trading_every_day(store):
    etf = _etf_curve()
    _put(store, "etf_book", "SPY", etf)
    (r,) = leaderboard(store)
    assert (r["calendar"], r["periods_per_year"]) == ("24/7", 365)
    assert r["sharpe"] == pytest.approx(_sharpe([START, *etf.values()], 365), rel=1e-9)


def test_the_cache_gives_the_same_rows_and_recomputes_a_book_the_commander_rewrote(store):
    from pipeline.leaderboard import MetricsCache

    crypto = _crypto_curve()
    _put(store, "crypto_book", "BTC-USDT", crypto)
    cache = MetricsCache()
    plain = leaderboard(store, INSTRUMENTS)
    assert leaderboard(store, INSTRUMENTS, cache=cache) == plain  # cold
    reads = store.stats["list"]
    assert leaderboard(store, INSTRUMENTS, cache=cache) == plain  # warm: no equity points or trades read again
    assert store.stats["list"] - reads == 1  # the strategies only
    # The Commander rewrites the book (a new updated_at / execution) with a new equity point in the same batch.
    day = "2024-01-29"
    book = store.get(paths.book("crypto_book"))
    store.write_batch([
        (paths.book("crypto_book"), {**book, "updated_at": "2024-01-29T21:30:00+00:00", "execution_id": "x2",
                                     "equity": 9_000.0}),
        (paths.equity_point("crypto_book", day), EquityPoint(
            strategy_id="crypto_book", date=day, as_of=datetime(2024, 1, 29, 21, 30, tzinfo=timezone.utc),
            equity=9_000.0, cash=9_000.0, realized_pnl=0.0, unrealized_pnl=0.0,
            high_water_mark=START).model_dump(mode="json"))])
    (warm,) = leaderboard(store, INSTRUMENTS, cache=cache)
    (fresh,) = leaderboard(store, INSTRUMENTS)
    assert warm == fresh and warm["sharpe"] != plain[0]["sharpe"]
    assert warm["sharpe"] == pytest.approx(_sharpe([START, *crypto.values(), 9_000.0], 365), rel=1e-9)


def test_an_llm_traders_row_has_its_model_tokens_cost_and_failure_rate(srv, store, llm_env):
    from market.history import HistoryProvider
    from strategies.llm.trader import llm_intent
    from tests.fakes.fake_openai import Behaviour
    from tests.support.llm import AS_OF, decision, fund, model, reply, trader

    _put(store, "crypto_book", "BTC-USDT", _crypto_curve())
    cfg = trader([model(srv, "m-lb")], strategy_id="llm_lb")
    store.set(paths.strategy("llm_lb"), cfg.to_store())
    fund(store, "llm_lb", cash=10_000.0)
    srv.script("m-lb", [Behaviour.ok(reply(decision("BTC-USDT", "hold")), prompt_tokens=3000, completion_tokens=250)])
    srv.set_default("m-lb", Behaviour.server_error())
    provider = HistoryProvider()
    assert llm_intent(cfg, provider.view(AS_OF), store).status == "success"
    assert llm_intent(cfg, provider.view(AS_OF + timedelta(hours=4)), store).status == "error"
    rows = {r["strategy_id"]: r for r in leaderboard(store, INSTRUMENTS)}
    r = rows["llm_lb"]
    assert (r["kind"], r["model"], r["decisions"], r["tokens"]) == ("llm", "m-lb", 2, 3250)
    assert r["cost_usd"] == pytest.approx((3000 * 1.0 + 250 * 2.0) / 1e6)  # the test models' prices per million
    assert r["failure_rate"] == pytest.approx(0.5)
    assert all(rows["crypto_book"][c] is None for c in ("model", "decisions", "tokens", "cost_usd", "failure_rate"))
