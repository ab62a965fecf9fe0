"""Independent cross-check: ``spy_macd_vixy``'s rule in vectorbt vs our backtest, same bars, same costs.

Our side: the backtest engine (strategies -> reconcile -> Commander -> paper
broker) with only ``spy_macd_vixy`` at 95 % of NAV (``max_symbol_exposure``
raised to 1 so that no global limit binds), over 2020-2021 (COVID crash and
VIXY spike included).

Library side: vectorbt's ``Portfolio.from_order_func`` on the same SPY and VIXY
daily closes. Each trading day its order function applies the same rule —
``target_weights(macd_histogram(SPY closes))`` × the strategy's book equity (the
portfolio's value less the 5 % never allocated, which stays cash outside the book) —
and the Commander's order rules: order = round(target − held) to the backtest's lot
(0.0001 unit: fractional units of the split-adjusted series);
dropped under ``min_order_notional`` or, unless it closes the position, under
``rebalance_band`` × the target's notional. vectorbt fills it at that day's
close with the same 2 bps slippage and 1 bp fee, and does its own cash,
position and return accounting.

Same fill timing: our daily run at 21:30 UTC sees the day's 16:00 New York
close and the paper broker, set to ``fill_at: close`` here (the default is the
next open; tests/backtest/test_crosscheck_backtesting.py checks that one against
backtesting.py), fills at that close, as vectorbt fills at the bar's close.
Weekend and holiday steps see no new bar and trade nothing new.

Documented tolerances and why they are not zero:

* **Trade count**: within 5 % of the library's (observed equal, 194 and 194).
  A band rebalance near the band's edge can move by a day on tiny valuation
  differences. (With whole shares of VIXY's split-adjusted $1,000-$5,000 price
  it did so often; both sides now hold fractional units.)
  The differences: our paper broker rounds each fill to the tick (1 cent)
  against the order, vectorbt does not; we value NAV before the day's orders,
  the library after each order's costs.
* **Total return**: within 0.5 percentage points over the two years, for the
  same reasons (a band rebalance a day apart, plus ≤ 1 cent
  per share of tick rounding on every fill); observed 0.4 point (+28.36 % vs
  +28.74 %).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import numpy as np
import pandas as pd
import vectorbt as vbt
from vectorbt.portfolio import nb as vbt_nb
from vectorbt.portfolio.enums import NoOrder, SizeType

from backtest.horizon import HorizonHistory
from market.history import BUNDLED_DIR
from pipeline.wiring import as_of_on
from strategies.spy_macd_vixy import macd_histogram, target_weights
from tests.support.backtest import backtest_settings, only, run

START, END = date(2020, 1, 2), date(2021, 12, 31)
ALLOCATION = 0.95
TRADE_COUNT_TOLERANCE = 0.05   # fraction of the library's order count
RETURN_TOLERANCE = 0.005       # absolute, total return over the span


def library_weights(close: pd.DataFrame, hist: pd.Series, params: dict) -> pd.DataFrame:
    """The rule's SPY/VIXY weights (fractions of the strategy's capital) on each day of ``close``."""
    return pd.DataFrame([target_weights(float(hist.loc[d]), params["long_weight"], params["defensive_weight"],
                                        params["hedge_weight"]) for d in close.index], index=close.index)


def library_run(settings, start: date, end: date, params: dict, fee_bps: float, slippage_bps: float):
    """vectorbt on the same bars: returns (portfolio, close frame, the rule's weights per day)."""
    provider = HorizonHistory([BUNDLED_DIR], as_of_on(end, settings), {})
    spy, vixy = provider.frame("SPY"), provider.frame("VIXY")
    hist = macd_histogram(spy["close"], params["fast"], params["slow"], params["signal"]).dropna()
    close = pd.concat({"SPY": spy["close"], "VIXY": vixy["close"]}, axis=1).dropna()
    close.index = close.index.tz_localize(None)
    hist.index = hist.index.tz_localize(None)
    close = close.loc[str(start):str(end)]
    weights = library_weights(close, hist, params)[close.columns]
    w = weights.to_numpy()
    band, min_notional = settings.trading.rebalance_band, settings.trading.min_order_notional
    reserve = (1 - ALLOCATION) * settings.account.starting_cash  # never allocated: not in the book's equity
    lots = [settings.instruments[s].lot_size for s in close.columns]

    def order_func(c, w, band, min_notional):  # vectorbt's OrderContext
        price = c.close[c.i, c.col]
        value = c.last_cash[c.group] + sum(c.last_position[k] * c.close[c.i, k] for k in range(c.from_col, c.to_col))
        target = w[c.i, c.col] * (value - reserve) / price
        held = c.last_position[c.col]
        closing = abs(target) < 1e-9
        lot = lots[c.col]
        qty = (target - held) if closing else float(np.round((target - held) / lot) * lot)
        if abs(qty) < 1e-9:
            return NoOrder
        notional = abs(qty) * price
        if notional < min_notional and not closing:
            return NoOrder
        if not closing and abs(held) > 1e-9 and notional < band * abs(target) * price:
            return NoOrder
        return vbt_nb.order_nb(size=qty, price=price, size_type=SizeType.Amount, fees=fee_bps / 1e4,
                               slippage=slippage_bps / 1e4)

    pf = vbt.Portfolio.from_order_func(close, order_func, w, band, min_notional, use_numba=False, group_by=True,
                                       cash_sharing=True, init_cash=settings.account.starting_cash, freq="1D")
    return pf, close, weights


def test_spy_macd_vixy_matches_vectorbt_within_the_documented_tolerance():
    settings, bfile = backtest_settings()
    cfg = next(s for s in settings.strategies if s.strategy_id == "spy_macd_vixy")
    cfg = cfg.model_copy(update={"capital_allocation": ALLOCATION})
    trading = settings.trading.model_copy(update={"risk": settings.trading.risk.model_copy(
        update={"max_symbol_exposure": 1.0})})
    # Fills at the signal bar's close, as vectorbt's (fill_at: close; the default next_open is cross-checked
    # against backtesting.py elsewhere).
    s = only(replace(settings, trading=trading, account=settings.account.model_copy(update={"fill_at": "close"})), cfg)
    acct = s.account
    assert "SPY" not in acct.costs and "VIXY" not in acct.costs  # the account defaults apply to both
    ours, _ = run(s, bfile, START, END, fill_at="close")
    assert {x.status for x in ours.steps} == {"completed"}
    ours_return = ours.steps[-1].nav / ours.starting_cash - 1
    ours_orders = sum(x.orders for x in ours.steps)
    ours_days = {x.day for x in ours.steps if x.orders}

    pf, close, w = library_run(s, START, END, {k: cfg.params[k] for k in ("fast", "slow", "signal", "long_weight",
                                                                         "defensive_weight", "hedge_weight")},
                            fee_bps=acct.fee_bps, slippage_bps=acct.slippage_bps)
    lib_return = float(pf.total_return())
    lib_orders = int(pf.orders.count().sum())
    lib_days = set(pf.orders.records_readable["Timestamp"].dt.strftime("%Y-%m-%d"))

    assert lib_orders > 100  # the rule really trades over the span
    assert abs(ours_orders - lib_orders) <= TRADE_COUNT_TOLERANCE * lib_orders, (ours_orders, lib_orders)
    assert abs(ours_return - lib_return) <= RETURN_TOLERANCE, (ours_return, lib_return)
    # Same fill timing: on every day the rule's weights change, both trade on that very day.
    flips = set(w.index[(w != w.shift()).any(axis=1)][1:].strftime("%Y-%m-%d"))
    assert len(flips) > 30
    assert flips <= lib_days and flips <= ours_days, (sorted(flips - lib_days), sorted(flips - ours_days))
    print(f"ours: return {ours_return:+.4%}, {ours_orders} orders; vectorbt: return {lib_return:+.4%}, "
          f"{lib_orders} orders; signal flips {len(flips)}")
