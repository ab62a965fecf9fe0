"""The leaderboard: each strategy's book, ranked, with metrics from :mod:`bus.metrics`.

Each book's ratios are annualized by its own calendar (:func:`book_calendar`): a
book that trades only US equities/ETFs (``secType`` ``STK``) is marked on NYSE
sessions, so its curve is sampled on XNYS sessions (``exchange_calendars``) and
annualized with :data:`~bus.metrics.PERIODS_PER_YEAR_ETF` (252); any other book
(crypto, perpetuals: they trade every day) keeps every calendar day and
:data:`~bus.metrics.PERIODS_PER_YEAR_CRYPTO` (365). The backtest report uses the
same two functions.

A book's curve starts at its starting capital on the day before its first equity
point, so the first day's return (its first fills, fees and move) counts.

An LLM trader's row also has its model, tokens, cost and failure rate over its
latest decisions (:func:`llm_columns`); other rows have None there.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from functools import lru_cache
from typing import Any, Iterable, Mapping

from bus import paths
from bus.metrics import PERIODS_PER_YEAR_CRYPTO, PERIODS_PER_YEAR_ETF, summary
from bus.models import Book, EquityPoint, InstrumentSpec, StrategyConfig, Trade
from bus.store import Store

#: Calendar of a book of US equities/ETFs: NYSE sessions.
XNYS = "XNYS"
#: Calendar of a book that trades every day (crypto spot, perpetuals).
EVERY_DAY = "24/7"
#: Books whose equity points and trades :func:`leaderboard` reads at the same time.
READ_THREADS = 8
#: Instrument types marked on exchange sessions only.
SESSION_SEC_TYPES = frozenset({"STK", "ETF"})
#: The journal fields :func:`llm_columns` reads (never the prompts).
JOURNAL_FIELDS = ["status", "model", "total_tokens", "cost_usd"]
#: The columns an LLM trader's row adds (None on other rows).
LLM_COLUMNS = ("model", "decisions", "tokens", "cost_usd", "failure_rate")


def book_calendar(universe: Iterable[str], instruments: Mapping[str, InstrumentSpec]) -> tuple[str, int]:
    """A book's calendar and daily periods per year: ``("XNYS", 252)`` or ``("24/7", 365)``.

    ``("XNYS", 252)`` when the universe is not empty and every symbol is an instrument
    with ``secType`` in :data:`SESSION_SEC_TYPES`; otherwise (any crypto, perpetual, or a
    symbol without an instrument spec, which is then assumed to trade every day) ``("24/7", 365)``.
    """
    syms = list(universe)
    if syms and all(s in instruments and instruments[s].secType in SESSION_SEC_TYPES for s in syms):
        return XNYS, PERIODS_PER_YEAR_ETF
    return EVERY_DAY, PERIODS_PER_YEAR_CRYPTO


@lru_cache(maxsize=1)
def _xnys_sessions() -> tuple[frozenset[str], str, str]:
    import exchange_calendars as xc  # imported on first use (~0.3 s)

    cal = xc.get_calendar(XNYS, start="1990-01-02")
    days = frozenset(d.strftime("%Y-%m-%d") for d in cal.sessions)
    return days, cal.first_session.strftime("%Y-%m-%d"), cal.last_session.strftime("%Y-%m-%d")


def is_session(day: str, calendar: str) -> bool:
    """Is ``day`` (``YYYY-MM-DD``) a trading day of ``calendar``? Every day is one of ``24/7``; for ``XNYS``
    a day outside the ``exchange_calendars`` range counts when it is a weekday."""
    if calendar != XNYS:
        return True
    days, first, last = _xnys_sessions()
    if first <= day <= last:
        return day in days
    return date.fromisoformat(day).weekday() < 5


def on_calendar(curve: Mapping[str, float], calendar: str) -> dict[str, float]:
    """The points of a daily ``{YYYY-MM-DD: equity}`` curve on ``calendar``'s trading days, oldest first.

    The first point (the starting capital) is always kept; ``24/7`` keeps every point.
    Returns between the kept points are then one per session, as ``periods_per_year`` expects.
    """
    items = sorted(curve.items())
    return dict(items[:1] + [(d, v) for d, v in items[1:] if is_session(d, calendar)])


def with_start(curve: Mapping[str, float], starting_capital: float) -> dict[str, float]:
    """``curve`` with ``starting_capital`` on the day before its first point (so the first day's return counts);
    unchanged when empty or when the capital is not positive."""
    items = sorted(curve.items())
    if not items or starting_capital <= 0:
        return dict(items)
    before = (date.fromisoformat(items[0][0][:10]) - timedelta(days=1)).isoformat()
    return {before: starting_capital, **dict(items)}


def calendar_summary(curve: Mapping[str, float], trade_pnls: Iterable[float], calendar: str,
                     periods_per_year: int) -> dict[str, Any]:
    """:func:`bus.metrics.summary` of ``curve`` sampled on ``calendar`` (:func:`on_calendar`), plus
    ``calendar`` and ``periods_per_year``."""
    m: dict[str, Any] = dict(summary(on_calendar(curve, calendar), trade_pnls, periods_per_year))
    m.update(calendar=calendar, periods_per_year=periods_per_year)
    return m


class MetricsCache:
    """A book's metrics (:func:`calendar_summary` of its equity points and trades), kept while its book is unchanged.

    The Commander writes a book, its new daily equity point and its closed trades in one batch, and
    moves the book's ``updated_at`` and ``execution_id`` at every run (commander/run.py,
    commander/attribute.py), so an unchanged book document means unchanged points and trades. Entries
    are keyed by the strategy id, the book document's identity (``updated_at``, ``execution_id``, equity and
    starting cash: every Commander write moves them) and the calendar; an entry is stored only
    when the newest equity point matches the book's own ``equity_curve`` (so a book written before its
    points, in a run too large for one batch, is not remembered with the old points). Thread-safe; at
    most ``max_entries`` entries (the oldest are dropped). One cache per store: the key holds no project.
    """

    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str, str, int], dict[str, Any]] = {}
        self._ids: list[str] = []

    def strategy_ids(self) -> list[str]:
        """The strategy ids the last leaderboard listed (their books are read early)."""
        with self._lock:
            return list(self._ids)

    def remember_ids(self, ids: list[str]) -> None:
        """Remember the strategy ids just listed."""
        with self._lock:
            self._ids = list(ids)

    def get(self, key: tuple[str, str, str, int]) -> dict[str, Any] | None:
        """The metrics stored under ``key`` (a copy), or None."""
        with self._lock:
            m = self._entries.get(key)
        return dict(m) if m is not None else None

    def put(self, key: tuple[str, str, str, int], metrics: dict[str, Any]) -> None:
        """Store ``metrics`` under ``key``, dropping the oldest entries beyond ``max_entries``."""
        with self._lock:
            self._entries[key] = dict(metrics)
            while len(self._entries) > self.max_entries:
                del self._entries[next(iter(self._entries))]


#: The book fields a leaderboard row and its cache key use (read without the curve and the positions).
BOOK_ROW_FIELDS = ["strategy_id", "updated_at", "execution_id", "equity", "starting_cash", "fees"]


def _settled(book: Book, points: Mapping[str, float]) -> bool:
    """Do the equity points include the book's newest ``equity_curve`` day with the same equity?
    (True when the book keeps no curve.)"""
    if not book.equity_curve:
        return True
    day, value = max(book.equity_curve.items())
    return points.get(day) == value


def _book_metrics(store: Store, sid: str, book: Book, cal: str, ppy: int,
                  cache: MetricsCache | None) -> dict[str, Any]:
    """:func:`calendar_summary` of one book from its equity points and trades, through ``cache`` when given."""
    # Every Commander write of a book moves its updated_at and execution_id (and the points and trades are
    # written in the same batch), so these identify the document without serialising its equity curve.
    key = (sid, f"{book.updated_at.isoformat()}|{book.execution_id}|{book.equity!r}|{book.starting_cash!r}", cal, ppy)
    if cache is not None and (hit := cache.get(key)) is not None:
        return hit
    if cache is not None:  # the book was read without its curve (BOOK_ROW_FIELDS): the whole one, to check _settled
        book = Book.model_validate(store.get(paths.book(sid)) or book.model_dump())
    points = {d: EquityPoint.model_validate(p).equity for d, p in store.list_docs(paths.equity_points(sid))}
    pnls = [Trade.model_validate(t).realized_pnl for _, t in store.list_docs(paths.trades(sid))]
    m = calendar_summary(with_start(points, book.starting_cash), pnls, cal, ppy)
    if cache is not None and _settled(book, points):
        cache.put(key, m)
    return m


def _configs_and_books(store: Store, cache: MetricsCache | None
                       ) -> tuple[dict[str, StrategyConfig], dict[str, Book | None]]:
    """Every strategy's configuration and its book (book path -> Book or None).

    With a cache that knows the strategy ids of the last call, their books are read while the
    strategies are listed (two round trips at once); a strategy new since then is read after.
    """
    known = cache.strategy_ids() if cache is not None else []
    fields = BOOK_ROW_FIELDS if cache is not None else None  # with a cache, a hit needs no equity curve
    if not known:
        configs = {sid: StrategyConfig.model_validate(d) for sid, d in store.list_docs("strategies")}
        raw = store.get_all([paths.book(s) for s in configs], fields=fields)
    else:
        with ThreadPoolExecutor(max_workers=1) as pool:
            early = pool.submit(store.get_all, [paths.book(s) for s in known], fields)
            configs = {sid: StrategyConfig.model_validate(d) for sid, d in store.list_docs("strategies")}
            raw = early.result()
        missing = [paths.book(s) for s in configs if paths.book(s) not in raw]
        if missing:
            raw.update(store.get_all(missing, fields=fields))
    if cache is not None:
        cache.remember_ids(list(configs))
    return configs, {paths.book(s): Book.model_validate(d) if (d := raw[paths.book(s)]) is not None else None
                     for s in configs}


def _primary_model(cfg: StrategyConfig) -> str | None:
    """The configured primary model id of an LLM trader (its ``llm`` block's first model), or None."""
    chain = (cfg.llm or {}).get("model_chain") or []
    first = chain[0] if chain else None
    return first.get("id") if isinstance(first, dict) else None


def llm_columns(store: Store, configs: Mapping[str, StrategyConfig]) -> dict[str, dict[str, Any]]:
    """Per kind-``llm`` strategy: its model, decisions, tokens, cost and failure rate.

    Over the decisions its state indexes (``strategies/{id}/llm/state``: the latest 200 journal
    entries), reading only :data:`JOURNAL_FIELDS` of each entry, in two ``get_all`` calls for all traders.

    Returns:
        strategy id -> ``model`` (the id of the model that answered its latest answered decision; the
        configured primary before any), ``decisions`` (count), ``tokens`` (Σ prompt + completion tokens),
        ``cost_usd`` (Σ US dollars), ``failure_rate`` (fraction of decisions with status ``error``; None
        without decisions).

    Raises:
        bus.store.StoreError: the store is unreachable.
    """
    llm = sorted(sid for sid, c in configs.items() if c.kind == "llm")
    if not llm:
        return {}
    states = store.get_all([paths.llm_state(s) for s in llm], fields=["recent_decisions"])
    ids = {s: list((states.get(paths.llm_state(s)) or {}).get("recent_decisions") or []) for s in llm}
    wanted = [paths.journal(s, d) for s in llm for d in ids[s]]
    entries = store.get_all(wanted, fields=JOURNAL_FIELDS) if wanted else {}
    out: dict[str, dict[str, Any]] = {}
    for sid in llm:
        docs = [e for d in ids[sid] if (e := entries.get(paths.journal(sid, d)))]
        answered = [e["model"] for e in docs if e.get("model")]
        n = len(docs)
        out[sid] = {"model": answered[-1] if answered else _primary_model(configs[sid]), "decisions": n,
                    "tokens": int(sum(e.get("total_tokens") or 0 for e in docs)),
                    "cost_usd": float(sum(e.get("cost_usd") or 0.0 for e in docs)),
                    "failure_rate": (sum(1 for e in docs if e.get("status") == "error") / n) if n else None}
    return out


def leaderboard(store: Store, instruments: Mapping[str, InstrumentSpec] | None = None,
                cache: MetricsCache | None = None) -> list[dict[str, Any]]:
    """One row per strategy with a book, best total return first.

    Args:
        store: the bus (strategy configs, books, equity points, trades).
        instruments: symbol -> spec (``config/instruments.yaml``); decides each book's
            calendar (:func:`book_calendar`). Without it every book counts as ``24/7``.
        cache: a :class:`MetricsCache` of ``store`` (the read API keeps one): a book whose document
            is unchanged since the last call is not read again (its equity points and trades are
            what a request spends its time on: 50 books x 250 points are 12,500 documents). The rows
            are the same with or without it.

    Row: strategy_id, name, kind, equity, starting_cash, total_return (fraction of
    starting cash), sharpe, max_drawdown (negative fraction), win_rate (fraction of
    closed reductions with realized PnL > 0), trades (closed reductions, count), fees
    (base currency), calendar (``XNYS`` | ``24/7``), periods_per_year (252 | 365), and
    :data:`LLM_COLUMNS` (:func:`llm_columns`; None on a row that is not an LLM trader).
    Metrics use the starting cash the day before the first daily equity point
    ``strategies/{id}/equity/*``, then those points on the book's calendar; trades are
    ``strategies/{id}/trades/*``.
    """
    specs = instruments or {}
    configs, books = _configs_and_books(store, cache)
    ranked = [(sid, cfg, book, *book_calendar(cfg.universe, specs)) for sid, cfg in sorted(configs.items())
              if (book := books[paths.book(sid)]) is not None]
    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:  # the books not cached are read at once
        llm_read = pool.submit(llm_columns, store, {r[0]: r[1] for r in ranked})
        metrics = list(pool.map(lambda r: _book_metrics(store, r[0], r[2], r[3], r[4], cache), ranked))
        llm = llm_read.result()
    rows: list[dict[str, Any]] = []
    for (sid, cfg, book, cal, ppy), m in zip(ranked, metrics, strict=True):
        start = book.starting_cash
        rows.append({"strategy_id": sid, "name": cfg.name, "kind": cfg.kind, "equity": book.equity,
                     "starting_cash": start, "total_return": (book.equity / start - 1) if start > 0 else None,
                     "sharpe": m["sharpe"], "max_drawdown": m["max_drawdown"], "win_rate": m["win_rate"],
                     "trades": int(m["trades"] or 0), "fees": book.fees, "calendar": cal, "periods_per_year": ppy,
                     **(llm.get(sid) or dict.fromkeys(LLM_COLUMNS))})
    rows.sort(key=lambda r: (r["total_return"] is None, -(r["total_return"] or 0.0), r["strategy_id"]))
    for i, r in enumerate(rows, 1):
        r["rank"] = i
    return rows
