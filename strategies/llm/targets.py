"""Accepted decisions -> the trader's whole target book, and the exit plans to remember.

Per symbol held or decided:

* ``open_long`` / ``open_short``: a target of that size, signed (``notional`` in
  quote currency, or ``quantity`` in coins when the model gave coins), with its
  leverage, stop loss, take profit and confidence; its exit plan is remembered.
* ``close``: a target of zero units; the plan is forgotten.
* ``hold``, a rejected decision, or no decision: a held position is kept at
  exactly its current units (with its remembered plan); nothing is opened.

A trader without a book yet sizes on an estimate of its capital
(:func:`strategies.llm.trader.capital_estimate`); its opens are then sent as
``weight`` = signed notional / that estimate (a fraction of its capital), which
the Commander multiplies by the capital the new book really gets (allocation x
NAV at its run, capped at the free cash), so the first run opens positions of
the intended share of the book.
"""

from __future__ import annotations

from datetime import datetime

from bus.journal import PositionPlan
from bus.models import TargetPosition
from strategies.llm.checks import Accepted
from strategies.llm.config import InstrumentTemplate


def build_targets(accepted: dict[int, Accepted], held: dict[str, float], plans: dict[str, PositionPlan],
                  instrument: InstrumentTemplate, as_of: datetime, decision_id: str,
                  weight_of: float | None = None
                  ) -> tuple[list[TargetPosition], dict[str, PositionPlan]]:
    """The whole target book and the exit plans after this decision.

    Args:
        accepted: from :func:`strategies.llm.checks.check_decisions`.
        held: symbol -> signed units in the trader's book now.
        plans: symbol -> the exit plan remembered for a held position.
        weight_of: the estimated capital (base currency, > 0) of a trader without a book: opens
            become ``weight`` targets (signed notional / ``weight_of``); None: ``notional`` or
            ``quantity`` as the model gave them.
    """
    by_symbol = {a.symbol: a for a in accepted.values()}
    inst = instrument.model_dump()
    targets: list[TargetPosition] = []
    new_plans: dict[str, PositionPlan] = {}
    for sym in sorted(set(held) | set(by_symbol)):
        a = by_symbol.get(sym)
        action = a.decision.action if a else "hold"
        if a is not None and action in ("open_long", "open_short"):
            d = a.decision
            sign = 1.0 if action == "open_long" else -1.0
            # One size: the quantity when the decision gave one, else the notional.
            quantity = sign * a.quantity if a.quantity is not None else None
            notional = sign * a.notional if a.quantity is None else None
            weight = None
            if weight_of is not None and weight_of > 0:
                # a.notional is resolved for a quantity-sized open too (quantity x price, see checks._resolved)
                weight, quantity, notional = sign * a.notional / weight_of, None, None
            targets.append(TargetPosition(symbol=sym, **inst, quantity=quantity, notional=notional, weight=weight,
                                          leverage=a.leverage,
                                          stop_loss=d.stop_loss, take_profit=d.take_profit, confidence=d.confidence))
            new_plans[sym] = PositionPlan(side="long" if sign > 0 else "short", leverage=a.leverage,
                                          stop_loss=d.stop_loss, take_profit=d.take_profit,
                                          invalidation_condition=d.invalidation_condition, confidence=d.confidence,
                                          opened_at=as_of, decision_id=decision_id)
        elif action == "close":
            targets.append(TargetPosition(symbol=sym, **inst, quantity=0.0))
        elif abs(held.get(sym, 0.0)) > 0:
            plan = plans.get(sym)
            targets.append(TargetPosition(symbol=sym, **inst, quantity=held[sym],
                                          leverage=plan.leverage if plan else None,
                                          stop_loss=plan.stop_loss if plan else None,
                                          take_profit=plan.take_profit if plan else None,
                                          confidence=plan.confidence if plan else None))
            if plan:
                new_plans[sym] = plan
    return targets, new_plans
