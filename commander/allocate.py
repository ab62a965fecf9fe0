"""Step 3: capital per strategy (base currency). Books are sub-accounts.

A strategy's capital is its **book's equity** (cash + Σ units × price ×
multiplier, at this run's prices), never a share of the whole account's NAV, so
one strategy's gains or losses never lever another. The allocation method below
gives each enabled strategy a fraction of NAV, which is used only:

* when its book is opened (first run, or a strategy added later): starting
  capital = fraction × NAV, capped at the cash no book holds (NAV − Σ books'
  equity − the value of holdings no book explains);
* at a rebalance (``TradingConfig.rebalance``): ``monthly`` at the first run of a
  calendar month (UTC) after the books' capital was last set, ``on_config_change``
  when the fraction the method gives differs from the one a book was set from,
  ``never`` not at all. A rebalance sets every book's equity to fraction × NAV by
  moving cash (the books' positions are untouched: each strategy's next targets
  are sized on its new equity), so the books still add up to the account.

Every open and rebalance is a :class:`~bus.models.CapitalMove` in the execution.
Fractions by method:

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

from datetime import datetime

from bus.constants import LIMIT_EPS
from bus.models import BookCapital, CapitalMove, StrategyConfig, TradingConfig

#: Two allocation fractions closer than this are the same (on_config_change).
FRACTION_EPS = 1e-9


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


def rebalance_due(config: TradingConfig, books: dict[str, BookCapital], fractions: dict[str, float],
                  as_of: datetime) -> str | None:
    """Why the existing books are rebalanced this run, or None (see the module docstring).

    Args:
        books: strategy id -> capital state of its existing book (enabled strategies only).
        fractions: strategy id -> fraction of NAV the allocation method gives it now.
    """
    if not books or config.rebalance == "never":
        return None
    if config.rebalance == "monthly":
        month = as_of.date().isoformat()[:7]
        late = sorted(s for s, b in books.items() if (b.capital_set_on or "")[:7] < month)
        return f"monthly rebalance: capital of {', '.join(late)} last set before {month}" if late else None
    changed = sorted(s for s, b in books.items() if b.capital_allocation is None
                     or abs(b.capital_allocation - fractions.get(s, 0.0)) > FRACTION_EPS)
    if not changed:
        return None
    parts = ", ".join(f"{s} {books[s].capital_allocation if books[s].capital_allocation is not None else '?'}"
                      f" -> {fractions.get(s, 0.0):g}" for s in changed)
    return f"allocation changed: {parts}"


def book_capital(config: TradingConfig, strategies: dict[str, StrategyConfig], nav: float,
                 books: dict[str, BookCapital], equity: dict[str, float], outside: float, as_of: datetime,
                 sharpes: dict[str, float | None] | None = None) -> tuple[dict[str, float], list[CapitalMove]]:
    """The capital each enabled strategy is sized on, and the cash the allocation moves (pure).

    Args:
        nav: the account's net liquidation (base currency).
        books: strategy id -> capital state of its book; a strategy without one gets a new book.
        equity: strategy id -> its existing book's equity at this run's prices (base currency).
        outside: value of the holdings no enabled strategy's book explains (base currency).

    Returns:
        (strategy id -> capital after the moves, the moves). Every enabled strategy is in it,
        unless some existing book has no equity (cannot be valued): then only the valued ones,
        and nothing moves.

    Raises:
        AllocationError: see :func:`validate_allocations`.
    """
    day = as_of.date().isoformat()
    target = allocate(config, strategies, nav, sharpes)
    fractions = {s: (v / nav if nav > 0 else 0.0) for s, v in target.items()}
    existing = {s: b for s, b in books.items() if s in target}
    capital = {s: equity[s] for s in existing if s in equity}
    moves: list[CapitalMove] = []
    if len(capital) < len(existing):
        # A book that cannot be valued (a held symbol without a price) leaves the free cash unknown: no
        # rebalance and no new book this run (fail closed); the decision errs the strategies left without capital.
        return dict(sorted(capital.items())), moves
    why = rebalance_due(config, existing, fractions, as_of) if nav > 0 else None
    if why:
        for s in sorted(existing):
            amount = target[s] - equity[s]
            moves.append(CapitalMove(strategy_id=s, kind="rebalance", amount=amount, equity_before=equity[s],
                                     equity_after=target[s], fraction=fractions[s], reason=why))
            capital[s] = target[s]
    free = nav - outside - sum(capital.values())
    for s in sorted(set(target) - set(existing)):
        amount = max(0.0, min(target[s], free))
        note = f"opened on {day} at {fractions[s]:g} x NAV {nav:.2f}"
        if amount < target[s] - LIMIT_EPS:
            note += f"; capped at the {max(free, 0.0):.2f} no book holds (wanted {target[s]:.2f})"
        moves.append(CapitalMove(strategy_id=s, kind="open", amount=amount, equity_before=0.0, equity_after=amount,
                                 fraction=fractions[s], reason=note))
        capital[s] = amount
        free -= amount
    return dict(sorted(capital.items())), moves
