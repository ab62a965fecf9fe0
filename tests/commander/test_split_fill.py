"""How one fill is split between the strategies that wanted it (commander.attribute.split_fill): opposite wanted
changes cross in full, the net side gets the market part, and nothing is ever booked against a strategy's wish."""

from __future__ import annotations

import math
import random

from hypothesis import given
from hypothesis import strategies as st

from commander.attribute import split_fill

EPS = 1e-9
change = st.floats(-1_000, 1_000, allow_nan=False).filter(lambda x: abs(x) > 1e-6)
wants = st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), change, min_size=1, max_size=4)
lots = st.sampled_from([0.0, 0.001, 1.0, 10.0])


@given(wants, st.floats(-3_000, 3_000, allow_nan=False), lots)
def test_no_strategy_is_booked_against_its_wish_nor_beyond_it(wanted, fill, lot):
    net = sum(wanted.values())
    got = split_fill(fill, wanted, lot)
    assert set(got) <= set(wanted)
    for sid, q in got.items():
        w = wanted[sid]
        assert q * w >= -EPS, f"{sid} wanted {w}, booked {q}"
        if w * net < 0 or abs(net) < 1e-9:  # the opposite side (or everyone when the changes net out): exactly
            assert q == w
        else:  # the net side: at most its wish plus its share of half a lot
            assert abs(q) <= abs(w) * (1 + lot / 2 / abs(net)) + 1e-6


@given(wants, st.floats(0, 1, allow_nan=False), lots)
def test_a_fill_in_the_net_direction_within_half_a_lot_is_booked_in_full(wanted, fraction, lot):
    net = sum(wanted.values())
    if abs(net) < 1e-3:
        return
    fill = math.copysign(fraction * (abs(net) + lot / 2), net)
    if abs(fill) < 1e-6:
        return
    got = split_fill(fill, wanted, lot)
    assert math.isclose(sum(got.values()), fill, rel_tol=1e-9, abs_tol=1e-6)
    if all(w * net > 0 for w in wanted.values()):  # no crossing: DESIGN.md's pro-rata rule
        for sid, w in wanted.items():
            assert math.isclose(got[sid], fill * w / net, rel_tol=1e-12, abs_tol=1e-12)


def test_opposite_changes_with_a_rounded_fill_are_not_multiplied():
    # 283 bought by one, 292 sold by the other: the account sells 9, rounded to 10 by the lot.
    got = split_fill(-10.0, {"spy_macd_vixy": 283.0, "test_signal": -292.0}, lot=1.0)
    assert got["spy_macd_vixy"] == 283.0
    assert math.isclose(got["test_signal"], -292.5)  # half a lot of rounding at most; the rest is external's
    # A fill against the net change (the diff also closed external units): the crossing only; the fill is external's.
    assert split_fill(10.0, {"a": 283.0, "b": -292.0}, lot=1.0) == {"a": 283.0, "b": -283.0}


def test_two_opposite_strategies_keep_books_near_their_targets_over_many_runs():
    """A strategy buying what another sells, run after run, with lot-rounded orders: each book stays within the
    range of its own targets, whatever the other does (F x w / S for everyone booked both far beyond)."""
    rnd = random.Random(7)
    books = {"long": 0.0, "short": 0.0}
    held = 0.0  # the account's units: books + external
    for _ in range(500):
        target = {"long": rnd.uniform(0, 300), "short": -rnd.uniform(0, 300)}
        wanted = {sid: target[sid] - books[sid] for sid in books}
        order = round(sum(target.values()) - held)  # the diff against the account, whole units
        if order == 0:
            continue
        for sid, q in split_fill(float(order), wanted, lot=1.0).items():
            books[sid] += q
        held += order
        assert -1.0 <= books["long"] <= 301.0 and -301.0 <= books["short"] <= 1.0, books  # never beyond any target
        assert abs(held - sum(books.values())) <= 1.0  # external: lot rounding only
