"""The backtest's figures as one JSON-able document: the report's tables, its curves and its checks.

Metrics come from :func:`bus.metrics.summary` (empyrical-reloaded) on daily
equity curves. **Each book is annualized by its own calendar**
(:func:`pipeline.leaderboard.book_calendar`): a book of US ETFs only is sampled
on NYSE sessions (``exchange_calendars`` XNYS; weekends and holidays, when its
equity cannot move, are left out) and annualized with 252; a book with crypto or
perpetuals keeps every calendar day and 365. The account (ETFs and crypto) uses
the calendar of all its strategies' symbols together (365 here). Formulas, on
simple returns r_t = E_t / E_{t−1} − 1 between the kept points, ppy = 252 or 365:

* CAGR = (E_end / E_start)^(ppy / n) − 1;
* volatility = std(r) × √ppy;
* Sharpe = mean(r) / std(r) × √ppy, risk-free 0 (Sharpe 1966/1994);
* Sortino = annualized mean(r) / downside deviation (Sortino & Price 1994);
* maximum drawdown = min_t E_t / max_{s≤t} E_s − 1; Calmar = CAGR / |max drawdown| (Young 1991);
* monthly / annual returns: daily returns compounded within each calendar month / year
  (``empyrical.aggregate_returns``); the first period is measured from the starting capital;
* round trips (:func:`round_trips`): a position from flat to flat in one symbol of one book; its PnL
  is side × (exit notional − entry notional) × multiplier, before fees and funding; **win rate** =
  closed round trips with PnL > 0 / closed round trips (a trim is not a trade);
* exposure: a book's gross = Σ |units × mark × multiplier|, net = Σ units × mark × multiplier
  (base currency); gross / net leverage = gross / equity, net / equity, after each step (marked at its
  as-of prices); a book's leverage is also taken at two other instants: at the Commander's decision (its
  final target at the decision's prices over the capital it was sized on) and right after its fills (fill
  prices; with ``next_open`` the gap from the decision's close to the next open and the costs show here),
  ``max_gross_leverage_at_decision`` / ``max_gross_leverage_after_fills``. The decision is capped at
  ``max_leverage``; the other two drift with prices between runs, and the next run sizes the book again;
* turnover = traded notional (both sides) / mean equity per year of 365 days (:func:`bus.metrics.annual_turnover`);
* costs: fees = commissions paid; slippage = what the paper broker's half-spread and impact moved the fills
  against the orders (Σ Δunits × (fill − reference) × multiplier, see ``StepRecord.slippage`` in
  :mod:`backtest.engine`); funding = perpetual funding paid (> 0) or received (< 0). A book's fees and
  slippage come from its booked fills, its funding from ``Book.funding`` (the Commander charges each
  settlement to the books that held the perpetual, by signed units, :mod:`commander.attribute`). All
  three are in the book's equity already (fees and funding out of its cash, slippage in its fill prices);
* benchmark: buy and hold of one symbol per calendar (:data:`BENCHMARKS`: SPY for ETF books, BTC-USDT
  for crypto books), bought at the first step's as-of price, marked at each step's as-of price
  (the close of the newest bar closed at the run time), no costs.

Each curve starts the day before the first step at the starting capital (the
account's starting cash; a book's allocated capital), so the first day's fees
and moves count.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

from backtest.engine import BacktestResult
from bus.constants import QTY_EPS
from bus.metrics import PERIODS_PER_YEAR_CRYPTO, PERIODS_PER_YEAR_ETF, annual_turnover, returns_from_curve
from commander.attribute import EXTERNAL
from pipeline.leaderboard import EVERY_DAY, XNYS, book_calendar, calendar_summary, on_calendar

ACCOUNT = "account"
#: Buy-and-hold benchmark per book calendar: the S&P 500 ETF for ETF books, bitcoin for crypto books.
BENCHMARKS = {XNYS: "SPY", EVERY_DAY: "BTC-USDT"}
#: What each fill model of the paper broker (``fill_at``) assumes, as the report states it.
FILL_MODELS = {
    "close": "fill at close: a market order fills at the close of the newest bar closed at the run time "
             "({run_time} UTC; optimistic: the order could not have reached that close), moved against it by the "
             "half-spread and size impact (slippage), plus the taker fee",
    "next_open": "fill at the next open: a market order fills at the first price after the run time ({run_time} "
                 "UTC): the next XNYS session's open for US ETFs (an order on a closed session waits), the open of "
                 "the first bar after the run time for crypto; moved against it by the half-spread and size impact "
                 "(slippage), plus the taker fee",
}


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


def round_trips(fills: Iterable[tuple[str, str, float, float]],
                multipliers: Mapping[str, float] | None = None) -> list[dict[str, Any]]:
    """Round trips of one book: each position in one symbol from flat to flat.

    Args:
        fills: ``(day YYYY-MM-DD, symbol, signed units, price)`` oldest first (units > 0 bought).
        multipliers: symbol -> contract multiplier (1 when absent).

    Returns:
        One dict per round trip in order of entry: ``symbol``, ``side`` (long | short), ``entry_time``,
        ``exit_time`` (None while open), ``quantity`` (units entered), ``max_quantity`` (largest |position|),
        ``entry_price`` / ``exit_price`` (unit-weighted averages, base currency; exit None while open),
        ``pnl`` (side × (exit − entry) × quantity × multiplier, base currency, before fees and funding;
        None while open), ``return`` (side × (exit / entry − 1), a fraction), ``holding_days`` (calendar days),
        ``fills`` (count), ``open_quantity`` (units still held, 0 once closed). A fill through zero closes
        one trip and opens the next with the rest; a position is flat below :data:`bus.constants.QTY_EPS` units.
    """
    mult = multipliers or {}
    open_: dict[str, dict[str, Any]] = {}
    out: list[dict[str, Any]] = []
    for day, sym, dq, price in fills:
        rest = float(dq)
        while abs(rest) >= QTY_EPS:
            t = open_.get(sym)
            if t is None:
                t = open_[sym] = {"symbol": sym, "side": "long" if rest > 0 else "short", "entry_time": day,
                                  "exit_time": None, "q": 0.0, "in_q": 0.0, "in_n": 0.0, "out_q": 0.0, "out_n": 0.0,
                                  "max_q": 0.0, "fills": 0}
                out.append(t)
            t["fills"] += 1
            sign = 1.0 if t["side"] == "long" else -1.0
            if rest * sign > 0:  # adds to the position
                t["in_q"] += abs(rest)
                t["in_n"] += abs(rest) * price
                t["q"] += rest
                rest = 0.0
            else:  # reduces it, maybe through zero
                closing = min(abs(rest), abs(t["q"]))
                t["out_q"] += closing
                t["out_n"] += closing * price
                t["q"] -= sign * closing
                rest += sign * closing
                if abs(t["q"]) < QTY_EPS:
                    t["exit_time"] = day
                    del open_[sym]
            t["max_q"] = max(t["max_q"], abs(t["q"]))
    trips = []
    for t in out:
        sign = 1.0 if t["side"] == "long" else -1.0
        entry = t["in_n"] / t["in_q"] if t["in_q"] else None
        closed = t["exit_time"] is not None
        exit_ = t["out_n"] / t["out_q"] if closed and t["out_q"] else None
        pnl = sign * (t["out_n"] - t["in_n"]) * mult.get(t["symbol"], 1.0) if closed else None
        end = t["exit_time"]
        trips.append({
            "symbol": t["symbol"], "side": t["side"], "entry_time": t["entry_time"], "exit_time": end,
            "quantity": t["in_q"], "max_quantity": t["max_q"], "entry_price": entry, "exit_price": exit_,
            "pnl": pnl, "return": sign * (exit_ / entry - 1) if entry and exit_ is not None else None,
            "holding_days": (date.fromisoformat(end) - date.fromisoformat(t["entry_time"])).days if end else None,
            "fills": t["fills"], "open_quantity": 0.0 if closed else abs(t["q"])})
    return trips


def round_trip_stats(trips: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per symbol of one book's :func:`round_trips`: ``closed`` and ``open`` counts, ``win_rate`` (closed trips
    with PnL > 0 / closed, None without any), ``pnl`` (Σ closed PnL, base currency, before fees and funding),
    ``avg_holding_days`` (closed trips)."""
    out: dict[str, dict[str, Any]] = {}
    for sym in sorted({t["symbol"] for t in trips}):
        mine = [t for t in trips if t["symbol"] == sym]
        closed = [t for t in mine if t["pnl"] is not None]
        out[sym] = {"closed": len(closed), "open": len(mine) - len(closed),
                    "win_rate": sum(1 for t in closed if t["pnl"] > 0) / len(closed) if closed else None,
                    "pnl": sum(t["pnl"] for t in closed),
                    "avg_holding_days": sum(t["holding_days"] for t in closed) / len(closed) if closed else None}
    return out


def periodic_returns(curve: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """Monthly and annual returns of a ``{YYYY-MM-DD: equity}`` curve (fractions).

    ``{"monthly": {"YYYY-MM": r}, "annual": {"YYYY": r}}``: the simple daily returns compounded
    within each calendar month and year (``empyrical.aggregate_returns``), so a period's return is
    E(last day of the period) / E(last day before it) − 1.
    """
    import empyrical

    r = returns_from_curve(dict(curve))
    if r.empty:
        return {"monthly": {}, "annual": {}}
    monthly = empyrical.aggregate_returns(r, "monthly")
    yearly = empyrical.aggregate_returns(r, "yearly")
    return {"monthly": {f"{y:04d}-{m:02d}": float(v) for (y, m), v in monthly.items()},
            "annual": {f"{y:04d}": float(v) for y, v in yearly.items()}}


def benchmark_curve(closes: pd.DataFrame, as_ofs: list[tuple[str, Any]], start_day: str) -> dict[str, float] | None:
    """Growth of 1 of buying and holding one symbol at the first step's as-of price.

    Args:
        closes: bars with ``close_time`` (UTC, increasing) and ``close`` columns.
        as_ofs: ``(day YYYY-MM-DD, as-of instant)`` of each step, oldest first.
        start_day: the curves' first day (the day before the first step), valued 1.

    Returns:
        ``{start_day: 1.0, day: close(as-of) / close(first as-of)}``: the close of the newest bar
        closed at each as-of (what the paper broker marks at); None when no bar has closed by the first one.
    """
    times = pd.DatetimeIndex(closes["close_time"])
    px = closes["close"].to_numpy(dtype=float)
    out = {start_day: 1.0}
    base = None
    for day, as_of in as_ofs:
        n = int(times.searchsorted(pd.Timestamp(as_of), side="right"))
        if n == 0:
            return None
        base = base if base is not None else px[n - 1]
        out[day] = float(px[n - 1] / base)
    return out


def _benchmarks(result: BacktestResult, calendars: set[str], start_day: str) -> tuple[dict[str, Any], list[str]]:
    from market.history import BUNDLED_DIR, HistoryProvider, MarketDataError

    provider = HistoryProvider([BUNDLED_DIR, *result.data_dirs])
    out: dict[str, Any] = {}
    notes: list[str] = []
    as_ofs = [(s.day, s.as_of) for s in result.steps]
    for cal in sorted(calendars):
        sym = BENCHMARKS[cal]
        try:
            curve = benchmark_curve(provider.frame(sym), as_ofs, start_day)
        except (MarketDataError, OSError, ValueError) as exc:
            notes.append(f"no {sym} benchmark: {exc}")
            continue
        if curve is None:
            notes.append(f"no {sym} benchmark: no bar closed by the first step")
            continue
        ppy = PERIODS_PER_YEAR_ETF if cal == XNYS else PERIODS_PER_YEAR_CRYPTO
        m = calendar_summary(curve, [], cal, ppy)
        out[sym] = {"calendar": cal, "periods_per_year": ppy, "curve": curve, "metrics": m,
                    "periods": periodic_returns(curve)}
    return out, notes


def _exposure(result: BacktestResult, name: str, max_leverage: float | None) -> dict[str, Any]:
    """Gross / net exposure (base currency) and leverage of one book (or the account) per step, and summary figures."""
    gross: dict[str, float] = {}
    net: dict[str, float] = {}
    equity: dict[str, float] = {}
    for s in result.steps:
        if name == ACCOUNT:
            gross[s.day], net[s.day], equity[s.day] = s.gross_exposure, sum(s.book_net.values()), s.nav
        elif name in s.equity:
            gross[s.day], net[s.day], equity[s.day] = s.book_gross.get(name, 0.0), s.book_net.get(name, 0.0), \
                s.equity[name]
    glev = {d: gross[d] / e for d, e in equity.items() if e > 0}
    nlev = {d: net[d] / e for d, e in equity.items() if e > 0}
    worst_day = max(glev, key=lambda d: glev[d]) if glev else None
    return {
        "gross": gross, "net": net, "gross_leverage": glev, "net_leverage": nlev,
        "mean_gross_leverage": sum(glev.values()) / len(glev) if glev else None,
        "max_gross_leverage": glev[worst_day] if worst_day else None, "max_gross_leverage_day": worst_day,
        "mean_net_leverage": sum(nlev.values()) / len(nlev) if nlev else None,
        "min_net_leverage": min(nlev.values()) if nlev else None,
        "max_net_leverage": max(nlev.values()) if nlev else None,
        "max_leverage": max_leverage,
        "days_over_max_leverage": (sum(1 for v in glev.values() if v > max_leverage + 1e-9)
                                   if max_leverage is not None else None),
        "days_invested": sum(1 for v in gross.values() if v > 0),
        **_leverage_instants(result, name),
    }


def _leverage_instants(result: BacktestResult, name: str) -> dict[str, Any]:
    """A book's worst gross leverage at the Commander's decision and right after its fills (the engine's
    ``decision_leverage`` / ``fill_leverage``), with the day; None for the account or without data.
    ``max_gross_leverage`` above is the third instant: after the step, marked at its as-of prices."""
    out: dict[str, Any] = {}
    for key, attr in (("at_decision", "decision_leverage"), ("after_fills", "fill_leverage")):
        series = {s.day: getattr(s, attr)[name] for s in result.steps if name in getattr(s, attr)}
        worst = max(series, key=lambda d: series[d]) if series else None
        out[f"max_gross_leverage_{key}"] = series[worst] if worst else None
        out[f"max_gross_leverage_{key}_day"] = worst
    return out


def _fill_model(result: BacktestResult) -> dict[str, Any]:
    """The fill assumption (``fill_at``) and, when the engine measured it, each book's return under both models.

    ``{"fill_at": "next_open" | "close", "model": text, "source": where it was read, "sensitivity": the engine's
    ``fill_sensitivity`` (``{"models", "books": {id: {model: return, "difference"}}, "account"}``) or None}``.
    A result that states no fill model is the paper broker's original one: fill at close.
    """
    stated = getattr(result, "fill_model", None)
    key = stated if isinstance(stated, str) else "close"
    text = FILL_MODELS.get(key, str(stated)).format(run_time=result.settings.trading.run_time_utc)
    source = ("the engine's result (the paper account's fill_at)" if stated is not None else
              "the paper broker's configuration (the engine's result states no fill model)")
    return {"fill_at": key, "model": text, "source": source,
            "sensitivity": getattr(result, "fill_sensitivity", None) or None}


def _metrics(curve: dict[str, float], calendar: str, ppy: int, trips: list[dict[str, Any]], reductions: list[float],
             traded: float, costs: dict[str, float | None]) -> dict[str, Any]:
    closed = [t["pnl"] for t in trips if t["pnl"] is not None]
    m = calendar_summary(curve, closed, calendar, ppy)
    values = list(curve.values())
    mean_eq = sum(values) / len(values) if values else 0.0
    m.update(start_equity=values[0] if values else None, traded_notional=traded,
             turnover=annual_turnover(traded, mean_eq, len(values) - 1, 365), **costs,
             trades=len(closed), open_round_trips=len(trips) - len(closed),
             avg_holding_days=(sum(t["holding_days"] for t in trips if t["holding_days"] is not None) / len(closed)
                               if closed else None),
             reductions=len(reductions),
             reduction_win_rate=sum(1 for p in reductions if p > 0) / len(reductions) if reductions else None)
    return m


def build_figures(result: BacktestResult) -> dict[str, Any]:
    """Everything the report shows, as plain JSON types.

    Keys: ``meta``, ``metrics`` (``account`` and each strategy), ``benchmarks`` (symbol -> curve, metrics,
    periods), ``periods`` (book -> monthly / annual returns), ``exposure`` (book -> series and figures),
    ``costs`` (book -> fees, slippage, funding), ``round_trips`` (book -> list, see :func:`round_trips`),
    ``round_trip_stats`` (book -> symbol -> counts, win rate, PnL, see :func:`round_trip_stats`),
    ``fill_model``, ``leaderboard``, ``conflicts`` (type -> count), ``risk_adjustments`` (rule -> count),
    ``not_used`` (strategy -> reason -> days), ``statuses`` (execution status -> days),
    ``checks`` (books add up, NAV identity), ``account`` (final paper account),
    ``funding_coverage``, ``curves``.
    """
    cv = curves(result)
    steps = result.steps
    settings = result.settings
    cfgs = {s.strategy_id: s for s in settings.strategies}
    instruments = settings.instruments
    mults = {sym: spec.multiplier for sym, spec in instruments.items()}
    calendars: dict[str, tuple[str, int]] = {
        sid: book_calendar(cfgs[sid].universe if sid in cfgs else [], instruments) for sid in result.strategies}
    calendars[ACCOUNT] = book_calendar([u for sid in result.strategies if sid in cfgs for u in cfgs[sid].universe],
                                       instruments)
    fills: dict[str, list[tuple[str, str, float, float]]] = {}
    for s in steps:
        for sid, fs in s.book_fills.items():
            fills.setdefault(sid, []).extend((s.day, sym, dq, px) for sym, dq, px in fs)
    trips = {sid: round_trips(fills.get(sid, []), mults) for sid in result.strategies}
    metrics: dict[str, Any] = {}
    costs: dict[str, dict[str, float | None]] = {}
    exposure: dict[str, Any] = {}
    if steps:
        acct = result.final_account
        costs[ACCOUNT] = {"fees": float(acct.get("fees_paid") or 0.0),
                          "slippage": sum(s.slippage_total for s in steps),
                          "funding": float(acct.get("funding_paid") or 0.0)}
        for sid in result.strategies:
            book = result.books.get(sid)
            costs[sid] = {"fees": book.fees if book else 0.0,
                          "slippage": sum(s.slippage.get(sid, 0.0) for s in steps),
                          "funding": book.funding if book else 0.0}
        for name, c in costs.items():
            total = (c["fees"] or 0.0) + (c["slippage"] or 0.0) + (c["funding"] or 0.0)
            start = cv[name][next(iter(cv[name]))] if name in cv else 0.0
            c.update(total=total, total_of_start=total / start if start > 0 else None)
        all_trips = [t for ts in trips.values() for t in ts]
        metrics[ACCOUNT] = _metrics(cv[ACCOUNT], *calendars[ACCOUNT], all_trips,
                                    [t.realized_pnl for ts in result.trades.values() for t in ts],
                                    sum(s.traded_total for s in steps), costs[ACCOUNT])
        exposure[ACCOUNT] = _exposure(result, ACCOUNT, settings.trading.risk.max_gross_leverage)
        for sid in result.strategies:
            if sid not in cv:
                continue
            metrics[sid] = _metrics(cv[sid], *calendars[sid], trips[sid],
                                    [t.realized_pnl for t in result.trades.get(sid, [])],
                                    sum(s.traded.get(sid, 0.0) for s in steps), costs[sid])
            cfg = cfgs.get(sid)
            exposure[sid] = _exposure(result, sid, cfg.risk_parameters.max_leverage if cfg else None)
    benchmarks, bench_notes = _benchmarks(result, {calendars[s][0] for s in metrics}, next(iter(cv[ACCOUNT])))\
        if steps else ({}, [])
    for name, m in metrics.items():
        sym = BENCHMARKS[calendars[name][0]]
        m["benchmark"] = sym if sym in benchmarks else None
        m["benchmark_return"] = benchmarks[sym]["metrics"]["total_return"] if sym in benchmarks else None
        m["beta"] = _beta(cv[name], benchmarks[sym]["curve"], calendars[name][0]) if sym in benchmarks else None
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
            "notes": result.notes + bench_notes, "periods_per_year": result.periods_per_year,
            "calendars": {k: {"calendar": c, "periods_per_year": p} for k, (c, p) in calendars.items()},
            "wall_seconds": round(result.wall_seconds, 3),
            "starting_cash": result.starting_cash, "run_time_utc": settings.trading.run_time_utc,
            "account": settings.account.account,
            "allocations": {s.strategy_id: s.capital_allocation for s in settings.strategies},
            "conflict_policy": settings.trading.conflict_policy,
        },
        "metrics": metrics,
        "benchmarks": benchmarks,
        "periods": {name: periodic_returns(c) for name, c in cv.items()},
        "exposure": exposure,
        "costs": costs,
        "round_trips": trips,
        "round_trip_stats": {sid: round_trip_stats(ts) for sid, ts in trips.items()},
        "fill_model": _fill_model(result),
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


def _beta(curve: Mapping[str, float], bench: Mapping[str, float], calendar: str) -> float | None:
    """``empyrical.beta`` of the book's returns on its benchmark's, on the book's calendar (None if undefined)."""
    import math

    import empyrical

    a = returns_from_curve(on_calendar(curve, calendar))
    b = returns_from_curve(on_calendar(bench, calendar))
    a, b = a.align(b, join="inner")
    if len(a) < 2:
        return None
    v = float(empyrical.beta(a, b))
    return v if math.isfinite(v) else None


ROUND_TRIP_COLUMNS = ("book", "symbol", "side", "entry_time", "exit_time", "quantity", "max_quantity", "entry_price",
                      "exit_price", "pnl", "return", "holding_days", "fills", "open_quantity")


def write_round_trips_csv(trips: Mapping[str, list[dict[str, Any]]], path: Path) -> Path:
    """Every book's round trips as one CSV (:data:`ROUND_TRIP_COLUMNS`; prices and PnL in base currency,
    ``return`` a fraction, times ``YYYY-MM-DD``; open trips have empty exit fields). Raises OSError."""
    rows = [{"book": sid, **{k: t[k] for k in ROUND_TRIP_COLUMNS[1:]}} for sid, ts in trips.items() for t in ts]
    pd.DataFrame(rows, columns=list(ROUND_TRIP_COLUMNS)).to_csv(path, index=False)
    return path
