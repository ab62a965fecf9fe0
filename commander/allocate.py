"""Step 3: capital per strategy (base currency).

* ``custom``: each strategy gets ``capital_allocation`` × NAV; allocations of
  enabled strategies must sum to at most 1 − ``reserve_fraction`` (refused when
  the configuration is applied, naming the strategies).
* ``equal``: each enabled strategy gets (1 − reserve) / N of NAV.
* ``performance_based``: weights proportional to each book's annualized Sharpe
  ratio (see :mod:`bus.metrics`) over the look-back, clamped to
  [``floor``, ``cap``]; too little history or a Sharpe ≤ 0 gets the floor. The
  strategies with a positive Sharpe share what the floors leave of 1 − reserve;
  whatever the caps cut stays unallocated (it is not pushed onto others).
"""

from __future__ import annotations

from bus.constants import LIMIT_EPS
from bus.models import StrategyConfig, TradingConfig


class AllocationError(ValueError):
    """The configured allocations cannot be honoured; the message names the strategies."""


def validate_allocations(config: TradingConfig, strategies: list[StrategyConfig]) -> None:
    """Refuse allocations that cannot fit in 1 − reserve.

    ``custom``: enabled allocations summing past 1 − reserve. ``performance_based``:
    N × floor past 1 − reserve, or floor > cap.

    Raises:
        AllocationError: naming each strategy and its share.
    """
    enabled = [s for s in strategies if s.enabled]
    limit = 1.0 - config.reserve_fraction
    if config.allocation_method == "custom":
        total = sum(s.capital_allocation for s in enabled)
        if total > limit + LIMIT_EPS:
            parts = ", ".join(f"{s.strategy_id}={s.capital_allocation:g}" for s in enabled)
            raise AllocationError(f"capital allocations sum to {total:g}, past 1 - reserve = {limit:g} ({parts})")
    elif config.allocation_method == "performance_based":
        p = config.performance
        if p.floor > p.cap:
            raise AllocationError(f"performance floor {p.floor:g} is above the cap {p.cap:g}")
        if p.floor * len(enabled) > limit + LIMIT_EPS:
            names = ", ".join(s.strategy_id for s in enabled)
            raise AllocationError(f"{len(enabled)} strategies x floor {p.floor:g} = {p.floor * len(enabled):g} "
                                  f"is past 1 - reserve = {limit:g} ({names})")


def performance_weights(sharpes: dict[str, float | None], floor: float, cap: float, budget: float) -> dict[str, float]:
    """Fractions of NAV from Sharpe ratios (None = too little history). See the module docstring."""
    weights = {sid: floor for sid, s in sharpes.items() if s is None or s <= 0}
    good = {sid: s for sid, s in sharpes.items() if s is not None and s > 0}
    rest = max(0.0, budget - floor * len(weights))
    total = sum(good.values())
    for sid, s in good.items():
        weights[sid] = min(cap, max(floor, rest * s / total))
    return dict(sorted(weights.items()))


def allocate(config: TradingConfig, strategies: dict[str, StrategyConfig], nav: float,
             sharpes: dict[str, float | None] | None = None) -> dict[str, float]:
    """Capital (base currency) per enabled strategy.

    Args:
        sharpes: strategy id -> annualized Sharpe of its book, None when history
            is too short (``performance_based`` only).

    Raises:
        AllocationError: see :func:`validate_allocations`.
    """
    enabled = {sid: s for sid, s in sorted(strategies.items()) if s.enabled}
    validate_allocations(config, list(enabled.values()))
    budget = 1.0 - config.reserve_fraction
    if config.allocation_method == "custom":
        return {sid: nav * s.capital_allocation for sid, s in enabled.items()}
    if config.allocation_method == "equal":
        return {sid: nav * budget / len(enabled) for sid in enabled} if enabled else {}
    p = config.performance
    w = performance_weights({sid: (sharpes or {}).get(sid) for sid in enabled}, p.floor, p.cap, budget)
    return {sid: nav * f for sid, f in w.items()}
