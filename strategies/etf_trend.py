"""``etf_trend``: SPY / TLT / GLD, each held only in its uptrend, weighted by inverse volatility.

Rule, for each ETF *i* (daily closes):

* **trend filter** (Faber, "A Quantitative Approach to Tactical Asset
  Allocation", Journal of Wealth Management, 2007: hold an asset while its
  price is above its 10-month simple moving average, else cash): in when the
  last close is above SMA(``sma_window``) (200 trading days ≈ 10 months),
  computed with the ``ta`` library;
* **risk-parity weights**: inverse volatility, ``v_i = (1 / σ_i) / Σ_j (1 / σ_j)``
  over all ETFs, σ the standard deviation of the last ``vol_window`` daily log
  returns (the equal-risk-contribution portfolio when correlations are equal:
  Maillard, Roncalli & Teïletche, "The properties of equally weighted risk
  contribution portfolios", Journal of Portfolio Management 36(4), 2010);
* target weight = ``gross`` × v_i when in trend, else 0: an ETF out of trend
  leaves its share in cash (Faber), it is not given to the others.

Weights are fractions of the strategy's capital. Missing or stale data of any
ETF raises: the intent is an error and the strategy keeps its book.

Parameters (``params``): symbols [SPY, TLT, GLD], sma_window 200 (bars),
vol_window 60 (bars), gross 1.0 (fraction of capital when all are in trend),
max_data_age_days 5 (covers weekends and holidays).

``signal_strength`` is the in-trend share of the risk-parity weights, 2 × Σ in-trend v_i − 1, in [−1, 1].
"""

from __future__ import annotations

import numpy as np
import ta

from bus.models import IntentMetadata, TargetPosition
from strategies.base import Strategy, StrategyContext, StrategyResult
from strategies.registry import register


def inverse_vol_weights(vols: dict[str, float]) -> dict[str, float]:
    """``(1/σ_i) / Σ_j (1/σ_j)``: fractions summing to 1.

    Raises:
        ValueError: a volatility that is not positive and finite.
    """
    bad = {s: v for s, v in vols.items() if not (v > 0 and np.isfinite(v))}
    if bad:
        raise ValueError(f"inverse_vol_weights: volatilities must be positive, got {bad}")
    inv = {s: 1.0 / v for s, v in vols.items()}
    total = sum(inv.values())
    return {s: x / total for s, x in inv.items()}


@register("etf_trend")
class EtfTrend(Strategy):
    """Faber's trend filter on SPY/TLT/GLD with inverse-volatility (naive risk parity) weights."""

    code_version = "etf_trend/1"

    def compute(self, ctx: StrategyContext) -> StrategyResult:
        symbols = list(ctx.param("symbols", ["SPY", "TLT", "GLD"]))
        sma_window = int(ctx.param("sma_window", 200))
        vol_window = int(ctx.param("vol_window", 60))
        gross = float(ctx.param("gross", 1.0))
        age = ctx.max_data_age(5)
        need = max(sma_window, vol_window + 1)
        vols: dict[str, float] = {}
        trend: dict[str, bool] = {}
        indicators: dict[str, float | str | None] = {}
        for sym in symbols:
            ctx.market.require_fresh(sym, age)
            bars = ctx.market.bars(sym, lookback=need)
            if len(bars) < need:
                raise ValueError(f"etf_trend needs {need} bars of {sym}, has {len(bars)}")
            closes = bars["close"]
            sma = float(ta.trend.SMAIndicator(closes, window=sma_window).sma_indicator().iloc[-1])
            r = np.diff(np.log(closes.to_numpy(dtype=float)[-(vol_window + 1):]))
            vols[sym] = float(np.std(r, ddof=1) * np.sqrt(252))
            close = float(closes.iloc[-1])
            trend[sym] = close > sma
            indicators.update({f"{sym}_close": close, f"{sym}_sma{sma_window}": sma, f"{sym}_vol": vols[sym]})
        rp = inverse_vol_weights(vols)
        targets = []
        for sym in symbols:
            w = gross * rp[sym] if trend[sym] else 0.0
            indicators[f"{sym}_weight"] = w
            targets.append(TargetPosition(symbol=sym, secType="STK", exchange="SMART", currency="USD", weight=w))
        strength = 2 * sum(rp[s] for s in symbols if trend[s]) - 1
        return StrategyResult(targets, IntentMetadata(signal_strength=strength, indicators=indicators))
