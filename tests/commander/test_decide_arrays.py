"""The array path of the Commander (commander/decide_arrays.py) gives exactly the documents of the dictionary path.

Hypothesis draws the property tests' scenarios and adds what they leave out: books with capital and
drawdowns (isolation locked and released), lifecycle states, symbols without a price, symbols listed
twice, confidence. Both paths decide the same inputs; every document must be equal to the bit (``repr``
of the dumps: float bits, -0.0, dict order), and so must the orders, cancels, desired books and the
classification.
"""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bus.models import BookCapital, InstrumentSpec, StrategyConfig, TargetPosition, TradingConfig
from commander.arrays import Book, Columns, row_sums, size_books
from commander.decide import CommanderInputs, Plan, decide
from commander.size import SizingError, hold_small_changes, size_targets, unit_values, zero_lots
from commander.targets import with_columns
from tests.commander.test_properties import PRICES, SPECS, scenario

T = datetime(2024, 6, 3, 21, 30, tzinfo=timezone.utc)
NO_PRICE = "NOPX"  # a spec, no quote: a weight or notional target on it cannot be sized
SPECS_X = {**SPECS, NO_PRICE: InstrumentSpec(symbol=NO_PRICE)}


def _extra_target(draw) -> TargetPosition:
    sym = draw(st.sampled_from([*sorted(PRICES), NO_PRICE]))
    kind = draw(st.sampled_from(["weight", "quantity", "notional"]))
    size = draw(st.one_of(st.just(0.0), st.just(-0.0), st.floats(-2.0, 2.0), st.floats(-1e-10, 1e-10)))
    return TargetPosition(symbol=sym, **{kind: size * (100 if kind == "quantity" else 10_000 if kind == "notional"
                                                       else 1)},
                          confidence=draw(st.one_of(st.none(), st.floats(0, 100))))


@st.composite
def inputs(draw) -> CommanderInputs:
    inp: CommanderInputs = draw(scenario())
    inp.specs = SPECS_X
    for sid, cfg in inp.strategies.items():
        state = draw(st.sampled_from(["active", "active", "active", "paused", "isolated", "retired"]))
        inp.strategies[sid] = cfg.model_copy(update={"state": state})
        intent = inp.intents[sid]
        if intent is not None and draw(st.booleans()):
            extra = [_extra_target(draw) for _ in range(draw(st.integers(0, 4)))]
            inp.intents[sid] = intent.model_copy(update={"target_positions": intent.target_positions + extra})
        if draw(st.booleans()):
            inp.book_capital[sid] = BookCapital(
                cash=draw(st.floats(-10_000, 100_000)),
                isolated_since=draw(st.sampled_from([None, "2024-05-30", "2024-04-01"])))
            inp.drawdowns[sid] = draw(st.floats(0.0, 0.9))
        if draw(st.booleans()):
            inp.books[sid] = {s: draw(st.one_of(st.just(0.0), st.floats(-50, 50)))
                              for s in draw(st.lists(st.sampled_from(sorted(PRICES)), max_size=4))}
    if draw(st.booleans()):  # a wide band: more held changes and clipped lines
        inp.config = inp.config.model_copy(update={"rebalance_band": 0.3})
    if draw(st.booleans()):
        inp.intents["gone"] = None  # an intent of no enabled strategy is ignored
    return inp


def _same(a: Plan, b: Plan) -> None:
    assert repr(a.decision.model_dump()) == repr(b.decision.model_dump())
    assert a.decision == b.decision
    assert repr([o.model_dump() for o in a.orders]) == repr([o.model_dump() for o in b.orders])
    assert a.cancels == b.cancels and a.unmanaged == b.unmanaged
    assert repr(a.desired) == repr(b.desired)
    assert repr({k: v.model_dump() for k, v in a.instruments.items()}) == \
        repr({k: v.model_dump() for k, v in b.instruments.items()})
    ca, cb = a.classification, b.classification
    assert (list(ca.fresh), ca.stale, ca.missing, ca.errored, ca.skipped, ca.reasons) == \
        (list(cb.fresh), cb.stale, cb.missing, cb.errored, cb.skipped, cb.reasons)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inputs())
def test_the_array_path_decides_exactly_as_the_dictionary_path(inp):
    _same(decide(copy.deepcopy(inp), arrays=False), decide(copy.deepcopy(inp), arrays=True))


def _columnar(inp: CommanderInputs) -> CommanderInputs:
    """A copy of ``inp`` whose intents hold their targets as columns (as the store edge reads them)."""
    out = copy.deepcopy(inp)
    out.intents = {sid: None if i is None else with_columns(i) for sid, i in out.intents.items()}
    return out


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inputs())
def test_intents_read_into_columns_decide_exactly_as_the_objects_do(inp):
    """Targets held as columns (commander.targets): the array path reads the columns, the dictionary path the
    objects rebuilt from them; both give the documents of the objects, to the bit."""
    expected = decide(copy.deepcopy(inp), arrays=False)
    _same(expected, decide(_columnar(inp), arrays=True))
    _same(expected, decide(_columnar(inp), arrays=False))


VALUES = st.one_of(st.just(0.0), st.just(-0.0), st.floats(-1e16, 1e16), st.floats(-1.0, 1.0))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(VALUES, max_size=12), min_size=1, max_size=30),
       st.sampled_from(["as drawn", "equal", "padded", "k-th", "row by row"]))
def test_row_sums_add_each_row_left_to_right_like_python(rows, shape):
    """Every way row_sums adds (a matrix, padded, k-th entries, row by row) gives Python's sum, -0.0 included."""
    if shape == "equal":
        rows = [(r + [0.5] * 12)[:12] for r in rows]
    elif shape == "padded":
        rows = rows * 40
    elif shape == "k-th":  # many rows of one entry, one of 100
        rows = [r[:1] for r in rows] * 100 + [(rows[0] or [-0.0]) * (100 // max(len(rows[0]), 1))]
    elif shape == "row by row":  # a few rows, one very long
        rows = [r[:1] for r in rows] * 3 + [(rows[0] or [-0.0]) * (1000 // max(len(rows[0]), 1))]
    x = np.array([v for r in rows for v in r], dtype=float)
    starts = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
    assert [v.hex() for v in row_sums(x, starts).tolist()] == [float(sum(r)).hex() for r in rows]


def test_a_large_decision_takes_the_array_path_and_documents_wait_until_read():
    from bench.commander_compute import make_inputs

    inp = make_inputs(20, 60)  # 1,200 targets: past ARRAY_MIN_TARGETS
    plan = decide(inp)
    assert callable(plan._decision) and callable(plan._desired)  # not built yet
    _same(plan, decide(inp, arrays=False))
    assert not callable(plan._decision)


@pytest.mark.parametrize("n_strat,n_sym,k", [(30, 60, None), (60, 200, 7)])
def test_the_bench_inputs_decide_the_same_on_both_paths(n_strat, n_sym, k):
    from bench.commander_compute import make_inputs

    inp = make_inputs(n_strat, n_sym, k)
    inp.books = {sid: {f"S{i:04d}": float(i % 7 - 3) for i in range(0, n_sym, 3)} for sid in list(inp.strategies)[::2]}
    inp.snapshot.open_orders[0].created_at = T - timedelta(days=1)  # expired: cancelled
    _same(decide(copy.deepcopy(inp), arrays=False), decide(copy.deepcopy(inp), arrays=True))
    _same(decide(copy.deepcopy(inp), arrays=False), decide(_columnar(inp), arrays=True))


def test_the_bench_reads_its_intent_documents_into_the_same_decision():
    """bench/commander_compute.py's inputs made as documents and read into columns decide as its objects do."""
    from bench.commander_compute import make_inputs

    _same(decide(make_inputs(30, 60, 7), arrays=True), decide(make_inputs(30, 60, 7, columns=True)))


SYMS = sorted(PRICES)


@st.composite
def books_case(draw):
    books = []
    for i in range(draw(st.integers(1, 6))):
        rp = {"max_leverage": draw(st.floats(0.2, 3.0)), "max_single_position_exposure": draw(st.floats(0.05, 2.0))}
        cfg = StrategyConfig(strategy_id=f"s{i}", name=f"s{i}", risk_parameters=rp)
        syms = draw(st.lists(st.sampled_from([*SYMS, NO_PRICE]), max_size=6, unique=not draw(st.booleans())))
        targets = [TargetPosition(symbol=s, **{draw(st.sampled_from(["weight", "quantity", "notional"])):
                                               draw(st.floats(-2, 2)) * draw(st.sampled_from([1, 100, 10_000]))})
                   for s in syms]
        capital = draw(st.one_of(st.just(0.0), st.floats(-100, 200_000)))
        book = {s: draw(st.one_of(st.just(0.0), st.floats(-400, 400))) for s in
                draw(st.lists(st.sampled_from(SYMS), max_size=5, unique=True))}
        if book and draw(st.booleans()):  # a target near the book's units: a small change, maybe held
            s = draw(st.sampled_from(sorted(book)))
            targets = [t for t in targets if t.symbol != s]
            targets.append(TargetPosition(symbol=s, quantity=book[s] * (1 + draw(st.floats(-0.2, 0.2)))))
            syms = [t.symbol for t in targets]
        books.append(Book(cfg, targets, syms, capital, book))
    config = TradingConfig(min_order_notional=draw(st.sampled_from([0.0, 25.0, 2_000.0])),
                           rebalance_band=draw(st.sampled_from([0.0, 0.02, 0.3])))
    return books, config


@settings(max_examples=400, deadline=None)
@given(books_case())
def test_size_books_equals_sizing_each_book_on_dictionaries(case):
    """commander.arrays.size_books against commander.size, book by book: desired units (in order), zero lots,
    adjustments and errors, to the bit."""
    books, config = case
    values = unit_values(PRICES, SPECS_X)
    cols = Columns.build(sorted({*SYMS, NO_PRICE}), values, SPECS_X)
    sized = size_books(books, cols, config)
    bounds = np.searchsorted(sized.row, np.arange(len(books) + 1)).tolist()
    z_bounds = np.searchsorted(sized.zero_row, np.arange(len(books) + 1)).tolist()
    for r, b in enumerate(books):
        sid = b.strategy.strategy_id
        try:
            one = size_targets(b.strategy, b.targets, b.capital, values)
        except SizingError as exc:
            assert sized.errors.get(sid) == str(exc)
            continue
        if one.duplicates:
            assert sid in sized.fallback
            continue
        assert sid not in sized.errors and sid not in sized.fallback
        wanted = {**{s: 0.0 for s in b.book}, **one.quantities}
        want = hold_small_changes(wanted, b.book, values, SPECS_X, config, b.strategy.risk_parameters.max_leverage
                                  * b.capital)
        a, z = slice(bounds[r], bounds[r + 1]), slice(z_bounds[r], z_bounds[r + 1])
        got = dict(zip([cols.symbols[c] for c in sized.col[a].tolist()], sized.units[a].tolist(), strict=True))
        assert repr(got) == repr(want)
        small = dict(zip([cols.symbols[c] for c in sized.zero_col[z].tolist()], sized.zero_units[z].tolist(),
                         strict=True))
        assert repr(small) == repr(zero_lots(one.quantities, SPECS_X))
        assert sized.adjustments.get(sid, []) == one.adjustments


def test_a_small_order_on_a_line_a_global_limit_clipped_is_dropped_on_both_paths():
    """SPY: 100 held (the book's), 110 wanted, max_symbol_exposure clips the line to 101: a 1-unit order is
    within the band of the clip, on both paths; a second strategy only to share the line."""
    from tests.commander.test_steps import PRICES as P
    from tests.commander.test_steps import SPECS as S
    from tests.commander.test_steps import intent, snapshot, strat

    cfg = TradingConfig(min_order_notional=0, rebalance_band=0.05, risk={"max_symbol_exposure": 0.505})
    strategies = {"a": strat("a", 0.5, max_leverage=3.0), "b": strat("b", 0.4, max_leverage=3.0)}
    intents = {"a": intent("a", [TargetPosition(symbol="SPY", quantity=110.0)]),
               "b": intent("b", [TargetPosition(symbol="VIXY", quantity=10.0)])}
    books = {"a": {"SPY": 100.0}, "b": {}}
    capital = {"a": BookCapital(cash=10_000.0), "b": BookCapital(cash=40_000.0)}
    inp = CommanderInputs("x", T, cfg, strategies, intents, books, snapshot(holdings=[("SPY", 100)]), P, S,
                          book_capital=capital)
    plan = decide(copy.deepcopy(inp), arrays=True)
    (spy,) = [d for d in plan.decision.diff if d.symbol == "SPY"]
    assert spy.quantity == 0 and "global risk limit's clip" in (spy.reason or "")
    _same(decide(copy.deepcopy(inp), arrays=False), plan)
