"""Step 6: global risk on the aggregated book, and each strategy's drawdown isolation.

Drawdown isolation (per book, before aggregation): when a book's drawdown below its
high-water mark exceeds its ``max_drawdown``, the strategy may only reduce its book
(every target clamped between 0 and its current units; each clamp is a
``strategy_drawdown`` adjustment). The isolation begins that day
(``Book.isolated_since``) and is **released** at the first run on which either

* the drawdown is back within ``max_drawdown`` (the held positions recovered), or
* ``drawdown_cooldown_days`` calendar days have passed since it began: the
  high-water mark is then reset to the book's equity, so the strategy trades again
  from where it stands, and is isolated again if it loses ``max_drawdown`` from there.

Without the second rule a book that went flat could never recover its high-water
mark and would stay locked for good. Each locked or released isolation is an
:class:`~bus.models.Isolation` in the execution (``decision.isolation``).

Global limits:

Limits come from ``config.risk`` (see :class:`bus.models.RiskLimits`), as
fractions of NAV. A binding limit scales the offending targets down pro rata
(each strategy's contribution with its line) rather than dropping them, and
every change is a ``RiskAdjustment``. A line several strategies share that a
limit scales is also recorded as a ``resource`` conflict. In order:

1. ``max_symbol_exposure``: |net notional| of a symbol ≤ limit × NAV.
2. ``max_open_positions``: at most N non-zero targets; beyond N the smallest by
   notional are set to zero (a count cannot be met by scaling).
3. ``max_margin_use``: Σ |notional| / instrument max leverage ≤ limit × NAV.
4. ``max_gross_leverage``: Σ |notional| ≤ limit × NAV.
5. Halts: when the holdings' unrealized loss exceeds ``unrealized_loss_halt`` ×
   NAV, or NAV fell more than ``daily_loss_halt`` since the previous day's
   close, every target is clamped between 0 and the current holding: only
   orders that reduce exposure pass. A halt in force is recorded even when no
   target needed clamping (an adjustment without a symbol, before = after = 0).

Notional = |quantity| × price × multiplier, in base currency.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from bus.constants import NOISE_EPS, REL_EPS
from bus.models import (
    DEFAULT_SPEC,
    Conflict,
    InstrumentSpec,
    Isolation,
    PortfolioSnapshot,
    RiskAdjustment,
    StrategyRiskParameters,
    TargetLine,
    TradingConfig,
)


def reduce_only(target: float, holding: float) -> float:
    """Clamp ``target`` between 0 and ``holding``: the position may shrink, never grow or flip."""
    lo, hi = min(0.0, holding), max(0.0, holding)
    return min(max(target, lo), hi)


def isolation(sid: str, drawdown: float, since: str | None, rp: StrategyRiskParameters,
              as_of: datetime) -> Isolation | None:
    """The drawdown isolation of one book this run (see the module docstring), None when it is not isolated.

    Args:
        drawdown: the book's drawdown below its high-water mark (a fraction).
        since: ``YYYY-MM-DD`` its isolation began, None if it is not isolated.
    """
    limit = rp.max_drawdown
    if since is None and drawdown <= limit:
        return None
    today = as_of.date().isoformat()
    start = since or today
    release_on = (date.fromisoformat(start) + timedelta(days=rp.drawdown_cooldown_days)).isoformat()
    iso = Isolation(strategy_id=sid, status="locked", since=start, release_on=release_on, drawdown=drawdown,
                    limit=limit, reason=f"book drawdown {drawdown:.2%} > max_drawdown {limit:.2%}: reduce only "
                                        f"until {release_on} or a drawdown back within the limit")
    if since is not None and drawdown <= limit:
        return iso.model_copy(update={"status": "released",
                                      "reason": f"drawdown {drawdown:.2%} back within max_drawdown {limit:.2%}"})
    if today >= release_on:
        return iso.model_copy(update={
            "status": "released", "high_water_mark_reset": True,
            "reason": f"cool-down of {rp.drawdown_cooldown_days} days since {start} over: high-water mark reset to "
                      f"the book's equity ({drawdown:.2%} below the old one)"})
    return iso


def isolate(iso: Isolation | None, wanted: dict[str, float], book: dict[str, float]
            ) -> tuple[dict[str, float], list[RiskAdjustment]]:
    """Apply a ``locked`` isolation: each wanted target clamped between 0 and the book's units (reduce only)."""
    if iso is None or iso.status != "locked":
        return wanted, []
    out, adj = {}, []
    for sym, q in wanted.items():
        r = reduce_only(q, book.get(sym, 0.0))
        if abs(r - q) > NOISE_EPS:
            adj.append(RiskAdjustment(rule="strategy_drawdown", symbol=sym, strategy_id=iso.strategy_id, before=q,
                                      after=r, note=iso.reason))
        out[sym] = r
    return out, adj


def halt_reasons(snapshot: PortfolioSnapshot, prev_close_nav: float | None, config: TradingConfig) -> list[str]:
    """Which loss halts are in force (empty when none)."""
    nav = snapshot.net_liquidation
    lim = config.risk
    out = []
    unrealized = sum(h.market_value - h.quantity * h.avg_cost for h in snapshot.holdings if h.avg_cost)
    if nav > 0 and -unrealized > lim.unrealized_loss_halt * nav:
        out.append(f"unrealized_loss_halt: unrealized loss {-unrealized:.2f} > {lim.unrealized_loss_halt:g} x NAV")
    if prev_close_nav and prev_close_nav > 0 and nav < prev_close_nav * (1 - lim.daily_loss_halt):
        out.append(f"daily_loss_halt: NAV {nav:.2f} is down {1 - nav / prev_close_nav:.2%} "
                   f"from the previous close {prev_close_nav:.2f}")
    return out


@dataclass
class Scale:
    """One scaling a global limit made: line ``index`` (of the aggregated lines) times ``factor``; ``before``
    and ``after`` its quantity (units) around it, ``rule`` and ``note`` as recorded."""

    index: int
    factor: float
    rule: str
    note: str
    before: float
    after: float


@dataclass
class RiskPlan:
    """The global limits' outcome on the line quantities alone (units), before any document is built.

    ``quantities``: the final quantity of each aggregated line, in their order; ``scales``: every scaling
    in the order applied (each is one ``RiskAdjustment`` and, when several strategies share the line, one
    ``resource`` conflict); ``in_force``: the adjustment of a halt that needed no clamping, else None.
    """

    quantities: list[float]
    scales: list[Scale] = field(default_factory=list)
    in_force: RiskAdjustment | None = None


def plan_global_risk(symbols: list[str], quantities: list[float], snapshot: PortfolioSnapshot,
                     prices: dict[str, float], specs: dict[str, InstrumentSpec], config: TradingConfig,
                     prev_close_nav: float | None = None) -> RiskPlan:
    """The global limits (module docstring) on one target line per symbol: ``symbols`` and their netted
    ``quantities`` (units). Pure numbers: :func:`render_global_risk` turns the result into documents."""
    nav = snapshot.net_liquidation
    lim = config.risk
    q = list(quantities)
    out = RiskPlan(q)
    price = [prices.get(s) for s in symbols]
    mult = [(specs.get(s) or DEFAULT_SPEC).multiplier for s in symbols]

    def notional(i: int) -> float:
        p = price[i]
        return abs(q[i]) * p * mult[i] if p else 0.0

    def scale(i: int, factor: float, rule: str, note: str) -> None:
        before = q[i]
        q[i] *= factor
        out.scales.append(Scale(i, factor, rule, note, before, q[i]))

    n = len(symbols)
    cap = lim.max_symbol_exposure * nav
    for i in range(n):
        v = notional(i)
        if v > cap * (1 + REL_EPS):
            scale(i, cap / v, "max_symbol_exposure", f"{v:.2f} > {lim.max_symbol_exposure:g} x NAV")
    live = sorted((i for i in range(n) if abs(q[i]) > NOISE_EPS), key=lambda i: (-notional(i), symbols[i]))
    for i in live[lim.max_open_positions:]:
        scale(i, 0.0, "max_open_positions", f"more than {lim.max_open_positions} positions; smallest removed")
    margin = sum(notional(i) / (specs.get(symbols[i]) or DEFAULT_SPEC).max_leverage for i in range(n))
    mcap = lim.max_margin_use * nav
    if margin > mcap * (1 + REL_EPS):
        for i in range(n):
            if abs(q[i]) > NOISE_EPS:
                scale(i, mcap / margin, "max_margin_use", f"margin {margin:.2f} > {mcap:.2f}")
    gross = sum(notional(i) for i in range(n))
    gcap = lim.max_gross_leverage * nav
    if gross > gcap * (1 + REL_EPS):
        for i in range(n):
            if abs(q[i]) > NOISE_EPS:
                scale(i, gcap / gross, "max_gross_leverage", f"gross {gross:.2f} > {gcap:.2f}")
    halts = halt_reasons(snapshot, prev_close_nav, config)
    if halts:
        _halt(symbols, q, snapshot, halts, out, scale)
    return out


def _halt(symbols: list[str], q: list[float], snapshot: PortfolioSnapshot, halts: list[str], out: RiskPlan,
          scale: Callable[[int, float, str, str], None]) -> None:
    """Clamp every line between 0 and its holding (reduce only), in place. A halt in force is recorded
    even when no target had to be clamped (every book only holds or reduces)."""
    rule = halts[0].split(":")[0]
    held = {h.symbol: h.quantity for h in snapshot.holdings}
    clamps = len(out.scales)
    for i, sym in enumerate(symbols):
        clamped = reduce_only(q[i], held.get(sym, 0.0))
        if abs(clamped - q[i]) > NOISE_EPS:
            scale(i, clamped / q[i] if q[i] else 0.0, rule, "; ".join(halts))
            q[i] = clamped
    if len(out.scales) == clamps:
        out.in_force = RiskAdjustment(rule=rule, before=0.0, after=0.0,
                                      note="; ".join(halts) + " (in force; no target needed clamping)")


def render_global_risk(aggregated: list[TargetLine], plan: RiskPlan,
                       ) -> tuple[list[TargetLine], list[RiskAdjustment], list[Conflict]]:
    """(final target lines, adjustments, resource conflicts) of ``plan`` on ``aggregated`` (not modified):
    each line's contributions are scaled with it, factor by factor, as the limits applied them."""
    final = [line.model_copy(update={"contributions": dict(line.contributions)}) for line in aggregated]
    adj: list[RiskAdjustment] = []
    conflicts: list[Conflict] = []
    for s in plan.scales:
        line = final[s.index]
        shared = {k: v for k, v in line.contributions.items() if abs(v) > NOISE_EPS}
        line.contributions = {k: v * s.factor for k, v in line.contributions.items()}
        adj.append(RiskAdjustment(rule=s.rule, symbol=line.symbol, before=s.before, after=s.after, note=s.note))
        if len(shared) > 1:
            conflicts.append(Conflict(type="resource", symbol=line.symbol, strategies=sorted(shared), wanted=shared,
                                      policy=s.rule, outcome=s.after, note=s.note))
    for line, q in zip(final, plan.quantities, strict=True):
        line.quantity = q
    if plan.in_force is not None:
        adj.append(plan.in_force)
    return final, adj, conflicts


def apply_global_risk(aggregated: list[TargetLine], snapshot: PortfolioSnapshot, prices: dict[str, float],
                      specs: dict[str, InstrumentSpec], config: TradingConfig, prev_close_nav: float | None = None
                      ) -> tuple[list[TargetLine], list[RiskAdjustment], list[Conflict]]:
    """Return (final target lines, adjustments, resource conflicts). ``aggregated`` is not modified."""
    plan = plan_global_risk([line.symbol for line in aggregated], [line.quantity for line in aggregated], snapshot,
                            prices, specs, config, prev_close_nav)
    return render_global_risk(aggregated, plan)
