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


def _scale(line: TargetLine, factor: float, rule: str, note: str, adj: list[RiskAdjustment],
           conflicts: list[Conflict]) -> None:
    before = line.quantity
    shared = {s: q for s, q in line.contributions.items() if abs(q) > NOISE_EPS}
    line.quantity *= factor
    line.contributions = {s: q * factor for s, q in line.contributions.items()}
    adj.append(RiskAdjustment(rule=rule, symbol=line.symbol, before=before, after=line.quantity, note=note))
    if len(shared) > 1:
        conflicts.append(Conflict(type="resource", symbol=line.symbol, strategies=sorted(shared), wanted=shared,
                                  policy=rule, outcome=line.quantity, note=note))


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


def apply_global_risk(aggregated: list[TargetLine], snapshot: PortfolioSnapshot, prices: dict[str, float],
                      specs: dict[str, InstrumentSpec], config: TradingConfig, prev_close_nav: float | None = None
                      ) -> tuple[list[TargetLine], list[RiskAdjustment], list[Conflict]]:
    """Return (final target lines, adjustments, resource conflicts). ``aggregated`` is not modified."""
    nav = snapshot.net_liquidation
    lim = config.risk
    final = [line.model_copy(update={"contributions": dict(line.contributions)}) for line in aggregated]
    adj: list[RiskAdjustment] = []
    conflicts: list[Conflict] = []

    def spec(sym: str) -> InstrumentSpec:
        return specs.get(sym) or DEFAULT_SPEC

    def notional(line: TargetLine) -> float:
        p = prices.get(line.symbol)
        return abs(line.quantity) * p * spec(line.symbol).multiplier if p else 0.0

    cap = lim.max_symbol_exposure * nav
    for line in final:
        v = notional(line)
        if v > cap * (1 + REL_EPS):
            _scale(line, cap / v, "max_symbol_exposure", f"{v:.2f} > {lim.max_symbol_exposure:g} x NAV", adj, conflicts)
    live = sorted((line for line in final if abs(line.quantity) > NOISE_EPS), key=lambda x: (-notional(x), x.symbol))
    for line in live[lim.max_open_positions:]:
        _scale(line, 0.0, "max_open_positions", f"more than {lim.max_open_positions} positions; smallest removed",
               adj, conflicts)
    margin = sum(notional(line) / spec(line.symbol).max_leverage for line in final)
    mcap = lim.max_margin_use * nav
    if margin > mcap * (1 + REL_EPS):
        for line in final:
            if abs(line.quantity) > NOISE_EPS:
                _scale(line, mcap / margin, "max_margin_use", f"margin {margin:.2f} > {mcap:.2f}", adj, conflicts)
    gross = sum(notional(line) for line in final)
    gcap = lim.max_gross_leverage * nav
    if gross > gcap * (1 + REL_EPS):
        for line in final:
            if abs(line.quantity) > NOISE_EPS:
                _scale(line, gcap / gross, "max_gross_leverage", f"gross {gross:.2f} > {gcap:.2f}", adj, conflicts)
    halts = halt_reasons(snapshot, prev_close_nav, config)
    if halts:
        _halt(final, snapshot, halts, adj, conflicts)
    return final, adj, conflicts


def _halt(final: list[TargetLine], snapshot: PortfolioSnapshot, halts: list[str], adj: list[RiskAdjustment],
          conflicts: list[Conflict]) -> None:
    """Clamp every line between 0 and its holding (reduce only), in place. A halt in force is recorded
    even when no target had to be clamped (every book only holds or reduces)."""
    rule = halts[0].split(":")[0]
    held = {h.symbol: h.quantity for h in snapshot.holdings}
    clamps = len(adj)
    for line in final:
        clamped = reduce_only(line.quantity, held.get(line.symbol, 0.0))
        if abs(clamped - line.quantity) > NOISE_EPS:
            factor = clamped / line.quantity if line.quantity else 0.0
            _scale(line, factor, rule, "; ".join(halts), adj, conflicts)
            line.quantity = clamped
    if len(adj) == clamps:
        adj.append(RiskAdjustment(rule=rule, before=0.0, after=0.0,
                                  note="; ".join(halts) + " (in force; no target needed clamping)"))
