"""The paper broker's protective exits (STP stop-loss, MIT take-profit) on bars we control, in the real emulator.

Rules under test (brokers/sim.py module docstring): an exit rests from the bar after it was placed; a
sell stop triggers when a bar's low reaches it, a take-profit mirrored; gap rule: a bar that opens
beyond the trigger fills at the open, otherwise at the trigger; slippage and the taker fee as a market
order; the stop wins when both legs could trigger in one bar; reduce-only clips to the position; OCA
cancels the sibling.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from brokers.base import OrderRejected, OrderRequest
from brokers.sim import SimBroker
from bus.models import InstrumentSpec

T0 = datetime(2024, 6, 3, 21, 30, tzinfo=timezone.utc)
D1 = T0 + timedelta(days=1)
SPECS = {"SPY": InstrumentSpec(symbol="SPY", lot_size=1, min_quantity=1, min_notional=1)}
SLIP = 2.0  # bps half-spread
FEE = 1.0  # bps taker
SESSION = timedelta(hours=7, minutes=30)


class Market:
    """Prices and daily bars we write by hand: ``bars[symbol]`` = [(close time, open, high, low, close)]."""

    def __init__(self, price: float = 100.0) -> None:
        self.px = {"SPY": price}
        self.series: dict[str, list[tuple[datetime, float, float, float, float]]] = {"SPY": []}

    def price(self, symbol: str, as_of: datetime) -> float:
        return self.px[symbol]

    def bars(self, symbol: str, start: datetime, end: datetime) -> list[tuple[datetime, float, float, float, float]]:
        return [b for b in self.series[symbol] if start < b[0] <= end]

    def opens(self, symbol: str, after: datetime, until: datetime) -> tuple[datetime, float] | None:
        """The session opens 7.5 h before its close (13:30 UTC): the first after ``after``, by ``until``."""
        for b in self.series[symbol]:
            if after <= b[0] - SESSION <= until:
                return b[0] - SESSION, b[1]
        return None

    def day(self, when: datetime, o: float, h: float, lo: float, c: float) -> None:
        self.series["SPY"].append((when - timedelta(minutes=30), o, h, lo, c))  # closes 21:00 UTC
        self.px["SPY"] = c


def broker(store, market: Market, **kw) -> SimBroker:
    return SimBroker(store, "px", market.price, SPECS, starting_cash=100_000, fee_bps=FEE, slippage_bps=SLIP,
                     fill_at="close", bars=market.bars, opens=market.opens, **kw)


def exit_legs(b: SimBroker, qty: float = 10, stop: float = 95.0, tp: float = 110.0, action: str = "SELL") -> None:
    b.place_order(OrderRequest("stop-1", "SPY", action, qty, order_type="STP", trigger_price=stop,  # type: ignore[arg-type]
                               reduce_only=True, oca_group="g1"), T0)
    b.place_order(OrderRequest("tp-1", "SPY", action, qty, order_type="MIT", trigger_price=tp,  # type: ignore[arg-type]
                               reduce_only=True, oca_group="g1"), T0)


def long_with_exit(store, market: Market, **kw) -> SimBroker:
    b = broker(store, market)
    b.place_order(OrderRequest("buy", "SPY", "BUY", 10), T0)  # fills at the close: 100.02
    exit_legs(b, **kw)
    return b


def test_exits_rest_reserve_no_margin_and_show_as_protective_open_orders(store):
    m = Market()
    b = long_with_exit(store, m)
    snap = b.portfolio(T0)
    assert [(o.client_order_id, o.orderType, o.auxPrice, o.ocaGroup, o.reduce_only, o.protective)
            for o in snap.open_orders] == [("stop-1", "STP", 95.0, "g1", True, True),
                                           ("tp-1", "MIT", 110.0, "g1", True, True)]
    assert snap.available_funds == pytest.approx(snap.net_liquidation - 10 * 100.0)  # nothing reserved
    m.day(D1, 100.0, 104.0, 96.0, 101.0)  # neither touched
    b.catch_up(D1)
    assert b.order_status("stop-1").status == "Submitted" and b.order_status("tp-1").status == "Submitted"


def test_a_stop_touched_inside_the_bar_fills_at_the_trigger_and_cancels_its_sibling(store):
    m = Market()
    b = long_with_exit(store, m)
    m.day(D1, 99.0, 100.5, 94.0, 96.0)  # low 94 <= 95, opened above it
    b.catch_up(D1)
    r = b.order_status("stop-1")
    assert (r.status, r.filled_quantity) == ("Filled", 10)
    assert r.fill_price == pytest.approx(94.98)  # 95 x (1 - 2 bps) = 94.981, rounded down to the tick
    assert r.commission == pytest.approx(10 * 94.98 * FEE / 1e4)
    assert b.order_status("tp-1").status == "Cancelled"
    st = b.account_state()
    assert st.open_orders == {} and st.positions["SPY"].quantity == 0
    assert b.order_record("stop-1").filled_as_of == D1 - timedelta(minutes=30)


def test_gap_rule_a_stop_gapped_through_fills_at_the_open(store):
    m = Market()
    b = long_with_exit(store, m)
    m.day(D1, 90.0, 92.0, 88.0, 91.0)  # opened at 90, below the stop at 95
    b.catch_up(D1)
    assert b.order_status("stop-1").fill_price == pytest.approx(89.98)  # 90 x (1 - 2 bps) rounded down


def test_gap_rule_a_take_profit_gapped_through_fills_at_the_better_open(store):
    m = Market()
    b = long_with_exit(store, m)
    m.day(D1, 112.0, 113.0, 94.0, 112.5)  # opened above the take-profit: it triggered first, at the open
    b.catch_up(D1)
    assert b.order_status("tp-1").fill_price == pytest.approx(111.97)  # 112 x (1 - 2 bps) = 111.9776, down
    assert b.order_status("stop-1").status == "Cancelled"


def test_both_legs_inside_one_bar_the_stop_wins(store):
    m = Market()
    b = long_with_exit(store, m)
    m.day(D1, 100.0, 111.0, 94.0, 100.0)  # touched both, opened between them: path unknown
    b.catch_up(D1)
    assert b.order_status("stop-1").status == "Filled" and b.order_status("tp-1").status == "Cancelled"
    assert b.order_status("stop-1").fill_price == pytest.approx(94.98)


def test_reduce_only_clips_to_the_position_and_never_flips(store):
    m = Market()
    b = broker(store, m)
    b.place_order(OrderRequest("buy", "SPY", "BUY", 6), T0)
    exit_legs(b, qty=10)  # larger than the 6 held
    b.place_order(OrderRequest("short-stop", "SPY", "BUY", 4, order_type="STP", trigger_price=101.0,
                               reduce_only=True), T0)  # a short's stop on a long account: nothing to reduce
    m.day(D1, 99.0, 99.5, 94.0, 95.0)
    b.catch_up(D1)
    assert b.order_status("stop-1").filled_quantity == 6
    assert b.account_state().positions["SPY"].quantity == 0
    m.day(D1 + timedelta(days=1), 96.0, 102.0, 95.0, 98.5)  # high 102 >= 101: triggers, but flat
    b.catch_up(D1 + timedelta(days=1))
    r = b.order_status("short-stop")
    assert (r.status, r.filled_quantity) == ("Cancelled", 0)
    assert b.account_state().positions["SPY"].quantity == 0


def test_an_exit_is_refused_when_already_crossed_off_tick_or_when_protective_is_off(store):
    m = Market()
    b = long_with_exit(store, m)
    with pytest.raises(OrderRejected, match="at once"):
        b.place_order(OrderRequest("late", "SPY", "SELL", 1, order_type="STP", trigger_price=100.5), T0)
    with pytest.raises(OrderRejected, match="tick"):
        b.place_order(OrderRequest("odd", "SPY", "SELL", 1, order_type="STP", trigger_price=95.005), T0)
    off = SimBroker(store, "off", m.price, SPECS, fill_at="close", protective=False)
    assert not off.supports_protective and b.supports_protective
    with pytest.raises(OrderRejected, match="no protective"):
        off.place_order(OrderRequest("s", "SPY", "SELL", 1, order_type="STP", trigger_price=90.0), T0)


def test_a_resting_exit_can_be_cancelled(store):
    m = Market()
    b = long_with_exit(store, m)
    assert b.cancel_order("stop-1").status == "Cancelled"
    m.day(D1, 99.0, 100.0, 80.0, 85.0)
    b.catch_up(D1)
    assert b.order_status("stop-1").status == "Cancelled" and b.account_state().positions["SPY"].quantity == 10


def test_a_bar_that_began_before_the_exit_was_placed_never_triggers_it(store):
    """A crypto daily bar runs 00:00-24:00 UTC: an exit placed at 21:30 watches the bars that open after it,
    so the low that bar made in the morning (before the exit existed) does not fill it."""
    spec = InstrumentSpec(symbol="BTC", secType="CRYPTO", lot_size=0.001, tick_size=0.1, min_notional=5)
    px = {"BTC": 60_000.0}
    day0 = datetime(2024, 6, 3, tzinfo=timezone.utc)
    series = [(day0 - timedelta(days=k), 60_000.0, 60_500.0, 59_500.0, 60_000.0) for k in (3, 2, 1)]
    b = SimBroker(store, "c", lambda s, t: px[s], {"BTC": spec}, fill_at="close",
                  bars=lambda s, a, z: [x for x in series if a < x[0] <= z])
    placed = day0 + timedelta(hours=21, minutes=30)
    b.place_order(OrderRequest("buy", "BTC", "BUY", 0.1), placed)
    b.place_order(OrderRequest("stop", "BTC", "SELL", 0.1, order_type="STP", trigger_price=58_000.0,
                               reduce_only=True), placed)
    series.append((day0 + timedelta(days=1), 60_000.0, 60_100.0, 57_000.0, 60_000.0))  # its low came at 08:00
    b.catch_up(day0 + timedelta(days=1, hours=1))
    assert b.order_status("stop").status == "Submitted"
    series.append((day0 + timedelta(days=2), 60_000.0, 60_100.0, 57_500.0, 59_000.0))  # opened after the exit
    b.catch_up(day0 + timedelta(days=2, hours=1))
    assert b.order_status("stop").fill_price == pytest.approx(57_988.4)  # 58,000 x (1 - 2 bps), down to the tick
