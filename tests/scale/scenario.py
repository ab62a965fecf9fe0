"""A pipeline of many synthetic strategies over many synthetic symbols, for the scale test and benches.

Each strategy ``scale-NNNN`` is the real classic-strategy machinery (registry, runner,
intent documents) running :class:`ScaleStrategy`: ``targets`` weight targets drawn
from ``symbols`` symbols ``Z0000``… with its own seed, or, with ``fail: true``, an
exception (an ``error`` intent). The paper broker (:class:`brokers.sim.SimBroker`)
quotes every symbol at a fixed price from 10 to 499 USD.
"""

from __future__ import annotations

import random
from datetime import datetime, timezone

from brokers.sim import SimBroker
from bus import paths
from bus.models import InstrumentSpec, IntentMetadata, RiskLimits, StrategyConfig, TargetPosition, TradingConfig
from bus.store import Store
from strategies.base import Strategy, StrategyContext, StrategyResult
from strategies.registry import register

#: The run's as-of: a weekday inside the bundled market history (the strategies read no bars).
AS_OF = datetime(2024, 6, 3, 21, 30, tzinfo=timezone.utc)
NAV = 100_000_000.0


class ScaleStrategy(Strategy):
    """``targets`` signed weights (summing to at most 1 in absolute value) over ``symbols`` symbols, from ``seed``."""

    code_version = "scale/1"

    def compute(self, ctx: StrategyContext) -> StrategyResult:
        if ctx.param("fail", False):
            raise RuntimeError(f"{ctx.strategy_id} was told to fail")
        k, n = int(ctx.param("targets", 50)), int(ctx.param("symbols", 2000))
        rnd = random.Random(int(ctx.param("seed", 0)))
        chosen = sorted(rnd.sample(range(n), k))
        return StrategyResult([TargetPosition(symbol=symbol(j), weight=rnd.uniform(-1, 1) / k) for j in chosen],
                              IntentMetadata(signal_strength=0.0, indicators={"scale": "true"}))


def symbol(j: int) -> str:
    """The ``j``-th synthetic symbol."""
    return f"Z{j:04d}"


def price(sym: str, _at: datetime | None = None) -> float:
    """USD per unit of a synthetic symbol: 10 + (index mod 490)."""
    return 10.0 + int(sym[1:]) % 490


def strategy_id(i: int) -> str:
    return f"scale-{i:04d}"


def configs(n_strategies: int, n_symbols: int, per_strategy: int, failing: int = 0) -> list[StrategyConfig]:
    """``n_strategies`` enabled strategies sharing 90 % of NAV; the last ``failing`` of them fail."""
    out = []
    for i in range(n_strategies):
        sid = strategy_id(i)
        register(sid)(ScaleStrategy)
        out.append(StrategyConfig(strategy_id=sid, name=sid, capital_allocation=0.9 / n_strategies,
                                  params={"targets": per_strategy, "symbols": n_symbols, "seed": i,
                                          "fail": i >= n_strategies - failing}))
    return out


def setup(store: Store, strategies: list[StrategyConfig], n_symbols: int) -> SimBroker:
    """Write ``config/trading`` and the strategies (in batches), and return a paper broker quoting every symbol."""
    cfg = TradingConfig(risk=RiskLimits(max_open_positions=n_symbols))
    store.write_batches([(paths.TRADING_CONFIG, cfg.to_store())]
                        + [(paths.strategy(s.strategy_id), s.to_store()) for s in strategies])
    specs = {symbol(j): InstrumentSpec(symbol=symbol(j)) for j in range(n_symbols)}
    return SimBroker(store, "scale", price, specs, starting_cash=NAV, fill_at="close")
