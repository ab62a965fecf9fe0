"""The array aggregation (commander/aggregate.py) gives exactly the results of the loop it replaced.

``reference_aggregate`` is the per-symbol Python loop as it was before the array
version (commit de8d1b8), kept here as the oracle: same target lines (quantities to
the bit, contributions), same conflicts in the same order, for every policy.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bus.models import Conflict, Instrument, TargetLine
from commander.aggregate import aggregate


def reference_aggregate(books, instruments, policy, holdings, confidence=None, priority_order=None,
                        duplicates=None):
    """commander.aggregate.aggregate as of de8d1b8: dictionaries, one symbol at a time."""
    confidence = confidence or {}
    order = {sid: i for i, sid in enumerate(priority_order or [])}
    by_symbol: dict[str, dict[str, float]] = {}
    for sid in sorted(books):
        for sym, q in books[sid].items():
            by_symbol.setdefault(sym, {})[sid] = q
    lines, conflicts = [], []
    for sid, dup in sorted((duplicates or {}).items()):
        for sym, n in sorted(dup.items()):
            conflicts.append(Conflict(type="duplicate", symbol=sym, strategies=[sid], wanted={sid: books[sid][sym]},
                                      policy="sum", outcome=books[sid][sym], note=f"listed {n} times; summed"))
    for sym in sorted(by_symbol):
        contrib = by_symbol[sym]
        total = sum(contrib.values())
        if any(q > 0 for q in contrib.values()) and any(q < 0 for q in contrib.values()):
            longs = {s: q for s, q in contrib.items() if q > 0}
            shorts = {s: q for s, q in contrib.items() if q < 0}
            kept = contrib
            if policy == "highest_confidence":
                best = max(sorted(longs | shorts), key=lambda s: confidence.get((s, sym), 0.0))
                kept = longs if best in longs else shorts
            elif policy == "first_come":
                first = min(sorted(longs | shorts), key=lambda s: order.get(s, len(order)))
                kept = longs if first in longs else shorts
            if policy == "cancel":
                total = holdings.get(sym, 0.0)
                contrib = {}
            elif policy != "net":
                contrib = {s: q for s, q in contrib.items() if s in kept or q == 0}
                total = sum(contrib.values())
            conflicts.append(Conflict(type="direction", symbol=sym, strategies=sorted(longs | shorts),
                                      wanted={s: q for s, q in sorted((longs | shorts).items())}, policy=policy,
                                      outcome=total))
        inst = instruments.get(sym) or Instrument(symbol=sym)
        lines.append(TargetLine.model_construct(symbol=sym, secType=inst.secType, exchange=inst.exchange,
                                                currency=inst.currency, contract_details=inst.contract_details,
                                                quantity=float(total), price=None, contributions=dict(contrib)))
    return lines, conflicts


SIDS = [f"s{i}" for i in range(8)]
SYMS = [f"X{i}" for i in range(12)]
units = st.one_of(st.just(0.0), st.just(-0.0), st.floats(-1e9, 1e9, allow_nan=False, allow_infinity=False),
                  st.floats(-1e-3, 1e-3), st.integers(-50, 50).map(float))


@st.composite
def case(draw):
    books = draw(st.dictionaries(st.sampled_from(SIDS), st.dictionaries(st.sampled_from(SYMS), units, max_size=12),
                                 max_size=8))
    # Strategies list their symbols in any order, as a book or a sized intent does.
    books = {sid: dict(draw(st.permutations(list(b.items())))) for sid, b in books.items()}
    instruments = {s: Instrument(symbol=s, secType=draw(st.sampled_from(["STK", "CRYPTO"])))
                   for s in draw(st.lists(st.sampled_from(SYMS), max_size=6))}
    policy = draw(st.sampled_from(["net", "highest_confidence", "first_come", "cancel"]))
    holdings = draw(st.dictionaries(st.sampled_from(SYMS), units, max_size=6))
    confidence = draw(st.dictionaries(st.tuples(st.sampled_from(SIDS), st.sampled_from(SYMS)),
                                      st.floats(0, 100), max_size=20))
    priority = draw(st.lists(st.sampled_from(SIDS), unique=True, max_size=8))
    duplicates = {sid: {s: draw(st.integers(2, 4)) for s in draw(st.lists(st.sampled_from(sorted(b)), max_size=2))}
                  for sid, b in books.items() if b and draw(st.booleans())}
    return books, instruments, policy, holdings, confidence, priority, duplicates


def _bits(lines):
    return [(t.symbol, t.quantity.hex(), {s: float(q).hex() for s, q in t.contributions.items()}) for t in lines]


@settings(max_examples=400, deadline=None)
@given(case())
def test_array_aggregation_equals_the_reference_loop(c):
    old_lines, old_conflicts = reference_aggregate(*c)
    new_lines, new_conflicts = aggregate(*c)
    assert _bits(new_lines) == _bits(old_lines)  # to the bit, contributions in the same order
    assert [t.model_dump() for t in new_lines] == [t.model_dump() for t in old_lines]
    assert [x.model_dump() for x in new_conflicts] == [x.model_dump() for x in old_conflicts]
    assert [list(x.wanted) for x in new_conflicts] == [list(x.wanted) for x in old_conflicts]


def test_sums_many_contributions_left_to_right_like_python():
    """Numpy's pairwise sum would differ in the last bits here; the aggregation must not."""
    books = {f"s{i:04d}": {"X": 1e16 if i == 0 else 1.0} for i in range(1000)}
    lines, _ = aggregate(books, {}, "net", {})
    in_order = [books[s]["X"] for s in sorted(books)]
    assert lines[0].quantity.hex() == sum(in_order).hex() == (1e16).hex()  # each 1.0 is lost against 1e16
    assert float(np.sum(np.array(in_order))) != lines[0].quantity  # pairwise keeps them: the order matters
