"""Step 4: turn a strategy's targets (weight, notional or quantity) into units.

``capital`` is the strategy's own book equity (base currency, see
:mod:`commander.allocate`: a book is a sub-account), never a share of the
account's NAV.

``weight`` w: units = w × capital / (price × multiplier).
``notional`` n: units = n / (price × multiplier). ``quantity`` is taken as is.
Then each position is capped at ``max_single_position_exposure`` × capital and
the strategy's gross exposure at ``max_leverage`` × capital, scaled pro rata;
every cap that binds is a :class:`~bus.models.RiskAdjustment`.

Order minimums per book (:func:`hold_small_changes`): a change of the book's units
smaller than the order minimums (``min_order_notional`` / the instrument's
``min_notional`` and ``min_quantity``) or, unless it opens or closes the position,
than ``rebalance_band`` × the target's notional, keeps the book's units. These are
the diff's rules applied to each book on its own, so a strategy trades the same
changes whether it shares the account or runs alone; a held change that would
leave the book above ``max_leverage`` × equity is not held. A non-zero target of
less than half a lot is flagged (:func:`zero_lots`): it rounds to no order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bus.constants import LIMIT_EPS, QTY_EPS
from bus.models import (
    DEFAULT_SPEC,
    Instrument,
    InstrumentSpec,
    RiskAdjustment,
    StrategyConfig,
    TargetPosition,
    TradingConfig,
)


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


def negative_capital(strategy: StrategyConfig, capital: float) -> str | None:
    """Why a book cannot be sized on ``capital`` (base currency), None when it can: an equity so negative that
    its caps (``max_single_position_exposure`` and ``max_leverage`` × equity) are below zero beyond float
    noise (no position can meet them; scaling would flip their signs)."""
    rp = strategy.risk_parameters
    if max(rp.max_single_position_exposure, rp.max_leverage) * capital < -LIMIT_EPS:
        return f"book equity {capital:.2f} is negative: its targets cannot be sized"
    return None


def size_targets(strategy: StrategyConfig, targets: list[TargetPosition], capital: float,
                 values: dict[str, float]) -> Sized:
    """Size one strategy's whole target book and apply its own caps.

    Args:
        values: symbol -> base currency per unit (:func:`unit_values`).

    Raises:
        SizingError: a negative ``capital`` (:func:`negative_capital`), or a weight or notional target on a
            symbol without a price.
    """
    if (negative := negative_capital(strategy, capital)) is not None:
        raise SizingError(negative)
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
    cap_gross = rp.sizing_leverage * capital
    if gross > cap_gross + LIMIT_EPS:
        f = cap_gross / gross
        for sym, q in q_of.items():
            if q:
                out.adjustments.append(RiskAdjustment(rule="strategy_max_leverage", symbol=sym,
                                                      strategy_id=strategy.strategy_id, before=q, after=q * f,
                                                      note=f"gross {gross:.2f} > {cap_gross:.2f}"))
                q_of[sym] = q * f
    return out


def hold_small_changes(wanted: dict[str, float], book: dict[str, float], values: dict[str, float],
                       specs: dict[str, InstrumentSpec], config: TradingConfig, cap_gross: float) -> dict[str, float]:
    """One book's targets with changes under the order minimums held at its units (see the module docstring).

    Args:
        wanted: symbol -> signed units the strategy wants (sized, capped, isolated).
        book: symbol -> signed units its book holds.
        values: symbol -> base currency per unit.
        cap_gross: ``max_leverage`` × book equity (base currency): when holding the small
            changes would leave the book's gross exposure above it, every reduction is kept.

    Returns:
        symbol -> signed units, for the same symbols as ``wanted``.
    """
    out = {}
    for sym, q in wanted.items():
        held = book.get(sym, 0.0)
        change = abs(q - held)
        if change < QTY_EPS or abs(q) < QTY_EPS:  # nothing to do, or a close (never held back)
            out[sym] = q
            continue
        spec = specs.get(sym) or DEFAULT_SPEC
        v = values.get(sym, 0.0)
        small = (change < spec.min_quantity or change * v < max(spec.min_notional, config.min_order_notional)
                 or (abs(held) > QTY_EPS and change < config.rebalance_band * abs(q)))
        out[sym] = held if small else q
    gross = sum(abs(q) * values.get(sym, 0.0) for sym, q in out.items())
    if gross > cap_gross + LIMIT_EPS:
        out = {sym: (wanted[sym] if abs(wanted[sym]) < abs(q) else q) for sym, q in out.items()}
    return out


def zero_lots(quantities: dict[str, float], specs: dict[str, InstrumentSpec]) -> dict[str, float]:
    """The strategy's non-zero targets (symbol -> signed units) of less than half a lot: they round to zero
    lots, and the execution flags them (``decision.zero_lots``)."""
    out = {}
    for sym, q in quantities.items():
        if abs(q) > QTY_EPS and abs(q) < 0.5 * (specs.get(sym) or DEFAULT_SPEC).lot_size:
            out[sym] = q
    return out
