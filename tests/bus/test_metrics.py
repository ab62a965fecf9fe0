"""Performance metrics (bus/metrics.py): the textbook formulas, in fractions, annualized as asked,
on real bundled prices; one implementation shared by the Commander and the LLM traders."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bus import metrics
from bus.metrics import (
    PERIODS_PER_YEAR_CRYPTO,
    PERIODS_PER_YEAR_ETF,
    annual_turnover,
    curve_sharpe,
    drawdown_series,
    returns_from_curve,
    sharpe,
    summary,
)
from market.history import HistoryProvider


@pytest.fixture(scope="module")
def btc_curve() -> dict[str, float]:
    """A year of buy-and-hold BTC-USDT from the bundled daily bars: 1 coin, equity = close."""
    closes = HistoryProvider().frame("BTC-USDT", "1d")["close"].iloc[-366:]
    return {t.strftime("%Y-%m-%d"): float(c) for t, c in closes.items()}


def test_sharpe_is_mean_over_sample_std_times_root_periods(btc_curve):
    closes = np.array(list(btc_curve.values()))
    r = closes[1:] / closes[:-1] - 1
    by_hand = r.mean() / r.std(ddof=1)
    for ppy in (PERIODS_PER_YEAR_CRYPTO, PERIODS_PER_YEAR_ETF, 12):
        assert sharpe(returns_from_curve(btc_curve), ppy) == pytest.approx(by_hand * math.sqrt(ppy), rel=1e-12)
    # the annualization factor is the caller's: 365 vs 252 differ by √(365/252)
    assert sharpe(returns_from_curve(btc_curve), 365) / sharpe(returns_from_curve(btc_curve), 252) == pytest.approx(
        math.sqrt(365 / 252))


def test_returns_are_fractions_oldest_first_whatever_the_key_order():
    curve = {"2024-01-03": 99.0, "2024-01-01": 100.0, "2024-01-02": 110.0}
    r = returns_from_curve(curve)
    assert list(r) == pytest.approx([0.10, 99 / 110 - 1])
    assert [d.strftime("%Y-%m-%d") for d in r.index] == ["2024-01-02", "2024-01-03"]
    assert str(r.index.tz) == "UTC"
    assert returns_from_curve({"2024-01-01": 0.0, "2024-01-02": 50.0, "2024-01-03": 55.0}).tolist() == \
        pytest.approx([0.10])  # equity ≤ 0 has no return


def test_undefined_sharpe_is_none():
    assert sharpe(returns_from_curve({}), 365) is None
    assert sharpe(returns_from_curve({"2024-01-01": 1.0}), 365) is None
    assert sharpe(returns_from_curve({"2024-01-01": 1.0, "2024-01-02": 1.1}), 365) is None  # one return
    flat = {f"2024-01-{d:02d}": 100.0 for d in range(1, 10)}
    assert sharpe(returns_from_curve(flat), 365) is None  # zero volatility


def test_curve_sharpe_uses_the_lookback_and_needs_history(btc_curve):
    last31 = dict(list(btc_curve.items())[-31:])
    assert curve_sharpe(btc_curve, 30, 3, 365) == pytest.approx(sharpe(returns_from_curve(last31), 365))
    assert curve_sharpe(dict(list(btc_curve.items())[:3]), 30, 3, 365) is None  # 2 returns < 3 days


def test_summary_matches_the_textbook_formulas(btc_curve):
    ppy = PERIODS_PER_YEAR_CRYPTO
    e = np.array(list(btc_curve.values()))
    r = e[1:] / e[:-1] - 1
    n = len(r)
    m = summary(btc_curve, [5.0, -2.0, 0.0, 1.0], ppy)
    assert m["equity"] == e[-1] and m["total_return"] == pytest.approx(e[-1] / e[0] - 1)
    assert m["cagr"] == pytest.approx((e[-1] / e[0]) ** (ppy / n) - 1)
    assert m["volatility"] == pytest.approx(r.std(ddof=1) * math.sqrt(ppy))
    assert m["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(ppy))
    downside = math.sqrt(np.mean(np.minimum(r, 0) ** 2)) * math.sqrt(ppy)
    assert m["sortino"] == pytest.approx(r.mean() * ppy / downside)
    mdd = float(np.min(e / np.maximum.accumulate(e) - 1))
    assert m["max_drawdown"] == pytest.approx(mdd) and mdd < 0
    assert m["calmar"] == pytest.approx(m["cagr"] / abs(mdd))
    assert m["win_rate"] == 0.5 and m["trades"] == 4.0
    assert float(drawdown_series(btc_curve).min()) == pytest.approx(mdd)


def test_summary_with_too_little_history_says_none():
    m = summary({"2024-01-01": 100.0}, [], 365)
    assert m["equity"] == 100.0
    assert all(m[k] is None for k in ("total_return", "cagr", "volatility", "sharpe", "sortino", "max_drawdown",
                                      "calmar", "win_rate"))


def test_turnover_counts_both_sides_per_year():
    # 2x equity traded over 73 daily steps, 365 a year: 10x a year.
    assert annual_turnover(200_000, 100_000, 73, 365) == pytest.approx(10.0)
    assert annual_turnover(1.0, 0.0, 10, 365) is None and annual_turnover(1.0, 1.0, 0, 365) is None


def test_one_implementation_for_the_commander_and_the_traders():
    import bus.metrics
    from strategies.llm import context

    for name in ("sharpe", "curve_sharpe", "summary", "returns_from_curve", "drawdown_series", "annual_turnover"):
        assert getattr(bus.metrics, name) is getattr(metrics, name)
    assert context.sharpe is metrics.sharpe


def test_the_annualization_is_always_the_callers_choice():
    import inspect

    for fn in (sharpe, curve_sharpe, summary, annual_turnover):
        p = inspect.signature(fn).parameters["periods_per_year"]
        assert p.default is inspect.Parameter.empty, fn.__name__
    assert pd.api.types.is_float_dtype(returns_from_curve({"2024-01-01": 1, "2024-01-02": 2}))
