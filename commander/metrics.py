"""Performance metrics of equity curves, computed with ``empyrical`` (empyrical-reloaded).

Formulas (as empyrical implements them, on simple daily returns r_t = E_t / E_{t-1} − 1):

* Sharpe ratio (Sharpe, 1966/1994): mean(r) / std(r, ddof=1) × √periods_per_year, risk-free 0.
* Sortino ratio (Sortino & Price, 1994): annualized mean(r) / downside deviation.
* Maximum drawdown: min over t of E_t / max_{s≤t} E_s − 1 (a negative fraction).
* CAGR: (E_end / E_start)^(periods_per_year / n) − 1.
* Annual volatility: std(r) × √periods_per_year.
* Calmar ratio (Young, 1991): CAGR / |maximum drawdown|.
* Win rate: closed trades with realized PnL > 0 / closed trades.
"""

from __future__ import annotations

import math
from typing import Iterable

import pandas as pd


def returns_from_curve(curve: dict[str, float]) -> pd.Series:
    """Daily simple returns of a ``{YYYY-MM-DD: equity}`` curve, oldest first (NaN-free)."""
    s = pd.Series(curve, dtype=float)
    s.index = pd.to_datetime(s.index, utc=True)
    s = s.sort_index()
    s = s[s > 0]
    return s.pct_change().dropna()


def sharpe(returns: pd.Series, periods_per_year: int = 365) -> float | None:
    """Annualized Sharpe ratio, or None with fewer than 2 returns or zero volatility."""
    if len(returns) < 2 or float(returns.std()) == 0.0:
        return None
    import empyrical

    v = float(empyrical.sharpe_ratio(returns, annualization=periods_per_year))
    return v if math.isfinite(v) else None


def curve_sharpe(curve: dict[str, float], lookback_days: int, min_history_days: int,
                 periods_per_year: int = 365) -> float | None:
    """Sharpe over the last ``lookback_days`` points of a curve; None below ``min_history_days``."""
    r = returns_from_curve(dict(sorted(curve.items())[-(lookback_days + 1):]))
    if len(r) < min_history_days:
        return None
    return sharpe(r, periods_per_year)


def summary(curve: dict[str, float], trade_pnls: Iterable[float], periods_per_year: int = 365) -> dict[str, float | None]:
    """Equity, total return, CAGR, volatility, Sharpe, Sortino, max drawdown, Calmar, win rate, trades.

    Fractions, not percent; None where undefined (too little history, no trades).
    """
    import empyrical

    pnls = list(trade_pnls)
    r = returns_from_curve(curve)
    values = [v for _, v in sorted(curve.items())]
    out: dict[str, float | None] = {
        "equity": values[-1] if values else None,
        "total_return": (values[-1] / values[0] - 1) if len(values) > 1 and values[0] > 0 else None,
        "cagr": None, "volatility": None, "sharpe": sharpe(r, periods_per_year), "sortino": None,
        "max_drawdown": None, "calmar": None,
        "win_rate": (sum(1 for p in pnls if p > 0) / len(pnls)) if pnls else None,
        "trades": float(len(pnls)),
    }
    if len(r) >= 2:
        out["cagr"] = float(empyrical.cagr(r, annualization=periods_per_year))
        out["volatility"] = float(empyrical.annual_volatility(r, annualization=periods_per_year))
        sortino = float(empyrical.sortino_ratio(r, annualization=periods_per_year))
        out["sortino"] = sortino if math.isfinite(sortino) else None
        out["max_drawdown"] = float(empyrical.max_drawdown(r))
        calmar = float(empyrical.calmar_ratio(r, annualization=periods_per_year))
        out["calmar"] = calmar if math.isfinite(calmar) else None
    return out


def drawdown_series(curve: dict[str, float]) -> pd.Series:
    """Drawdown at each point of a ``{YYYY-MM-DD: equity}`` curve: E_t / max_{s≤t} E_s − 1.

    A negative fraction (0 at a new high), indexed by UTC date, oldest first; the
    same definition as :func:`empyrical.max_drawdown`, whose minimum it reaches.
    """
    s = pd.Series(curve, dtype=float)
    s.index = pd.to_datetime(s.index, utc=True)
    s = s.sort_index()
    return s / s.cummax() - 1.0


def annual_turnover(traded_notional: float, mean_equity: float, periods: int, periods_per_year: int = 365) -> float | None:
    """Traded notional (buys + sells, base currency) per year as a multiple of average equity.

    ``traded_notional / mean_equity × periods_per_year / periods`` (``periods`` daily
    steps). Counting both sides, a full switch from one position to another is 2;
    halve it for the one-sided convention (e.g. mutual-fund turnover, SEC Form N-1A,
    which takes the lesser of purchases and sales). None without equity or periods.
    """
    if mean_equity <= 0 or periods <= 0:
        return None
    return traded_notional / mean_equity * periods_per_year / periods
