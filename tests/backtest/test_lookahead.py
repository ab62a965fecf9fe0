"""No look-ahead, proven on whole backtests: a run to T and a run to T + 30 days decide the same up to T.

Each backtest sees the world as it stood at its end (bars closing later do not
exist for it), as a live run would. An honest strategy reads only its as-of
view, so its decisions up to T cannot depend on whether the data goes on after
T. A sabotaged strategy that reads the provider's whole frame (one bar past its
as-of time) decides differently at T in the two runs, and the test catches it.
"""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd

from bus import paths
from bus.models import Execution, Intent, IntentMetadata, StrategyConfig, TargetPosition
from bus.store import Store
from strategies.base import Strategy, StrategyContext, StrategyResult
from strategies.registry import register
from tests.support.backtest import backtest_settings, only, run

START, T = date(2021, 1, 20), date(2021, 3, 1)
T30 = T + timedelta(days=30)


@register("peeks_one_bar_ahead")
class PeeksOneBarAhead(Strategy):
    """SABOTAGED, for this test only: reads the provider's whole frame, i.e. the next SPY bar.

    Long SPY at 0.9 when tomorrow's close is higher than today's, 0.1 when lower,
    0.5 when there is no next bar (the end of its world).
    """

    code_version = "peeks_one_bar_ahead/0"

    def compute(self, ctx: StrategyContext) -> StrategyResult:
        full = ctx.market._provider.frame("SPY")  # the cheat: not the as-of view
        seen = full[full["close_time"] <= pd.Timestamp(ctx.as_of)]
        nxt = full[full["close_time"] > pd.Timestamp(ctx.as_of)]
        if nxt.empty:
            w = 0.5
        else:
            w = 0.9 if float(nxt["close"].iloc[0]) > float(seen["close"].iloc[-1]) else 0.1
        return StrategyResult([TargetPosition(symbol="SPY", weight=w)], IntentMetadata(signal_strength=w))


def decisions(store: Store, strategies: list[str], last: date) -> dict[str, dict]:
    """Day -> every strategy's target positions and the execution's decision and orders, up to ``last``."""
    out: dict[str, dict] = {}
    intents: dict[tuple[str, str], list] = {}
    for sid in strategies:
        for iid, doc in store.list_docs(f"strategies/{sid}/intent"):
            if iid == "latest":
                continue
            i = Intent.model_validate(doc)
            intents[(i.as_of.date().isoformat(), sid)] = (i.status, [t.model_dump() for t in i.target_positions])
    d = START
    while d <= last:
        ex = Execution.model_validate(store.get(paths.execution(f"bt-{d:%Y%m%d}")))
        dec = ex.decision.model_dump()
        orders = [o.model_dump(exclude={"orderId"}) for o in ex.orders_placed]
        out[d.isoformat()] = {"intents": {sid: intents[(d.isoformat(), sid)] for sid in strategies},
                              "decision": dec, "orders": orders, "status": ex.status}
        d += timedelta(days=1)
    return out


def first_difference(a: dict[str, dict], b: dict[str, dict]) -> str | None:
    for day in sorted(a):
        if a[day] != b[day]:
            return day
    return None


def test_every_decision_up_to_t_is_the_same_when_the_data_goes_on():
    settings, bfile = backtest_settings()
    ids = [s.strategy_id for s in settings.strategies]
    short, st_short = run(settings, bfile, START, T)
    long, st_long = run(settings, bfile, START, T30)
    assert long.days == short.days + 30
    a, b = decisions(st_short, ids, T), decisions(st_long, ids, T)
    assert len(a) == (T - START).days + 1
    assert sum(len(x["orders"]) for x in a.values()) > 20  # the compared days really traded
    assert first_difference(a, b) is None
    # The step at T in the long run sees no bar after T either (same as-of view), so NAVs match too.
    assert [s.nav for s in short.steps] == [s.nav for s in long.steps[:short.days]]


def test_a_strategy_that_peeks_one_bar_ahead_is_caught():
    settings, bfile = backtest_settings()
    peek = StrategyConfig(strategy_id="peeks_one_bar_ahead", name="cheat", capital_allocation=0.3,
                          universe=["SPY"])
    base = next(s for s in settings.strategies if s.strategy_id == "etf_trend")
    s = only(settings, base, peek)
    ids = ["etf_trend", "peeks_one_bar_ahead"]
    _, st_short = run(s, bfile, START, T)
    _, st_long = run(s, bfile, START, T30)
    a, b = decisions(st_short, ids, T), decisions(st_long, ids, T)
    # Caught exactly at T, the first day whose next bar exists in one world and not in the other.
    assert first_difference(a, b) == T.isoformat()
    assert a[T.isoformat()]["intents"]["peeks_one_bar_ahead"] != b[T.isoformat()]["intents"]["peeks_one_bar_ahead"]
    # The honest strategy alongside it is unaffected.
    assert all(a[d]["intents"]["etf_trend"] == b[d]["intents"]["etf_trend"] for d in a)
