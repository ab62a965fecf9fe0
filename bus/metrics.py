"""Performance metrics of equity curves: the one implementation, on ``empyrical`` (empyrical-reloaded).

Used by the Commander (``performance_based`` allocation), the leaderboard, the
backtest report and the LLM traders' performance view. It lives in ``bus/``, the
lowest folder that both ``commander/`` and ``strategies/`` may import.

Units: a curve is ``{YYYY-MM-DD: equity}`` in base currency, one point per day.
Returns, drawdowns, CAGR, volatility and win rate are **fractions** (0.01 = 1 %),
never percent. Ratios (Sharpe, Sortino, Calmar) are annualized with
``periods_per_year``, the number of daily steps in a year: a caller always
passes it, e.g. :data:`PERIODS_PER_YEAR_CRYPTO` (365, a book marked every
calendar day) or :data:`PERIODS_PER_YEAR_ETF` (252, NYSE sessions).

Formulas (as empyrical implements them, on simple daily returns r_t = E_t / E_{t-1} − 1):

* Sharpe ratio (W. F. Sharpe, "Mutual Fund Performance", 1966; "The Sharpe Ratio",
  J. Portfolio Management, 1994), risk-free 0: mean(r) / std(r, ddof=1) × √periods_per_year.
  The √T scaling assumes serially uncorrelated returns (A. W. Lo, "The Statistics
  of Sharpe Ratios", Financial Analysts Journal, 2002).
* Sortino ratio (Sortino & Price, 1994): mean(r) × periods_per_year / downside deviation,
  downside deviation = √(mean(min(r, 0)²)) × √periods_per_year, target return 0.
* Maximum drawdown: min over t of E_t / max_{s≤t} E_s − 1 (a negative fraction).
* CAGR: (E_end / E_start)^(periods_per_year / n) − 1, n = number of returns.
* Annual volatility: std(r, ddof=1) × √periods_per_year.
* Calmar ratio (T. W. Young, 1991): CAGR / |maximum drawdown|.
* Win rate: closed trades with realized PnL > 0 / closed trades.
"""

from __future__ import annotations

import math
from typing import Iterable

import pandas as pd

#: Daily steps per year of a book marked every calendar day (crypto trades 24/7).
PERIODS_PER_YEAR_CRYPTO = 365
#: Daily steps per year of a book marked on NYSE sessions (US ETFs): the usual 252.
PERIODS_PER_YEAR_ETF = 252


def returns_from_curve(curve: dict[str, float]) -> pd.Series:
    """Simple returns (fractions) of a ``{YYYY-MM-DD: equity}`` curve, oldest first, UTC-dated.

    r_t = E_t / E_{t-1} − 1 between consecutive points; points with equity ≤ 0 are
    left out (a return is undefined there). NaN-free; empty with fewer than two points.
    """
    s = pd.Series(curve, dtype=float)
    s.index = pd.to_datetime(s.index, utc=True)
    s = s.sort_index()
    s = s[s > 0]
    return s.pct_change().dropna()


def sharpe(returns: pd.Series, periods_per_year: int) -> float | None:
    """Annualized Sharpe ratio of simple returns, risk-free 0 (see the module docstring).

    ``empyrical.sharpe_ratio``: mean(r) / std(r, ddof=1) × √periods_per_year.

    Args:
        returns: simple returns as fractions, one per period, oldest first.
        periods_per_year: periods in a year (365 daily crypto, 252 daily ETF).

    Returns:
        The ratio, or None with fewer than two returns or zero volatility (undefined).
    """
    if len(returns) < 2 or float(returns.std()) == 0.0:
        return None
    import empyrical  # imported on first use: it is slow to import and most steps never need it

    v = float(empyrical.sharpe_ratio(returns, annualization=periods_per_year))
    return v if math.isfinite(v) else None


def curve_sharpe(curve: dict[str, float], lookback_days: int, min_history_days: int,
                 periods_per_year: int) -> float | None:
    """:func:`sharpe` of the returns between the last ``lookback_days + 1`` points of a curve.

    None with fewer than ``min_history_days`` returns (too little history).
    """
    r = returns_from_curve(dict(sorted(curve.items())[-(lookback_days + 1):]))
    if len(r) < min_history_days:
        return None
    return sharpe(r, periods_per_year)


def summary(curve: dict[str, float], trade_pnls: Iterable[float], periods_per_year: int) -> dict[str, float | None]:
    """Equity, total return, CAGR, volatility, Sharpe, Sortino, max drawdown, Calmar, win rate, trades.

    ``equity`` in base currency, ``trades`` a count, the rest fractions or ratios as
    in the module docstring, annualized with ``periods_per_year``. None where
    undefined (too little history, no trades).
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


def annual_turnover(traded_notional: float, mean_equity: float, periods: int, periods_per_year: int) -> float | None:
    """Traded notional (buys + sells, base currency) per year as a multiple of average equity.

    ``traded_notional / mean_equity × periods_per_year / periods`` (``periods`` daily
    steps). Counting both sides, a full switch from one position to another is 2;
    halve it for the one-sided convention (e.g. mutual-fund turnover, SEC Form N-1A,
    which takes the lesser of purchases and sales). None without equity or periods.
    """
    if mean_equity <= 0 or periods <= 0:
        return None
    return traded_notional / mean_equity * periods_per_year / periods
