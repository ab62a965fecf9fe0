"""``test_signal_generator``: a small deterministic strategy for checking the pipeline.

It always wants ``spy_quantity`` shares of SPY and ``vixy_quantity`` shares of
VIXY (default 10 and −20: a short that opposes ``spy_macd_vixy``'s hedge, so
netting has something to do). It still requires fresh SPY data, so it fails
closed outside the data like any strategy.
"""

from __future__ import annotations

from bus.models import IntentMetadata, TargetPosition
from strategies.base import Strategy, StrategyContext, StrategyResult
from strategies.registry import register


@register("test_signal_generator")
class TestSignalGenerator(Strategy):
    """Fixed quantities of SPY and VIXY, from ``params``."""

    code_version = "test_signal_generator/1"
    __test__ = False  # not a pytest class

    def compute(self, ctx: StrategyContext) -> StrategyResult:
        ctx.market.require_fresh("SPY", ctx.max_data_age(5))
        spy_q = float(ctx.param("spy_quantity", 10))
        vixy_q = float(ctx.param("vixy_quantity", -20))
        targets = [TargetPosition(symbol="SPY", quantity=spy_q), TargetPosition(symbol="VIXY", quantity=vixy_q)]
        return StrategyResult(targets, IntentMetadata(signal_strength=0.0, indicators={"fixed": "true"}))
