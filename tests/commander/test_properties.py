"""Property-based tests of the Commander over random intents, portfolios and configurations."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from brokers.sim import SimBroker
from bus import paths
from bus.models import (
    Holding,
    InstrumentSpec,
    Intent,
    OpenOrder,
    PortfolioSnapshot,
    RiskLimits,
    StrategyConfig,
    TargetPosition,
    TradingConfig,
)
from bus.store import MemoryStore
from commander.attribute import Fill, lot_of, split_fill, update_books
from commander.decide import CommanderInputs, decide
from commander.diff import round_to_lot
from commander.risk import halt_reasons
from commander.run import run_commander
from reconcile import reconcile
from strategies.runner import write_intent

T = datetime(2024, 6, 3, 21, 30, tzinfo=timezone.utc)
SYMBOLS = {"SPY": (500.0, 1.0, 1.0), "QQQ": (400.0, 1.0, 1.0), "VIXY": (20.0, 1.0, 1.0),
           "BTC": (50_000.0, 0.001, 5.0), "ETH": (2_500.0, 0.01, 3.0)}  # price, lot, max leverage
PRICES = {s: p for s, (p, _, _) in SYMBOLS.items()}
SPECS = {s: InstrumentSpec(symbol=s, lot_size=lot, max_leverage=lev) for s, (_, lot, lev) in SYMBOLS.items()}
EPS = 1e-6

sym = st.sampled_from(sorted(SYMBOLS))
target = st.one_of(
    st.builds(lambda s, w: TargetPosition(symbol=s, weight=w), sym, st.floats(-1.5, 1.5)),
    st.builds(lambda s, q: TargetPosition(symbol=s, quantity=q), sym, st.floats(-200, 200)),
    st.builds(lambda s, n: TargetPosition(symbol=s, notional=n), sym, st.floats(-50_000, 50_000)),
)


@st.composite
def scenario(draw):
    n = draw(st.integers(1, 5))
    allocs = draw(st.lists(st.floats(0.0, 0.9 / n), min_size=n, max_size=n))
    strategies = {f"s{i}": StrategyConfig(strategy_id=f"s{i}", name=f"s{i}", capital_allocation=a,
                                          risk_parameters={"max_leverage": draw(st.floats(0.5, 3.0)),
                                                           "max_single_position_exposure": draw(st.floats(0.1, 2.0)),
                                                           "max_drawdown": 0.5})
                  for i, a in enumerate(allocs)}
    intents = {sid: Intent(intent_id=f"{sid}-i", strategy_id=sid, updated_at=T, as_of=T,
                           status=draw(st.sampled_from(["success", "success", "success", "error"])),
                           target_positions=draw(st.lists(target, max_size=4)))
               for sid in strategies}
    holdings = draw(st.dictionaries(sym, st.integers(-100, 100).map(float), max_size=4))
    holdings = {s: round_to_lot(q * SPECS[s].lot_size * 10, SPECS[s].lot_size) for s, q in holdings.items() if q}
    orders = [OpenOrder(orderId=str(i), client_order_id=f"o{i}", symbol=s,
                        action=draw(st.sampled_from(["BUY", "SELL"])),
                        totalQuantity=SPECS[s].lot_size * draw(st.integers(1, 20)),
                        created_at=T - timedelta(seconds=draw(st.integers(0, 10_000))))
              for i, s in enumerate(draw(st.lists(sym, max_size=3)))]
    avg = {s: PRICES[s] * draw(st.floats(0.5, 1.5)) for s in holdings}
    nav = draw(st.floats(20_000, 1_000_000))
    snap = PortfolioSnapshot(snapshot_id="p", updated_at=T, as_of=T, broker="sim", account="a", mode="paper",
                             net_liquidation=nav, available_funds=nav, cash=nav, open_orders=orders,
                             holdings=[Holding(symbol=s, quantity=q, avg_cost=avg[s], market_price=PRICES[s],
                                               market_value=q * PRICES[s]) for s, q in holdings.items()])
    risk = RiskLimits(max_gross_leverage=draw(st.floats(0.2, 3.0)), max_margin_use=draw(st.floats(0.1, 1.0)),
                      max_symbol_exposure=draw(st.floats(0.05, 1.0)), max_open_positions=draw(st.integers(1, 5)),
                      daily_loss_halt=draw(st.floats(0.01, 0.2)), unrealized_loss_halt=draw(st.floats(0.05, 0.5)))
    cfg = TradingConfig(risk=risk, reserve_fraction=0.05, rebalance_band=draw(st.sampled_from([0.0, 0.02])),
                        min_order_notional=draw(st.sampled_from([0.0, 25.0])),
                        conflict_policy=draw(st.sampled_from(["net", "highest_confidence", "first_come", "cancel"])))
    books = {sid: {s: draw(st.floats(-5, 5)) for s in draw(st.lists(sym, max_size=2))} for sid in strategies}
    prev = nav * draw(st.floats(0.9, 1.1)) if draw(st.booleans()) else None
    return CommanderInputs("ex", T, cfg, strategies, intents, books, snap, PRICES, SPECS, prev_close_nav=prev)


def notional(sym_: str, q: float) -> float:
    return abs(q) * PRICES[sym_]


@settings(max_examples=150, deadline=None)
@given(scenario())
def test_every_final_target_respects_every_limit(inp):
    plan = decide(inp)
    nav, lim = inp.snapshot.net_liquidation, inp.config.risk
    final = {t.symbol: t.quantity for t in plan.decision.final_target}
    for s, q in final.items():
        assert notional(s, q) <= lim.max_symbol_exposure * nav * (1 + EPS)
    assert sum(notional(s, q) for s, q in final.items()) <= lim.max_gross_leverage * nav * (1 + EPS)
    assert sum(notional(s, q) / SPECS[s].max_leverage for s, q in final.items()) <= lim.max_margin_use * nav * (1 + EPS)
    assert sum(1 for q in final.values() if abs(q) > 1e-12) <= lim.max_open_positions
    if halt_reasons(inp.snapshot, inp.prev_close_nav, inp.config):
        held = {h.symbol: h.quantity for h in inp.snapshot.holdings}
        for s, q in final.items():
            h = held.get(s, 0.0)
            assert min(0.0, h) - EPS <= q <= max(0.0, h) + EPS


@settings(max_examples=150, deadline=None)
@given(scenario())
def test_diff_is_final_target_minus_holdings_and_pending_after_rounding(inp):
    plan = decide(inp)
    held = {h.symbol: h.quantity for h in inp.snapshot.holdings}
    cancelled = {o.client_order_id for o in plan.cancels}
    pending: dict[str, float] = {}
    for o in inp.snapshot.open_orders:
        if o.client_order_id not in cancelled:
            pending[o.symbol] = pending.get(o.symbol, 0.0) + o.signed_quantity
    for d in plan.decision.diff:
        final = next(t.quantity for t in plan.decision.final_target if t.symbol == d.symbol)
        raw = final - held.get(d.symbol, 0.0) - pending.get(d.symbol, 0.0)
        assert abs(d.raw_quantity - raw) < 1e-9
        if d.quantity:
            expected = round(raw, 10) if abs(final) < 1e-9 else round_to_lot(raw, SPECS[d.symbol].lot_size)
            assert abs(d.quantity - expected) < 1e-9
        else:
            assert d.reason is not None or abs(raw) <= 1e-9
    assert [o.totalQuantity for o in plan.orders] == [abs(d.quantity) for d in plan.decision.diff if d.quantity]


@settings(max_examples=100, deadline=None)
@given(scenario())
def test_books_sum_to_the_broker_holdings(inp):
    """Starting from books that add up to the account, every fill is booked to the strategies
    that wanted it, and the books still add up to the account with nothing left for ``external`` but the
    residuals below a lot of books that wanted none of a symbol (dust) and the parts of fills no wanted
    change explains."""
    from bus.models import Book, BookPosition
    held: dict[str, float] = {}
    for b in inp.books.values():
        for s, q in b.items():
            held[s] = held.get(s, 0.0) + q
    inp.snapshot.holdings = [Holding(symbol=s, quantity=q, avg_cost=PRICES[s], market_price=PRICES[s],
                                     market_value=q * PRICES[s]) for s, q in held.items() if abs(q) > 1e-9]
    plan = decide(inp)
    fills = {o.symbol: Fill(o.totalQuantity if o.action == "BUY" else -o.totalQuantity, PRICES[o.symbol], 1.0)
             for o in plan.orders}
    after = dict(held)
    for s, f in fills.items():
        after[s] = after.get(s, 0.0) + f.quantity
    books = {sid: Book(strategy_id=sid, updated_at=T, positions={s: BookPosition(quantity=q, avg_price=PRICES[s])
                                                                 for s, q in b.items() if q})
             for sid, b in inp.books.items()}
    upd = update_books(books, plan.desired, fills, after, PRICES, SPECS, plan.decision.allocations, T, "ex")
    # Exempt: symbols with open orders still working (the account differs from the books until they fill).
    unwanted = {o.symbol for o in inp.snapshot.open_orders if o not in plan.cancels}
    # The part of each fill no strategy's wanted change explains (a fill against the net change, or beyond
    # it by more than half a lot, e.g. the diff closing units nobody's book holds) is external's, by design.
    unexplained: dict[str, float] = {}
    for s, f in fills.items():
        wanted = {sid: w.get(s, 0.0) - (books[sid].positions[s].quantity if sid in books and s in books[sid].positions
                                        else 0.0) for sid, w in plan.desired.items()}
        booked = split_fill(f.quantity, wanted, lot_of(SPECS, s))
        for sid, q in booked.items():  # never the opposite of a wish, never more than it plus half a lot
            assert q * wanted[sid] >= 0 and abs(q) <= abs(wanted[sid]) + SPECS[s].lot_size / 2 + 1e-9
        unexplained[s] = f.quantity - sum(booked.values())
    total: dict[str, float] = {}
    for sid, b in upd.books.items():
        for s, p in b.positions.items():
            if sid != "external":
                total[s] = total.get(s, 0.0) + p.quantity
    dust: dict[str, float] = {}  # residuals below a lot moved to external (commander.attribute.snap_dust)
    for d in upd.dust:
        dust[d.symbol] = dust.get(d.symbol, 0.0) + d.quantity
        assert abs(d.quantity) < SPECS[d.symbol].lot_size and abs(plan.desired[d.strategy_id].get(d.symbol, 0.0)) < 1e-9
    for s in (set(total) | set(after)) - unwanted:
        outside = dust.get(s, 0.0) + unexplained.get(s, 0.0)
        assert abs(total.get(s, 0.0) + outside - after.get(s, 0.0)) < 1e-6
        assert abs(upd.external.get(s, 0.0) - outside) < 1e-6
    with_external = dict(total)
    for s, q in upd.external.items():
        with_external[s] = with_external.get(s, 0.0) + q
    for s in set(with_external) | set(after):
        assert abs(with_external.get(s, 0.0) - after.get(s, 0.0)) < 1e-6


@settings(max_examples=100, deadline=None)
@given(scenario())
def test_the_same_inputs_give_the_same_decision(inp):
    a, b = decide(copy.deepcopy(inp)), decide(copy.deepcopy(inp))
    assert a.decision == b.decision and a.orders == b.orders and a.cancels == b.cancels


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario())
def test_dry_run_and_live_run_compute_identical_diffs(inp):
    def setup() -> tuple[MemoryStore, SimBroker]:
        store = MemoryStore()
        store.set(paths.TRADING_CONFIG, inp.config.to_store())
        for sid, s in inp.strategies.items():
            store.set(paths.strategy(sid), s.to_store())
            write_intent(store, inp.intents[sid])
        broker = SimBroker(store, "acct", lambda s, t: PRICES[s], SPECS, starting_cash=inp.snapshot.net_liquidation,
                           fill_at="close")
        reconcile(store, broker, T)
        return store, broker

    dry_store, dry_broker = setup()
    live_store, live_broker = setup()
    dry = run_commander(dry_store, dry_broker, T, dry_run=True, execution_id="ex")
    live = run_commander(live_store, live_broker, T, dry_run=False, execution_id="ex")
    assert dry.status == "completed" and live.status in ("completed", "partial_success")
    assert dry.decision.diff == live.decision.diff
    assert [(o.client_order_id, o.action, o.totalQuantity) for o in dry.orders_placed] == \
        [(o.client_order_id, o.action, o.totalQuantity) for o in live.orders_placed]
