"""Step 6: global risk on the aggregated book. Each binding limit scales targets
down pro rata (never drops them) and is recorded as a ``RiskAdjustment``.

Rules, in order (limits from ``config.risk``, fractions of NAV):

1. ``max_symbol_exposure``: |net target notional| of one symbol ≤ limit × NAV.
2. ``max_open_positions``: at most N non-zero targets; the smallest by notional
   beyond N are set to zero (a position can only be kept or removed whole here).
3. ``max_gross_leverage``: Σ |target notional| ≤ limit × NAV, all targets
   scaled by the same factor.

Each strategy's contribution to a line is scaled with the line.
"""

from __future__ import annotations

from bus.models import InstrumentSpec, PortfolioSnapshot, RiskAdjustment, TargetLine, TradingConfig


def _scale(line: TargetLine, factor: float) -> None:
    line.quantity *= factor
    line.contributions = {s: q * factor for s, q in line.contributions.items()}


def apply_global_risk(aggregated: list[TargetLine], snapshot: PortfolioSnapshot, prices: dict[str, float],
                      specs: dict[str, InstrumentSpec], config: TradingConfig
                      ) -> tuple[list[TargetLine], list[RiskAdjustment]]:
    """Return (final target lines, adjustments). ``aggregated`` is not modified."""
    nav = snapshot.net_liquidation
    lim = config.risk
    final = [line.model_copy(deep=True) for line in aggregated]
    adj: list[RiskAdjustment] = []

    def notional(line: TargetLine) -> float:
        p = prices.get(line.symbol)
        m = specs[line.symbol].multiplier if line.symbol in specs else 1.0
        return abs(line.quantity) * p * m if p else 0.0

    cap = lim.max_symbol_exposure * nav
    for line in final:
        v = notional(line)
        if v > cap + 1e-6:
            before = line.quantity
            _scale(line, cap / v)
            adj.append(RiskAdjustment(rule="max_symbol_exposure", symbol=line.symbol, before=before,
                                      after=line.quantity, note=f"{v:.2f} > {lim.max_symbol_exposure:g} x NAV"))
    live = sorted((line for line in final if abs(line.quantity) > 1e-12), key=lambda x: (-notional(x), x.symbol))
    for line in live[lim.max_open_positions:]:
        adj.append(RiskAdjustment(rule="max_open_positions", symbol=line.symbol, before=line.quantity, after=0.0,
                                  note=f"more than {lim.max_open_positions} positions; smallest removed"))
        _scale(line, 0.0)
    gross = sum(notional(line) for line in final)
    gcap = lim.max_gross_leverage * nav
    if gross > gcap + 1e-6:
        f = gcap / gross
        for line in final:
            if line.quantity:
                before = line.quantity
                _scale(line, f)
                adj.append(RiskAdjustment(rule="max_gross_leverage", symbol=line.symbol, before=before,
                                          after=line.quantity, note=f"gross {gross:.2f} > {gcap:.2f}"))
    return final, adj
