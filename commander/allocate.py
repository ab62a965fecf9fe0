"""Step 3: capital per strategy.

Allocatable capital = net liquidation × (1 − ``reserve_fraction``). Under
``custom`` each strategy gets its ``capital_allocation`` × NAV; the
allocations must sum to at most 1 − reserve (checked when config is applied).
``equal`` gives each enabled strategy 1/N of allocatable capital.
"""

from __future__ import annotations

from bus.models import StrategyConfig, TradingConfig


class AllocationError(ValueError):
    """The configured allocations cannot be honoured; the message names the strategies."""


def validate_allocations(config: TradingConfig, strategies: list[StrategyConfig]) -> None:
    """Refuse ``custom`` allocations of enabled strategies summing past 1 − reserve.

    Raises:
        AllocationError: naming each strategy and its share.
    """
    if config.allocation_method != "custom":
        return
    enabled = [s for s in strategies if s.enabled]
    total = sum(s.capital_allocation for s in enabled)
    limit = 1.0 - config.reserve_fraction
    if total > limit + 1e-9:
        parts = ", ".join(f"{s.strategy_id}={s.capital_allocation:g}" for s in enabled)
        raise AllocationError(
            f"capital allocations sum to {total:g}, past 1 - reserve = {limit:g} ({parts})")


def allocate(config: TradingConfig, strategies: dict[str, StrategyConfig], nav: float) -> dict[str, float]:
    """Capital (base currency) per enabled strategy.

    Raises:
        AllocationError: allocations past the limit, or a method not yet implemented.
    """
    enabled = {sid: s for sid, s in strategies.items() if s.enabled}
    validate_allocations(config, list(enabled.values()))
    if config.allocation_method == "custom":
        return {sid: nav * s.capital_allocation for sid, s in sorted(enabled.items())}
    if config.allocation_method == "equal":
        share = (1.0 - config.reserve_fraction) / len(enabled) if enabled else 0.0
        return {sid: nav * share for sid in sorted(enabled)}
    raise AllocationError(f"allocation method {config.allocation_method!r} is not implemented yet")
