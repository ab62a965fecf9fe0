"""``spy_macd_vixy``: SPY exposure by the MACD histogram, hedged with VIXY (or ``hedge_symbol``).

Rule (Appel's MACD, 12/26/9 EMAs of daily closes, computed with the ``ta``
library): the histogram is MACD − signal.

* histogram > 0 (momentum up): SPY at ``long_weight`` of the strategy's
  capital, no hedge;
* histogram ≤ 0 (momentum down): SPY cut to ``defensive_weight`` and the hedge
  ``hedge_symbol`` (default VIXY, short-term VIX futures, which rise when equity
  volatility spikes) bought at ``hedge_weight``.

Weights are fractions of the strategy's capital. ``signal_strength`` is
tanh(histogram / σ), σ the standard deviation of the histogram over the last
``strength_window`` bars, so it lies in (−1, 1). Metadata records
``macd_hist`` (price units of SPY), ``hedge_level`` (the hedge's last close; also
as ``vixy_level`` when the hedge is VIXY) and ``spy_close``.

Parameters (``params``): fast 12, slow 26, signal 9, long_weight 0.9,
defensive_weight 0.3, hedge_weight 0.1, hedge_symbol VIXY, strength_window 60,
max_data_age_days 5 (covers weekends and holidays). The hedge symbol must be in the
strategy's ``universe`` for its data to be read.
"""

from __future__ import annotations

import math

import ta

from bus.models import IntentMetadata, TargetPosition
from strategies.base import Strategy, StrategyContext, StrategyResult
from strategies.registry import register


def macd_histogram(closes, fast: int = 12, slow: int = 26, signal: int = 9):
    """MACD histogram (MACD line − signal line) of a close series, via ``ta.trend.MACD``."""
    return ta.trend.MACD(closes, window_slow=slow, window_fast=fast, window_sign=signal).macd_diff()


def target_weights(hist: float, long_weight: float, defensive_weight: float, hedge_weight: float,
                   hedge: str = "VIXY") -> dict[str, float]:
    """The rule: SPY and ``hedge`` weights (fractions of capital) for one histogram value."""
    if hist > 0:
        return {"SPY": long_weight, hedge: 0.0}
    return {"SPY": defensive_weight, hedge: hedge_weight}


@register("spy_macd_vixy")
class SpyMacdVixy(Strategy):
    """SPY long exposure by MACD(12, 26, 9), a hedge (``hedge_symbol``, VIXY) when momentum turns down."""

    code_version = "spy_macd_vixy/2"

    def compute(self, ctx: StrategyContext) -> StrategyResult:
        fast, slow, sig = int(ctx.param("fast", 12)), int(ctx.param("slow", 26)), int(ctx.param("signal", 9))
        window = int(ctx.param("strength_window", 60))
        age = ctx.max_data_age(5)
        hedge = str(ctx.param("hedge_symbol", "VIXY"))
        ctx.market.require_fresh("SPY", age)
        ctx.market.require_fresh(hedge, age)
        spy = ctx.market.bars("SPY", lookback=max(400, slow * 10))
        if len(spy) < slow + sig + 1:
            raise ValueError(f"spy_macd_vixy needs at least {slow + sig + 1} SPY bars, has {len(spy)}")
        hist = macd_histogram(spy["close"], fast, slow, sig).dropna()
        h = float(hist.iloc[-1])
        sd = float(hist.iloc[-window:].std()) or 1.0
        weights = target_weights(h, float(ctx.param("long_weight", 0.9)), float(ctx.param("defensive_weight", 0.3)),
                                 float(ctx.param("hedge_weight", 0.1)), hedge)
        level = ctx.market.last_price(hedge)
        targets = [TargetPosition(symbol=s, secType="STK", exchange="SMART", currency="USD", weight=w)
                   for s, w in weights.items()]
        indicators: dict[str, float | str | None] = {"macd_hist": h, "hedge_level": level,
                                                     "spy_close": float(spy["close"].iloc[-1])}
        if hedge == "VIXY":
            indicators["vixy_level"] = level
        meta = IntentMetadata(signal_strength=math.tanh(h / sd), indicators=indicators)
        return StrategyResult(targets, meta)
