"""What a trader is shown: the market as of the run (nof1 pattern), its own book, its performance.

Market, per symbol of the universe, on two timeframes:

* ``4h``: the bundled perpetual bars (``{SYMBOL}-PERP``) where they exist,
  else the spot bars (``{SYMBOL}``), which the prompt and the journal say;
* ``1d``: the same 4h series grouped into whole UTC days (open of the first
  bar, highest high, lowest low, close of the last bar, summed volume); a day
  is used only once it has ended by the as-of time, and a day with missing 4h
  bars is built from the bars it has (gaps stay gaps).

Indicators come from the ``ta`` library: EMA(20) and EMA(50); MACD(12, 26, 9)
line and histogram (Appel); RSI(7) and RSI(14) (Wilder); ATR(3) and ATR(14)
(Wilder); volume against its 20-bar mean. Series are oldest first. The funding
rate is the last 8-hourly settlement at or before the as-of time (a fraction
of notional per 8 h) and the mean of the last three (one day).

Only :class:`~market.history.MarketView` is read, so no bar that closed after
the as-of time can appear. Indicator frames are cached by content (series,
the bars' first and last open times, count, last close and volume) and as-of
time, so the traders of one run share one computation.

Book (``strategies/{id}/book/latest``, written by the Commander): cash, equity
and positions re-marked at the context's prices, each with its entry price,
size, leverage (from the trader's own exit plan, 1 when unknown), unrealized
PnL and an estimated liquidation price. Performance: Sharpe ratio of the
book's daily equity curve (:mod:`bus.metrics`), win rate and number of closed
trades, total return.
"""

from __future__ import annotations

import functools
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import ta

from bus.constants import NOISE_EPS
from bus.journal import DecisionMemo, MarketRef, PositionPlan
from bus.metrics import PERIODS_PER_YEAR_CRYPTO, returns_from_curve, sharpe
from bus.models import Book, Trade
from market.funding import FundingHistory
from market.history import MarketDataError, MarketView

INTRADAY_BARS = 200          # 4h bars the intraday indicators are computed on
DAILY_DAYS = 110             # days of 4h bars grouped for the daily timeframe
SERIES_LEN = 10              # values of each series shown
ATR_BARS = 100               # bars the ATRs are computed on
MAINTENANCE_MARGIN_RATE = 0.005
_CACHE_MAX = 256
_cache: OrderedDict[tuple, dict[str, dict[str, Any]]] = OrderedDict()
_cache_lock = threading.Lock()
_inflight: dict[tuple, threading.Lock] = {}
_symbol_cache: OrderedDict[tuple, tuple[dict[str, Any], MarketRef]] = OrderedDict()
_funding_default: FundingHistory | None = None


def default_funding() -> FundingHistory:
    """The bundled funding history, shared (it caches the files it parses)."""
    global _funding_default
    if _funding_default is None:
        _funding_default = FundingHistory()
    return _funding_default


def indicators(bars: pd.DataFrame) -> pd.DataFrame:
    """Indicator columns of an OHLCV frame (see the module docstring); NaN where not yet defined."""
    c = bars["close"]
    macd = ta.trend.MACD(c, window_slow=26, window_fast=12, window_sign=9)
    out = pd.DataFrame({
        "close": c, "volume": bars["volume"],
        "ema20": ta.trend.EMAIndicator(c, 20).ema_indicator(),
        "ema50": ta.trend.EMAIndicator(c, 50).ema_indicator(),
        "macd": macd.macd(), "macd_hist": macd.macd_diff(),
        "rsi7": ta.momentum.RSIIndicator(c, 7).rsi(),
        "rsi14": ta.momentum.RSIIndicator(c, 14).rsi(),
        "volume_avg20": bars["volume"].rolling(20).mean(),
    }, index=bars.index)
    # The ATR is Wilder's recursion: run it on the last ATR_BARS bars (Wilder smoothing forgets its
    # seed within them: (13/14)^86 < 0.2 %); earlier rows stay NaN.
    t = bars.iloc[-ATR_BARS:]
    n = len(t)
    out["atr3"] = average_true_range(t, 3) if n > 3 else math.nan
    out["atr14"] = average_true_range(t, 14) if n > 14 else math.nan
    if "close_time" in bars:
        out["close_time"] = bars["close_time"]
    return out


def average_true_range(bars: pd.DataFrame, window: int) -> pd.Series:
    """``ta.volatility.AverageTrueRange(high, low, close, window).average_true_range()``, value for value
    (the same true range, seed and recursion in the same float64 order), without ta's per-bar
    ``Series.iloc`` loop (~0.5 ms instead of ~5 ms for 100 bars). Rows before ``window - 1`` are 0, as in ta.
    """
    tr = ta.utils.IndicatorMixin._true_range(bars["high"], bars["low"], bars["close"].shift(1))
    vals = tr.to_numpy(dtype=float)
    atr = np.zeros(len(vals))
    atr[window - 1] = tr.iloc[0:window].mean()
    for i in range(window, len(atr)):
        atr[i] = (atr[i - 1] * (window - 1) + vals[i]) / float(window)
    return pd.Series(data=atr, index=tr.index, name="atr")


def _summary(frame: pd.DataFrame) -> dict[str, Any]:
    """What the prompt and the journal take of one indicator frame: current values, series, close times."""
    tail = frame.iloc[-SERIES_LEN:]
    cols = ["close", "ema20", "ema50", "macd", "rsi7", "rsi14", "atr14", "volume"]
    values = {c: tail[c].to_numpy(dtype=float) for c in cols}
    last = frame.iloc[-1]
    return {
        "current": {k: (None if pd.isna(v) else float(v)) for k, v in last.items() if k != "close_time"},
        "series": {c: [None if math.isnan(v) else float(v) for v in values[c]] for c in cols},
        "first_close": tail["close_time"].iloc[0].to_pydatetime(),
        "last_close": tail["close_time"].iloc[-1].to_pydatetime(),
        "bars": len(frame),
    }


def _content_key(name: str, bars: pd.DataFrame, as_of: pd.Timestamp) -> tuple:
    """What identifies a series' bars as of a time: name, count, first and last open, last close and volume."""
    return (name, len(bars), bars.index[0], bars.index[-1], float(bars["close"].iloc[-1]),
            float(bars["volume"].iloc[-1]), as_of)


def cached_frames(name: str, bars: pd.DataFrame, as_of: pd.Timestamp) -> dict[str, dict[str, Any]]:
    """Timeframe -> :func:`_summary` of the indicators of the 4h bars (last :data:`INTRADAY_BARS`)
    and of the whole days built from them.

    Cached by content and as-of time (thread-safe, at most 256 entries): the
    traders of one run compute each symbol once; traders asking at the same
    moment wait for the first one's result. Callers must not modify the result.
    """
    key = _content_key(name, bars, as_of)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
        flight = _inflight.setdefault(key, threading.Lock())
    with flight:  # one thread computes, the others wait for its result
        with _cache_lock:
            hit = _cache.get(key)
        if hit is not None:
            return hit
        frames = {"4h": _summary(indicators(bars.iloc[-INTRADAY_BARS:]))}
        daily = daily_from_4h(bars, as_of)
        if len(daily):
            frames["1d"] = _summary(indicators(daily))
        with _cache_lock:
            _cache[key] = frames
            _inflight.pop(key, None)
            while len(_cache) > _CACHE_MAX:
                _cache.popitem(last=False)
    return frames


def daily_from_4h(bars: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Whole UTC days from 4h bars (index = day open time); days not ended by ``as_of`` are left out."""
    day = bars.index.floor("D")
    g = bars.groupby(day)
    daily = pd.DataFrame({"open": g["open"].first(), "high": g["high"].max(), "low": g["low"].min(),
                          "close": g["close"].last(), "volume": g["volume"].sum()})
    daily["close_time"] = daily.index + pd.Timedelta(days=1)
    return daily[daily["close_time"] <= as_of]


@dataclass
class MarketContext:
    """The market part of a prompt: per-symbol dicts for the template, refs for the journal, prices."""

    symbols: list[dict[str, Any]] = field(default_factory=list)
    refs: list[MarketRef] = field(default_factory=list)
    prices: dict[str, float] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)


def _pick_series(market: MarketView, symbol: str) -> tuple[str, pd.DataFrame]:
    last_exc: Exception | None = None
    for name in (f"{symbol}-PERP", symbol):
        try:
            return name, market.bars(name, "4h", lookback=DAILY_DAYS * 6)
        except MarketDataError as exc:
            last_exc = exc
    raise MarketDataError(f"no 4h bars of {symbol} (perpetual or spot): {last_exc}")


def symbol_context(market: MarketView, symbol: str, funding: FundingHistory,
                   max_age: timedelta) -> tuple[dict[str, Any], MarketRef]:
    """One symbol's template dict and its market ref.

    Cached by the bars' content (as :func:`cached_frames`), the as-of time, the funding
    history and ``max_age`` (thread-safe, at most 256 entries): the traders of one run
    share one context per symbol. Callers must not modify the result.

    Raises:
        MarketDataError: no bars, or the newest 4h bar is older than ``max_age`` (stale).
    """
    name, bars = _pick_series(market, symbol)
    key = (symbol, _content_key(name, bars, market.as_of), funding, max_age)
    with _cache_lock:
        hit = _symbol_cache.get(key)
        if hit is not None:
            _symbol_cache.move_to_end(key)
            return hit
    out = _symbol_context(market, symbol, funding, max_age, name, bars)
    with _cache_lock:
        _symbol_cache[key] = out
        while len(_symbol_cache) > _CACHE_MAX:
            _symbol_cache.popitem(last=False)
    return out


def _symbol_context(market: MarketView, symbol: str, funding: FundingHistory, max_age: timedelta, name: str,
                    bars: pd.DataFrame) -> tuple[dict[str, Any], MarketRef]:
    """:func:`symbol_context` of the series ``name``'s ``bars``, uncached."""
    last_close = bars["close_time"].iloc[-1]
    if market.as_of - last_close > pd.Timedelta(max_age):
        raise MarketDataError(f"stale: newest {name} 4h bar closed {last_close.isoformat()}, "
                              f"as-of {market.as_of.isoformat()}, allowed age {max_age}")
    frames = cached_frames(name, bars, market.as_of)
    price = float(bars["close"].iloc[-1])
    rates = funding.as_of(symbol, market.as_of.to_pydatetime(), lookback=3) if symbol in funding.symbols() else None
    # The funding rates when the newest was paid within a day of the as-of time, else None.
    fresh = (rates if rates is not None and len(rates) and market.as_of - rates.index[-1] <= pd.Timedelta(hours=24)
             else None)
    ctx = {
        "symbol": symbol, "series": name, "perpetual": name.endswith("-PERP"), "price": price,
        "funding_rate": float(fresh.iloc[-1]) if fresh is not None else None,
        "funding_rate_avg": float(fresh.mean()) if fresh is not None else None,
        "timeframes": [{"name": tf, "current": f["current"], "series": f["series"]} for tf, f in frames.items()],
    }
    four, day = frames["4h"], frames.get("1d")
    ref = MarketRef(symbol=symbol, series=name, price=price, bars_4h=four["bars"], bars_1d=day["bars"] if day else None,
                    first_close_4h=four["first_close"], last_close_4h=four["last_close"],
                    last_close_1d=day["last_close"] if day else None,
                    funding_at=fresh.index[-1].to_pydatetime() if fresh is not None else None)
    return ctx, ref


def market_context(market: MarketView, symbols: list[str], funding: FundingHistory | None = None,
                   max_age: timedelta = timedelta(hours=12)) -> MarketContext:
    """Context of every symbol; a symbol without fresh data is listed as unavailable (with why), not shown."""
    funding = funding or default_funding()
    out = MarketContext()
    for sym in symbols:
        try:
            ctx, ref = symbol_context(market, sym, funding, max_age)
        except MarketDataError as exc:
            out.unavailable[sym] = str(exc)
            out.refs.append(MarketRef(symbol=sym, unavailable=str(exc)))
            continue
        out.symbols.append(ctx)
        out.refs.append(ref)
        out.prices[sym] = ctx["price"]
    return out


def liquidation_price(entry: float, quantity: float, leverage: float,
                      maintenance_margin_rate: float = MAINTENANCE_MARGIN_RATE) -> float:
    """Estimated liquidation price of an isolated-margin position (quote currency per coin).

    Long: entry x (1 - 1/leverage + mmr); short: entry x (1 + 1/leverage - mmr): the
    price at which the position's loss eats its initial margin down to the
    maintenance margin (Binance USD-M isolated margin, one position, fees and the
    maintenance amount left out). An estimate: the paper account is not liquidated.
    """
    lev = max(float(leverage), 1.0)
    if quantity >= 0:
        return max(0.0, entry * (1 - 1 / lev + maintenance_margin_rate))
    return entry * (1 + 1 / lev - maintenance_margin_rate)


def account_view(book: Book | None, prices: dict[str, float], plans: dict[str, PositionPlan],
                 capital_estimate: float | None, as_of: datetime | None = None,
                 capital_basis: str | None = None) -> dict[str, Any]:
    """The trader's book for the prompt and the checks.

    Equity = cash + Σ quantity x price (the Commander's book accounting), with
    positions marked at ``prices`` (their entry price where the symbol has no
    fresh price). Without a book, equity is ``capital_estimate`` (None: unknown), whose
    ``capital_basis`` (``snapshot``: allocation x the last snapshot's NAV; ``assumed``:
    allocation x an assumed NAV, before the first snapshot) the prompt names.

    Returns:
        dict with ``cash``, ``equity``, ``starting_cash``, ``margin_used``,
        ``margin_use`` (fraction of equity), ``positions`` (list of dicts: symbol,
        side, quantity, entry_price, price, notional, leverage, margin,
        unrealized_pnl, liquidation_price, stop_loss, take_profit,
        invalidation_condition, held_hours: hours since the trader opened it, None
        when not known), ``has_book``, ``capital_basis`` (``book`` with a book).
    """
    positions: list[dict[str, Any]] = []
    if book is None:
        cash = equity = capital_estimate
        starting = capital_estimate
    else:
        cash, starting = book.cash, book.starting_cash or None
        value = 0.0
        for sym, p in sorted(book.positions.items()):
            if abs(p.quantity) < NOISE_EPS:
                continue
            px = prices.get(sym, p.avg_price)
            plan = plans.get(sym)
            lev = plan.leverage if plan else 1.0
            notional = abs(p.quantity) * px
            value += p.quantity * px
            positions.append({
                "symbol": sym, "side": "long" if p.quantity > 0 else "short", "quantity": p.quantity,
                "entry_price": p.avg_price, "price": px, "priced": sym in prices, "notional": notional,
                "leverage": lev, "margin": notional / lev, "unrealized_pnl": (px - p.avg_price) * p.quantity,
                "liquidation_price": liquidation_price(p.avg_price, p.quantity, lev),
                "stop_loss": plan.stop_loss if plan else None, "take_profit": plan.take_profit if plan else None,
                "invalidation_condition": plan.invalidation_condition if plan else "",
                "held_hours": ((as_of - plan.opened_at).total_seconds() / 3600
                               if plan and plan.opened_at and as_of else None),
            })
        equity = cash + value
    margin_used = sum(p["margin"] for p in positions)
    return {"has_book": book is not None, "capital_basis": "book" if book is not None else capital_basis,
            "cash": cash, "equity": equity, "starting_cash": starting,
            "margin_used": margin_used,
            "margin_use": (margin_used / equity) if equity and equity > 0 else None, "positions": positions}


@functools.lru_cache(maxsize=1024)
def _curve_sharpe(curve: tuple[tuple[str, float], ...], periods_per_year: int) -> float | None:
    """:func:`bus.metrics.sharpe` of a daily equity curve (memoized: an unchanged book is not recomputed)."""
    return sharpe(returns_from_curve(dict(curve)), periods_per_year)


def performance_view(book: Book | None, trades: list[Trade], equity: float | None,
                     periods_per_year: int = PERIODS_PER_YEAR_CRYPTO) -> dict[str, Any]:
    """Sharpe ratio, win rate (fraction), closed trades, total return (fraction of starting cash).

    The Sharpe ratio is :func:`bus.metrics.sharpe` of the book's whole daily equity
    curve, annualized with ``periods_per_year`` (default: daily crypto books, 365);
    None with fewer than two returns.
    """
    pnls = [t.realized_pnl for t in trades]
    start = book.starting_cash if book else 0.0
    return {
        "sharpe": _curve_sharpe(tuple(sorted(book.equity_curve.items())), periods_per_year) if book else None,
        "win_rate": (sum(1 for p in pnls if p > 0) / len(pnls)) if pnls else None,
        "trades": len(pnls),
        "total_return": (equity / start - 1) if equity is not None and start and start > 0 else None,
        "realized_pnl": book.realized_pnl if book else 0.0,
        "fees": book.fees if book else 0.0,
    }


def minutes_between(start: datetime | None, end: datetime) -> int:
    """Whole minutes from ``start`` to ``end`` (0 without a start)."""
    return int((end - start).total_seconds() // 60) if start else 0


def memory_view(memory: list[DecisionMemo], prices: dict[str, float], as_of: datetime) -> list[dict[str, Any]]:
    """The trader's past decisions for the prompt, oldest first, with what happened since.

    Each: ``hours_ago``, ``as_of`` (ISO), ``status``, ``model``, ``note`` and ``decisions``
    (symbol, action, notional in quote currency, leverage, ``price`` then, ``price_now``,
    ``change`` = price_now / price - 1 as a fraction, ``pnl_since`` = side x notional x change
    in quote currency for an accepted open (None otherwise), ``rejected`` the rule or None).
    """
    out = []
    for m in memory:
        items = []
        for it in m.items:
            now_px = prices.get(it.symbol)
            change = (now_px / it.price - 1) if now_px and it.price else None
            notional = it.notional if it.notional is not None else (
                it.quantity * it.price if it.quantity is not None and it.price else None)
            side = {"open_long": 1, "open_short": -1}.get(it.action)
            pnl = (side * notional * change if side and notional is not None and change is not None
                   and it.rejected is None else None)
            items.append({"symbol": it.symbol, "action": it.action, "notional": notional, "leverage": it.leverage,
                          "price": it.price, "price_now": now_px, "change": change, "pnl_since": pnl,
                          "rejected": it.rejected})
        out.append({"hours_ago": (as_of - m.as_of).total_seconds() / 3600, "as_of": m.as_of.isoformat(),
                    "status": m.status, "model": m.model, "note": m.note, "decisions": items})
    return out
