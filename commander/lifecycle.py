"""A strategy's lifecycle state applied to its targets (pure; states in :mod:`pipeline.lifecycle`).

* ``paused``: its intent is not used; its target is its book, unchanged.
* ``isolated``: reduce only: each wanted target clamped between 0 and the book's units.
* ``retired``: its target is 0 for every symbol of its book (flatten); once the book is
  flat the Commander disables it (:func:`retired_flat`).

Each change to a wanted target is a :class:`bus.models.RiskAdjustment` (rule
``strategy_isolated`` or ``strategy_retired``), so the execution says why.
"""

from __future__ import annotations

from bus.constants import NOISE_EPS, QTY_EPS
from bus.models import RiskAdjustment, StrategyConfig
from commander.risk import reduce_only


def uses_intent(cfg: StrategyConfig) -> bool:
    """Whether the Commander reads this strategy's intent (not when paused or retired)."""
    return cfg.state not in ("paused", "retired")


def state_reason(cfg: StrategyConfig) -> str:
    """The execution's ``strategy_reasons`` entry for a paused or retired strategy."""
    by = f" by {cfg.state_changed_by}" if cfg.state_changed_by else ""
    why = f": {cfg.state_reason}" if cfg.state_reason else ""
    what = "its book is held" if cfg.state == "paused" else "its book is flattened"
    return f"{cfg.state}{by}{why}; {what}"


def apply_state(cfg: StrategyConfig, wanted: dict[str, float], book: dict[str, float]
                ) -> tuple[dict[str, float], list[RiskAdjustment]]:
    """``wanted`` (symbol -> signed units) after the strategy's lifecycle state, with the adjustments.

    ``paused`` returns the book; ``retired`` returns 0 for every symbol of the book and of
    ``wanted``; ``isolated`` clamps each target between 0 and the book's units; ``active``
    returns ``wanted`` unchanged.
    """
    if cfg.state == "paused":
        return dict(book), []
    rule = {"isolated": "strategy_isolated", "retired": "strategy_retired"}.get(cfg.state)
    if rule is None:
        return wanted, []
    out, adj = {}, []
    for sym in sorted(set(wanted) | set(book)):
        q = wanted.get(sym, book.get(sym, 0.0) if cfg.state == "retired" else 0.0)  # retired: what it holds
        r = 0.0 if cfg.state == "retired" else reduce_only(q, book.get(sym, 0.0))
        if abs(r - q) > NOISE_EPS:
            adj.append(RiskAdjustment(rule=rule, symbol=sym, strategy_id=cfg.strategy_id, before=q, after=r,
                                      note=state_reason(cfg) if cfg.state == "retired" else
                                      f"isolated{' by ' + cfg.state_changed_by if cfg.state_changed_by else ''}: "
                                      f"reduce only ({cfg.state_reason or 'no reason given'})"))
        out[sym] = r
    return out, adj


def retired_flat(strategies: dict[str, StrategyConfig], books: dict[str, dict[str, float]],
                 lots: dict[str, float] | None = None) -> list[str]:
    """Retired strategies whose book (symbol -> units, after this run's fills) is flat: to disable now.

    Flat means every position is under one lot of its symbol (``lots``: symbol -> lot size in units):
    a book's pro-rata share of whole-share fills can leave a fraction of a lot that no order can close.
    """
    lots = lots or {}
    return sorted(sid for sid, cfg in strategies.items()
                  if cfg.state == "retired"
                  and all(abs(q) <= QTY_EPS or abs(q) < lots.get(sym, 0.0) for sym, q in books.get(sid, {}).items()))
