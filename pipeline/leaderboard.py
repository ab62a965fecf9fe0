"""The leaderboard: each strategy's book, ranked, with metrics from :mod:`bus.metrics`."""

from __future__ import annotations

from typing import Any

from bus import paths
from bus.metrics import PERIODS_PER_YEAR_CRYPTO, summary
from bus.models import Book, EquityPoint, StrategyConfig, Trade
from bus.store import Store, read_many


def leaderboard(store: Store, periods_per_year: int = PERIODS_PER_YEAR_CRYPTO) -> list[dict[str, Any]]:
    """One row per strategy with a book, best total return first.

    Row: strategy_id, name, kind, equity, starting_cash, total_return (fraction of
    starting cash), sharpe, max_drawdown (negative fraction), win_rate (fraction),
    trades (count), fees (base currency). Metrics use the daily equity points
    ``strategies/{id}/equity/*`` and closed trades ``strategies/{id}/trades/*``;
    the Sharpe ratio is annualized with ``periods_per_year`` (daily steps per year).
    """
    configs = {sid: StrategyConfig.model_validate(d) for sid, d in store.list_docs("strategies")}
    books = read_many(store, [paths.book(s) for s in configs], Book)
    rows: list[dict[str, Any]] = []
    for sid, cfg in sorted(configs.items()):
        book = books[paths.book(sid)]
        if book is None:
            continue
        curve = {d: EquityPoint.model_validate(p).equity for d, p in store.list_docs(paths.equity_points(sid))}
        pnls = [Trade.model_validate(t).realized_pnl for _, t in store.list_docs(paths.trades(sid))]
        m = summary(curve, pnls, periods_per_year)
        start = book.starting_cash
        rows.append({"strategy_id": sid, "name": cfg.name, "kind": cfg.kind, "equity": book.equity,
                     "starting_cash": start, "total_return": (book.equity / start - 1) if start > 0 else None,
                     "sharpe": m["sharpe"], "max_drawdown": m["max_drawdown"], "win_rate": m["win_rate"],
                     "trades": int(m["trades"] or 0), "fees": book.fees})
    rows.sort(key=lambda r: (r["total_return"] is None, -(r["total_return"] or 0.0), r["strategy_id"]))
    for i, r in enumerate(rows, 1):
        r["rank"] = i
    return rows
