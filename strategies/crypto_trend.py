"""``crypto_trend``: long BTC and ETH while each closes above its EMA.

Rule (a classic time-series trend filter, as in Faber, "A Quantitative
Approach to Tactical Asset Allocation", 2007, here with an EMA from the ``ta``
library): for each symbol, weight = ``weight`` (fraction of the strategy's
capital) when the last daily close is above EMA(``ema_window``), else 0.
``signal_strength`` is the mean of tanh(10 × (close / EMA − 1)).

Parameters: symbols [BTC-USDT, ETH-USDT], ema_window 50, weight 0.45,
max_data_age_days 2.
"""

from __future__ import annotations

import math

import ta

from bus.models import IntentMetadata, TargetPosition
from strategies.base import Strategy, StrategyContext, StrategyResult
from strategies.registry import register


@register("crypto_trend")
class CryptoTrend(Strategy):
    """EMA trend filter on daily crypto closes."""

    code_version = "crypto_trend/1"

    def compute(self, ctx: StrategyContext) -> StrategyResult:
        symbols = list(ctx.param("symbols", ["BTC-USDT", "ETH-USDT"]))
        window = int(ctx.param("ema_window", 50))
        weight = float(ctx.param("weight", 0.45))
        targets: list[TargetPosition] = []
        indicators: dict[str, float | str | None] = {}
        strengths: list[float] = []
        for sym in symbols:
            ctx.market.require_fresh(sym, ctx.max_data_age(2))
            bars = ctx.market.bars(sym, lookback=window * 4)
            if len(bars) < window:
                raise ValueError(f"crypto_trend needs {window} bars of {sym}, has {len(bars)}")
            ema = float(ta.trend.EMAIndicator(bars["close"], window=window).ema_indicator().iloc[-1])
            close = float(bars["close"].iloc[-1])
            indicators[f"{sym}_close"] = close
            indicators[f"{sym}_ema{window}"] = ema
            strengths.append(math.tanh(10 * (close / ema - 1)))
            targets.append(TargetPosition(symbol=sym, secType="CRYPTO", exchange="BINANCE", currency="USDT",
                                          weight=weight if close > ema else 0.0))
        return StrategyResult(targets, IntentMetadata(signal_strength=sum(strengths) / len(strengths),
                                                      indicators=indicators))
