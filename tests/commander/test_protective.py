"""Protective exits: the pure plan (commander/protect.py), then the Commander with the paper broker in the
real emulator: a stop triggered between two daily runs is booked to its strategy at the documented price."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from brokers.sim import SimBroker
from bus import paths
from bus.models import (
    Book,
    Execution,
    InstrumentSpec,
    Intent,
    OpenOrder,
    StrategyConfig,
    TargetPosition,
    Trade,
    TradingConfig,
)
from bus.orders import OrderLifecycle
from bus.store import read
from commander.protect import EXIT_ID, ExitInputs, ExitPlan, exit_digest, exit_id, plan_exits
from commander.run import run_commander
from reconcile import reconcile

T0 = datetime(2024, 6, 3, 21, 30, tzinfo=timezone.utc)
SPEC = {"SPY": InstrumentSpec(symbol="SPY", lot_size=1, min_quantity=1, min_notional=1),
        "BTC": InstrumentSpec(symbol="BTC", secType="CRYPTO", lot_size=0.001, tick_size=0.1, min_notional=5)}


def intent(sid: str, *targets: TargetPosition) -> Intent:
    return Intent(intent_id=f"{sid}-1", strategy_id=sid, updated_at=T0, as_of=T0, status="success",
                  target_positions=list(targets))


def tp(sym: str = "SPY", q: float = 10, stop: float | None = 95.0, take: float | None = 110.0) -> TargetPosition:
    return TargetPosition(symbol=sym, quantity=q, stop_loss=stop, take_profit=take)


def inputs(intents: dict[str, Intent], after: dict[str, dict[str, float]], resting: list[OpenOrder] = (),
           held: dict[str, dict[str, float]] | None = None, supports: bool = True, ex: str = "ex-2",
           prices: dict[str, float] | None = None) -> ExitInputs:
    return ExitInputs(execution_id=ex, venue="sim", supports_protective=supports, intents=intents, books_after=after,
                      held=held or {}, resting=list(resting), prices=prices or {"SPY": 100.0, "BTC": 60_000.0},
                      specs=SPEC)


def resting_of(plan: ExitPlan) -> list[OpenOrder]:
    """The plan's placed legs as the venue would list them in the next snapshot."""
    return [OpenOrder(orderId=f"sim-{k}", client_order_id=o.client_order_id, symbol=o.symbol, action=o.action,
                      totalQuantity=o.totalQuantity, orderType=o.orderType, auxPrice=o.auxPrice, ocaGroup=o.ocaGroup,
                      reduce_only=True, created_at=T0) for k, o in enumerate(plan.place)]


def test_a_long_with_stop_and_target_gets_two_reduce_only_legs_in_one_oca_group():
    plan = plan_exits(inputs({"a": intent("a", tp(q=10.7))}, {"a": {"SPY": 10.7}}))
    stop, take = sorted(plan.place, key=lambda o: o.orderType, reverse=True)
    assert (stop.orderType, stop.action, stop.totalQuantity, stop.auxPrice) == ("STP", "SELL", 10, 95.0)
    assert (take.orderType, take.action, take.totalQuantity, take.auxPrice) == ("MIT", "SELL", 10, 110.0)
    assert stop.reduce_only and take.reduce_only and stop.ocaGroup == take.ocaGroup
    assert plan.shares[stop.client_order_id] == {"a": -10.0}  # a triggered fill is booked to "a"
    assert len(stop.client_order_id) <= 36 and EXIT_ID.match(stop.client_order_id)
    assert stop.client_order_id == exit_id("stop", "a", "SPY", exit_digest(10, 95.0, 110.0), "ex-2")
    assert [r.action for r in plan.records] == ["place", "place"] and plan.cancel == []


def test_a_short_is_mirrored_and_lots_round_down():
    plan = plan_exits(inputs({"s": intent("s", tp("BTC", -0.0157, stop=63_000.04, take=55_000))},
                             {"s": {"BTC": -0.0157}}))
    assert {(o.orderType, o.action, o.totalQuantity, o.auxPrice) for o in plan.place} == {
        ("STP", "BUY", 0.015, 63_000.0), ("MIT", "BUY", 0.015, 55_000.0)}


def test_an_unchanged_exit_is_kept_not_placed_again():
    first = plan_exits(inputs({"a": intent("a", tp())}, {"a": {"SPY": 10}}, ex="ex-1"))
    again = plan_exits(inputs({"a": intent("a", tp())}, {"a": {"SPY": 10}}, resting_of(first), ex="ex-2"))
    assert again.place == [] and again.cancel == []
    assert [(r.action, r.reason) for r in again.records] == [("keep", "unchanged")] * 2


def test_a_size_change_amends_cancel_then_place_with_new_ids():
    first = plan_exits(inputs({"a": intent("a", tp())}, {"a": {"SPY": 10}}, ex="ex-1"))
    plan = plan_exits(inputs({"a": intent("a", tp(q=12))}, {"a": {"SPY": 12}}, resting_of(first), ex="ex-2"))
    assert {o.client_order_id for o in plan.cancel} == {o.client_order_id for o in first.place}
    assert {o.totalQuantity for o in plan.place} == {12}
    assert not {o.client_order_id for o in plan.place} & {o.client_order_id for o in first.place}
    assert sorted((r.action, r.reason) for r in plan.records) == [
        ("cancel", "amended: size or trigger changed")] * 2 + [("place", "amend")] * 2


def test_a_trigger_change_also_amends_and_the_same_exit_later_gets_a_fresh_id():
    first = plan_exits(inputs({"a": intent("a", tp())}, {"a": {"SPY": 10}}, ex="ex-1"))
    moved = plan_exits(inputs({"a": intent("a", tp(stop=97.0))}, {"a": {"SPY": 10}}, resting_of(first), ex="ex-2"))
    assert len(moved.cancel) == 2 and {o.auxPrice for o in moved.place} == {97.0, 110.0}
    back = plan_exits(inputs({"a": intent("a", tp())}, {"a": {"SPY": 10}}, resting_of(moved), ex="ex-3"))
    assert {o.client_order_id for o in back.place}.isdisjoint({o.client_order_id for o in first.place})


def test_flat_or_no_stop_any_more_cancels_the_resting_exit():
    first = plan_exits(inputs({"a": intent("a", tp())}, {"a": {"SPY": 10}}, ex="ex-1"))
    flat = plan_exits(inputs({"a": intent("a", tp(q=0))}, {"a": {"SPY": 0.0}}, resting_of(first)))
    assert len(flat.cancel) == 2 and flat.place == []
    assert {r.reason for r in flat.records} == {"no exit wanted any more (flat or no stop)"}
    bare = plan_exits(inputs({"a": intent("a", tp(stop=None, take=None))}, {"a": {"SPY": 10}}, resting_of(first)))
    assert len(bare.cancel) == 2 and bare.place == []


def test_a_trigger_on_the_wrong_side_is_refused_with_the_reason_the_valid_leg_goes_out():
    plan = plan_exits(inputs({"a": intent("a", tp(stop=101.0, take=110.0))}, {"a": {"SPY": 10}}))
    assert [o.orderType for o in plan.place] == ["MIT"]
    [refused] = [r for r in plan.records if r.action == "refuse"]
    assert refused.leg == "stop" and refused.reason == "stop 101 is not below the price 100 of a long"
    short = plan_exits(inputs({"s": intent("s", tp(q=-5, stop=99.0, take=101.0))}, {"s": {"SPY": -5}}))
    assert short.place == [] and sorted(r.reason for r in short.records) == [
        "stop 99 is not above the price 100 of a short", "take_profit 101 is not below the price 100 of a short"]


def test_a_venue_without_protective_orders_places_nothing_and_records_why():
    plan = plan_exits(inputs({"a": intent("a", tp())}, {"a": {"SPY": 10}}, supports=False))
    assert plan.place == [] and [(r.action, r.reason) for r in plan.records] == [
        ("refuse", "venue sim has no protective orders")] * 2


def test_a_strategy_whose_intent_was_not_used_keeps_its_exit_while_its_book_holds_the_position():
    first = plan_exits(inputs({"a": intent("a", tp())}, {"a": {"SPY": 10}}, ex="ex-1"))
    kept = plan_exits(inputs({}, {}, resting_of(first), held={"a": {"SPY": 10}}))
    assert kept.cancel == [] and {r.action for r in kept.records} == {"keep"}
    gone = plan_exits(inputs({}, {}, resting_of(first), held={"a": {}}))
    assert len(gone.cancel) == 2
    orphan = plan_exits(inputs({}, {}, resting_of(first)))  # the strategy is no longer known at all
    assert len(orphan.cancel) == 2 and {r.strategy_id for r in orphan.records} == {"?"}


def test_protective_orders_placed_by_hand_are_left_alone():
    hand = OpenOrder(orderId="x", client_order_id="my-own-stop", symbol="SPY", action="SELL", totalQuantity=3,
                     orderType="STP", auxPrice=90.0, created_at=T0)
    plan = plan_exits(inputs({}, {}, [hand]))
    assert plan.cancel == [] and plan.records == []


def test_two_strategies_on_one_symbol_each_get_their_own_share():
    plan = plan_exits(inputs({"a": intent("a", tp(q=10)), "b": intent("b", tp(q=-4, stop=104.0, take=90.0))},
                             {"a": {"SPY": 10}, "b": {"SPY": -4}}))
    assert sorted((next(iter(plan.shares[o.client_order_id])), o.orderType, o.action, o.totalQuantity)
                  for o in plan.place) == [("a", "MIT", "SELL", 10), ("a", "STP", "SELL", 10),
                                           ("b", "MIT", "BUY", 4), ("b", "STP", "BUY", 4)]
    assert len({o.ocaGroup for o in plan.place}) == 2


@pytest.mark.parametrize("units", [0.4, 0.0])
def test_under_one_lot_no_exit(units):
    plan = plan_exits(inputs({"a": intent("a", tp(q=units))}, {"a": {"SPY": units}}))
    assert plan.place == [] and plan.records == []





# --------------------------------------------------------------------------- Commander + paper broker + emulator

D1, D2 = T0 + timedelta(days=1), T0 + timedelta(days=2)
SLIP_BPS, FEE_BPS = 2.0, 1.0


class Market:
    """The SPY prices and daily bars of these tests, written by hand: (close time, open, high, low, close)."""

    def __init__(self) -> None:
        self.px = 100.0
        self.series: list[tuple[datetime, float, float, float, float]] = []

    def price(self, symbol: str, as_of: datetime) -> float:
        return self.px

    def bars(self, symbol: str, start: datetime, end: datetime) -> list[tuple[datetime, float, float, float, float]]:
        return [b for b in self.series if start < b[0] <= end]

    def opens(self, symbol: str, after: datetime, until: datetime) -> tuple[datetime, float] | None:
        """Sessions open 7.5 h before their close (13:30 UTC): the first open at or after ``after``, by ``until``."""
        for b in self.series:
            if after <= b[0] - timedelta(hours=7, minutes=30) <= until:
                return b[0] - timedelta(hours=7, minutes=30), b[1]
        return None

    def day(self, run_at: datetime, o: float, h: float, lo: float, c: float) -> None:
        """The session before ``run_at``: it closes at 21:00 UTC, the run is at 21:30."""
        self.series.append((run_at - timedelta(minutes=30), o, h, lo, c))
        self.px = c


def setup(store, market: Market) -> SimBroker:
    cfg = TradingConfig(mode="paper", reserve_fraction=0.0, min_order_notional=1.0, rebalance_band=0.0)
    writes = [(paths.TRADING_CONFIG, cfg.to_store())]
    for sid in ("guarded", "plain"):
        writes.append((paths.strategy(sid), StrategyConfig(strategy_id=sid, name=sid, capital_allocation=0.5)
                       .to_store()))
    store.write_batch(writes)
    return SimBroker(store, "paper-px", market.price, {"SPY": SPEC["SPY"]}, starting_cash=100_000, fee_bps=FEE_BPS,
                     slippage_bps=SLIP_BPS, fill_at="close", bars=market.bars, opens=market.opens)


def intents_at(store, as_of: datetime, guarded: TargetPosition, plain_units: float = 5) -> None:
    writes = []
    for i in (intent("guarded", guarded), intent("plain", TargetPosition(symbol="SPY", quantity=plain_units))):
        i = i.model_copy(update={"as_of": as_of, "updated_at": as_of, "intent_id": f"{i.strategy_id}-{as_of:%m%d}"})
        writes += [(paths.intent(i.strategy_id), i.to_store()),
                   (paths.intent(i.strategy_id, i.intent_id), i.to_store())]
    store.write_batch(writes)


def day_run(store, broker: SimBroker, as_of: datetime) -> Execution:
    reconcile(store, broker, as_of)
    return run_commander(store, broker, as_of, execution_id=f"ex-{as_of:%m%d}")


def units(store, sid: str) -> float:
    b = read(store, paths.book(sid), Book)
    return b.positions["SPY"].quantity if b and "SPY" in b.positions else 0.0


def assert_books_add_up(store, broker: SimBroker) -> None:
    held = broker.account_state().positions["SPY"].quantity
    assert units(store, "guarded") + units(store, "plain") + units(store, "external") == pytest.approx(held)
    assert units(store, "external") == 0


def test_a_stop_triggered_between_two_daily_runs_is_booked_to_its_strategy(store):
    """Day 0: 'guarded' buys 10 SPY with a stop at 95 and a take-profit at 110, 'plain' 5 without. Day 1: a
    quiet bar; the exit rests, kept, not placed again. Day 2: the bar's low (94) crosses the stop; the next
    run's reconcile finds it filled at the trigger less the half-spread; it is booked to 'guarded' alone."""
    m = Market()
    broker = setup(store, m)
    intents_at(store, T0, tp(q=10))
    ex0 = day_run(store, broker, T0)
    assert ex0.status == "completed", ex0.summary
    placed = {r.leg: r for r in ex0.protective_exits if r.action == "place"}
    assert set(placed) == {"stop", "take_profit"} and placed["stop"].status == "Submitted"
    doc = read(store, paths.order(placed["stop"].client_order_id), OrderLifecycle)
    assert (doc.status, doc.orderType, doc.auxPrice, doc.reduce_only, doc.shares) == (
        "submitted", "STP", 95.0, True, {"guarded": -10.0})
    assert "Protective exits (legs): 2 placed." in ex0.summary
    assert {o.symbol for o in ex0.orders_placed} == {"SPY"} and len(ex0.orders_placed) == 1  # exits not in there
    assert (units(store, "guarded"), units(store, "plain")) == (10, 5)
    count = broker.account_state().order_count

    m.day(D1, 100.5, 103.0, 97.0, 101.0)  # (c) nothing touched, nothing changed
    intents_at(store, D1, tp(q=10))
    ex1 = day_run(store, broker, D1)
    assert ex1.status == "completed" and ex1.orders_placed == []
    assert sorted((r.action, r.reason) for r in ex1.protective_exits) == [("keep", "unchanged")] * 2
    assert broker.account_state().order_count == count  # nothing placed, nothing cancelled
    assert len(read(store, paths.order(placed["stop"].client_order_id), OrderLifecycle).events) == 1  # not rewritten

    m.day(D2, 99.0, 99.5, 94.0, 95.5)  # opened above the stop, low 94 crossed it: fills at the trigger
    intents_at(store, D2, tp(q=0))  # the strategy is out too
    ex2 = day_run(store, broker, D2)
    assert ex2.status == "completed", ex2.summary
    expected = 94.98  # 95 x (1 - 2 bps) = 94.981, rounded down to the tick (brokers/sim.py gap rule)
    [late] = ex2.late_fills
    assert (late.client_order_id, late.quantity, late.booked) == (placed["stop"].client_order_id, -10.0,
                                                                   {"guarded": -10.0})
    assert late.price == pytest.approx(expected) and late.commission == pytest.approx(10 * expected * FEE_BPS / 1e4)
    assert (units(store, "guarded"), units(store, "plain")) == (0, 5)  # 'plain' untouched
    [trade] = [Trade.model_validate(d) for _, d in store.list_docs(paths.trades("guarded"))]
    assert trade.exit_price == pytest.approx(expected) and trade.quantity == 10
    stop = read(store, paths.order(placed["stop"].client_order_id), OrderLifecycle)
    take = read(store, paths.order(placed["take_profit"].client_order_id), OrderLifecycle)
    assert (stop.status, stop.open, take.status, take.open) == ("filled", False, "cancelled", False)
    assert ex2.protective_exits == [] and ex2.orders_placed == []
    assert_books_add_up(store, broker)


def test_a_gapped_stop_is_booked_at_the_open(store):
    m = Market()
    broker = setup(store, m)
    intents_at(store, T0, tp(q=10))
    day_run(store, broker, T0)
    m.day(D1, 92.0, 93.0, 90.0, 91.0)  # opened at 92, below the stop
    intents_at(store, D1, tp(q=0))
    ex = day_run(store, broker, D1)
    [late] = ex.late_fills
    assert late.price == pytest.approx(91.98)  # the open 92 x (1 - 2 bps) rounded down to the tick
    assert (units(store, "guarded"), units(store, "plain")) == (0, 5)
    assert_books_add_up(store, broker)


def test_a_position_change_amends_the_resting_exit_and_flat_cancels_it(store):
    m = Market()
    broker = setup(store, m)
    intents_at(store, T0, tp(q=10))
    first = {r.client_order_id for r in day_run(store, broker, T0).protective_exits}
    m.day(D1, 100.0, 101.0, 99.0, 100.0)
    intents_at(store, D1, tp(q=12))
    ex1 = day_run(store, broker, D1)
    assert {r.client_order_id for r in ex1.protective_exits if r.action == "cancel"} == first
    assert {r.quantity for r in ex1.protective_exits if r.action == "place"} == {12}
    assert all(broker.order_status(c).status == "Cancelled" for c in first)
    assert all(read(store, paths.order(c), OrderLifecycle).status == "cancelled" for c in first)
    m.day(D2, 100.0, 101.0, 99.0, 100.0)
    intents_at(store, D2, tp(q=0))
    ex2 = day_run(store, broker, D2)
    assert {r.action for r in ex2.protective_exits} == {"cancel"}
    assert broker.account_state().open_orders == {}
    assert_books_add_up(store, broker)


def test_a_venue_without_protective_orders_records_the_exits_it_could_not_place(store):
    m = Market()
    setup(store, m)
    broker = SimBroker(store, "paper-px", m.price, {"SPY": SPEC["SPY"]}, fill_at="close", bars=m.bars,
                       opens=m.opens, protective=False)
    intents_at(store, T0, tp(q=10))
    ex = day_run(store, broker, T0)
    assert ex.status == "completed"
    assert [(r.action, r.reason) for r in ex.protective_exits] == [("refuse", "venue sim has no protective orders")] * 2
    assert broker.account_state().open_orders == {}


def test_an_unknown_protective_exit_alert_says_what_it_is_and_blocks_nothing():
    from pipeline.alerts import order_alerts

    [a] = order_alerts([{"client_order_id": "pxS-SPY", "status": "unknown", "symbol": "SPY", "action": "SELL",
                         "totalQuantity": 10.0, "orderType": "STP", "auxPrice": 95.0, "execution_id": "ex-1"}])
    assert a.kind == "order_unknown" and "protective exit STP SELL 10.0 SPY at 95.0" in a.text
    assert "no new order" not in a.text


def test_a_large_protective_plan_moves_to_the_execution_parts_and_joins_back():
    from commander.record import join_execution, split_execution

    many = plan_exits(inputs({f"s{k}": intent(f"s{k}", tp()) for k in range(400)},
                             {f"s{k}": {"SPY": 10} for k in range(400)}))
    ex = Execution(execution_id="ex-big", executed_at=T0, as_of=T0, dry_run=False, status="completed",
                   protective_exits=many.records)
    header, parts = split_execution(ex.to_store())
    assert header["protective_exits"] == [] and header["detail_parts"]["protective_exits"] >= 1
    whole = join_execution(header, dict(parts))
    assert Execution.model_validate(whole).protective_exits == many.records


def test_a_protective_exit_never_blocks_its_symbol():
    from commander.orders import blocked_symbols, planned_orders

    plan = plan_exits(inputs({"a": intent("a", tp())}, {"a": {"SPY": 10}}))
    docs = planned_orders("ex-1", "paper", plan.place, {}, T0, shares=plan.shares)
    assert {d.shares["a"] for d in docs} == {-10.0}
    lost = [d.transition(T0, "unknown", message="timeout") for d in docs]
    assert blocked_symbols(docs) == {} and blocked_symbols(lost) == {}
