"""Step 4: turn a strategy's targets (weight, notional or quantity) into units.

``weight`` w: units = w × capital / (price × multiplier).
``notional`` n: units = n / (price × multiplier). ``quantity`` is taken as is.
Then each position is capped at ``max_single_position_exposure`` × capital and
the strategy's gross exposure at ``max_leverage`` × capital, scaled pro rata;
every cap that binds is a :class:`~bus.models.RiskAdjustment`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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


def units(target: TargetPosition, capital: float, price: float | None, multiplier: float = 1.0) -> float:
    """Signed units of one target.

    Raises:
        SizingError: a weight or notional target without a positive price.
    """
    if target.quantity is not None:
        return float(target.quantity)
    if price is None or price <= 0:
        raise SizingError(f"no price for {target.symbol}: cannot size a weight/notional target")
    amount = target.weight * capital if target.weight is not None else float(target.notional)  # type: ignore[arg-type]
    return amount / (price * multiplier)


def size_targets(strategy: StrategyConfig, targets: list[TargetPosition], capital: float,
                 prices: dict[str, float], specs: dict[str, InstrumentSpec]) -> Sized:
    """Size one strategy's whole target book and apply its own caps.

    Raises:
        SizingError: see :func:`units`.
    """
    out = Sized()
    for t in targets:
        q = units(t, capital, prices.get(t.symbol), _multiplier(specs, t.symbol))
        if t.symbol in out.quantities:
            out.duplicates[t.symbol] = out.duplicates.get(t.symbol, 1) + 1
        out.quantities[t.symbol] = out.quantities.get(t.symbol, 0.0) + q
        out.instruments[t.symbol] = Instrument(symbol=t.symbol, secType=t.secType, exchange=t.exchange,
                                               currency=t.currency, contract_details=t.contract_details)
    rp = strategy.risk_parameters

    def value(sym: str, q: float) -> float:
        p = prices.get(sym)
        return abs(q) * p * _multiplier(specs, sym) if p else 0.0

    cap_pos = rp.max_single_position_exposure * capital
    for sym, q in list(out.quantities.items()):
        v = value(sym, q)
        if v > cap_pos + 1e-9 and v > 0:
            new = q * cap_pos / v
            out.adjustments.append(RiskAdjustment(rule="max_single_position_exposure", symbol=sym,
                                                  strategy_id=strategy.strategy_id, before=q, after=new,
                                                  note=f"position {v:.2f} > {cap_pos:.2f}"))
            out.quantities[sym] = new
    gross = sum(value(s, q) for s, q in out.quantities.items())
    cap_gross = rp.max_leverage * capital
    if gross > cap_gross + 1e-9:
        f = cap_gross / gross
        for sym, q in list(out.quantities.items()):
            if q:
                out.adjustments.append(RiskAdjustment(rule="strategy_max_leverage", symbol=sym,
                                                      strategy_id=strategy.strategy_id, before=q, after=q * f,
                                                      note=f"gross {gross:.2f} > {cap_gross:.2f}"))
                out.quantities[sym] = q * f
    return out
