"""Step 4: turn a strategy's targets (weight, notional or quantity) into units.

``weight`` w: units = w × capital / (price × multiplier).
``notional`` n: units = n / (price × multiplier). ``quantity`` is taken as is.
Then each position is capped at ``max_single_position_exposure`` × capital and
the strategy's gross exposure at ``max_leverage`` × capital, scaled pro rata;
every cap that binds is a :class:`~bus.models.RiskAdjustment`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bus.constants import LIMIT_EPS
from bus.models import Instrument, InstrumentSpec, RiskAdjustment, StrategyConfig, TargetPosition


class SizingError(ValueError):
    """A target cannot be sized (no price for a weight or notional target)."""


@dataclass
class Sized:
    """One strategy's book in units: symbol -> signed quantity, plus instruments and caps applied."""

    quantities: dict[str, float] = field(default_factory=dict)
    instruments: dict[str, Instrument] = field(default_factory=dict)
    adjustments: list[RiskAdjustment] = field(default_factory=list)
    duplicates: dict[str, int] = field(default_factory=dict)


def _multiplier(specs: dict[str, InstrumentSpec], symbol: str) -> float:
    spec = specs.get(symbol)
    return spec.multiplier if spec else 1.0


def _amount(t: TargetPosition, capital: float) -> float:
    """Base-currency amount of a weight or notional target (a validated target has exactly one size)."""
    if t.weight is not None:
        return t.weight * capital
    if t.notional is None:
        raise SizingError(f"target {t.symbol} has no size: one of quantity, weight, notional is required")
    return float(t.notional)


def unit_values(prices: dict[str, float], specs: dict[str, InstrumentSpec]) -> dict[str, float]:
    """Base currency per unit of each priced symbol: price × multiplier."""
    return {sym: p * _multiplier(specs, sym) for sym, p in prices.items() if p and p > 0}


def size_targets(strategy: StrategyConfig, targets: list[TargetPosition], capital: float,
                 values: dict[str, float]) -> Sized:
    """Size one strategy's whole target book and apply its own caps.

    Args:
        values: symbol -> base currency per unit (:func:`unit_values`).

    Raises:
        SizingError: a weight or notional target on a symbol without a price.
    """
    out = Sized()
    q_of, inst = out.quantities, out.instruments
    for t in targets:
        sym = t.symbol
        if t.quantity is not None:
            q = float(t.quantity)
        else:
            v = values.get(sym)
            if not v:
                raise SizingError(f"no price for {sym}: cannot size a weight/notional target")
            q = _amount(t, capital) / v
        if sym in q_of:
            out.duplicates[sym] = out.duplicates.get(sym, 1) + 1
            q_of[sym] += q
        else:
            q_of[sym] = q
            inst[sym] = t  # a TargetPosition is an Instrument; copied only when recorded
    rp = strategy.risk_parameters
    cap_pos = rp.max_single_position_exposure * capital
    gross = 0.0
    for sym, q in q_of.items():
        v = abs(q) * values.get(sym, 0.0)
        if v > cap_pos + LIMIT_EPS:
            new = q * cap_pos / v
            out.adjustments.append(RiskAdjustment(rule="max_single_position_exposure", symbol=sym,
                                                  strategy_id=strategy.strategy_id, before=q, after=new,
                                                  note=f"position {v:.2f} > {cap_pos:.2f}"))
            q_of[sym] = new
            v = cap_pos
        gross += v
    cap_gross = rp.max_leverage * capital
    if gross > cap_gross + LIMIT_EPS:
        f = cap_gross / gross
        for sym, q in q_of.items():
            if q:
                out.adjustments.append(RiskAdjustment(rule="strategy_max_leverage", symbol=sym,
                                                      strategy_id=strategy.strategy_id, before=q, after=q * f,
                                                      note=f"gross {gross:.2f} > {cap_gross:.2f}"))
                q_of[sym] = q * f
    return out
