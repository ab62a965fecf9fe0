"""The backtest's figures as one JSON-able document: the report's tables, its curves and its checks.

Metrics come from :func:`bus.metrics.summary` (empyrical-reloaded) on
daily equity curves, annualized with ``periods_per_year`` (365: a step every
calendar day; ETF books are flat on weekends). Formulas, on simple daily
returns r_t = E_t / E_{t−1} − 1:

* CAGR = (E_end / E_start)^(periods_per_year / n) − 1;
* volatility = std(r) × √periods_per_year;
* Sharpe = mean(r) / std(r) × √periods_per_year, risk-free 0 (Sharpe 1966/1994);
* Sortino = annualized mean(r) / downside deviation (Sortino & Price 1994);
* maximum drawdown = min_t E_t / max_{s≤t} E_s − 1; Calmar = CAGR / |max drawdown| (Young 1991);
* win rate = closed trades with realized PnL > 0 / closed trades;
* turnover = traded notional (both sides) / mean equity per year (:func:`bus.metrics.annual_turnover`);
* fees: commissions paid (the Commander's attribution for books, the paper account's total for the account);
* funding: perpetual funding paid (> 0) or received (< 0); the account's from the paper broker, a book's
  from the book itself (``Book.funding``: the Commander charges each perpetual's funding to the books
  that held it, by signed units, see :mod:`commander.attribute`). It is taken out of the book's cash,
  so a book's equity and return include it, as the account's do.

Each curve starts the day before the first step at the starting capital (the
account's starting cash; a book's allocated capital), so the first day's fees
and moves count.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from backtest.engine import BacktestResult
from bus.metrics import annual_turnover, summary
from commander.attribute import EXTERNAL

ACCOUNT = "account"


def _prior_day(day: str) -> str:
    return (date.fromisoformat(day) - timedelta(days=1)).isoformat()


def curves(result: BacktestResult) -> dict[str, dict[str, float]]:
    """``account`` and each strategy -> ``{YYYY-MM-DD: equity}`` (base currency), oldest first."""
    out: dict[str, dict[str, float]] = {}
    if not result.steps:
        return out
    first = result.steps[0].day
    out[ACCOUNT] = {_prior_day(first): result.starting_cash, **{s.day: s.nav for s in result.steps}}
    for sid in result.strategies:
        days = {s.day: s.equity[sid] for s in result.steps if sid in s.equity}
        if not days:
            continue
        book = result.books.get(sid)
        start = book.starting_cash if book else next(iter(days.values()))
        out[sid] = {_prior_day(next(iter(days))): start, **days}
    return out


def _metrics(curve: dict[str, float], pnls: list[float], traded: float, fees: float, funding: float,
             periods_per_year: int) -> dict[str, Any]:
    m = summary(curve, pnls, periods_per_year)
    values = list(curve.values())
    mean_eq = sum(values) / len(values) if values else 0.0
    m.update(start_equity=values[0] if values else None, turnover=annual_turnover(traded, mean_eq, len(values) - 1,
                                                                                 periods_per_year),
             traded_notional=traded, fees=fees, funding=funding)
    m["trades"] = int(m["trades"] or 0)
    return m


def build_figures(result: BacktestResult) -> dict[str, Any]:
    """Everything the report shows, as plain JSON types.

    Keys: ``meta``, ``metrics`` (``account`` and each strategy), ``leaderboard``,
    ``conflicts`` (type -> count), ``risk_adjustments`` (rule -> count),
    ``not_used`` (strategy -> reason -> days), ``statuses`` (execution status -> days),
    ``checks`` (books add up, NAV identity), ``account`` (final paper account),
    ``funding_coverage``, ``curves``.
    """
    ppy = result.periods_per_year
    cv = curves(result)
    steps = result.steps
    metrics: dict[str, Any] = {}
    if steps:
        all_pnls = [t.realized_pnl for ts in result.trades.values() for t in ts]
        acct = result.final_account
        metrics[ACCOUNT] = _metrics(cv[ACCOUNT], all_pnls, sum(s.traded_total for s in steps),
                                    float(acct.get("fees_paid") or 0.0), float(acct.get("funding_paid") or 0.0), ppy)
        for sid in result.strategies:
            if sid not in cv:
                continue
            book = result.books.get(sid)
            metrics[sid] = _metrics(cv[sid], [t.realized_pnl for t in result.trades.get(sid, [])],
                                    sum(s.traded.get(sid, 0.0) for s in steps), book.fees if book else 0.0,
                                    book.funding if book else 0.0, ppy)
    conflicts: dict[str, int] = {}
    risk: dict[str, int] = {}
    statuses: dict[str, int] = {}
    not_used: dict[str, dict[str, int]] = {}
    for s in steps:
        for k, v in s.conflicts.items():
            conflicts[k] = conflicts.get(k, 0) + v
        for k, v in s.risk.items():
            risk[k] = risk.get(k, 0) + v
        statuses[s.status] = statuses.get(s.status, 0) + 1
        for sid, why in s.not_used.items():
            reasons = not_used.setdefault(sid, {})
            reasons[why] = reasons.get(why, 0) + 1
    ext = result.books.get(EXTERNAL)
    checks = {
        "books_add_up": {
            "max_units_mismatch": max((s.book_mismatch for s in steps), default=0.0),
            "max_external_units": max((s.external_units for s in steps), default=0.0),
            "external_positions_at_end": ext.quantities() if ext else {},
            "what": "max over steps and symbols of |sum of strategy books + external - paper account holding| (units)",
        },
        "nav_identity": {
            "max_abs_error": max((abs(s.nav_identity_error) for s in steps), default=0.0),
            "final_error": steps[-1].nav_identity_error if steps else None,
            "what": "NAV - (starting cash + realized + unrealized PnL - fees - funding), base currency",
        },
    }
    failed = [{"day": s.day, "status": s.status, "reason": s.reason} for s in steps
              if s.status not in ("completed",)][:20]
    return {
        "meta": {
            "start": result.start.isoformat(), "end": result.end.isoformat(), "days": result.days,
            "first_day": steps[0].day if steps else None, "last_day": steps[-1].day if steps else None,
            "interrupted": result.interrupted, "store": result.store_kind, "strategies": result.strategies,
            "notes": result.notes, "periods_per_year": ppy, "wall_seconds": round(result.wall_seconds, 3),
            "starting_cash": result.starting_cash, "run_time_utc": result.settings.trading.run_time_utc,
            "account": result.settings.account.account,
            "allocations": {s.strategy_id: s.capital_allocation for s in result.settings.strategies},
            "conflict_policy": result.settings.trading.conflict_policy,
        },
        "metrics": metrics,
        "leaderboard": result.leaderboard,
        "conflicts": dict(sorted(conflicts.items())),
        "risk_adjustments": dict(sorted(risk.items())),
        "statuses": statuses,
        "not_used": not_used,
        "not_completed": failed,
        "checks": checks,
        "account": result.final_account,
        "funding_coverage": {k: list(v) if v else None for k, v in result.funding_coverage.items()},
        "curves": cv,
    }
