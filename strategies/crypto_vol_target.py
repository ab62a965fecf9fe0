"""``crypto_vol_target``: trend on BTC/ETH/SOL perpetuals, sized by volatility targeting.

Rule, per perpetual *i* (signal from the daily closes of its ``signal`` series):

* **direction** s_i: the sign of the close-to-close return over the last
  ``lookback_days`` bars (time-series momentum: Moskowitz, Ooi & Pedersen,
  "Time series momentum", Journal of Financial Economics 104(2), 2012); with
  ``allow_short`` false a negative sign gives 0 (flat) instead of a short;
* **size**: ``w_i = min(w_max, risk_budget_i × target_vol / realized_vol_i)``
  (the position-sizing formula of seed 004, "能力3：自动优化仓位": volatility
  target / risk budget; the same inverse-volatility scaling Moskowitz et al. use,
  weight ∝ target σ / σ_i), with ``realized_vol_i`` the standard deviation of the
  last ``vol_window`` daily log returns × √365 (crypto trades every day);
* target weight = s_i × w_i, a signed fraction of the strategy's capital.

A perpetual is a margin contract: the paper broker charges the Binance USD-M
8-hourly funding on the position it holds (longs pay a positive rate), which is
why this strategy "pays funding" while a spot strategy does not.

A symbol whose signal series has no bar yet (SOL before 2020-08) is left out
of the targets (nothing can be priced), one with too few bars for the look-back
and volatility windows gets weight 0; either way the reason is in the intent's
metadata (``{symbol}_status``). A **stale** series (newest bar older
than ``max_data_age_days``) raises: the whole intent is an error and the
strategy keeps its book (fail closed). So does having no usable symbol at all.

Parameters (``params``), fractions unless noted:

* ``symbols``: traded perpetual -> signal series (daily bars), default
  ``{BTC-USDT-PERP: BTC-USDT, ETH-USDT-PERP: ETH-USDT, SOL-USDT-PERP: SOL-USDT}``;
* ``lookback_days`` 60 (bars), ``vol_window`` 30 (bars);
* ``target_vol`` 0.6 (annualized, of the whole strategy when the budgets sum to 1);
* ``risk_budget``: perpetual -> share of the risk, default equal (1/N);
* ``w_max`` 0.5 (cap per symbol); ``allow_short`` true; ``max_data_age_days`` 2.

``signal_strength`` is the mean of s_i × min(1, w_i / w_max) over usable symbols.
"""

from __future__ import annotations

import math

import numpy as np

from bus.models import IntentMetadata, TargetPosition
from market.history import MarketDataError, StaleDataError
from strategies.base import Strategy, StrategyContext, StrategyResult
from strategies.registry import register

DEFAULT_SYMBOLS = {"BTC-USDT-PERP": "BTC-USDT", "ETH-USDT-PERP": "ETH-USDT", "SOL-USDT-PERP": "SOL-USDT"}
ANNUALIZATION = 365


def realized_vol(closes: np.ndarray, window: int, periods_per_year: int = ANNUALIZATION) -> float:
    """Annualized volatility: std (ddof=1) of the last ``window`` daily log returns × √periods_per_year.

    Args:
        closes: daily closes, oldest first; at least ``window + 1`` of them.

    Raises:
        ValueError: too few closes.
    """
    if len(closes) < window + 1:
        raise ValueError(f"realized_vol needs {window + 1} closes, got {len(closes)}")
    r = np.diff(np.log(np.asarray(closes[-(window + 1):], dtype=float)))
    return float(np.std(r, ddof=1) * math.sqrt(periods_per_year))


def vol_target_weight(risk_budget: float, target_vol: float, vol: float, w_max: float) -> float:
    """Seed 004's ``w_i = min(w_max, risk_budget_i × target_vol / realized_vol_i)`` (unsigned fraction).

    A zero or undefined volatility gives ``w_max`` (the cap binds).
    """
    if not vol or not math.isfinite(vol) or vol <= 0:
        return w_max
    return min(w_max, risk_budget * target_vol / vol)


def trend_sign(closes: np.ndarray, lookback: int) -> int:
    """+1, -1 or 0: the sign of closes[-1] / closes[-1 - lookback] − 1.

    Raises:
        ValueError: fewer than ``lookback + 1`` closes.
    """
    if len(closes) < lookback + 1:
        raise ValueError(f"trend_sign needs {lookback + 1} closes, got {len(closes)}")
    ret = float(closes[-1]) / float(closes[-1 - lookback]) - 1.0
    return 1 if ret > 0 else (-1 if ret < 0 else 0)


@register("crypto_vol_target")
class CryptoVolTarget(Strategy):
    """Time-series momentum on crypto perpetuals with volatility-targeted weights (seed 004)."""

    code_version = "crypto_vol_target/1"

    def compute(self, ctx: StrategyContext) -> StrategyResult:
        symbols = dict(ctx.param("symbols", DEFAULT_SYMBOLS))
        lookback = int(ctx.param("lookback_days", 60))
        window = int(ctx.param("vol_window", 30))
        target_vol = float(ctx.param("target_vol", 0.6))
        w_max = float(ctx.param("w_max", 0.5))
        allow_short = bool(ctx.param("allow_short", True))
        budgets = dict(ctx.param("risk_budget", {}) or {})
        age = ctx.max_data_age(2)
        need = max(lookback, window) + 1
        targets: list[TargetPosition] = []
        indicators: dict[str, float | str | None] = {}
        strengths: list[float] = []
        for perp, signal in symbols.items():
            budget = float(budgets.get(perp, 1.0 / len(symbols)))
            try:
                bars = ctx.market.bars(signal, lookback=need)
            except StaleDataError:
                raise
            except MarketDataError as exc:
                # Not listed: no bar exists yet, so there is no price to size even a zero target.
                indicators[f"{perp}_status"] = f"no data: {exc}"
                continue
            ctx.market.require_fresh(signal, age)  # StaleDataError: fail closed, keep the book
            closes = bars["close"].to_numpy(dtype=float)
            if len(closes) < need:
                indicators[f"{perp}_status"] = f"history too short: {len(closes)} of {need} bars"
                targets.append(self._target(perp, 0.0))
                continue
            vol = realized_vol(closes, window)
            w = vol_target_weight(budget, target_vol, vol, w_max)
            sign = trend_sign(closes, lookback)
            if sign < 0 and not allow_short:
                sign = 0
            weight = sign * w
            indicators.update({f"{perp}_close": float(closes[-1]), f"{perp}_realized_vol": vol,
                               f"{perp}_trend": float(sign), f"{perp}_weight": weight})
            strengths.append(sign * min(1.0, w / w_max) if w_max > 0 else 0.0)
            targets.append(self._target(perp, weight))
        if not strengths:
            raise MarketDataError(f"crypto_vol_target: no usable symbol as of {ctx.as_of.isoformat()}: "
                                  + "; ".join(str(v) for k, v in indicators.items() if k.endswith("_status")))
        return StrategyResult(targets, IntentMetadata(signal_strength=sum(strengths) / len(strengths),
                                                      indicators=indicators))

    @staticmethod
    def _target(perp: str, weight: float) -> TargetPosition:
        return TargetPosition(symbol=perp, secType="PERP", exchange="BINANCEUSDM", currency="USDT", weight=weight)
